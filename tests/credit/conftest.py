"""Credit fixtures: wallets on a sandbox platform, money moved through the real services."""

from __future__ import annotations

import itertools

import pytest
from djmoney.money import Money

from credit.models import Transfer
from credit.services import ledger
from tests.factories import PlatformFactory, RegistrationFactory

_keys = itertools.count(1)


def key(prefix: str = "op") -> str:
    return f"test-{prefix}-{next(_keys)}"


@pytest.fixture
def platform(db):
    return PlatformFactory(currency="EUR", card_gateway="sandbox", country="ES")


@pytest.fixture
def make_wallet(platform):
    def make(balance: str | None = None, account=None):
        account = account or RegistrationFactory(platform=platform).account
        if not account.registrations.filter(platform=platform).exists():
            RegistrationFactory(account=account, platform=platform)
        wallet = ledger.wallet_for(account=account, platform=platform)
        if balance:
            ledger.wallet_credit(
                wallet=wallet,
                amount=Money(balance, wallet.currency),
                kind=Transfer.Kind.TOPUP_CARD,
                idempotency_key=key("topup"),
            )
            wallet.refresh_from_db()
        return wallet

    return make


@pytest.fixture
def wallet(make_wallet):
    return make_wallet()


def eur(amount: str) -> Money:
    return Money(amount, "EUR")
