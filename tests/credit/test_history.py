"""The history of credit operations and the accounting view of a period: what they
list, their filters and pages, and a fixed number of queries however long the
history is and however deep the page."""

from __future__ import annotations

import datetime as dt
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from credit import selectors
from credit.models import Transfer, Wallet
from credit.services import ledger
from tests.credit.conftest import eur, key
from tests.factories import ShopFactory

pytestmark = pytest.mark.django_db


def shop_of(wallet: Wallet, name: str):
    registration = wallet.account.registrations.get(platform=wallet.platform)
    return ShopFactory(registration=registration, name=name)


def page_text(response) -> str:
    return " ".join(response.content.decode().split())


def url(wallet: Wallet, name: str, **query: str) -> str:
    base = reverse(name, kwargs={"platform_code": wallet.platform.code})
    if not query:
        return base
    return base + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def rows(response) -> list[str]:
    """The table rows of the page's results, as text."""
    body = response.content.decode().split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in body.split("</tr>")[:-1]]


def link(response, label: str) -> str:
    """The href of the pagination link called ``label``."""
    found = re.search(
        rf'<a class="page-link" href="([^"]+)"(?: rel="\w+")?>{label}</a>',
        response.content.decode(),
    )
    assert found, f"no {label!r} link"
    # "?after=...": the same page with another query string.
    return response.request["PATH_INFO"] + found[1].replace("&amp;", "&")


@pytest.fixture
def owner_client(client_for, member_of):
    def sign_in(wallet: Wallet, role: str = "owner"):
        return client_for(member_of(wallet.account, role).user)

    return sign_in


def debits(wallet: Wallet, count: int, amount: str = "1.00", **kwargs) -> None:
    for _n in range(count):
        ledger.wallet_debit(wallet=wallet, amount=eur(amount), idempotency_key=key(), **kwargs)


# --- What the history shows -----------------------------------------------------------------


def test_the_history_lists_operations_with_sign_shop_and_balance_after(owner_client, make_wallet):
    wallet = make_wallet("100.00")
    shop = shop_of(wallet, "Corner Shop")
    debit = ledger.wallet_debit(
        wallet=wallet, amount=eur("30.25"), shop=shop, memo="Order 1042", idempotency_key=key()
    )
    ledger.wallet_refund(debit=debit, amount=eur("10.00"), idempotency_key=key())

    response = owner_client(wallet).get(url(wallet, "credit:history"))

    assert response.status_code == 200
    listed = rows(response)
    assert len(listed) == 3
    # Newest first: the refund, the payment, the top-up, each with the balance after it.
    assert "Refund to credit" in listed[0]
    assert "Corner Shop" in listed[0]
    assert listed[0].endswith("+€10.00 €79.75")
    assert "Payment from credit" in listed[1]
    assert "Order 1042" in listed[1]
    assert listed[1].endswith("-€30.25 €69.75")
    assert "Top-up by card" in listed[2]
    assert listed[2].endswith("+€100.00 €100.00")


def test_the_history_filters_combine(owner_client, make_wallet):
    wallet = make_wallet("500.00")
    north, south = shop_of(wallet, "North"), shop_of(wallet, "South")
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=10)):
        ledger.wallet_debit(
            wallet=wallet, amount=eur("1.11"), shop=north, memo="old north", idempotency_key=key()
        )
    ledger.wallet_debit(
        wallet=wallet, amount=eur("2.22"), shop=north, memo="new north", idempotency_key=key()
    )
    ledger.wallet_debit(
        wallet=wallet, amount=eur("3.33"), shop=south, memo="new south", idempotency_key=key()
    )
    today = timezone.localdate(timezone.now(), wallet.platform.time_zone).isoformat()
    client = owner_client(wallet)

    def listed(**query: str) -> list[str]:
        response = client.get(url(wallet, "credit:history", **query))
        assert response.status_code == 200
        return rows(response)

    assert len(listed()) == 4
    assert len(listed(type="debit")) == 3
    assert len(listed(type="debit", shop=str(north.pk))) == 2
    only = listed(type="debit", shop=str(north.pk), **{"from": today, "to": today})
    assert len(only) == 1
    assert "new north" in only[0]
    assert len(listed(type="debit", **{"to": today})) == 3
    assert len(listed(shop=str(south.pk), **{"from": today})) == 1


