"""Transactions: creating them and moving them through their states at the gateway.

Every operation that calls a gateway runs in three steps, and never holds a
database lock during the call:

1. *begin*: in a short transaction, lock the row (SELECT ... FOR UPDATE), check
   the state allows the operation and nothing else is in flight, record the
   intent (``pending_operation``) and log it; commit.
2. *call* the gateway with an idempotency key derived from our row id and the
   operation, so a retry can never charge twice.
3. *settle*: lock the row again and apply the gateway's answer, clear the
   intent, log the outcome; after commit, announce the state change.

Two simultaneous requests on one transaction therefore cannot both reach the
gateway: the second finds the first's intent recorded and is refused with
OperationInProgress (or, arriving later, InvalidTransition). If the gateway
cannot be reached, the intent stays recorded and ``transaction_reconcile``
(run by a periodic task) asks the gateway what really happened: it settles the
outcome it finds and never repeats the operation blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from accounts.models import Account, Platform, Shop, User
from payments.exceptions import (
    CardBrandNotAccepted,
    InvalidAmount,
    InvalidTransition,
    OperationInProgress,
)
from payments.gateways import GatewayError, GatewayResponse, gateway_for
from payments.models import (
    FINAL_STATES,
    PENDING_STATES,
    Gateway,
    Operation,
    SavedCard,
    State,
    Transaction,
    TransactionEvent,
)
from payments.signals import transaction_state_changed

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
# Gateway codes meaning the authorization no longer exists at the gateway.
AUTHORIZATION_GONE_CODES = ("charge_expired_for_capture", "authorization_expired")


@dataclass(frozen=True)
class Actor:
    """Who acts: a person (member or staff) or a named system process."""

    user: User | None = None
    system: str = ""

    @classmethod
    def task(cls, name: str) -> Actor:
        return cls(system=name)


SYSTEM = Actor(system="system")


# --- Amounts ------------------------------------------------------------------------------


def money_check(amount: Money, *, currency: str, field: str = "amount") -> Decimal:
    """The decimal amount, refusing zero, negative, sub-cent or wrong-currency values."""
    if str(amount.currency) != currency:
        raise InvalidAmount(
            _("The amount must be in %(currency)s, not %(given)s.")
            % {"currency": currency, "given": amount.currency},
            extra={"field": field},
        )
    value = amount.amount
    if value <= 0:
        raise InvalidAmount(_("The amount must be more than zero."), extra={"field": field})
    if value != value.quantize(CENT):
        raise InvalidAmount(
            _("The amount can have at most two decimal places."), extra={"field": field}
        )
    return value


# --- The message log --------------------------------------------------------------------


def _log(
    tx: Transaction,
    *,
    action: str,
    actor: Actor,
    message: str = "",
    old_state: str = "",
    new_state: str = "",
    amount: Decimal | None = None,
    gateway_code: str = "",
    kind: str = TransactionEvent.Kind.ACTION,
) -> TransactionEvent:
    event = _event(
        tx,
        action=action,
        actor=actor,
        message=message,
        old_state=old_state,
        new_state=new_state,
        amount=amount,
        gateway_code=gateway_code,
        kind=kind,
    )
    event.save()
    return event


def _event(
    tx: Transaction,
    *,
    action: str,
    actor: Actor,
    message: str = "",
    old_state: str = "",
    new_state: str = "",
    amount: Decimal | None = None,
    gateway_code: str = "",
    kind: str = TransactionEvent.Kind.ACTION,
) -> TransactionEvent:
    """A message-log row, not yet saved (``_log`` saves one; a batch bulk-creates them)."""
    return TransactionEvent(
        transaction=tx,
        kind=kind,
        action=action,
        old_state=old_state,
        new_state=new_state,
        amount=amount,
        gateway_code=gateway_code,
        message=message,
        author=actor.user,
        system_actor=actor.system if actor.user is None else "",
    )


def transaction_event_log(tx: Transaction, **fields: object) -> TransactionEvent:
    """Write one system entry in a transaction's message log (for other payment services,
    e.g. shipping). Fields as ``_log``: action, actor, message, old_state, new_state,
    amount, gateway_code, kind."""
    return _log(tx, **fields)  # type: ignore[arg-type]


def transaction_note_add(*, transaction_id: int, author: User, text: str) -> TransactionEvent:
    """A person's note in the message log (merchant in the portal, staff in the admin)."""
    text = text.strip()
    if not text:
        raise InvalidAmount(_("Write the note first."), extra={"field": "text"})
    tx = Transaction.objects.get(pk=transaction_id)
    return _log(
        tx, action="note", actor=Actor(user=author), message=text, kind=TransactionEvent.Kind.NOTE
    )


