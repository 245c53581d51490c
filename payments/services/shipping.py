"""Shipping goods paid by card: the money is captured when delivery is confirmed.

A transaction for goods (purpose ``goods``) is authorized first. The merchant
(or staff) then prepares a shipment (recipient, address, items), prints the
A5 dispatch note and marks the parcel shipped with the carrier's tracking
number. The courier confirms delivery with a signed HTTP notification
(docs/delivery-notifications.md): the shipment is marked delivered and the
authorized amount is captured automatically.

Locks are taken in one order everywhere: the Transaction row first, then the
Shipment row. No lock is held while the gateway is called: ``delivery_confirm``
commits the delivery first and only then calls
``transactions.transaction_capture``, which does its own three-step locking.
If the process dies between the two, ``shipments_capture_delivered`` (run
periodically) finds the delivered shipment whose capture never started.

Each notification is stored under its unique ``notification_id`` in the same
database transaction that marks the delivery, so a replay, even one arriving
at the same moment, hits the UNIQUE constraint and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from payments.exceptions import (
    InvalidTransition,
    NotificationRejected,
    PaymentError,
    TrackingNumberTaken,
)
from payments.models import (
    DeliveryNotification,
    Purpose,
    Shipment,
    State,
    Transaction,
    TransactionEvent,
)
from payments.services import transactions as tx_services
from payments.services.transactions import Actor

logger = logging.getLogger(__name__)

# A notification signed longer ago than this (or this far in the future) is refused,
# so a captured request cannot be replayed later under a new notification id.
SIGNATURE_TOLERANCE = timedelta(minutes=5)
DELIVERY_ACTOR = Actor.task("delivery-confirmation")
# A delivered shipment whose capture has not started after this long was interrupted.
CAPTURE_SWEEP_AFTER = timedelta(minutes=10)


# --- Creating and shipping ----------------------------------------------------------------


def _authorization_holds(tx: Transaction, *, shipping: bool) -> None:
    """Refuse unless ``tx`` is a goods payment whose authorization can still be captured."""
    if tx.purpose != Purpose.GOODS:
        raise InvalidTransition(
            _("Only a payment for goods can be shipped; this one is for “%(purpose)s”.")
            % {"purpose": tx.get_purpose_display()}
        )
    if tx.pending_operation:
        raise InvalidTransition(
            _("Another operation (%(operation)s) on this payment is being processed; try again.")
            % {"operation": tx.get_pending_operation_display()}
        )
    # The expiry task may not have run yet: past the window counts as expired.
    lapsed = (
        tx.authorization_expires_at is not None and tx.authorization_expires_at <= timezone.now()
    )
    if tx.state == State.AUTHORIZED and not lapsed:
        return
    state = State.EXPIRED.label if lapsed else tx.get_state_display()
    if shipping:
        message = _(
            "Goods can be shipped only while the payment is authorized; this payment is %(state)s."
        )
    else:
        message = _(
            "A shipment can be prepared only while the payment is authorized; this payment is "
            "%(state)s."
        )
    raise InvalidTransition(message % {"state": str(state).lower()})


def shipment_refusal(*, tx: Transaction, shipping: bool = False) -> str:
    """Why a shipment cannot be prepared (or shipped) for ``tx`` now; "" if it can.

    For showing on a page before the person tries; the services check again under lock.
    """
    try:
        _authorization_holds(tx, shipping=shipping)
    except InvalidTransition as refusal:
        return refusal.message
    return ""


def _lock(transaction_id: int) -> tuple[Transaction, Shipment | None]:
    """Lock the transaction row, then its shipment's (always in this order)."""
    tx = Transaction.objects.select_for_update().get(pk=transaction_id)
    shipment = Shipment.objects.select_for_update().filter(transaction_id=tx.pk).first()
    return tx, shipment


def _log(tx: Transaction, **fields: object) -> TransactionEvent:
    return tx_services.transaction_event_log(tx, **fields)


@transaction.atomic
def shipment_create(
    *,
    transaction_id: int,
    recipient_name: str,
    street: str,
    city: str,
    postal_code: str,
    country: str,
    items: str,
    phone: str = "",
    actor: Actor,
) -> Shipment:
    """A shipment waiting to be sent, for an authorized payment for goods.

    Refuses another purpose, a payment that is not (or no longer) authorized, and a
    second shipment for the same payment. Logs ``shipment_created`` in the message log.
    """
    tx, existing = _lock(transaction_id)
    if existing is not None:
        raise InvalidTransition(_("This payment already has a shipment."))
    _authorization_holds(tx, shipping=False)
    lines = [line.strip() for line in items.splitlines() if line.strip()]
    if not lines:
        raise InvalidTransition(_("List at least one item."), extra={"field": "items"})
    shipment = Shipment.objects.create(
        transaction=tx,
        recipient_name=recipient_name.strip(),
        street=street.strip(),
        city=city.strip(),
        postal_code=postal_code.strip(),
        country=country.upper(),
        phone=phone.strip(),
        items="\n".join(lines),
    )
    _log(
        tx,
        action="shipment_created",
        actor=actor,
        old_state=tx.state,
        new_state=tx.state,
        message=ngettext(
            "Shipment to %(name)s, %(city)s prepared (%(count)s item).",
            "Shipment to %(name)s, %(city)s prepared (%(count)s items).",
            len(lines),
        )
        % {"name": shipment.recipient_name, "city": shipment.city, "count": len(lines)},
    )
    return shipment


