"""The customer's wallet pages: every wallet at a glance, one wallet with its balance,
days of credit left, low-balance banner and spend chart; who may see them."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from defusedxml import ElementTree
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from credit.models import Transfer, Wallet
from credit.services import ledger
from tests.credit.conftest import eur, key
from tests.factories import PlatformFactory, RegistrationFactory, ShopFactory

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"


def shop_of(wallet: Wallet, name: str):
    registration = wallet.account.registrations.get(platform=wallet.platform)
    return ShopFactory(registration=registration, name=name)


def signed_in(client_for, member_of, wallet: Wallet, role: str = "owner"):
    return client_for(member_of(wallet.account, role).user)


def page_text(response) -> str:
    return " ".join(response.content.decode().split())


def wallet_url(wallet: Wallet, name: str = "credit:wallet") -> str:
    return reverse(name, kwargs={"platform_code": wallet.platform.code})


# --- The list of wallets ------------------------------------------------------------------


def test_the_wallets_page_shows_one_wallet_per_platform_and_creates_missing_ones(
    client_for, member_of, make_wallet
):
    wallet = make_wallet("120.00")
    other_platform = PlatformFactory(currency="CZK", name="Czech Platform")
    RegistrationFactory(account=wallet.account, platform=other_platform)
    client = signed_in(client_for, member_of, wallet)

    response = client.get(reverse("credit:wallets"))

    assert response.status_code == 200
    text = page_text(response)
    assert wallet.platform.name in text
    assert "Czech Platform" in text
    assert "€120.00" in text
    # The Czech wallet did not exist before the visit: it is created, empty, in CZK.
    czech = Wallet.objects.get(account=wallet.account, platform=other_platform)
    assert czech.currency == "CZK"
    assert czech.balance == 0
    assert reverse("credit:wallet", kwargs={"platform_code": other_platform.code}) in text


def test_the_wallets_page_does_not_show_another_accounts_wallet(client_for, member_of, make_wallet):
    mine = make_wallet("10.00")
    theirs = make_wallet("999.00")  # another account on the same platform
    client = signed_in(client_for, member_of, mine)

    text = page_text(client.get(reverse("credit:wallets")))

    assert "€10.00" in text
    assert "€999.00" not in text
    assert theirs.account.name not in text


def test_the_wallets_page_marks_a_wallet_below_its_low_balance_limit(
    client_for, member_of, make_wallet
):
    wallet = make_wallet("30.00")
    Wallet.objects.filter(pk=wallet.pk).update(low_balance_limit=Decimal("50.00"))
    client = signed_in(client_for, member_of, wallet)

    text = page_text(client.get(reverse("credit:wallets")))

    assert "Low balance" in text


# --- One wallet ----------------------------------------------------------------------------


def test_the_wallet_page_shows_the_balance_and_the_overdraft(client_for, member_of, make_wallet):
    wallet = make_wallet("40.00")
    Wallet.objects.filter(pk=wallet.pk).update(overdraft_limit=Decimal("25.00"))
    client = signed_in(client_for, member_of, wallet)

    text = page_text(client.get(wallet_url(wallet)))

    assert "€40.00" in text
    assert "€65.00 available with your overdraft" in text


def test_a_platform_the_account_is_not_registered_on_is_not_found(
    client_for, member_of, make_wallet
):
    mine = make_wallet("10.00")
    elsewhere = PlatformFactory(currency="EUR")
    stranger = RegistrationFactory(platform=elsewhere).account
    ledger.wallet_for(account=stranger, platform=elsewhere)
    client = signed_in(client_for, member_of, mine)

    for name in ("credit:wallet", "credit:history", "credit:accounting", "credit:settings"):
        url = reverse(name, kwargs={"platform_code": elsewhere.code})
        assert client.get(url).status_code == 404, name
    assert client.get(reverse("credit:wallet", kwargs={"platform_code": "nope"})).status_code == 404
    # Visiting did not give the account a wallet on a platform it is not registered on.
    assert not Wallet.objects.filter(account=mine.account, platform=elsewhere).exists()


def test_days_of_credit_left_follow_the_average_daily_spend(client_for, member_of, make_wallet):
    wallet = make_wallet("400.00")
    now = timezone.now()
    for day in range(30, 0, -1):  # 10.00 a day for the last 30 days: 100.00 left
        with time_machine.travel(now - timedelta(days=day) + timedelta(hours=1)):
            ledger.wallet_debit(wallet=wallet, amount=eur("10.00"), idempotency_key=key("day"))
    user = member_of(wallet.account, "owner").user

    text = page_text(client_for(user).get(wallet_url(wallet)))

    assert "€100.00" in text
    assert "10 days" in text
    assert "At €10.00 a day, your average over the last 30 days." in text

    # Spending older than the platform's 30 days no longer counts.
    with time_machine.travel(now + timedelta(days=31)):
        text = page_text(client_for(user).get(wallet_url(wallet)))
    assert "Nothing was spent in the last 30 days." in text


def test_days_of_credit_left_is_a_dash_when_nothing_was_spent(client_for, member_of, make_wallet):
    wallet = make_wallet("50.00")
    client = signed_in(client_for, member_of, wallet)

    response = client.get(wallet_url(wallet))

    text = page_text(response)
    assert "Days of credit left" in text
    assert '<span aria-hidden="true">—</span>' in response.content.decode()
    assert "Nothing was spent in the last 30 days." in text


def test_the_low_balance_banner_shows_below_the_customers_limit_only(
    client_for, member_of, make_wallet
):
    wallet = make_wallet("60.00")
    client = signed_in(client_for, member_of, wallet)
    Wallet.objects.filter(pk=wallet.pk).update(low_balance_limit=Decimal("50.00"))
    assert "Low credit" not in page_text(client.get(wallet_url(wallet)))

    ledger.wallet_debit(wallet=wallet, amount=eur("15.00"), idempotency_key=key())

    text = page_text(client.get(wallet_url(wallet)))
    assert "Low credit" in text
    assert "your credit on" in text
    assert "is €45.00, below the limit of €50.00 you set" in text

    # A limit of zero switches the warning off.
    Wallet.objects.filter(pk=wallet.pk).update(low_balance_limit=Decimal("0"))
    assert "Low credit" not in page_text(client.get(wallet_url(wallet)))


def test_the_spend_chart_is_an_svg_with_stacked_bars_on_the_days_spent(
    client_for, member_of, make_wallet
):
    # The history in the order it happened (a movement is never dated before the last).
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=121)):
        wallet = make_wallet("1000.00")
        north, south = shop_of(wallet, "North Shop"), shop_of(wallet, "South Shop")
    with time_machine.travel(now - timedelta(days=120)):  # outside the 90 days
        ledger.wallet_debit(wallet=wallet, amount=eur("99.00"), shop=south, idempotency_key=key())
    with time_machine.travel(now - timedelta(days=3)):
        three_days_ago = timezone.localdate(timezone.now(), wallet.platform.time_zone)
        ledger.wallet_debit(wallet=wallet, amount=eur("30.00"), shop=north, idempotency_key=key())
        ledger.wallet_debit(wallet=wallet, amount=eur("12.50"), shop=south, idempotency_key=key())
    with time_machine.travel(now - timedelta(days=1)):
        yesterday = timezone.localdate(timezone.now(), wallet.platform.time_zone)
        debit = ledger.wallet_debit(
            wallet=wallet, amount=eur("20.00"), shop=north, idempotency_key=key()
        )
        ledger.wallet_refund(debit=debit, amount=eur("5.00"), idempotency_key=key())
    client = signed_in(client_for, member_of, wallet)

    response = client.get(wallet_url(wallet))

    html = response.content.decode()
    svg_markup = html[html.index("<svg") : html.index("</svg>") + len("</svg>")]
    svg = ElementTree.fromstring(svg_markup)  # well-formed XML
    assert svg.get("role") == "img"
    assert svg.find(f"{SVG}title").text == "Spend per day by shop, last 90 days"
    assert "€57.50 was spent" in svg.find(f"{SVG}desc").text
    bars = {
        (rect.get("data-day"), rect.get("data-series")): Decimal(rect.get("data-amount"))
        for rect in svg.iter(f"{SVG}rect")
    }
    assert bars == {
        (three_days_ago.isoformat(), f"shop-{north.pk}"): Decimal("30.00"),
        (three_days_ago.isoformat(), f"shop-{south.pk}"): Decimal("12.50"),
        (yesterday.isoformat(), f"shop-{north.pk}"): Decimal("15.00"),  # 20.00 less 5.00 refunded
    }
    # Each bar says what it is, for a pointer hover or a screen reader.
    titles = [rect.find(f"{SVG}title").text for rect in svg.iter(f"{SVG}rect")]
    assert any("North Shop: €30.00" in title for title in titles)

    text = page_text(response)
    # The text summary and the same numbers as a table.
    assert "In the last 90 days €57.50 was spent from this credit, on 2 of those days." in text
    assert "Show the numbers as a table" in text
    assert "North Shop (€45.00)" in text
    assert "South Shop (€12.50)" in text
    table = html[html.index("<tbody>", html.index("Show the numbers")) :]
    table = table[: table.index("</tbody>")]
    row_cells = [re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row) for row in table.split("<tr>")[1:]]
    assert row_cells == [  # a column per shop (the biggest first), then the day's total
        [date_format(three_days_ago, "DATE_FORMAT"), "€30.00", "€12.50", "€42.50"],
        [date_format(yesterday, "DATE_FORMAT"), "€15.00", "€0.00", "€15.00"],
    ]


def test_the_wallet_page_says_so_when_nothing_was_spent(client_for, member_of, make_wallet):
    wallet = make_wallet("10.00")
    client = signed_in(client_for, member_of, wallet)

    response = client.get(wallet_url(wallet))

    assert "<svg" not in response.content.decode().split("<main", 1)[1].split("spend-heading")[1]
    assert "Nothing was spent from this credit in the last 90 days." in page_text(response)


def test_the_wallet_page_reads_a_fixed_number_of_queries(
    client_for, member_of, make_wallet, django_assert_max_num_queries
):
    wallet = make_wallet("5000.00")
    shops = [shop_of(wallet, f"Shop {n}") for n in range(3)]
    now = timezone.now()
    for day in range(60):
        with time_machine.travel(now - timedelta(days=day)):
            ledger.wallet_debit(
                wallet=wallet, amount=eur("3.00"), shop=shops[day % 3], idempotency_key=key()
            )
    client = signed_in(client_for, member_of, wallet)
    client.get(wallet_url(wallet))

    # Session, user, membership, platform, wallet, average spend, chart, navigation.
    with django_assert_max_num_queries(12):
        response = client.get(wallet_url(wallet))
    assert response.status_code == 200


# --- Who may see what ----------------------------------------------------------------------

PAGES = ["credit:wallet", "credit:history", "credit:accounting"]


@pytest.mark.parametrize("role", ["owner", "admin", "billing", "accountant", "technical"])
def test_who_sees_the_credit_pages(client_for, member_of, make_wallet, role):
    wallet = make_wallet("10.00")
    client = signed_in(client_for, member_of, wallet, role)
    sees_money = role != "technical"
    moves_money = role in ("owner", "admin", "billing")

    assert client.get(reverse("credit:wallets")).status_code == (200 if sees_money else 403)
    for name in PAGES:
        assert client.get(wallet_url(wallet, name)).status_code == (200 if sees_money else 403)
    for name in ("credit:history_csv", "credit:accounting_csv"):
        assert client.get(wallet_url(wallet, name)).status_code == (200 if sees_money else 403)
    assert client.get(wallet_url(wallet, "credit:settings")).status_code == (
        200 if moves_money else 403
    )
    if sees_money:
        # Links to what the role cannot do are not offered.
        html = client.get(wallet_url(wallet)).content.decode()
        assert (wallet_url(wallet, "credit:settings") in html) == moves_money


def test_an_anonymous_visitor_is_sent_to_log_in(client, make_wallet):
    wallet = make_wallet()

    response = client.get(wallet_url(wallet))

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_credit_pages_show_amounts_with_their_currency(client_for, member_of, make_wallet):
    wallet = make_wallet("10.00")
    ledger.wallet_credit(
        wallet=wallet,
        amount=eur("2.50"),
        kind=Transfer.Kind.PROMOTION,
        idempotency_key=key(),
        memo="Welcome bonus",
    )
    client = signed_in(client_for, member_of, wallet)

    text = page_text(client.get(wallet_url(wallet, "credit:history")))

    assert "+€2.50" in text
    assert "€12.50" in text


@pytest.mark.parametrize(("role", "sees_banner"), [("billing", True), ("technical", False)])
def test_the_home_page_warns_members_who_see_money_of_wallets_below_their_limit(
    client_for, member_of, make_wallet, role, sees_banner
):
    low = make_wallet("30.00")
    Wallet.objects.filter(pk=low.pk).update(low_balance_limit=Decimal("50.00"))
    elsewhere = PlatformFactory(currency="EUR", name="Other Platform")
    RegistrationFactory(account=low.account, platform=elsewhere)
    ledger.wallet_for(account=low.account, platform=elsewhere)  # empty, warnings off
    stranger = make_wallet("1.00")
    Wallet.objects.filter(pk=stranger.pk).update(low_balance_limit=Decimal("50.00"))
    client = signed_in(client_for, member_of, low, role)

    response = client.get(reverse("home"))

    assert response.status_code == 200
    text = page_text(response)
    banner = f"your credit on {low.platform.name} is €30.00, below the limit of €50.00"
    assert (banner in text) is sees_banner
    assert "is €1.00, below" not in text  # another account's wallet
    assert "Other Platform is" not in text
    # The navigation leads to the credit pages for those who may see money.
    assert (f'href="{reverse("credit:wallets")}"' in response.content.decode()) is sees_banner


# --- Closed days summed up (credit.services.spend) -----------------------------------------


def spend_from_entries(wallet: Wallet) -> dict:
    """Net spending per (day, series) summed from the wallet's entries, the slow way."""
    from credit.models import Entry

    cells: dict = {}
    zone = wallet.platform.time_zone
    for entry in Entry.objects.filter(
        ledger_account_id=wallet.ledger_account_id,
        transfer__kind__in=[Transfer.Kind.DEBIT, Transfer.Kind.REFUND],
    ).select_related("transfer"):
        shop_id = entry.transfer.shop_id
        cell = (
            timezone.localdate(entry.created_at, zone),
            f"shop-{shop_id}" if shop_id else "no-shop",
        )
        cells[cell] = cells.get(cell, Decimal(0)) - entry.amount
    return {cell: amount for cell, amount in cells.items() if amount}