def test_no_match_says_so(owner_client, make_wallet):
    wallet = make_wallet("5.00")

    response = owner_client(wallet).get(url(wallet, "credit:history", type="refund"))

    assert response.status_code == 200
    assert "No credit operation matches these criteria." in page_text(response)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-02-30"}, "Enter a real date as YYYY-MM-DD"),
        ({"from": "yesterday"}, "Enter a real date as YYYY-MM-DD"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "The end date is before the start date."),
        ({"type": "steal"}, "Choose one of the listed types."),
        ({"shop": "abc"}, "Choose one of your shops on this platform."),
        ({"after": "12-x"}, "This page link is damaged or incomplete"),
        ({"before": "99999999999999999999-1"}, "This page link is damaged or incomplete"),
    ],
)
def test_bad_filter_input_is_a_clear_error_and_lists_nothing(
    owner_client, make_wallet, query, message
):
    wallet = make_wallet("5.00")

    response = owner_client(wallet).get(url(wallet, "credit:history", **query))

    assert response.status_code == 400
    text = page_text(response)
    assert message in text
    assert "<tbody>" not in response.content.decode()  # nothing listed


def test_another_accounts_shop_is_not_a_filter_choice(owner_client, make_wallet):
    wallet = make_wallet("5.00")
    theirs = make_wallet("5.00")
    their_shop = shop_of(theirs, "Their Shop")

    response = owner_client(wallet).get(url(wallet, "credit:history", shop=str(their_shop.pk)))

    assert response.status_code == 400
    assert "Choose one of your shops on this platform." in page_text(response)
    assert "Their Shop" not in page_text(response)


# --- Pages ---------------------------------------------------------------------------------------


def test_the_history_pages_by_fifty_older_and_newer(owner_client, make_wallet):
    wallet = make_wallet("1000.00")
    debits(wallet, 120)  # with the top-up: 121 operations
    client = owner_client(wallet)

    first = client.get(url(wallet, "credit:history"))
    assert len(rows(first)) == 50
    assert "Newer</span>" in first.content.decode()  # the first page: no newer link

    second = client.get(link(first, "Older"))
    third = client.get(link(second, "Older"))
    assert len(rows(second)) == 50
    assert len(rows(third)) == 21
    assert "Older</span>" in third.content.decode()  # the last page: no link further
    balances = [row.rsplit(" ", 1)[1] for page in (first, second, third) for row in rows(page)]
    assert balances[0] == "€880.00"
    assert balances[-1] == "€1,000.00"
    assert len(set(balances)) == 121  # nothing twice, nothing skipped

    back = client.get(link(third, "Newer"))
    assert rows(back) == rows(second)
    assert rows(client.get(link(back, "Newer"))) == rows(first)


def test_pages_keep_the_filter(owner_client, make_wallet):
    wallet = make_wallet("1000.00")
    shop = shop_of(wallet, "Busy")
    debits(wallet, 55, shop=shop)
    debits(wallet, 10)
    client = owner_client(wallet)

    first = client.get(url(wallet, "credit:history", shop=str(shop.pk)))
    older = link(first, "Older")
    second = client.get(older)

    assert f"shop={shop.pk}" in older
    assert len(rows(first)) == 50
    assert len(rows(second)) == 5
    assert all("Busy" in row for row in rows(second))


def _build_history(wallet: Wallet, count: int) -> None:
    """``count`` operations in all, through the ledger's services (half with a shop)."""
    registration = wallet.account.registrations.get(platform=wallet.platform)
    shop = registration.shops.first() or ShopFactory(registration=registration, name="Bulk")
    existing = Transfer.objects.filter(wallet=wallet).count()
    for n in range(count - existing):
        ledger.wallet_debit(
            wallet=wallet,
            amount=eur("0.01"),
            shop=shop if n % 2 else None,
            memo=f"debit {n}",
            idempotency_key=key("bulk"),
        )


def _deep_cursor(wallet: Wallet, position: int) -> str:
    transfer = Transfer.objects.filter(wallet=wallet).order_by("-created_at", "-id")[position]
    return selectors.Cursor.of(transfer).encode()


