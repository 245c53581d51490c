"""Gateway notifications (webhooks): each event processed once, settled from the gateway's truth.

An event is stored under its unique (gateway, event_id) before anything else,
so a second delivery of it is "already processed" and changes nothing. Its body
is only used to find our transaction: the state is always read from the
gateway's API (``retrieve``) at the time of processing, so events arriving late,
twice, or out of order (``payment_intent.succeeded`` before
``payment_intent.amount_capturable_updated``) cannot move a transaction
backwards or apply a stale amount.

``transaction_settle_from_gateway`` moves a transaction to what the gateway
holds through the same three steps as every operation (record the intent,
ask the gateway, settle under a lock): a payment waiting for the customer is
completed with ``transaction_action_complete``; any other difference (captured,
released or refunded at the gateway) is recorded as the operation that explains
it and settled by ``transaction_reconcile``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from payments.exceptions import InvalidTransition, OperationInProgress
from payments.gateways import GatewayResponse, gateway_for
from payments.models import (
    Gateway,
    Operation,
    State,
    Transaction,
    TransactionEvent,
    WebhookEvent,
)
from payments.services.transactions import (
    Actor,
    _begin,
    _log,
    transaction_action_complete,
    transaction_reconcile,
)

logger = logging.getLogger(__name__)

STRIPE_WEBHOOK = Actor.task("stripe-webhook")

# The Stripe events we act on; others are stored and acknowledged.
STRIPE_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.expired",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.refunded",
    }
)

# Settling can take more than one step (captured and then refunded at the gateway).
MAX_SETTLE_STEPS = 3


@dataclass(frozen=True)
class WebhookOutcome:
    result: Literal["processed", "duplicate", "ignored"]
    transaction: Transaction | None = None


# --- Storing each event once --------------------------------------------------------------


def webhook_event_claim(
    *, gateway: str, event_id: str, event_type: str, payload: dict[str, Any]
) -> WebhookEvent | None:
    """Store the event and claim it for processing; None if it was processed already.

    ``processed_at`` is set when claimed, so a concurrent second delivery is a
    duplicate. An event whose processing failed (``webhook_event_release``) is
    claimed again by the gateway's next delivery.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(
                gateway=gateway,
                event_id=event_id,
                event_type=event_type[:80],
                payload=payload,
                processed_at=now,
            )
    except IntegrityError:
        pass
    claimed = WebhookEvent.objects.filter(
        gateway=gateway, event_id=event_id, processed_at__isnull=True
    ).update(processed_at=now, error="")
    if not claimed:
        return None
    return WebhookEvent.objects.get(gateway=gateway, event_id=event_id)


def webhook_event_release(*, event: WebhookEvent, error: str) -> None:
    """Processing failed: keep the reason and let the next delivery try again."""
    WebhookEvent.objects.filter(pk=event.pk).update(processed_at=None, error=error[:2000])


# --- Stripe --------------------------------------------------------------------------------


def stripe_webhook_receive(*, payload: dict[str, Any]) -> WebhookOutcome:
    """Process one verified Stripe event (the view checked its signature and age).

    Raises GatewayError when Stripe cannot be asked for the current state; the
    event is then released, so that Stripe's next delivery processes it.
    """
    event = webhook_event_claim(
        gateway=Gateway.STRIPE,
        event_id=str(payload.get("id", "")),
        event_type=str(payload.get("type", "")),
        payload=payload,
    )
    if event is None:
        return WebhookOutcome("duplicate")
    try:
        return _stripe_event_process(event)
    except Exception as error:
        webhook_event_release(event=event, error=f"{type(error).__name__}: {error}")
        raise


def _stripe_event_process(event: WebhookEvent) -> WebhookOutcome:
    if event.event_type not in STRIPE_EVENTS:
        return WebhookOutcome("ignored")
    found = _stripe_object(event.payload)
    tx = _transaction_for(found)
    if tx is None:
        logger.info("stripe event %s (%s): no transaction of ours", event.event_id, found.get("id"))
        return WebhookOutcome("ignored")
    _log(
        tx,
        action=event.event_type[:40],
        actor=STRIPE_WEBHOOK,
        kind=TransactionEvent.Kind.GATEWAY,
        old_state=tx.state,
        gateway_code=_event_code(found),
        message=_("Stripe event %(id)s about %(object)s")
        % {"id": event.event_id, "object": found.get("id", "")},
    )
    tx = transaction_settle_from_gateway(transaction_id=tx.pk, actor=STRIPE_WEBHOOK)
    return WebhookOutcome("processed", tx)