def _announce(tx: Transaction, old_state: str) -> None:
    _announce_many([(tx.pk, old_state, tx.state)], purpose_settled=False)


# --- Creating ---------------------------------------------------------------------------


@transaction.atomic
def transaction_create(
    *,
    account: Account,
    platform: Platform,
    amount: Money,
    purpose: str,
    gateway: str | None = None,
    shop: Shop | None = None,
    description: str = "",
    pays_for: models.Model | None = None,
    created_by: User | None = None,
    idempotency_key: str | None = None,
    auto_capture: bool = False,
    return_url: str = "",
) -> Transaction:
    """A new payment in state ``created``, in the platform's currency.

    With an ``idempotency_key`` seen before, returns that earlier transaction and
    creates nothing (a caller retrying after a timeout gets the same payment).
    """
    if idempotency_key:
        earlier = Transaction.objects.filter(idempotency_key=idempotency_key).first()
        if earlier is not None:
            return earlier
    money_check(amount, currency=str(platform.currency))
    if not account.registrations.filter(platform=platform).exists():
        raise InvalidTransition(_("The account is not registered on this platform."))
    if shop is not None and shop.registration.account_id != account.pk:
        raise InvalidTransition(_("The shop belongs to another account."))
    tx = Transaction(
        account=account,
        platform=platform,
        shop=shop,
        amount=amount,
        captured_amount=Money(0, amount.currency),
        refunded_amount=Money(0, amount.currency),
        purpose=purpose,
        gateway=gateway or platform.card_gateway,
        description=description[:200],
        created_by=created_by,
        idempotency_key=idempotency_key,
        auto_capture=auto_capture,
        return_url=return_url,
    )
    if pays_for is not None:
        tx.purpose_set(pays_for)
    tx.save()
    _log(
        tx,
        action="created",
        actor=Actor(user=created_by) if created_by else SYSTEM,
        new_state=State.CREATED,
        amount=amount.amount,
        message=description,
    )
    return tx


# --- The three steps --------------------------------------------------------------------


def _begin(
    transaction_id: int,
    operation: str,
    *,
    allowed: tuple[str, ...],
    actor: Actor,
    amount: Decimal | None = None,
    check: Callable[[Transaction], None] | None = None,
) -> Transaction:
    with transaction.atomic():
        tx = Transaction.objects.select_for_update().get(pk=transaction_id)
        if tx.pending_operation:
            raise OperationInProgress(
                _("Another operation (%(operation)s) on this payment is being processed.")
                % {"operation": tx.get_pending_operation_display()}
            )
        if tx.state not in allowed:
            raise InvalidTransition(
                _("A payment that is %(state)s cannot be %(operation)s.")
                % {
                    "state": tx.get_state_display().lower(),
                    "operation": _PAST[operation],
                }
            )
        if check is not None:
            check(tx)
        tx.pending_operation = operation
        tx.pending_amount = amount
        tx.pending_since = timezone.now()
        tx.save(
            update_fields=["pending_operation", "pending_amount", "pending_since", "updated_at"]
        )
        _log(
            tx,
            action=f"{operation}_requested",
            actor=actor,
            old_state=tx.state,
            amount=amount,
        )
    return tx


_PAST = {
    Operation.AUTHORIZE: _("authorized"),
    Operation.PURCHASE: _("charged"),
    Operation.CAPTURE: _("captured"),
    Operation.VOID: _("voided"),
    Operation.REFUND: _("refunded"),
    Operation.EXPIRE: _("expired"),
    "complete_action": _("authenticated"),
    "transfer": _("settled by transfer"),
}