def _queries(client, address: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(address)
    assert response.status_code == 200, response.content.decode()[:500]
    return len(captured.captured_queries)


# Committed as they go (transaction=True): 2,000 debits in one test transaction slow
# each other down (rows the ledger deletes stay visible to it until the end).
@pytest.mark.django_db(transaction=True)
def test_the_history_runs_the_same_queries_for_100_and_2000_entries_on_any_page(
    owner_client, make_wallet, django_assert_num_queries
):
    wallet = make_wallet("1000.00")
    _build_history(wallet, 100)
    client = owner_client(wallet)
    client.get(url(wallet, "credit:history"))  # the session's first request writes it
    first_page = _queries(client, url(wallet, "credit:history"))
    deep_page = _queries(client, url(wallet, "credit:history", after=_deep_cursor(wallet, 60)))
    filtered = _queries(
        client, url(wallet, "credit:history", type="debit", after=_deep_cursor(wallet, 60))
    )
    assert first_page == deep_page

    _build_history(wallet, 2000)
    deep = _deep_cursor(wallet, 1900)

    with django_assert_num_queries(first_page):
        response = client.get(url(wallet, "credit:history"))
    assert len(rows(response)) == 50
    with django_assert_num_queries(deep_page):
        response = client.get(url(wallet, "credit:history", after=deep))
    assert len(rows(response)) == 50
    with django_assert_num_queries(filtered):
        response = client.get(url(wallet, "credit:history", type="debit", after=deep))
    assert len(rows(response)) == 50
    with django_assert_num_queries(deep_page):
        response = client.get(url(wallet, "credit:history", before=deep))
    assert len(rows(response)) == 50


def test_a_deep_history_page_starts_at_its_cursor_in_the_wallet_time_index(make_wallet):
    """The query of page 500 begins where page 499 ended: an index condition on the
    (wallet, -created_at, -id) index, not a scan past every newer row or an OFFSET."""
    wallet = make_wallet("1000.00")
    _build_history(wallet, 300)
    cursor = selectors.Cursor.decode(_deep_cursor(wallet, 200))
    queryset = selectors._beyond(
        selectors.history_transfers(wallet=wallet, filters=selectors.HistoryFilters()),
        cursor,
        descending=True,
    ).order_by("-created_at", "-id")[:51]

    with transaction.atomic(), connection.cursor() as db:
        # On a table this small the planner may prefer a full scan; rule that out to see
        # whether the index can serve the page from the cursor on.
        db.execute("SET LOCAL enable_seqscan = off")
        db.execute("SET LOCAL enable_bitmapscan = off")
        plan = queryset.explain()

    assert "transfer_wallet_time" in plan
    index_condition = next(line for line in plan.splitlines() if "Index Cond" in line)
    assert "created_at <=" in index_condition
    assert "OFFSET" not in str(queryset.query).upper()


def test_the_history_counts_nothing(owner_client, make_wallet):
    """No COUNT over the history: pages cost the same however long it is."""
    wallet = make_wallet("100.00")
    debits(wallet, 3)
    client = owner_client(wallet)

    with CaptureQueriesContext(connection) as captured:
        client.get(url(wallet, "credit:history"))

    assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]


# --- Accounting ------------------------------------------------------------------------------


@pytest.fixture
def march_wallet(make_wallet):
    """A wallet with movements before, in and after March 2026 (UTC platform)."""
    with time_machine.travel(dt.datetime(2026, 2, 20, 12, tzinfo=dt.UTC)):
        wallet = make_wallet("100.00")
        ledger.wallet_debit(wallet=wallet, amount=eur("20.00"), idempotency_key=key())
    shop = shop_of(wallet, "March Shop")
    with time_machine.travel(dt.datetime(2026, 3, 1, 0, 0, 1, tzinfo=dt.UTC)):
        ledger.wallet_credit(
            wallet=wallet,
            amount=eur("50.00"),
            kind=Transfer.Kind.TOPUP_TRANSFER,
            idempotency_key=key(),
            memo="Bank transfer",
        )
    with time_machine.travel(dt.datetime(2026, 3, 15, 9, tzinfo=dt.UTC)):
        debit = ledger.wallet_debit(
            wallet=wallet, amount=eur("35.50"), shop=shop, memo="Order 7", idempotency_key=key()
        )
    with time_machine.travel(dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=dt.UTC)):
        ledger.wallet_refund(debit=debit, amount=eur("5.50"), idempotency_key=key())
    with time_machine.travel(dt.datetime(2026, 4, 1, 0, 0, 0, tzinfo=dt.UTC)):
        ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
    return wallet