def _stripe_object(payload: dict[str, Any]) -> dict[str, Any]:
    data = payload.get("data") or {}
    found = data.get("object") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def _event_code(found: dict[str, Any]) -> str:
    error = found.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or found.get("status") or ""
    return str(code)[:64]


def _transaction_for(found: dict[str, Any]) -> Transaction | None:
    """Our transaction for a PaymentIntent, Checkout Session or Charge in an event.

    Only the object's identity is taken from the event: its metadata (set by us
    when we created it) or its id; the state is asked of Stripe afterwards.
    """
    stripe_payments = Transaction.objects.filter(gateway=Gateway.STRIPE)
    public_id = (found.get("metadata") or {}).get("transaction", "")
    try:
        if public_id:
            return stripe_payments.filter(public_id=uuid.UUID(str(public_id))).first()
    except ValueError:
        return None
    references = {found.get("id"), found.get("payment_intent")} - {None, ""}
    return stripe_payments.filter(gateway_reference__in=references).first() or _by_intent_lookup(
        found
    )


def _by_intent_lookup(found: dict[str, Any]) -> Transaction | None:
    """A charge of a Checkout payment names only its PaymentIntent: ask Stripe whose it is."""
    intent_id = found.get("payment_intent")
    if found.get("object") != "charge" or not isinstance(intent_id, str):
        return None
    public_id = gateway_for(Gateway.STRIPE).transaction_public_id(intent_id)  # type: ignore[attr-defined]
    if not public_id:
        return None
    return Transaction.objects.filter(gateway=Gateway.STRIPE, public_id=public_id).first()


# --- Settling from the gateway's truth ------------------------------------------------------


def transaction_settle_from_gateway(*, transaction_id: int, actor: Actor) -> Transaction:
    """Bring the transaction to the state the gateway reports, through the services.

    Nothing is done while another operation is in flight (its own settle step,
    or reconciliation, will apply the gateway's answer) nor when the gateway
    agrees with us. Safe to call any number of times: a second call finds the
    states equal. Raises GatewayError when the gateway cannot be asked.
    """
    tx = Transaction.objects.get(pk=transaction_id)
    for _step in range(MAX_SETTLE_STEPS):
        if tx.pending_operation:
            return tx
        truth = gateway_for(tx.gateway).retrieve(tx)
        operation = _operation_explaining(tx, truth)
        if operation is None:
            return tx
        try:
            if operation == "complete_action":
                tx = transaction_action_complete(
                    transaction_id=transaction_id, succeeded=True, actor=actor
                )
            else:
                _begin(transaction_id, operation, allowed=(tx.state,), actor=actor)
                tx = transaction_reconcile(transaction_id=transaction_id, actor=actor)
        except (InvalidTransition, OperationInProgress):
            # Someone else (the customer's return, another event) is moving it.
            return Transaction.objects.get(pk=transaction_id)
    return tx


def _operation_explaining(tx: Transaction, truth: GatewayResponse) -> str | None:
    """The operation that takes ``tx`` from our state to the gateway's, if they differ."""
    status = truth.status
    if tx.state == State.ACTION_REQUIRED:
        # Paid, or the page expired: the customer's return would settle it the same way.
        return "complete_action" if status in ("authorized", "captured", "failed") else None
    if tx.state == State.CREATED and status in ("authorized", "captured"):
        return Operation.PURCHASE if status == "captured" else Operation.AUTHORIZE
    if tx.state == State.AUTHORIZED and status == "captured":
        return Operation.CAPTURE
    if tx.state == State.AUTHORIZED and status == "voided":
        return Operation.VOID
    if (
        tx.state in (State.CAPTURED, State.PARTIALLY_REFUNDED)
        and truth.refunded_total is not None
        and truth.refunded_total > tx.refunded_amount.amount
    ):
        return Operation.REFUND
    return None