def _call(tx: Transaction, operation: str, call: Callable[[], GatewayResponse], actor: Actor):
    """Ask the gateway; an unknown outcome leaves the intent for reconciliation."""
    try:
        return call()
    except GatewayError as error:
        logger.warning("gateway %s: %s of transaction %s: %s", tx.gateway, operation, tx.pk, error)
        _log(
            tx,
            action=f"{operation}_unknown",
            actor=actor,
            old_state=tx.state,
            gateway_code="unreachable",
            message=_(
                "The gateway did not answer (%(error)s). The outcome will be checked "
                "with the gateway; the operation is not repeated."
            )
            % {"error": error},
        )
        return None


def _settle(
    transaction_id: int,
    operation: str,
    response: GatewayResponse,
    actor: Actor,
    *,
    customer_present: bool = False,
) -> Transaction:
    with transaction.atomic():
        tx = Transaction.objects.select_for_update().get(pk=transaction_id)
        if tx.pending_operation != operation:
            # Reconciliation settled it while we were waiting for the gateway.
            return tx
        old_state = tx.state
        amount = tx.pending_amount
        _apply(tx, operation, response, amount, customer_present=customer_present)
        if tx.state in (State.AUTHORIZED, State.CAPTURED) and tx.saved_card_id is None:
            tx.saved_card = _saved_card_from(tx, response)
        tx.pending_operation = ""
        tx.pending_amount = None
        tx.pending_since = None
        tx.save()
        _log(
            tx,
            action=operation if response.status != "failed" else f"{operation}_failed",
            actor=actor,
            old_state=old_state,
            new_state=tx.state,
            amount=response.amount if response.amount is not None else amount,
            gateway_code=response.code,
            message=response.message,
        )
        _announce(tx, old_state)
    return tx


def _apply(
    tx: Transaction,
    operation: str,
    response: GatewayResponse,
    amount: Decimal | None,
    *,
    customer_present: bool = False,
) -> None:
    """Move ``tx`` to what the gateway's answer means for ``operation``.

    A refusal while the customer is paying returns the payment to ``created`` so
    they can try another card; without the customer it fails the payment.
    """
    now = timezone.now()
    # A retried authorization (another card after a decline) is a new charge at the gateway.
    if response.reference and (
        not tx.gateway_reference or operation in (Operation.AUTHORIZE, Operation.PURCHASE)
    ):
        tx.gateway_reference = response.reference
    if response.card is not None:
        tx.card_brand = response.card.brand
        tx.card_last4 = response.card.last4
    status = response.status
    if status == "failed":
        tx.failure_code = response.code
        tx.failure_message = response.message[:300]
        if tx.state in PENDING_STATES and customer_present:
            tx.state = State.CREATED
            tx.next_action_url = ""
        elif tx.state in PENDING_STATES:
            tx.state = State.FAILED
            tx.closed_at = now
        elif operation == Operation.CAPTURE and response.code in AUTHORIZATION_GONE_CODES:
            # The gateway let the authorization lapse before we captured.
            tx.state = State.EXPIRED
            tx.authorization_expires_at = None
            tx.closed_at = now
        return
    tx.failure_code = tx.failure_message = ""
    if operation in (Operation.AUTHORIZE, Operation.PURCHASE, "complete_action", "transfer"):
        if status == "requires_action":
            tx.state = State.ACTION_REQUIRED
            tx.next_action_url = response.next_action_url
        elif status == "authorized":
            tx.state = State.AUTHORIZED
            tx.authorized_at = now
            tx.authorization_expires_at = now + timedelta(days=settings.PAYMENTS_AUTHORIZATION_DAYS)
            tx.next_action_url = ""
        elif status == "captured":
            captured = response.amount if response.amount is not None else tx.amount.amount
            tx.state = State.CAPTURED
            tx.authorized_at = tx.authorized_at or now
            tx.captured_amount = tx.money(captured)
            tx.captured_at = now
            tx.next_action_url = ""
        # "pending" (a bank transfer awaited) leaves the transaction created.
    elif operation == Operation.CAPTURE:
        tx.state = State.CAPTURED
        tx.captured_amount = tx.money(response.amount if response.amount is not None else amount)
        tx.captured_at = now
        tx.authorization_expires_at = None
    elif operation in (Operation.VOID, Operation.EXPIRE):
        tx.state = State.VOIDED if operation == Operation.VOID else State.EXPIRED
        tx.authorization_expires_at = None
        tx.closed_at = now
    elif operation == Operation.REFUND:
        refunded = (
            response.refunded_total
            if response.refunded_total is not None
            else tx.refunded_amount.amount + (response.amount or amount)
        )
        tx.refunded_amount = tx.money(refunded)
        fully = tx.refunded_amount == tx.captured_amount
        tx.state = State.REFUNDED if fully else State.PARTIALLY_REFUNDED
        if fully:
            tx.closed_at = now


