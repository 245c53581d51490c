"""Automatic recharge (seed 003) and the low-balance warning (seed 000)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from credit.models import AutoRecharge, Transfer, Wallet
from credit.services import ledger
from credit.services.wallets import recharge_threshold
from payments.models import SavedCard
from payments.models import State as PaymentState
from tests.credit.conftest import eur, key
from tests.credit.test_concurrency import in_threads
from tests.payments.conftest import card

DECLINE_LATER = "4000000000000341"


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a call and then its on-commit work (e-mails, queued charges), as a commit would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def with_saved_card(wallet: Wallet, number: str = "4242424242424242") -> Wallet:
    saved = SavedCard.objects.create(
        account=wallet.account,
        platform=wallet.platform,
        gateway="sandbox",
        token=card(number),
        brand="visa",
        last4=number[-4:],
        exp_month=12,
        exp_year=2035,
    )
    wallet.auto_recharge_enabled = True
    wallet.auto_recharge_amount = Decimal("100.00")
    wallet.auto_recharge_card = saved
    wallet.save()
    return wallet


def spend_history(wallet: Wallet, per_day: str, days: int = 30) -> None:
    """Debits of ``per_day`` on each of the last ``days`` days."""
    now = timezone.now()
    for day in range(days, 0, -1):
        with time_machine.travel(now - timedelta(days=day) + timedelta(hours=1)):
            ledger.wallet_debit(wallet=wallet, amount=eur(per_day), idempotency_key=key("hist"))


@pytest.mark.django_db
def test_the_threshold_is_five_days_of_the_average_daily_spend(make_wallet):
    wallet = make_wallet("1000.00")
    spend_history(wallet, "10.00")

    assert recharge_threshold(wallet) == Decimal("50.00")


@pytest.mark.django_db
def test_a_debit_below_the_threshold_queues_one_charge_that_credits_the_wallet(
    make_wallet, committed
):
    wallet = with_saved_card(make_wallet("400.00"))
    spend_history(wallet, "10.00")  # balance 100.00, threshold 50.00

    committed(ledger.wallet_debit, wallet=wallet, amount=eur("55.00"), idempotency_key=key())

    recharge = AutoRecharge.objects.get(wallet=wallet)
    assert recharge.state == AutoRecharge.State.SUCCEEDED
    assert recharge.balance_at_trigger == Decimal("45.00")
    assert recharge.payment.state == PaymentState.CAPTURED
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("145.00")
    assert Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.AUTO_RECHARGE).count() == 1


@pytest.mark.django_db
def test_no_second_recharge_within_72_hours_but_one_after(make_wallet, committed):
    wallet = with_saved_card(make_wallet("400.00"))
    spend_history(wallet, "10.00")
    committed(ledger.wallet_debit, wallet=wallet, amount=eur("55.00"), idempotency_key=key())
    committed(ledger.wallet_debit, wallet=wallet, amount=eur("100.00"), idempotency_key=key())
    assert AutoRecharge.objects.filter(wallet=wallet).count() == 1

    with time_machine.travel(timezone.now() + timedelta(hours=71)):
        committed(ledger.wallet_debit, wallet=wallet, amount=eur("5.00"), idempotency_key=key())
    assert AutoRecharge.objects.filter(wallet=wallet).count() == 1

    with time_machine.travel(timezone.now() + timedelta(hours=73)):
        committed(ledger.wallet_debit, wallet=wallet, amount=eur("5.00"), idempotency_key=key())
    assert AutoRecharge.objects.filter(wallet=wallet).count() == 2


@pytest.mark.django_db
def test_the_database_itself_refuses_two_recharges_within_72_hours(make_wallet):
    from django.db import IntegrityError, transaction

    wallet = make_wallet("10.00")
    trigger = ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
    fields = {
        "wallet": wallet,
        "amount": Decimal("50"),
        "currency": "EUR",
        "balance_at_trigger": Decimal("9"),
        "threshold": Decimal("20"),
        "trigger": trigger,
    }
    AutoRecharge.objects.create(**fields)

    with (
        time_machine.travel(timezone.now() + timedelta(hours=71)),
        pytest.raises(IntegrityError, match="auto_recharge_one_per_72_hours"),
        transaction.atomic(),
    ):
        AutoRecharge.objects.create(**fields)


@pytest.mark.django_db
def test_a_declined_recharge_is_logged_and_emailed(make_wallet, mailoutbox, committed):
    wallet = with_saved_card(make_wallet("400.00"), number=DECLINE_LATER)
    spend_history(wallet, "10.00")

    committed(ledger.wallet_debit, wallet=wallet, amount=eur("55.00"), idempotency_key=key())

    recharge = AutoRecharge.objects.get(wallet=wallet)
    assert recharge.state == AutoRecharge.State.FAILED
    assert recharge.failure_message == "Your card was declined."
    assert recharge.payment.events.filter(action="purchase_failed").exists()
    assert any("Automatic recharge" in m.subject for m in mailoutbox)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("45.00")


@pytest.mark.django_db
def test_switched_off_recharge_does_nothing(make_wallet, committed):
    wallet = with_saved_card(make_wallet("400.00"))
    wallet.auto_recharge_enabled = False
    wallet.save()
    spend_history(wallet, "10.00")

    committed(ledger.wallet_debit, wallet=wallet, amount=eur("90.00"), idempotency_key=key())

    assert not AutoRecharge.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_a_race_of_debits_crossing_the_threshold_queues_exactly_one_charge(make_wallet):
    wallet = with_saved_card(make_wallet("400.00"))
    spend_history(wallet, "10.00")  # balance 100.00, threshold 50.00

    results = in_threads(
        12,
        lambda i: ledger.wallet_debit(wallet=wallet, amount=eur("6.00"), idempotency_key=f"r{i}"),
    )

    assert all(isinstance(r, Transfer) for r in results), results
    assert AutoRecharge.objects.filter(wallet=wallet).count() == 1
    assert ledger.ledger_mismatches() == []


@pytest.mark.django_db
def test_the_low_balance_warning_is_sent_once_until_the_balance_rises_again(
    make_wallet, mailoutbox, committed
):
    wallet = make_wallet("100.00")
    Wallet.objects.filter(pk=wallet.pk).update(low_balance_limit=Decimal("50.00"))
    wallet.refresh_from_db()

    committed(ledger.wallet_debit, wallet=wallet, amount=eur("60.00"), idempotency_key=key())
    committed(ledger.wallet_debit, wallet=wallet, amount=eur("10.00"), idempotency_key=key())
    warnings = [m for m in mailoutbox if "running low" in m.subject]
    assert len(warnings) == 1
    assert "€40.00" in warnings[0].body

    committed(
        ledger.wallet_credit,
        wallet=wallet,
        amount=eur("100.00"),
        kind=Transfer.Kind.TOPUP_CARD,
        idempotency_key=key(),
    )
    committed(ledger.wallet_debit, wallet=wallet, amount=eur("95.00"), idempotency_key=key())
    assert len([m for m in mailoutbox if "running low" in m.subject]) == 2


@pytest.mark.django_db
def test_a_zero_limit_switches_the_warning_off(make_wallet, mailoutbox, committed):
    wallet = make_wallet("100.00")

    committed(ledger.wallet_debit, wallet=wallet, amount=eur("99.00"), idempotency_key=key())

    assert not [m for m in mailoutbox if "running low" in m.subject]
