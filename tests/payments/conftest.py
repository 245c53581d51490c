"""Payments fixtures: a sandbox platform, an account on it, transactions built by services."""

from __future__ import annotations

import pytest
from django.utils import timezone
from djmoney.money import Money

from payments.gateways import sandbox
from payments.services import transactions as tx_services
from tests.factories import PlatformFactory, RegistrationFactory

VISA = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT = "4000000000009995"
THREE_DS = "4000002500003155"
AMEX = "378282246310005"


def card(number: str = VISA, cvc: str | None = None) -> str:
    """A sandbox payment method token, as the hosted card page makes one."""
    brand = sandbox.card_brand(number)
    return sandbox.tokenize(
        number=number,
        exp_month=12,
        exp_year=timezone.localdate().year + 2,
        cvc=cvc or ("1234" if brand == "amex" else "123"),
        today=timezone.localdate(),
    )


@pytest.fixture
def platform(db):
    return PlatformFactory(currency="EUR", card_gateway="sandbox", country="ES")


@pytest.fixture
def payer(platform):
    return RegistrationFactory(platform=platform).account


@pytest.fixture
def new_tx(platform, payer):
    def make(amount="100.00", gateway=None, purpose="goods"):
        return tx_services.transaction_create(
            account=payer,
            platform=platform,
            amount=Money(amount, platform.currency),
            purpose=purpose,
            gateway=gateway,
        )

    return make


@pytest.fixture
def authorized_tx(new_tx):
    def make(amount="100.00", number=VISA):
        tx = new_tx(amount)
        return tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card(number))

    return make