def _run(
    transaction_id: int,
    operation: str,
    *,
    allowed: tuple[str, ...],
    actor: Actor,
    call: Callable[[Transaction], GatewayResponse],
    amount: Decimal | None = None,
    check: Callable[[Transaction], None] | None = None,
    customer_present: bool = False,
) -> Transaction:
    tx = _begin(transaction_id, operation, allowed=allowed, actor=actor, amount=amount, check=check)
    response = _call(tx, operation, lambda: call(tx), actor)
    if response is None:
        tx.refresh_from_db()
        return tx
    return _settle(transaction_id, operation, response, actor, customer_present=customer_present)


def _key(tx: Transaction, operation: str, suffix: str = "") -> str:
    """Idempotency key for one operation on one transaction (refunds add their sequence)."""
    return f"billing-tx-{tx.pk}-{operation}{suffix}"


def _attempt(tx: Transaction, operation: str) -> str:
    """`-<n>` for the n-th attempt of ``operation`` (a customer may retry a declined card)."""
    return f"-{tx.events.filter(action=f'{operation}_requested').count()}"


# --- Operations -------------------------------------------------------------------------


def transaction_authorize(
    *,
    transaction_id: int,
    payment_method: str,
    brand: str = "",
    capture: bool | None = None,
    save_card: bool = False,
    off_session: bool = False,
    actor: Actor = SYSTEM,
) -> Transaction:
    """Authorize the amount on a card; with ``capture`` (default: the transaction's
    ``auto_capture``) charge it at once, a purchase.

    ``brand`` is the brand the payment page detected; a brand the platform does
    not accept is refused before the gateway is asked. ``off_session``: the
    customer is not there (a saved card charged by the system): a decline fails
    the payment instead of letting them try another card.
    """
    if capture is None:
        capture = Transaction.objects.values_list("auto_capture", flat=True).get(pk=transaction_id)

    def check(tx: Transaction) -> None:
        if brand and not tx.platform.accepts_card_brand(brand):
            raise CardBrandNotAccepted(
                _("%(platform)s does not accept this card brand.") % {"platform": tx.platform.name}
            )

    operation = Operation.PURCHASE if capture else Operation.AUTHORIZE
    tx = _run(
        transaction_id,
        operation,
        allowed=(State.CREATED,),
        actor=actor,
        check=check,
        call=lambda tx: gateway_for(tx.gateway).authorize(
            tx,
            payment_method=payment_method,
            capture=capture,
            save_card=save_card,
            off_session=off_session,
            idempotency_key=_key(tx, operation, _attempt(tx, operation)),
        ),
        customer_present=not off_session,
    )
    return tx


def transaction_action_complete(
    *, transaction_id: int, succeeded: bool, actor: Actor = SYSTEM
) -> Transaction:
    """The customer finished (or abandoned) the authentication the card asked for."""
    return _run(
        transaction_id,
        "complete_action",
        allowed=(State.ACTION_REQUIRED,),
        actor=actor,
        call=lambda tx: gateway_for(tx.gateway).complete_action(  # type: ignore[attr-defined]
            tx,
            succeeded=succeeded,
            idempotency_key=_key(tx, "complete_action", _attempt(tx, "complete_action")),
        ),
        customer_present=True,
    )


