"""Every allowed transition works; every refused one raises and changes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.utils import DatabaseError
from djmoney.money import Money

from payments.exceptions import InvalidAmount, InvalidTransition
from payments.models import SandboxCharge, State, Transaction, TransactionEvent
from payments.services import transactions as tx_services
from tests.payments.conftest import DECLINED, THREE_DS, VISA, card

pytestmark = pytest.mark.django_db


def reach(state: str, new_tx) -> Transaction:
    """A transaction in ``state``, made through the real services."""
    tx = new_tx("100.00")
    pk = tx.pk
    if state == State.CREATED:
        return tx
    if state == State.FAILED:
        # Off-session (no customer to try another card): a decline fails the payment.
        return tx_services.transaction_authorize(
            transaction_id=pk, payment_method=card(DECLINED), off_session=True
        )
    if state == State.ACTION_REQUIRED:
        return tx_services.transaction_authorize(transaction_id=pk, payment_method=card(THREE_DS))
    tx_services.transaction_authorize(transaction_id=pk, payment_method=card(VISA))
    if state == State.AUTHORIZED:
        return Transaction.objects.get(pk=pk)
    if state == State.VOIDED:
        return tx_services.transaction_void(transaction_id=pk)
    if state == State.EXPIRED:
        return tx_services.transaction_expire(transaction_id=pk)
    tx_services.transaction_capture(transaction_id=pk)
    if state == State.CAPTURED:
        return Transaction.objects.get(pk=pk)
    if state == State.PARTIALLY_REFUNDED:
        return tx_services.transaction_refund(transaction_id=pk, amount=Money("30.00", "EUR"))
    if state == State.REFUNDED:
        return tx_services.transaction_refund(transaction_id=pk)
    raise AssertionError(state)


OPERATIONS = {
    "authorize": lambda pk: tx_services.transaction_authorize(
        transaction_id=pk, payment_method=card(VISA)
    ),
    "purchase": lambda pk: tx_services.transaction_authorize(
        transaction_id=pk, payment_method=card(VISA), capture=True
    ),
    "complete_action": lambda pk: tx_services.transaction_action_complete(
        transaction_id=pk, succeeded=True
    ),
    "capture": lambda pk: tx_services.transaction_capture(transaction_id=pk),
    "void": lambda pk: tx_services.transaction_void(transaction_id=pk),
    "refund": lambda pk: tx_services.transaction_refund(transaction_id=pk),
    "expire": lambda pk: tx_services.transaction_expire(transaction_id=pk),
}

# (state, operation) -> resulting state; every pair not listed must be refused.
ALLOWED = {
    (State.CREATED, "authorize"): State.AUTHORIZED,
    (State.CREATED, "purchase"): State.CAPTURED,
    (State.ACTION_REQUIRED, "complete_action"): State.AUTHORIZED,
    (State.ACTION_REQUIRED, "void"): State.VOIDED,
    (State.AUTHORIZED, "capture"): State.CAPTURED,
    (State.AUTHORIZED, "void"): State.VOIDED,
    (State.AUTHORIZED, "expire"): State.EXPIRED,
    (State.CAPTURED, "refund"): State.REFUNDED,
    (State.PARTIALLY_REFUNDED, "refund"): State.REFUNDED,
}

ALL_PAIRS = [(state, operation) for state in State.values for operation in OPERATIONS]


@pytest.mark.parametrize(("state", "operation"), ALL_PAIRS)
def test_transition(new_tx, state, operation):
    tx = reach(state, new_tx)
    assert tx.state == state
    events_before = TransactionEvent.objects.filter(transaction=tx).count()

    if (state, operation) in ALLOWED:
        result = OPERATIONS[operation](tx.pk)
        assert result.state == ALLOWED[(state, operation)]
        assert result.pending_operation == ""
    else:
        with pytest.raises(InvalidTransition):
            OPERATIONS[operation](tx.pk)
        unchanged = Transaction.objects.get(pk=tx.pk)
        assert unchanged.state == state
        assert unchanged.pending_operation == ""
        # A refused request is not even logged as an attempt, and reaches no gateway.
        assert TransactionEvent.objects.filter(transaction=tx).count() == events_before


def test_partial_capture_collects_part_and_refunds_stop_at_what_was_captured(authorized_tx):
    tx = authorized_tx("100.00")

    tx = tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("60.00", "EUR"))
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("60.00", "EUR")
    assert tx.is_partly_captured

    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("25.00", "EUR"))
    assert tx.state == State.PARTIALLY_REFUNDED
    with pytest.raises(InvalidAmount, match=r"at most €35\.00"):
        tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("35.01", "EUR"))
    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("35.00", "EUR"))
    assert tx.state == State.REFUNDED
    assert tx.refunded_amount == Money("60.00", "EUR")
    charge = SandboxCharge.objects.get(reference=tx.gateway_reference)
    assert (charge.captured, charge.refunded) == (Decimal("60.00"), Decimal("60.00"))


def test_capture_above_the_authorized_amount_is_refused(authorized_tx):
    tx = authorized_tx("100.00")

    with pytest.raises(InvalidAmount, match=r"at most €100\.00"):
        tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("100.01", "EUR"))

    tx.refresh_from_db()
    assert tx.state == State.AUTHORIZED
    assert tx.pending_operation == ""


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Money("0", "EUR"), "more than zero"),
        (Money("-5", "EUR"), "more than zero"),
        (Money("1.005", "EUR"), "two decimal places"),
        (Money("10", "CZK"), "must be in EUR"),
    ],
)
def test_bad_amounts_are_refused_with_a_clear_message(authorized_tx, amount, message):
    tx = authorized_tx()

    with pytest.raises(InvalidAmount, match=message):
        tx_services.transaction_capture(transaction_id=tx.pk, amount=amount)


def test_a_card_declined_while_paying_lets_the_customer_try_another(new_tx):
    tx = new_tx()

    tx = tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card(DECLINED))
    assert tx.state == State.CREATED
    assert tx.failure_code == "card_declined"
    assert tx.card_last4 == "0002"

    tx = tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card(VISA))
    assert tx.state == State.AUTHORIZED
    assert tx.card_last4 == "4242"
    assert tx.failure_code == ""


def test_an_off_session_decline_fails_the_payment(new_tx):
    tx = new_tx()

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card(DECLINED), off_session=True
    )

    assert tx.state == State.FAILED
    assert tx.failure_message == "Your card was declined."


def test_three_d_secure_waits_for_the_customer_then_authorizes(new_tx):
    tx = new_tx()

    tx = tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card(THREE_DS))
    assert tx.state == State.ACTION_REQUIRED
    assert str(tx.public_id) in tx.next_action_url

    tx = tx_services.transaction_action_complete(transaction_id=tx.pk, succeeded=True)
    assert tx.state == State.AUTHORIZED


def test_failed_authentication_returns_the_payment_to_the_customer(new_tx):
    tx = tx_services.transaction_authorize(
        transaction_id=new_tx().pk, payment_method=card(THREE_DS)
    )

    tx = tx_services.transaction_action_complete(transaction_id=tx.pk, succeeded=False)

    assert tx.state == State.CREATED
    assert tx.failure_code == "authentication_failed"


def test_every_action_is_in_the_message_log_in_order(authorized_tx):
    tx = authorized_tx("80.00")
    tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("50.00", "EUR"))

    log = list(tx.events.values_list("action", "old_state", "new_state", "amount", "gateway_code"))

    assert log == [
        ("created", "", "created", Decimal("80.00"), ""),
        ("authorize_requested", "created", "", None, ""),
        ("authorize", "created", "authorized", None, "approved"),
        ("capture_requested", "authorized", "", Decimal("50.00"), ""),
        ("capture", "authorized", "captured", Decimal("50.00"), "approved"),
    ]


def test_the_message_log_cannot_be_changed_or_deleted_even_with_raw_sql(authorized_tx):
    tx = authorized_tx()
    event = tx.events.first()

    for statement in (
        "UPDATE payments_transactionevent SET message = 'rewritten' WHERE id = %s",
        "DELETE FROM payments_transactionevent WHERE id = %s",
    ):
        with connection.cursor() as cursor:
            cursor.execute("SAVEPOINT raw_sql")
            with pytest.raises(DatabaseError, match="Cannot update or delete rows"):
                cursor.execute(statement, [event.pk])
            cursor.execute("ROLLBACK TO SAVEPOINT raw_sql")

    assert TransactionEvent.objects.get(pk=event.pk).message == event.message


def test_a_transaction_in_another_currency_than_the_platform_is_refused(platform, payer):
    with pytest.raises(InvalidAmount, match="must be in EUR"):
        tx_services.transaction_create(
            account=payer, platform=platform, amount=Money("10", "CZK"), purpose="goods"
        )

    assert not Transaction.objects.exists()


def test_creating_twice_with_one_idempotency_key_makes_one_transaction(platform, payer):
    first = tx_services.transaction_create(
        account=payer,
        platform=platform,
        amount=Money("10", "EUR"),
        purpose="topup",
        idempotency_key="topup-42",
    )
    second = tx_services.transaction_create(
        account=payer,
        platform=platform,
        amount=Money("10", "EUR"),
        purpose="topup",
        idempotency_key="topup-42",
    )

    assert first.pk == second.pk
    assert Transaction.objects.count() == 1


def test_a_brand_the_platform_refuses_is_refused_before_the_gateway(platform, new_tx):
    from payments.exceptions import CardBrandNotAccepted
    from tests.payments.conftest import AMEX

    platform.accepted_card_brands = ["visa", "mastercard"]
    platform.save()
    tx = new_tx()

    with pytest.raises(CardBrandNotAccepted):
        tx_services.transaction_authorize(
            transaction_id=tx.pk, payment_method=card(AMEX), brand="amex"
        )

    tx.refresh_from_db()
    assert tx.state == State.CREATED
    assert not SandboxCharge.objects.exists()
