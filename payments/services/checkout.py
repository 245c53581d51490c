"""Stripe Checkout: the customer pays on Stripe's page, so card data never reaches us.

Starting a Checkout is the transaction's *authorize* (or, with auto_capture,
*purchase*) operation, run in the three steps of payments.services.transactions:
lock the row and record the intent, commit; create the Checkout Session at
Stripe with an idempotency key derived from our transaction id; settle. The
Session leaves the transaction ``action_required`` (waiting for the customer)
with the Session's URL as ``next_action_url``.

The customer's return (``checkout_return``) and Stripe's webhooks then both
finish it through ``transaction_action_complete``, which asks Stripe what really
happened: whichever arrives first settles the transaction, the other finds it
settled (InvalidTransition) or being settled (OperationInProgress) and does
nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from payments.exceptions import InvalidTransition, OperationInProgress
from payments.gateways import gateway_for
from payments.models import Gateway, Operation, SavedCard, State, Transaction
from payments.services.transactions import (
    Actor,
    _attempt,
    _begin,
    _call,
    _key,
    _settle,
    transaction_action_complete,
)

# Stripe keeps a Checkout Session open between 30 minutes and 24 hours.
SESSION_SHORTEST = timedelta(minutes=31)
SESSION_LONGEST = timedelta(hours=23)


def stripe_customer_for(*, transaction_: Transaction) -> str:
    """The Stripe Customer already holding this account's saved cards on the platform."""
    return (
        SavedCard.objects.filter(
            account_id=transaction_.account_id,
            platform_id=transaction_.platform_id,
            gateway=Gateway.STRIPE,
            removed_at__isnull=True,
        )
        .exclude(gateway_customer="")
        .values_list("gateway_customer", flat=True)
        .first()
        or ""
    )


def _session_expiry(tx: Transaction) -> datetime:
    """Close the Session before reconciliation gives the payment up as abandoned, so a
    payment can never arrive for a transaction we already failed."""
    now = timezone.now()
    abandoned_at = tx.created_at + timedelta(hours=settings.PAYMENTS_ABANDONED_AFTER_HOURS)
    latest = min(now + SESSION_LONGEST, abandoned_at - timedelta(minutes=30))
    return max(latest, now + SESSION_SHORTEST)


def transaction_checkout_start(
    *,
    transaction_id: int,
    save_card: bool,
    success_url: str,
    cancel_url: str,
    actor: Actor,
) -> Transaction:
    """Open a Stripe Checkout page for a created transaction; returns it waiting for the customer.

    A Checkout already open for it is expired first (the customer starts again,
    perhaps changing whether to save the card), so that only one page can take
    the payment. If that earlier page was in fact paid, the transaction is
    settled from it and returned without opening another.

    Side effects: a Checkout Session at Stripe; the message log records the
    request and the outcome. Raises InvalidTransition for a transaction that is
    not a Stripe card payment waiting to be paid, OperationInProgress while
    another operation on it runs.
    """
    tx = Transaction.objects.get(pk=transaction_id)
    if tx.gateway != Gateway.STRIPE:
        raise InvalidTransition(_("This payment is not made through Stripe."))
    if tx.state == State.ACTION_REQUIRED:
        tx = transaction_action_complete(transaction_id=tx.pk, succeeded=False, actor=actor)
        if tx.state != State.CREATED:
            return tx
    operation = Operation.PURCHASE if tx.auto_capture else Operation.AUTHORIZE
    customer = stripe_customer_for(transaction_=tx) if save_card else ""
    language = (get_language() or "").split("-")[0]

    # 1. Record the intent (locks, checks the state and that nothing else is in flight).
    tx = _begin(transaction_id, operation, allowed=(State.CREATED,), actor=actor)
    # 2. Ask Stripe, no lock held. An unknown outcome stays pending for reconciliation.
    response = _call(
        tx,
        operation,
        lambda: gateway_for(tx.gateway).checkout_session_create(  # type: ignore[attr-defined]
            tx,
            save_card=save_card,
            customer=customer,
            success_url=success_url,
            cancel_url=cancel_url,
            expires_at=_session_expiry(tx),
            locale=language,
            idempotency_key=_key(tx, "checkout", _attempt(tx, operation)),
        ),
        actor,
    )
    if response is None:
        tx.refresh_from_db()
        return tx
    # 3. Settle. A new Session replaces the reference of an earlier, expired one
    # (the services keep the first reference they are given).
    with transaction.atomic():
        locked = Transaction.objects.select_for_update().get(pk=transaction_id)
        if (
            locked.pending_operation == operation
            and response.status == "requires_action"
            and response.reference
            and locked.gateway_reference != response.reference
        ):
            locked.gateway_reference = response.reference
            locked.save(update_fields=["gateway_reference", "updated_at"])
        return _settle(transaction_id, operation, response, actor, customer_present=True)


def checkout_return(*, transaction_id: int, actor: Actor) -> Transaction:
    """The customer is back from Stripe's page: settle from what Stripe holds now.

    A webhook that got there first (or is settling it right now) leaves nothing
    to do; the transaction is returned as it is.
    """
    tx = Transaction.objects.get(pk=transaction_id)
    if tx.gateway != Gateway.STRIPE or tx.state != State.ACTION_REQUIRED:
        return tx
    try:
        return transaction_action_complete(transaction_id=tx.pk, succeeded=True, actor=actor)
    except (InvalidTransition, OperationInProgress):
        return Transaction.objects.get(pk=transaction_id)