def test_the_accounting_view_shows_opening_movements_and_closing(owner_client, march_wallet):
    wallet = march_wallet

    response = owner_client(wallet).get(
        url(wallet, "credit:accounting", **{"from": "2026-03-01", "to": "2026-03-31"})
    )

    assert response.status_code == 200
    listed = rows(response)
    assert listed[0].endswith("Opening balance €80.00")
    assert "Top-up by bank transfer" in listed[1]
    assert listed[1].endswith("+€50.00 €130.00")
    assert "March Shop" in listed[2]
    assert listed[2].endswith("-€35.50 €94.50")
    assert "Refund to credit" in listed[3]
    assert listed[3].endswith("+€5.50 €100.00")
    assert listed[4].endswith("Closing balance €100.00")
    assert len(listed) == 5  # February's and April's movements are outside
    text = page_text(response)
    assert "+€55.50" in text
    assert "\u2212€35.50" in text  # a real minus sign
    assert "3 movements, oldest first" in text


def test_the_accounting_view_defaults_to_the_current_month(owner_client, march_wallet):
    wallet = march_wallet
    client = owner_client(wallet)

    with time_machine.travel(dt.datetime(2026, 3, 20, 10, tzinfo=dt.UTC)):
        client.force_login(wallet.account.memberships.get().user)
        response = client.get(url(wallet, "credit:accounting"))

    assert response.status_code == 200
    assert 'value="2026-03-01"' in response.content.decode()
    assert 'value="2026-03-31"' in response.content.decode()
    assert rows(response)[0].endswith("Opening balance €80.00")
    assert rows(response)[-1].endswith("Closing balance €100.00")


def test_an_empty_period_opens_and_closes_at_the_balance_before_it(owner_client, march_wallet):
    wallet = march_wallet

    response = owner_client(wallet).get(
        url(wallet, "credit:accounting", **{"from": "2026-01-01", "to": "2026-01-31"})
    )

    listed = rows(response)
    assert listed[0].endswith("Opening balance €0.00")
    assert "No movements in this period." in listed[1]
    assert listed[2].endswith("Closing balance €0.00")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "2026-13-01"}, "Enter a real date as YYYY-MM-DD"),
        ({"from": "2026-03-10", "to": "2026-03-01"}, "The end date is before the start date."),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "Choose a period of at most 366 days"),
        ({"from": "2026-03-01", "after": "nonsense"}, "This page link is damaged"),
    ],
)
def test_a_bad_period_is_a_clear_error(owner_client, march_wallet, query, message):
    wallet = march_wallet

    response = owner_client(wallet).get(url(wallet, "credit:accounting", **query))

    assert response.status_code == 400
    assert message in page_text(response)
    assert "<tbody>" not in response.content.decode()  # nothing shown


# Committed as they go (transaction=True): 2,000 debits in one test transaction slow
# each other down (rows the ledger deletes stay visible to it until the end).
@pytest.mark.django_db(transaction=True)
def test_the_accounting_view_runs_the_same_queries_for_100_and_2000_entries(
    owner_client, make_wallet, django_assert_num_queries
):
    wallet = make_wallet("1000.00")
    _build_history(wallet, 100)
    client = owner_client(wallet)
    today = timezone.localdate(timezone.now(), wallet.platform.time_zone)
    period = {"from": today.replace(day=1).isoformat(), "to": today.isoformat()}
    client.get(url(wallet, "credit:accounting", **period))
    first_page = _queries(client, url(wallet, "credit:accounting", **period))

    _build_history(wallet, 2000)
    # The entries of the 1,900th transfer on: a deep page of the period.
    entry = wallet.ledger_account.entries.order_by("created_at", "id").filter(
        created_at__gte=timezone.now() - timedelta(days=1)
    )[1900]
    deep = selectors.Cursor.of(entry).encode()

    with django_assert_num_queries(first_page):
        response = client.get(url(wallet, "credit:accounting", **period))
    assert len(rows(response)) == 101  # the opening balance and 100 movements
    with django_assert_num_queries(first_page):
        response = client.get(url(wallet, "credit:accounting", after=deep, **period))
    assert len(rows(response)) == 100


def test_accounting_pages_carry_the_running_balance_on(owner_client, make_wallet):
    wallet = make_wallet("500.00")
    debits(wallet, 150)
    client = owner_client(wallet)
    today = timezone.localdate(timezone.now(), wallet.platform.time_zone)
    period = {"from": today.isoformat(), "to": today.isoformat()}

    first = client.get(url(wallet, "credit:accounting", **period))
    second = client.get(link(first, "Later"))

    first_rows, second_rows = rows(first), rows(second)
    assert first_rows[0].endswith("Opening balance €0.00")
    assert first_rows[1].endswith("+€500.00 €500.00")
    assert second_rows[0].endswith("-€1.00 €400.00")  # the 101st movement: the 100th debit
    assert second_rows[-1].endswith("Closing balance €350.00")
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal("350.00")


