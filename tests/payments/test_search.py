"""Transaction search: every criterion alone and combined, pagination that keeps the
criteria, a fixed number of queries per page, indexes, and bad input refused."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from moneyed import Money

from payments.models import State, Transaction
from payments.selectors import ReferenceMatch, TransactionFilters, transaction_search
from payments.services import transactions as tx_services
from tests.factories import PlatformFactory, RegistrationFactory, ShopFactory
from tests.payments.conftest import DECLINED, card

pytestmark = pytest.mark.django_db

URL = reverse("payments:transactions")
MASTERCARD = "5555555555554444"
UTC = dt.UTC


@pytest.fixture
def owner_client(payer, member_of, client_for):
    return client_for(member_of(payer, "owner").user)


@pytest.fixture
def shop(payer, platform):
    return ShopFactory(registration=payer.registrations.get(platform=platform), name="Print shop")


@pytest.fixture
def make(payer, platform):
    """make(amount, state=..., number=..., purpose=..., shop=..., at=...) through the services."""

    def build(
        amount="100.00",
        *,
        state=State.AUTHORIZED,
        number="4242424242424242",
        purpose="goods",
        shop=None,
        at=None,
        on=None,
        description="",
    ) -> Transaction:
        target = on or platform
        with time_machine.travel(at or dt.datetime(2026, 3, 10, 12, tzinfo=UTC), tick=False):
            tx = tx_services.transaction_create(
                account=payer,
                platform=target,
                amount=Money(amount, target.currency),
                purpose=purpose,
                shop=shop,
                description=description,
            )
            if state == State.CREATED:
                return tx
            if state == State.FAILED:
                return tx_services.transaction_authorize(
                    transaction_id=tx.pk, payment_method=card(DECLINED), off_session=True
                )
            tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card(number))
            if state == State.VOIDED:
                tx_services.transaction_void(transaction_id=tx.pk)
            elif state in (State.CAPTURED, State.REFUNDED):
                tx_services.transaction_capture(transaction_id=tx.pk)
                if state == State.REFUNDED:
                    tx_services.transaction_refund(transaction_id=tx.pk)
            return Transaction.objects.get(pk=tx.pk)

    return build


def found(client, **criteria) -> list[Transaction]:
    response = client.get(URL, criteria)
    assert response.status_code == 200
    page = response.context["page"]
    assert page is not None, response.context["form"].errors
    return list(page.object_list)


# --- One criterion at a time -------------------------------------------------------------


def test_without_criteria_every_transaction_of_the_account_shows_newest_first(
    owner_client, make, platform
):
    older = make(at=dt.datetime(2026, 3, 1, 9, tzinfo=UTC))
    newer = make(at=dt.datetime(2026, 3, 2, 9, tzinfo=UTC))
    # Another account's payment on the same platform never shows.
    other = RegistrationFactory(platform=platform).account
    tx_services.transaction_create(
        account=other, platform=platform, amount=Money("1.00", "EUR"), purpose="other"
    )

    assert found(owner_client) == [newer, older]


def test_search_by_state(owner_client, make):
    authorized = make(state=State.AUTHORIZED)
    captured = make(state=State.CAPTURED)
    voided = make(state=State.VOIDED)
    failed = make(state=State.FAILED)

    assert found(owner_client, state="authorized") == [authorized]
    assert found(owner_client, state="captured") == [captured]
    assert found(owner_client, state="voided") == [voided]
    assert found(owner_client, state="failed") == [failed]


def test_search_by_amount_range_includes_both_ends(owner_client, make):
    make("9.99")
    ten = make("10.00")
    fifty = make("50.00")
    make("50.01")

    assert set(found(owner_client, amount_min="10", amount_max="50")) == {ten, fifty}
    assert set(found(owner_client, amount_min="10,00", amount_max="50,00")) == {ten, fifty}
    assert len(found(owner_client, amount_min="50.01")) == 1


def test_search_by_purpose(owner_client, make):
    goods = make(purpose="goods")
    topup = make(purpose="topup")

    assert found(owner_client, purpose="goods") == [goods]
    assert found(owner_client, purpose="topup") == [topup]


def test_search_by_card_brand_and_last_four_digits(owner_client, make):
    visa = make(number="4242424242424242")
    mastercard = make(number=MASTERCARD)

    assert found(owner_client, card_brand="visa") == [visa]
    assert found(owner_client, card_brand="mastercard") == [mastercard]
    assert found(owner_client, card_last4="4444") == [mastercard]
    assert found(owner_client, card_last4="4242") == [visa]


def test_search_by_gateway_reference_exact_or_by_its_beginning(owner_client, make):
    first, second = make(), make()
    reference = first.gateway_reference
    assert reference
    assert reference != second.gateway_reference

    assert found(owner_client, reference=reference) == [first]
    assert found(owner_client, reference=reference[:-1]) == []
    assert found(owner_client, reference=reference[:-1], reference_match="prefix") == [first]
    # Every sandbox reference starts alike: the prefix finds both.
    common = reference[:3]
    assert set(found(owner_client, reference=common, reference_match="prefix")) == {
        first,
        second,
    }
    # "%" and "_" are characters of the reference, not wildcards.
    assert found(owner_client, reference=reference[0] + "%", reference_match="prefix") == []
    assert found(owner_client, reference=reference[0] + "_", reference_match="prefix") == []


def test_search_by_shop_and_by_platform(owner_client, make, shop, payer):
    in_shop = make(shop=shop)
    no_shop = make()
    czech = PlatformFactory(currency="CZK", card_gateway="sandbox")
    RegistrationFactory(account=payer, platform=czech)
    on_czech = make("500.00", on=czech)

    form = owner_client.get(URL).content.decode()
    assert f'<option value="{shop.pk}">Print shop ({shop.registration.platform.name})' in form
    assert f'<option value="{czech.pk}">{czech.name} (CZK)' in form
    assert found(owner_client, shop=shop.pk) == [in_shop]
    assert set(found(owner_client, platform=shop.registration.platform.pk)) == {in_shop, no_shop}
    assert found(owner_client, platform=czech.pk) == [on_czech]


def test_search_by_creation_dates_includes_the_last_day(owner_client, make):
    make(at=dt.datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    first = make(at=dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    last = make(at=dt.datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    make(at=dt.datetime(2026, 4, 1, 0, 0, tzinfo=UTC))

    assert found(owner_client, created_from="2026-03-01", created_to="2026-03-31") == [last, first]
    assert len(found(owner_client, created_from="2026-04-01")) == 1
    assert len(found(owner_client, created_to="2026-02-28")) == 1


def test_dates_are_days_in_the_active_time_zone(owner_client, make, settings):
    settings.TIME_ZONE = "Europe/Prague"
    # 23:30 UTC on 31 March is already 1 April in Prague (UTC+2 in summer time).
    late = make(at=dt.datetime(2026, 3, 31, 23, 30, tzinfo=UTC))

    assert found(owner_client, created_from="2026-04-01", created_to="2026-04-01") == [late]
    assert found(owner_client, created_to="2026-03-31") == []


def test_criteria_combine_so_that_all_must_match(owner_client, make, shop):
    wanted = make("40.00", state=State.CAPTURED, number=MASTERCARD, shop=shop)
    make("40.00", state=State.CAPTURED, number=MASTERCARD)  # no shop
    make("40.00", state=State.AUTHORIZED, number=MASTERCARD, shop=shop)  # other state
    make("40.00", state=State.CAPTURED, number="4242424242424242", shop=shop)  # other card
    make("400.00", state=State.CAPTURED, number=MASTERCARD, shop=shop)  # too much
    make("40.00", state=State.CAPTURED, number=MASTERCARD, shop=shop, purpose="topup")

    assert found(
        owner_client,
        state="captured",
        card_brand="mastercard",
        card_last4="4444",
        shop=shop.pk,
        amount_min="10",
        amount_max="100",
        purpose="goods",
        created_from="2026-03-10",
        created_to="2026-03-10",
        reference=wanted.gateway_reference,
    ) == [wanted]


def test_the_selector_takes_the_same_criteria(make, payer):
    captured = make("12.00", state=State.CAPTURED)
    make("13.00", state=State.AUTHORIZED)

    result = transaction_search(
        account_id=payer.pk,
        filters=TransactionFilters(
            state=State.CAPTURED,
            amount_max=Decimal("12.00"),
            reference=captured.gateway_reference[:4],
            reference_match=ReferenceMatch.PREFIX,
        ),
    )

    assert list(result) == [captured]


# --- Pagination --------------------------------------------------------------------------


@pytest.fixture
def thirty(payer, platform) -> list[Transaction]:
    made = []
    for minute in range(30):
        with time_machine.travel(dt.datetime(2026, 3, 5, 10, minute, tzinfo=UTC), tick=False):
            made.append(
                tx_services.transaction_create(
                    account=payer,
                    platform=platform,
                    amount=Money("10.00", "EUR"),
                    purpose="topup" if minute % 2 else "goods",
                )
            )
    return made[::-1]  # newest first


def test_results_come_25_to_a_page_newest_first(owner_client, thirty):
    first = owner_client.get(URL)
    second = owner_client.get(URL, {"page": 2})

    assert list(first.context["page"].object_list) == thirty[:25]
    assert list(second.context["page"].object_list) == thirty[25:]
    assert "30 transactions" in first.content.decode()


def test_page_links_keep_the_criteria(owner_client, thirty):
    response = owner_client.get(URL, {"purpose": "goods", "amount_min": "5"})
    page = response.context["page"]

    assert page.paginator.count == 15
    assert not page.has_other_pages()
    response = owner_client.get(URL, {"amount_min": "5"})
    html = response.content.decode()
    assert 'href="?amount_min=5&amp;page=2"' in html
    second = owner_client.get(URL, {"amount_min": "5", "page": "2"})
    assert list(second.context["page"].object_list) == thirty[25:]
    assert second.context["form"]["amount_min"].value() == "5"


def test_a_page_costs_the_same_number_of_queries_whatever_the_page_or_the_rows(
    owner_client, thirty, shop, make
):
    make(shop=shop)  # rows with a shop and a platform to show
    owner_client.get(URL)  # the session's first request also records when it was seen

    def queries(**criteria) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(URL, criteria).status_code == 200
        return len(captured.captured_queries)

    first, second = queries(), queries(page=2)
    filtered = queries(purpose="goods", amount_min="1")
    assert first == second == filtered
    assert first <= 12


def test_searches_can_use_the_indexes(make, payer):
    make(state=State.CAPTURED)

    def plan(search) -> str:
        sql, params = search.page_sql(limit=25)
        with connection.cursor() as cursor:
            # Tiny test tables are cheaper to scan; ask the planner what it *can* do.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())

    def search(**filters):
        return transaction_search(account_id=payer.pk, filters=TransactionFilters(**filters))

    for filters in (
        {},
        {"state": State.CAPTURED},
        {"reference": "sb_123"},
        {"reference": "sb_", "reference_match": ReferenceMatch.PREFIX},
        {"card_last4": "4242", "amount_min": Decimal(1)},
        {"created_from": dt.date(2026, 3, 1), "purpose": "goods"},
    ):
        explained = plan(search(**filters))
        assert "Seq Scan on payments_transaction" not in explained, filters
        assert "Index Scan" in explained, filters
        assert "tx_" in explained or "payments_transaction_" in explained, filters


# --- Bad criteria ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "field", "error"),
    [
        (
            {"created_from": "2026-03-31", "created_to": "2026-03-01"},
            "created_to",
            "The end date is before the start date.",
        ),
        ({"created_from": "31.13.2026"}, "created_from", "Enter a date, e.g. 2026-03-01."),
        ({"amount_min": "ten"}, "amount_min", "Enter the amount as a number, e.g. 49.90."),
        (
            {"amount_min": "50", "amount_max": "10"},
            "amount_max",
            "The upper amount is below the lower one.",
        ),
        ({"card_last4": "42a2"}, "card_last4", "Enter exactly four digits, e.g. 4242."),
        ({"card_last4": "424"}, "card_last4", "Enter exactly four digits, e.g. 4242."),
        ({"card_last4": "42424"}, "card_last4", "Enter exactly four digits, e.g. 4242."),
        (
            {"state": "paid"},
            "state",
            "Select a valid choice. paid is not one of the available choices.",
        ),
        ({"shop": "999999"}, "shop", "Choose one of your shops."),
    ],
)
def test_bad_criteria_are_explained_next_to_the_field_and_nothing_is_searched(
    owner_client, make, criteria, field, error
):
    make()

    with CaptureQueriesContext(connection) as captured:
        response = owner_client.get(URL, criteria)

    assert response.status_code == 200
    assert response.context["page"] is None
    assert response.context["form"].errors[field] == [error]
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html
    assert f'aria-describedby="id_{field}_error"' in html
    assert "nothing was searched" in html
    assert not any("payments_transaction" in q["sql"] for q in captured.captured_queries)


def test_another_accounts_shop_is_not_a_valid_criterion(owner_client, make, platform):
    other_shop = ShopFactory(registration=RegistrationFactory(platform=platform))

    response = owner_client.get(URL, {"shop": other_shop.pk})

    assert response.context["form"].errors["shop"] == ["Choose one of your shops."]