def transaction_capture(
    *, transaction_id: int, amount: Money | None = None, actor: Actor = SYSTEM
) -> Transaction:
    """Collect the authorized amount, or part of it (the rest is released)."""
    tx = Transaction.objects.get(pk=transaction_id)
    value = tx.amount.amount if amount is None else money_check(amount, currency=tx.currency)

    def check(locked: Transaction) -> None:
        if value > locked.amount.amount:
            raise InvalidAmount(
                _("You can capture at most %(amount)s, the authorized amount.")
                % {"amount": locked.amount},
                extra={"field": "amount"},
            )

    return _run(
        transaction_id,
        Operation.CAPTURE,
        allowed=(State.AUTHORIZED,),
        actor=actor,
        amount=value,
        check=check,
        call=lambda tx: gateway_for(tx.gateway).capture(
            tx, amount=value, idempotency_key=_key(tx, Operation.CAPTURE)
        ),
    )


def transaction_void(*, transaction_id: int, actor: Actor = SYSTEM) -> Transaction:
    """Release an authorization (also a payment still waiting for 3-D Secure)."""
    return _run(
        transaction_id,
        Operation.VOID,
        allowed=(State.AUTHORIZED, State.ACTION_REQUIRED),
        actor=actor,
        call=lambda tx: gateway_for(tx.gateway).void(tx, idempotency_key=_key(tx, Operation.VOID)),
    )


def transaction_refund(
    *, transaction_id: int, amount: Money | None = None, actor: Actor = SYSTEM
) -> Transaction:
    """Return captured money, all of what is left or ``amount`` of it."""
    tx = Transaction.objects.get(pk=transaction_id)
    value = (
        tx.refundable_amount.amount if amount is None else money_check(amount, currency=tx.currency)
    )
    refund_number = tx.events.filter(action=Operation.REFUND).count() + 1

    def check(locked: Transaction) -> None:
        left = locked.refundable_amount
        if value > left.amount or value <= 0:
            raise InvalidAmount(
                _("You can refund at most %(amount)s, what is left of the captured amount.")
                % {"amount": left},
                extra={"field": "amount"},
            )

    return _run(
        transaction_id,
        Operation.REFUND,
        allowed=(State.CAPTURED, State.PARTIALLY_REFUNDED),
        actor=actor,
        amount=value,
        check=check,
        call=lambda tx: gateway_for(tx.gateway).refund(
            tx, amount=value, idempotency_key=_key(tx, Operation.REFUND, f"-{refund_number}")
        ),
    )


def transaction_expire(*, transaction_id: int, actor: Actor = SYSTEM) -> Transaction:
    """An authorization past its window: void it at the gateway and mark it expired."""
    return _run(
        transaction_id,
        Operation.EXPIRE,
        allowed=(State.AUTHORIZED,),
        actor=actor,
        call=lambda tx: gateway_for(tx.gateway).void(
            tx, idempotency_key=_key(tx, Operation.EXPIRE)
        ),
    )


def transaction_transfer_received(
    *, transaction_id: int, actor: Actor = SYSTEM, reference: str = ""
) -> Transaction:
    """A bank transfer for this payment arrived (staff confirmed it, or a statement matched)."""

    def check(tx: Transaction) -> None:
        if tx.gateway != Gateway.BANK_TRANSFER:
            raise InvalidTransition(_("Only bank transfer payments are settled by a transfer."))

    tx = _run(
        transaction_id,
        "transfer",
        allowed=(State.CREATED,),
        actor=actor,
        check=check,
        call=lambda tx: gateway_for(tx.gateway).capture(
            tx, amount=tx.amount.amount, idempotency_key=_key(tx, "transfer")
        ),
    )
    if reference and not tx.gateway_reference:
        Transaction.objects.filter(pk=tx.pk, gateway_reference="").update(
            gateway_reference=reference[:100]
        )
        tx.refresh_from_db()
    return tx


@dataclass
class TransfersReceived:
    """What ``transactions_transfers_received`` did: the payments it captured (in the order
    asked), and those it left as they were (not bank transfers awaiting their money, or
    with another operation in flight), by id, as read under the lock."""

    captured: list[Transaction]
    refused: dict[int, Transaction]