def test_a_debit_that_got_the_lock_later_is_never_dated_before_the_one_before_it(make_wallet):
    """Two debits race across midnight: the one that read its clock first (23:59:59.9)
    gets the wallet's lock second. Its entry is dated after the other's, so each day's
    accounting adds up and one day closes where the next opens."""
    with time_machine.travel(dt.datetime(2026, 2, 20, 12, tzinfo=dt.UTC)):
        wallet = make_wallet("100.00")
    after_midnight = dt.datetime(2026, 3, 2, 0, 0, 0, 500_000, tzinfo=dt.UTC)
    with time_machine.travel(after_midnight, tick=False):
        ledger.wallet_debit(wallet=wallet, amount=eur("10.00"), idempotency_key=key())
    with time_machine.travel(dt.datetime(2026, 3, 1, 23, 59, 59, 900_000, tzinfo=dt.UTC)):
        late = ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())

    leg = late.entries.get(ledger_account_id=wallet.ledger_account_id)
    assert leg.created_at == after_midnight
    assert leg.balance_after == Decimal("89.00")
    first = selectors.accounting_summary(
        wallet=wallet, first_day=dt.date(2026, 3, 1), last_day=dt.date(2026, 3, 1)
    )
    second = selectors.accounting_summary(
        wallet=wallet, first_day=dt.date(2026, 3, 2), last_day=dt.date(2026, 3, 2)
    )
    assert (first.opening.amount, first.movements, first.closing.amount) == (
        Decimal("100.00"),
        0,
        Decimal("100.00"),
    )
    assert second.opening == first.closing
    assert (second.debits.amount, second.movements) == (Decimal("11.00"), 2)
    assert second.closing.amount == Decimal("89.00")
    assert ledger.ledger_mismatches() == []


def test_period_totals_equal_the_sums_of_the_periods_entries(make_wallet):
    """Every period of a week of credits, debits and refunds: the totals read from the
    running totals at its two ends equal what summing its entries gives."""
    from credit.models import Entry

    with time_machine.travel(dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)):
        wallet = make_wallet("300.00")
    for day in range(1, 8):
        for hour, amount in ((9, "12.50"), (13, "3.25"), (20, "7.00")):
            moment = dt.datetime(2026, 5, day, hour, tzinfo=dt.UTC)
            with time_machine.travel(moment):
                debit = ledger.wallet_debit(
                    wallet=wallet, amount=eur(amount), idempotency_key=key()
                )
        with time_machine.travel(dt.datetime(2026, 5, day, 21, tzinfo=dt.UTC)):
            ledger.wallet_refund(debit=debit, amount=eur("2.00"), idempotency_key=key())
            if day % 3 == 0:
                ledger.wallet_credit(
                    wallet=wallet,
                    amount=eur("40.00"),
                    kind=Transfer.Kind.TOPUP_TRANSFER,
                    idempotency_key=key(),
                )
    entries = list(
        Entry.objects.filter(ledger_account_id=wallet.ledger_account_id).order_by(
            "created_at", "id"
        )
    )
    days = [dt.date(2026, 5, day) for day in range(1, 9)]
    for first in days:
        for last in days[days.index(first) :]:
            summary = selectors.accounting_summary(wallet=wallet, first_day=first, last_day=last)
            inside = [e for e in entries if first <= e.created_at.date() <= last]
            before = [e for e in entries if e.created_at.date() < first]
            opening = before[-1].balance_after if before else Decimal("0.00")
            credits = sum((e.amount for e in inside if e.amount > 0), Decimal("0.00"))
            debits = -sum((e.amount for e in inside if e.amount < 0), Decimal("0.00"))
            assert summary.opening.amount == opening, (first, last)
            assert summary.credits.amount == credits, (first, last)
            assert summary.debits.amount == debits, (first, last)
            assert summary.movements == len(inside), (first, last)
            assert summary.closing.amount == opening + credits - debits, (first, last)


def test_the_ledger_check_notices_running_totals_that_do_not_add_up(make_wallet):
    wallet = make_wallet("10.00")
    ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
    assert ledger.ledger_mismatches() == []

    Wallet.objects.filter(pk=wallet.pk).update(movement_count=5)

    problems = ledger.ledger_mismatches()
    assert len(problems) == 1
    assert problems[0].startswith(f"wallet {wallet.pk}: its running totals")
