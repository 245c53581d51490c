"""Authorizations expire by themselves; lost gateway answers are reconciled, never repeated."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from payments.gateways import GatewayError
from payments.gateways.sandbox import SandboxGateway
from payments.models import SandboxCharge, State, Transaction
from payments.services import transactions as tx_services
from payments.tasks import expire_authorizations, reconcile_transactions
from tests.payments.conftest import VISA, card

pytestmark = pytest.mark.django_db


def test_an_authorization_expires_after_seven_days_and_is_voided_at_the_gateway(authorized_tx):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        tx = authorized_tx()
    assert tx.authorization_expires_at == start + timedelta(days=7)

    with time_machine.travel(start + timedelta(days=6, hours=23), tick=False):
        expire_authorizations.delay()
    assert Transaction.objects.get(pk=tx.pk).state == State.AUTHORIZED

    with time_machine.travel(start + timedelta(days=7, minutes=1), tick=False):
        expire_authorizations.delay()

    tx.refresh_from_db()
    assert tx.state == State.EXPIRED
    assert SandboxCharge.objects.get(reference=tx.gateway_reference).status == "voided"
    last = tx.events.last()
    assert (last.action, last.system_actor, last.new_state) == (
        "expire",
        "expire-authorizations",
        State.EXPIRED,
    )


def test_an_expired_authorization_can_no_longer_be_captured(authorized_tx):
    from payments.exceptions import InvalidTransition

    tx = authorized_tx()
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        expire_authorizations.delay()

    with pytest.raises(InvalidTransition):
        tx_services.transaction_capture(transaction_id=tx.pk)


def test_a_capture_whose_answer_was_lost_is_found_captured_and_not_repeated(
    authorized_tx, monkeypatch
):
    tx = authorized_tx()
    real_capture = SandboxGateway.capture

    def capture_then_lose_the_answer(self, transaction, **kwargs):
        real_capture(self, transaction, **kwargs)
        raise GatewayError("read timeout")

    monkeypatch.setattr(SandboxGateway, "capture", capture_then_lose_the_answer)
    tx = tx_services.transaction_capture(transaction_id=tx.pk)
    assert tx.state == State.AUTHORIZED
    assert tx.pending_operation == "capture"
    monkeypatch.setattr(SandboxGateway, "capture", real_capture)
    calls = []
    monkeypatch.setattr(SandboxGateway, "capture", lambda *a, **k: calls.append(a))

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        reconcile_transactions.delay()

    tx.refresh_from_db()
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == tx.amount
    assert tx.pending_operation == ""
    assert calls == []  # never asked the gateway to capture again
    assert tx.events.last().system_actor == "reconcile-payments"


def test_a_void_that_never_reached_the_gateway_is_dropped_not_repeated(authorized_tx, monkeypatch):
    tx = authorized_tx()

    def unreachable(self, transaction, **kwargs):
        raise GatewayError("connection refused")

    monkeypatch.setattr(SandboxGateway, "void", unreachable)
    tx_services.transaction_void(transaction_id=tx.pk)

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        reconcile_transactions.delay()

    tx.refresh_from_db()
    assert tx.state == State.AUTHORIZED
    assert tx.pending_operation == ""
    assert tx.events.last().action == "void_not_done"
    assert SandboxCharge.objects.get(reference=tx.gateway_reference).status == "authorized"


def test_a_recent_operation_in_flight_is_left_alone(authorized_tx, monkeypatch):
    tx = authorized_tx()
    monkeypatch.setattr(
        SandboxGateway, "void", lambda *a, **k: (_ for _ in ()).throw(GatewayError("timeout"))
    )
    tx_services.transaction_void(transaction_id=tx.pk)

    reconcile_transactions.delay()

    assert Transaction.objects.get(pk=tx.pk).pending_operation == "void"


def test_a_payment_the_customer_never_finished_fails_after_a_day(new_tx):
    tx = new_tx()
    tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card("4000000000000002"))

    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        reconcile_transactions.delay()

    tx.refresh_from_db()
    assert tx.state == State.FAILED
    assert tx.failure_code == "abandoned"


def test_a_bank_transfer_waits_and_settles_when_the_money_arrives(new_tx):
    tx = new_tx(gateway="bank_transfer", purpose="topup")
    tx = tx_services.transaction_authorize(transaction_id=tx.pk, payment_method="")
    assert tx.state == State.CREATED

    with time_machine.travel(timezone.now() + timedelta(days=5)):
        reconcile_transactions.delay()
    assert Transaction.objects.get(pk=tx.pk).state == State.CREATED

    tx = tx_services.transaction_transfer_received(transaction_id=tx.pk, reference="STMT-1")
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == tx.amount
    assert tx.gateway_reference == "STMT-1"


def test_a_saved_card_is_kept_without_its_number(new_tx):
    tx = new_tx()
    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card(VISA), save_card=True
    )

    saved = tx.saved_card
    assert (saved.brand, saved.last4) == ("visa", "4242")
    assert VISA not in saved.token