def transactions_transfers_received(
    *, items: list[tuple[int, str]], actor: Actor = SYSTEM, purposes_settled: bool = False
) -> TransfersReceived:
    """Many bank transfers arrived at once (a statement import): each (transaction id, bank
    reference) is settled as ``transaction_transfer_received`` settles one, in one database
    transaction (the caller's, when it has one), in a few statements whatever the count.

    Each payment ends as the single path leaves it: captured for its amount, the reference
    kept when it had none, the same two log rows (``transfer_requested``, then ``transfer``
    with the gateway's answer) and, after commit, the same ``transaction_state_changed``
    announcement. A payment that cannot take the transfer (another gateway, not created,
    an operation in flight) is not touched; it is returned in ``refused`` for the caller
    to judge (the single path raises InvalidTransition or OperationInProgress for it).

    ``purposes_settled``: the caller settles, in this same database transaction, what the
    captured payments pay for (a statement import credits their top-ups). The captures
    are announced all the same, with ``purpose_settled=True``, so that a receiver can
    skip the work already done (credit.handlers then reads nothing).

    No three-step pattern here: a bank transfer's "capture" asks no one
    (BankTransferGateway.capture only states that the money arrived, without I/O), so
    there is no gateway call to keep outside the lock, and nothing is left in flight for
    reconciliation: intent and outcome are written together.
    """
    references: dict[int, str] = {}
    for transaction_id, reference in items:
        references.setdefault(transaction_id, reference)
    if not references:
        return TransfersReceived(captured=[], refused={})
    operation = "transfer"
    gateway = gateway_for(Gateway.BANK_TRANSFER)
    with transaction.atomic():
        # Locked in primary-key order, so two batches (or a batch and a single settlement)
        # cannot deadlock.
        locked = {
            tx.pk: tx
            for tx in Transaction.objects.select_for_update()
            .filter(pk__in=list(references))
            .order_by("pk")
        }
        captured: list[Transaction] = []
        refused: dict[int, Transaction] = {}
        events: list[TransactionEvent] = []
        changes: list[tuple[int, str, str]] = []
        for transaction_id, reference in references.items():
            tx = locked.get(transaction_id)
            if tx is None:
                continue
            if (
                tx.pending_operation
                or tx.state != State.CREATED
                or tx.gateway != Gateway.BANK_TRANSFER
            ):
                refused[tx.pk] = tx
                continue
            old_state = tx.state
            response = gateway.capture(
                tx, amount=tx.amount.amount, idempotency_key=_key(tx, operation)
            )
            # What _begin logs, then what _settle applies and logs.
            events.append(
                _event(tx, action=f"{operation}_requested", actor=actor, old_state=old_state)
            )
            _apply(tx, operation, response, None)
            if tx.state in (State.AUTHORIZED, State.CAPTURED) and tx.saved_card_id is None:
                # A transfer brings no card; kept for parity with _settle.
                tx.saved_card = _saved_card_from(tx, response) if response.card else None
            tx.pending_operation = ""
            tx.pending_amount = None
            tx.pending_since = None
            if reference and not tx.gateway_reference:
                tx.gateway_reference = reference[:100]
            events.append(
                _event(
                    tx,
                    action=operation if response.status != "failed" else f"{operation}_failed",
                    actor=actor,
                    old_state=old_state,
                    new_state=tx.state,
                    amount=response.amount,
                    gateway_code=response.code,
                    message=response.message,
                )
            )
            changes.append((tx.pk, old_state, tx.state))
            captured.append(tx)
        if captured:
            now = timezone.now()
            for tx in captured:
                tx.updated_at = now
            _transfers_received_write(captured, now)
            TransactionEvent.objects.bulk_create(events)
            _announce_many(changes, purpose_settled=purposes_settled)
    return TransfersReceived(captured=captured, refused=refused)


# The columns a received transfer changes (what _begin and _settle save), in one statement:
# UPDATE ... FROM unnest(one array per column).
_RECEIVED_COLUMNS = [
    ("state", "text"),
    ("gateway_reference", "text"),
    ("card_brand", "text"),
    ("card_last4", "text"),
    ("saved_card_id", "bigint"),
    ("captured_amount", "numeric"),
    ("authorized_at", "timestamptz"),
    ("authorization_expires_at", "timestamptz"),
    ("captured_at", "timestamptz"),
    ("closed_at", "timestamptz"),
    ("next_action_url", "text"),
    ("failure_code", "text"),
    ("failure_message", "text"),
    ("pending_operation", "text"),
    ("pending_amount", "numeric"),
    ("pending_since", "timestamptz"),
    ("updated_at", "timestamptz"),
]
# The column names are the constants above (no input reaches the text).
_RECEIVED_SQL = (
    "UPDATE payments_transaction SET "  # noqa: S608
    + ", ".join(f"{column} = v.{column}" for column, _type in _RECEIVED_COLUMNS)
    + " FROM unnest(%s::bigint[], "
    + ", ".join(f"%s::{sql_type}[]" for _column, sql_type in _RECEIVED_COLUMNS)
    + ") AS v(id, "
    + ", ".join(column for column, _type in _RECEIVED_COLUMNS)
    + ") WHERE payments_transaction.id = v.id"
)