def spend_cells(wallet: Wallet) -> dict:
    from credit import selectors

    spend = selectors.spend_per_day(wallet=Wallet.objects.get(pk=wallet.pk))
    return {(day, key): amount for (day, key), amount in spend.amounts.items() if amount}


def test_closed_days_are_summed_up_once_and_the_chart_does_not_change(
    client_for, member_of, make_wallet
):
    from credit.models import SpendDay, SpendRollup

    start = timezone.now() - timedelta(days=10)
    with time_machine.travel(start):
        wallet = make_wallet("1000.00")
        north = shop_of(wallet, "North Shop")
    for day in range(1, 8):
        with time_machine.travel(start + timedelta(days=day)):
            debit = ledger.wallet_debit(
                wallet=wallet, amount=eur(f"{day}.25"), shop=north, idempotency_key=key()
            )
            ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
            if day == 4:
                ledger.wallet_refund(debit=debit, amount=eur("4.25"), idempotency_key=key())
    client = signed_in(client_for, member_of, wallet)
    before = spend_from_entries(wallet)
    assert not SpendDay.objects.filter(wallet=wallet).exists()

    first = client.get(wallet_url(wallet))
    rollup = SpendRollup.objects.get(wallet=wallet)
    last_day = timezone.localdate(start + timedelta(days=7), wallet.platform.time_zone)
    assert rollup.through == last_day - timedelta(days=1)  # the last movement's day is open
    assert SpendDay.objects.filter(wallet=wallet).count() == 6 * 2  # a shop and "no shop" a day
    assert spend_cells(wallet) == before
    second = client.get(wallet_url(wallet))
    assert first.content.count(b"<rect") == second.content.count(b"<rect") > 0

    # A payment today: the last movement's day closes, today stays open.
    ledger.wallet_debit(wallet=wallet, amount=eur("2.00"), shop=north, idempotency_key=key())
    client.get(wallet_url(wallet))
    assert SpendRollup.objects.get(wallet=wallet).through == timezone.localdate(
        timezone.now(), wallet.platform.time_zone
    ) - timedelta(days=1)
    today = timezone.localdate(timezone.now(), wallet.platform.time_zone)
    assert spend_cells(wallet) == {**before, (today, f"shop-{north.pk}"): Decimal("2.00")}


def test_summed_up_days_follow_the_platforms_time_zone(client_for, member_of, make_wallet):
    from credit.models import SpendRollup

    start = timezone.now() - timedelta(days=5)
    with time_machine.travel(start.replace(hour=23, minute=30)):
        wallet = make_wallet("100.00")
        ledger.wallet_debit(wallet=wallet, amount=eur("3.00"), idempotency_key=key())
    with time_machine.travel(start + timedelta(days=2)):
        ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
    client = signed_in(client_for, member_of, wallet)
    client.get(wallet_url(wallet))
    utc_cells = spend_cells(wallet)

    platform = wallet.platform
    platform.time_zone = "Asia/Tokyo"  # 23:30 UTC is the next morning there
    platform.save()
    client.get(wallet_url(wallet))

    assert SpendRollup.objects.get(wallet=wallet).time_zone == "Asia/Tokyo"
    first_day = min(day for day, _key in utc_cells)
    assert spend_cells(wallet)[(first_day + timedelta(days=1), "no-shop")] == Decimal("3.00")