@transaction.atomic
def shipment_mark_shipped(
    *, transaction_id: int, carrier: str, tracking_number: str, actor: Actor
) -> Shipment:
    """Record that the parcel was handed to ``carrier`` under ``tracking_number``.

    Only while the authorization still holds (authorized, not past its window, nothing
    in flight): goods must not leave when the money can no longer be captured. The
    carrier and tracking number identify the parcel in delivery notifications and are
    unique together. Logs ``shipped``.
    """
    carrier, tracking_number = carrier.strip(), tracking_number.strip()
    tx, shipment = _lock(transaction_id)
    if shipment is None:
        raise InvalidTransition(_("Prepare the shipment first."))
    if shipment.status != Shipment.Status.AWAITING:
        raise InvalidTransition(
            _("This shipment is already %(status)s.")
            % {"status": shipment.get_status_display().lower()}
        )
    _authorization_holds(tx, shipping=True)
    if not carrier or not tracking_number:
        raise InvalidTransition(_("Enter the carrier and the tracking number."))
    shipment.carrier = carrier
    shipment.tracking_number = tracking_number
    shipment.status = Shipment.Status.SHIPPED
    shipment.shipped_at = timezone.now()
    shipment.shipped_by = actor.user
    try:
        with transaction.atomic():
            shipment.save()
    except IntegrityError:
        raise TrackingNumberTaken(
            _("Another shipment already has the tracking number %(number)s with %(carrier)s.")
            % {"number": tracking_number, "carrier": carrier},
            extra={"field": "tracking_number"},
        ) from None
    _log(
        tx,
        action="shipped",
        actor=actor,
        old_state=tx.state,
        new_state=tx.state,
        message=_("Shipped with %(carrier)s, tracking number %(number)s.")
        % {"carrier": carrier, "number": tracking_number},
    )
    return shipment


# --- Delivery notifications ----------------------------------------------------------------


