"""The wallet's settings page: pay from credit, the low-balance limit, automatic recharge
with a saved card; clear errors that change nothing; only roles that move money."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.urls import reverse

from credit.models import Wallet
from payments.models import SavedCard
from tests.factories import PlatformFactory, RegistrationFactory

pytestmark = pytest.mark.django_db

_tokens = itertools.count(1)


def saved_card(wallet: Wallet, *, last4: str = "4242", platform=None, account=None) -> SavedCard:
    return SavedCard.objects.create(
        account=account or wallet.account,
        platform=platform or wallet.platform,
        gateway="sandbox",
        token=f"tok_test_{next(_tokens)}",
        brand="visa",
        last4=last4,
        exp_month=12,
        exp_year=2035,
    )


def settings_url(wallet: Wallet) -> str:
    return reverse("credit:settings", kwargs={"platform_code": wallet.platform.code})


def page_text(response) -> str:
    return " ".join(response.content.decode().split())


def form(**changes: str) -> dict[str, str]:
    data = {"low_balance_limit": "0", "auto_recharge_amount": "", "auto_recharge_card": ""}
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def settings_of(wallet: Wallet) -> tuple:
    wallet = Wallet.objects.get(pk=wallet.pk)
    return (
        wallet.pay_from_credit,
        wallet.low_balance_limit,
        wallet.auto_recharge_enabled,
        wallet.auto_recharge_amount,
        wallet.auto_recharge_card_id,
    )


@pytest.fixture
def signed_in(client_for, member_of):
    def sign_in(wallet: Wallet, role: str = "owner"):
        return client_for(member_of(wallet.account, role).user)

    return sign_in


def test_the_settings_page_explains_each_setting(signed_in, wallet):
    response = signed_in(wallet).get(settings_url(wallet))

    assert response.status_code == 200
    text = page_text(response)
    assert "new orders on this platform are paid from this credit automatically" in text
    assert "Enter 0 to switch the warning off." in text
    assert "below 5 days of your average daily spending" in text
    assert "averaged over the last 30 days" in text
    assert "At most once every 72 hours; only by card." in text


def test_pay_from_credit_and_the_low_balance_limit_are_saved(signed_in, make_wallet):
    wallet = make_wallet("80.00")
    client = signed_in(wallet)

    response = client.post(
        settings_url(wallet), form(pay_from_credit="on", low_balance_limit="100,50")
    )

    assert response.status_code == 302
    assert response["Location"] == reverse(
        "credit:wallet", kwargs={"platform_code": wallet.platform.code}
    )
    assert settings_of(wallet)[:3] == (True, Decimal("100.50"), False)
    text = page_text(client.get(response["Location"]))
    assert "The credit settings have been saved." in text
    # Below the new limit at once: the banner says so.
    assert "Low credit" in text


def test_switching_pay_from_credit_off(signed_in, wallet):
    Wallet.objects.filter(pk=wallet.pk).update(pay_from_credit=True)

    signed_in(wallet).post(settings_url(wallet), form())

    assert settings_of(wallet)[0] is False


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "The limit cannot be negative; 0 switches it off."),
        ("abc", "Enter the amount as a number, e.g. 49.90."),
        ("10.005", "The amount can have at most two decimal places."),
        ("", "Enter the limit; 0 switches the warning off."),
    ],
)
def test_a_bad_low_balance_limit_is_refused_and_changes_nothing(signed_in, wallet, value, message):
    before = settings_of(wallet)

    response = signed_in(wallet).post(
        settings_url(wallet), form(pay_from_credit="on", low_balance_limit=value)
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'aria-describedby="id_low_balance_limit_helptext id_low_balance_limit_error"' in html
    assert settings_of(wallet) == before


def test_automatic_recharge_without_a_saved_card_says_how_to_get_one(signed_in, wallet):
    before = settings_of(wallet)

    response = signed_in(wallet).post(
        settings_url(wallet), form(auto_recharge_enabled="on", auto_recharge_amount="100")
    )

    assert response.status_code == 200
    text = page_text(response)
    assert "You have no saved card on this platform. Pay a top-up by card and tick" in text
    assert "Save this card" in text
    assert settings_of(wallet) == before


def test_automatic_recharge_is_saved_with_the_chosen_card(signed_in, wallet):
    saved_card(wallet, last4="1111")
    card = saved_card(wallet, last4="4242")
    client = signed_in(wallet)
    assert "Visa •••• 4242" in page_text(client.get(settings_url(wallet)))

    response = client.post(
        settings_url(wallet),
        form(
            auto_recharge_enabled="on", auto_recharge_amount="150", auto_recharge_card=str(card.pk)
        ),
    )

    assert response.status_code == 302
    assert settings_of(wallet)[2:] == (True, Decimal("150.00"), card.pk)


def test_automatic_recharge_needs_an_amount_within_the_platforms_limits(signed_in, wallet):
    card = saved_card(wallet)
    client = signed_in(wallet)
    before = settings_of(wallet)

    missing = client.post(
        settings_url(wallet), form(auto_recharge_enabled="on", auto_recharge_card=str(card.pk))
    )
    too_much = client.post(
        settings_url(wallet),
        form(
            auto_recharge_enabled="on",
            auto_recharge_amount="20000",
            auto_recharge_card=str(card.pk),
        ),
    )

    assert "Enter how much to recharge each time" in page_text(missing)
    assert "The recharge must be between €10.00 and €10,000.00." in page_text(too_much)
    assert settings_of(wallet) == before


def test_a_card_of_another_account_or_platform_cannot_be_chosen(signed_in, wallet):
    saved_card(wallet)  # the account has a card, so the choice is offered
    other_account = RegistrationFactory(platform=wallet.platform).account
    theirs = saved_card(wallet, account=other_account)
    elsewhere = PlatformFactory(currency="EUR")
    RegistrationFactory(account=wallet.account, platform=elsewhere)
    other_platform = saved_card(wallet, platform=elsewhere)
    removed = saved_card(wallet)
    removed.removed_at = removed.created_at
    removed.save()
    client = signed_in(wallet)
    before = settings_of(wallet)

    for card in (theirs, other_platform, removed):
        response = client.post(
            settings_url(wallet),
            form(
                auto_recharge_enabled="on",
                auto_recharge_amount="100",
                auto_recharge_card=str(card.pk),
            ),
        )
        assert "Choose one of your saved cards." in page_text(response)
    assert settings_of(wallet) == before


def test_switching_automatic_recharge_off(signed_in, wallet):
    card = saved_card(wallet)
    client = signed_in(wallet)
    client.post(
        settings_url(wallet),
        form(
            auto_recharge_enabled="on", auto_recharge_amount="100", auto_recharge_card=str(card.pk)
        ),
    )

    client.post(settings_url(wallet), form(auto_recharge_amount="100"))

    assert settings_of(wallet)[2] is False


@pytest.mark.parametrize("role", ["accountant", "technical"])
def test_roles_that_do_not_move_money_cannot_change_settings(signed_in, wallet, role):
    client = signed_in(wallet, role)
    before = settings_of(wallet)

    assert client.get(settings_url(wallet)).status_code == 403
    response = client.post(settings_url(wallet), form(pay_from_credit="on", low_balance_limit="9"))

    assert response.status_code == 403
    assert settings_of(wallet) == before


def test_the_settings_form_is_protected_against_cross_site_posts(client_for, member_of, wallet):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(member_of(wallet.account, "owner").user)

    response = client.post(settings_url(wallet), form(pay_from_credit="on"))

    assert response.status_code == 403
    assert settings_of(wallet)[0] is False