def _transfers_received_write(captured: list[Transaction], now) -> None:  # type: ignore[no-untyped-def]
    def value(tx: Transaction, column: str) -> object:
        if column == "captured_amount":
            return tx.captured_amount.amount
        if column == "updated_at":
            return now
        found = getattr(tx, column)
        # Plain strings (a state is a TextChoices member).
        return str(found) if isinstance(found, str) else found

    for tx in captured:
        tx.updated_at = now
    with connection.cursor() as cursor:
        cursor.execute(
            _RECEIVED_SQL,
            [
                [tx.pk for tx in captured],
                *([value(tx, column) for tx in captured] for column, _type in _RECEIVED_COLUMNS),
            ],
        )


def _announce_many(changes: list[tuple[int, str, str]], *, purpose_settled: bool) -> None:
    """``_announce`` for many payments: after commit, one read of them all, then the
    announcement of each, in the order given (with ``purpose_settled``: see
    transactions_transfers_received)."""
    changes = [change for change in changes if change[1] != change[2]]
    if not changes:
        return

    def send() -> None:
        fresh = Transaction.objects.in_bulk([transaction_id for transaction_id, *_ in changes])
        for transaction_id, old_state, new_state in changes:
            transaction_state_changed.send(
                sender=Transaction,
                transaction=fresh[transaction_id],
                old_state=old_state,
                new_state=new_state,
                purpose_settled=purpose_settled,
            )

    transaction.on_commit(send)


def transaction_fail(*, transaction_id: int, reason: str, actor: Actor = SYSTEM) -> Transaction:
    """Give up on a payment that never completed (abandoned page, transfer never sent)."""
    with transaction.atomic():
        tx = Transaction.objects.select_for_update().get(pk=transaction_id)
        if tx.pending_operation or tx.state not in PENDING_STATES:
            raise InvalidTransition(_("Only a payment that is still pending can fail."))
        old_state = tx.state
        tx.state = State.FAILED
        tx.failure_code = "abandoned"
        tx.failure_message = reason[:300]
        tx.closed_at = timezone.now()
        tx.save()
        _log(
            tx,
            action="failed",
            actor=actor,
            old_state=old_state,
            new_state=tx.state,
            message=reason,
        )
        _announce(tx, old_state)
    return tx


# --- Saved cards ------------------------------------------------------------------------


def _saved_card_from(tx: Transaction, response: GatewayResponse) -> SavedCard | None:
    """Keep the reusable card a successful payment returned, for off-session charges."""
    card = response.card
    if card is None or not card.token:
        return None
    saved, _created = SavedCard.objects.get_or_create(
        gateway=tx.gateway,
        token=card.token,
        defaults={
            "account": tx.account,
            "platform": tx.platform,
            "gateway_customer": card.customer,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        },
    )
    return saved


# --- Time and reconciliation --------------------------------------------------------------


def transactions_expire_due(*, now=None) -> list[int]:  # type: ignore[no-untyped-def]
    """Expire every authorization whose window has passed; returns their ids."""
    now = now or timezone.now()
    due = list(
        Transaction.objects.filter(
            state=State.AUTHORIZED, authorization_expires_at__lte=now, pending_operation=""
        ).values_list("pk", flat=True)
    )
    done = []
    for transaction_id in due:
        try:
            transaction_expire(
                transaction_id=transaction_id, actor=Actor.task("expire-authorizations")
            )
            done.append(transaction_id)
        except (InvalidTransition, OperationInProgress):
            continue  # captured or voided meanwhile: nothing to expire
    return done