def delivery_webhook_secret() -> bytes:
    """The secret shared with the courier; refuses to run without one."""
    secret = getattr(settings, "DELIVERY_WEBHOOK_SECRET", None)
    if not secret:
        raise ImproperlyConfigured(
            "DELIVERY_WEBHOOK_SECRET is not set: delivery notifications cannot be verified. "
            "Set the environment variable DELIVERY_WEBHOOK_SECRET (see .env.example and "
            "docs/delivery-notifications.md)."
        )
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def delivery_signature(*, secret: bytes, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<raw body>"``: what the courier sends."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def delivery_signature_verify(
    *, body: bytes, timestamp: str, signature: str, secret: bytes, now: datetime | None = None
) -> None:
    """Raise NotificationRejected unless signed with ``secret`` within the tolerance."""
    timestamp = (timestamp or "").strip()
    if not timestamp.isascii() or not timestamp.isdigit():
        raise NotificationRejected(_("The X-Delivery-Timestamp header is missing or invalid."))
    expected = delivery_signature(secret=secret, timestamp=timestamp, body=body)
    given = (signature or "").strip().lower().encode("utf-8", "replace")
    # Constant time, so the signature cannot be guessed byte by byte from timings.
    if not hmac.compare_digest(expected.encode(), given):
        raise NotificationRejected(_("The X-Delivery-Signature header is missing or wrong."))
    now = now or timezone.now()
    if abs(now.timestamp() - int(timestamp)) > SIGNATURE_TOLERANCE.total_seconds():
        raise NotificationRejected(
            _("The notification's timestamp is more than five minutes away from our clock.")
        )


@dataclass(frozen=True)
class DeliveryReport:
    """What the courier said: one delivered parcel."""

    notification_id: str
    tracking_number: str
    carrier: str
    delivered_at: datetime
    payload: dict


def delivery_payload_parse(body: bytes, *, now: datetime | None = None) -> DeliveryReport:
    """The notification's JSON body, checked; NotificationRejected when malformed."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NotificationRejected(_("The body is not valid JSON.")) from None
    if not isinstance(payload, dict):
        raise NotificationRejected(_("The body must be a JSON object."))
    limits = {"notification_id": 120, "tracking_number": 80, "carrier": 80, "delivered_at": 40}
    values = {}
    for name, limit in limits.items():
        value = payload.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise NotificationRejected(
                _("“%(field)s” must be a non-empty text of at most %(limit)s characters.")
                % {"field": name, "limit": limit}
            )
        values[name] = value.strip()
    try:
        delivered_at = parse_datetime(values["delivered_at"])
    except ValueError:
        delivered_at = None
    if delivered_at is None or timezone.is_naive(delivered_at):
        raise NotificationRejected(
            _("“delivered_at” must be an ISO 8601 date and time with a UTC offset.")
        )
    # A courier clock running ahead must not record a delivery in our future.
    delivered_at = min(delivered_at, now or timezone.now())
    return DeliveryReport(
        notification_id=values["notification_id"],
        tracking_number=values["tracking_number"],
        carrier=values["carrier"],
        delivered_at=delivered_at,
        payload=payload,
    )


@dataclass(frozen=True)
class DeliveryOutcome:
    """What processing one notification did; ``status`` is stable for the courier."""

    status: str  # delivered | already delivered | already processed | unknown tracking number
    notification: DeliveryNotification | None = None
    shipment: Shipment | None = None
    transaction: Transaction | None = None
    capture: str = ""  # captured | refused | failed | unknown | not needed | ""
    detail: str = ""


def delivery_notification_receive(
    *, body: bytes, timestamp: str, signature: str
) -> DeliveryOutcome:
    """Verify, parse and apply one courier notification (the HTTP endpoint's service).

    NotificationRejected (nothing stored) for a bad signature, a stale timestamp or a
    malformed body; otherwise see ``delivery_confirm``.
    """
    delivery_signature_verify(
        body=body, timestamp=timestamp, signature=signature, secret=delivery_webhook_secret()
    )
    return delivery_confirm(report=delivery_payload_parse(body))


def _shipment_for(report: DeliveryReport) -> Shipment | None:
    matches = list(
        Shipment.objects.filter(
            tracking_number=report.tracking_number, carrier__iexact=report.carrier
        )[:2]
    )
    # Two carriers spelt alike ("DHL", "dhl") with one number: do not guess which.
    return matches[0] if len(matches) == 1 else None


def delivery_confirm(*, report: DeliveryReport) -> DeliveryOutcome:
    """Mark the parcel delivered and capture the authorized amount.

    The notification row is inserted first, under its UNIQUE id, in the transaction
    that marks the delivery: a replay finds it and changes nothing ("already
    processed"). The capture runs after that transaction has committed, through
    ``transaction_capture`` (its own locks, no lock of ours held during the gateway
    call). A refused capture (authorization expired or voided) leaves the shipment
    delivered; the refusal is logged and kept as the notification's outcome.
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                notification = DeliveryNotification.objects.create(
                    notification_id=report.notification_id,
                    payload=report.payload,
                    outcome=_("received"),
                )
        except IntegrityError:
            return DeliveryOutcome(status="already processed")
        found = _shipment_for(report)
        if found is None:
            notification.outcome = _("unknown tracking number %(number)s (%(carrier)s)") % {
                "number": report.tracking_number,
                "carrier": report.carrier,
            }
            notification.save(update_fields=["outcome"])
            return DeliveryOutcome(status="unknown tracking number", notification=notification)
        tx, shipment = _lock(found.transaction_id)
        notification.shipment = shipment
        if shipment.status == Shipment.Status.DELIVERED:
            notification.outcome = _("already delivered")
            notification.save(update_fields=["shipment", "outcome"])
            return DeliveryOutcome(
                status="already delivered",
                notification=notification,
                shipment=shipment,
                transaction=tx,
            )
        shipment.status = Shipment.Status.DELIVERED
        shipment.delivered_at = report.delivered_at
        shipment.save(update_fields=["status", "delivered_at"])
        _log(
            tx,
            action="delivered",
            actor=DELIVERY_ACTOR,
            old_state=tx.state,
            new_state=tx.state,
            message=_("%(carrier)s confirmed delivery of %(number)s (notification %(id)s).")
            % {
                "carrier": shipment.carrier,
                "number": shipment.tracking_number,
                "id": report.notification_id,
            },
        )
        notification.outcome = _("delivered; capture not started yet")
        notification.save(update_fields=["shipment", "outcome"])
    # Committed: the delivery stands whatever the gateway says next.
    capture, detail, tx = _capture_delivered(shipment)
    notification.outcome = (
        _("delivered; capture %(result)s: %(detail)s") % {"result": capture, "detail": detail}
    )[:200]
    DeliveryNotification.objects.filter(pk=notification.pk).update(outcome=notification.outcome)
    return DeliveryOutcome(
        status="delivered",
        notification=notification,
        shipment=shipment,
        transaction=tx,
        capture=capture,
        detail=detail,
    )


def _capture_delivered(shipment: Shipment) -> tuple[str, str, Transaction]:
    """Capture the authorized amount of a delivered shipment; (result, detail, transaction).

    Called with no lock held. Never raises a PaymentError: a refusal is logged on the
    transaction and reported.
    """
    transaction_id = shipment.transaction_id
    try:
        tx = tx_services.transaction_capture(transaction_id=transaction_id, actor=DELIVERY_ACTOR)
    except PaymentError as error:
        tx = Transaction.objects.get(pk=transaction_id)
        if tx.state in (State.CAPTURED, State.PARTIALLY_REFUNDED, State.REFUNDED):
            return "not needed", _("the payment had already been captured."), tx
        _log(
            tx,
            action="delivery_capture_refused",
            actor=DELIVERY_ACTOR,
            old_state=tx.state,
            new_state=tx.state,
            message=_("Delivered, but the authorized amount could not be captured: %(reason)s")
            % {"reason": error.message},
        )
        return "refused", error.message, tx
    if tx.state == State.CAPTURED:
        return "captured", str(tx.captured_amount), tx
    if tx.pending_operation:
        return (
            "unknown",
            _("the gateway did not answer; the capture is being checked with it."),
            tx,
        )
    # The gateway refused (its own code and message are in the message log).
    return "failed", tx.failure_message or tx.get_state_display(), tx


def shipments_capture_delivered(*, older_than: timedelta | None = None) -> list[int]:
    """Capture delivered shipments whose capture never started; returns their shipment ids.

    Covers a process that stopped between committing a delivery and calling the
    gateway. A capture that was tried and refused is not retried: a person decides.
    """
    older_than = older_than or CAPTURE_SWEEP_AFTER
    capture_tried = TransactionEvent.objects.filter(
        transaction_id=OuterRef("transaction_id"),
        action__in=("capture_requested", "delivery_capture_refused"),
    )
    due = list(
        Shipment.objects.filter(
            status=Shipment.Status.DELIVERED,
            delivered_at__lte=timezone.now() - older_than,
            transaction__state=State.AUTHORIZED,
            transaction__pending_operation="",
        )
        .exclude(Exists(capture_tried))
        .values_list("pk", flat=True)
    )
    done = []
    for shipment in Shipment.objects.filter(pk__in=due):
        result, detail, _tx = _capture_delivered(shipment)
        logger.info("delivered shipment %s: capture %s (%s)", shipment.pk, result, detail)
        done.append(shipment.pk)
    return done


# --- Dispatch note ---------------------------------------------------------------------------

# Code 39: each character is 9 elements (bar, space, bar, ...), 3 of them wide.
_CODE39 = {
    "0": "000110100",
    "1": "100100001",
    "2": "001100001",
    "3": "101100000",
    "4": "000110001",
    "5": "100110000",
    "6": "001110000",
    "7": "000100101",
    "8": "100100100",
    "9": "001100100",
    "A": "100001001",
    "B": "001001001",
    "C": "101001000",
    "D": "000011001",
    "E": "100011000",
    "F": "001011000",
    "*": "010010100",
}
_WIDE = 3  # wide elements are three narrow ones


@dataclass(frozen=True)
class Barcode:
    bars: list[tuple[int, int]]  # (x, width) in narrow-bar units
    width: int


def code39(text: str) -> Barcode:
    """Bars of a Code 39 barcode of ``text`` (hex digits: a transaction's short id)."""
    x, bars = 0, []
    for position, char in enumerate(f"*{text.upper()}*"):
        if position:
            x += 1  # the narrow gap between characters
        for index, wide in enumerate(_CODE39[char]):
            width = _WIDE if wide == "1" else 1
            if index % 2 == 0:
                bars.append((x, width))
            x += width
    return Barcode(bars=bars, width=x)


def dispatch_note_pdf(*, shipment: Shipment) -> bytes:
    """The A5 dispatch note (packing slip) of ``shipment``, as PDF bytes."""
    import weasyprint  # imported here: loading Pango takes a moment, only PDFs need it

    tx = shipment.transaction
    html = render_to_string(
        "payments/dispatch_note.html",
        {
            "shipment": shipment,
            "transaction": tx,
            "platform": tx.platform,
            "items": [line for line in shipment.items.splitlines() if line.strip()],
            "barcode": code39(tx.short_id),
            "printed_at": timezone.now(),
        },
    )
    return weasyprint.HTML(string=html).write_pdf()