def transaction_reconcile(*, transaction_id: int, actor: Actor | None = None) -> Transaction:
    """Settle an operation whose outcome was never learnt, from the gateway's own records.

    What the gateway reports is applied; if it shows the operation never took
    effect, the intent is dropped and logged. The operation is never repeated.
    """
    actor = actor or Actor.task("reconcile-payments")
    tx = Transaction.objects.get(pk=transaction_id)
    operation = tx.pending_operation
    if not operation:
        return tx
    try:
        truth = gateway_for(tx.gateway).retrieve(tx)
    except GatewayError as error:
        _log(
            tx,
            action="reconcile_unknown",
            actor=actor,
            old_state=tx.state,
            gateway_code="unreachable",
            message=_("The gateway still does not answer (%(error)s).") % {"error": error},
        )
        return tx
    took_effect = _took_effect(tx, operation, truth)
    if took_effect is not None:
        return _settle(transaction_id, operation, took_effect, actor)
    with transaction.atomic():
        locked = Transaction.objects.select_for_update().get(pk=transaction_id)
        if locked.pending_operation != operation:
            return locked
        locked.pending_operation = ""
        locked.pending_amount = None
        locked.pending_since = None
        locked.save(update_fields=["pending_operation", "pending_amount", "pending_since"])
        _log(
            locked,
            action=f"{operation}_not_done",
            actor=actor,
            old_state=locked.state,
            new_state=locked.state,
            gateway_code=truth.code,
            message=_("The gateway shows the %(operation)s did not happen; it was not repeated.")
            % {"operation": operation},
        )
    return locked


def _took_effect(tx: Transaction, operation: str, truth: GatewayResponse) -> GatewayResponse | None:
    """The answer the gateway would have given, if its records show the operation happened."""
    status = truth.status
    if operation in (Operation.AUTHORIZE, Operation.PURCHASE, "complete_action"):
        if status in ("authorized", "requires_action"):
            return truth
        if status in ("captured",):
            return GatewayResponse(
                "captured",
                reference=truth.reference,
                code="reconciled",
                message=_("Found captured at the gateway"),
                amount=truth.captured_total,
                card=truth.card,
            )
        return None
    if operation == Operation.CAPTURE and status == "captured":
        return GatewayResponse(
            "captured",
            reference=truth.reference,
            code="reconciled",
            message=_("Found captured at the gateway"),
            amount=truth.captured_total,
        )
    if operation in (Operation.VOID, Operation.EXPIRE) and status == "voided":
        return GatewayResponse(
            "voided",
            reference=truth.reference,
            code="reconciled",
            message=_("Found released at the gateway"),
        )
    if (
        operation == Operation.REFUND
        and truth.refunded_total is not None
        and truth.refunded_total > tx.refunded_amount.amount
    ):
        return GatewayResponse(
            "refunded",
            reference=truth.reference,
            code="reconciled",
            message=_("Found refunded at the gateway"),
            amount=truth.refunded_total - tx.refunded_amount.amount,
            refunded_total=truth.refunded_total,
        )
    return None


def transactions_reconcile_stuck(*, older_than: timedelta | None = None) -> list[int]:
    """Reconcile every operation in flight for longer than ``older_than``; fail abandoned ones."""
    older_than = older_than or timedelta(minutes=settings.PAYMENTS_RECONCILE_AFTER_MINUTES)
    now = timezone.now()
    stuck = list(
        Transaction.objects.exclude(pending_operation="")
        .filter(pending_since__lte=now - older_than)
        .values_list("pk", flat=True)
    )
    for transaction_id in stuck:
        transaction_reconcile(transaction_id=transaction_id)
    abandoned = Transaction.objects.filter(
        state__in=PENDING_STATES,
        pending_operation="",
        created_at__lte=now - timedelta(hours=settings.PAYMENTS_ABANDONED_AFTER_HOURS),
    ).exclude(gateway=Gateway.BANK_TRANSFER)
    for transaction_id in abandoned.values_list("pk", flat=True):
        try:
            transaction_fail(
                transaction_id=transaction_id,
                reason=_("The customer did not finish the payment."),
                actor=Actor.task("reconcile-payments"),
            )
        except InvalidTransition:
            continue
    return stuck


def is_final(tx: Transaction) -> bool:
    return tx.state in FINAL_STATES
