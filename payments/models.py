"""Gateway transactions, their append-only message log, saved cards, shipments, webhooks.

A Transaction is one payment attempt at one gateway, with a state machine:

    created ─► action_required ─► authorized ─► captured ─► partially_refunded ─► refunded
       │             │                 ├─► voided
       │             │                 └─► expired (the authorization window passed)
       └─────────────┴──► failed

A card declined while the customer is paying (or a failed 3-D Secure check)
leaves the transaction `created`, so they can try another card, as Stripe's
PaymentIntents do; it fails when the customer gives up (reconciliation closes
abandoned payments) or when an off-session charge is declined.

`purchase` (authorize and capture at once) goes from created straight to
captured. Every transition is made by payments.services under a row lock;
while a gateway call is in flight the row carries `pending_operation`, so a
second request for the same transaction is refused instead of racing.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pgtrigger
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField
from djmoney.money import Money

from accounts.models import Account, CardBrand, Platform, Shop

MONEY = {"max_digits": 14, "decimal_places": 2}


class Gateway(models.TextChoices):
    SANDBOX = "sandbox", _("Sandbox (test cards)")
    STRIPE = "stripe", _("Stripe")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")


class Purpose(models.TextChoices):
    TOPUP = "topup", _("Credit top-up")
    ORDER = "order", _("Order")
    AUTO_RECHARGE = "auto_recharge", _("Automatic recharge")
    RESTORE_FEE = "restore_fee", _("Restore fee")
    GOODS = "goods", _("Goods sale")
    OTHER = "other", _("Other")


class State(models.TextChoices):
    CREATED = "created", _("Created")
    ACTION_REQUIRED = "action_required", _("Waiting for the customer")
    AUTHORIZED = "authorized", _("Authorized")
    CAPTURED = "captured", _("Captured")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partly refunded")
    REFUNDED = "refunded", _("Refunded")
    VOIDED = "voided", _("Voided")
    EXPIRED = "expired", _("Expired")
    FAILED = "failed", _("Failed")


PENDING_STATES = (State.CREATED, State.ACTION_REQUIRED)
FINAL_STATES = (State.REFUNDED, State.VOIDED, State.EXPIRED, State.FAILED)


class Operation(models.TextChoices):
    AUTHORIZE = "authorize", _("authorize")
    PURCHASE = "purchase", _("purchase")
    CAPTURE = "capture", _("capture")
    VOID = "void", _("void")
    REFUND = "refund", _("refund")
    EXPIRE = "expire", _("expire")


class Transaction(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="transactions")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="transactions")
    shop = models.ForeignKey(
        Shop, on_delete=models.PROTECT, null=True, blank=True, related_name="transactions"
    )
    amount = MoneyField(_("amount"), **MONEY)
    captured_amount = MoneyField(_("captured"), **MONEY, default=Decimal("0"))
    refunded_amount = MoneyField(_("refunded"), **MONEY, default=Decimal("0"))
    purpose = models.CharField(_("purpose"), max_length=24, choices=Purpose.choices)
    # What the payment is for (a top-up, an order, ...), in the app that owns it.
    purpose_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    purpose_id = models.PositiveBigIntegerField(null=True, blank=True)
    pays_for = GenericForeignKey("purpose_type", "purpose_id")
    description = models.CharField(_("description"), max_length=200, blank=True)
    gateway = models.CharField(_("gateway"), max_length=24, choices=Gateway.choices)
    gateway_reference = models.CharField(_("gateway reference"), max_length=100, blank=True)
    card_brand = models.CharField(
        _("card brand"), max_length=16, choices=CardBrand.choices, blank=True
    )
    card_last4 = models.CharField(_("card last four digits"), max_length=4, blank=True)
    saved_card = models.ForeignKey(
        "SavedCard", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(
        _("state"), max_length=24, choices=State.choices, default=State.CREATED
    )
    # A gateway call in flight (recorded before the call, cleared when it is settled).
    pending_operation = models.CharField(
        max_length=16, choices=Operation.choices, blank=True, default=""
    )
    pending_amount = models.DecimalField(**MONEY, null=True, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    # Charge at once when authorized (top-ups) instead of capturing later (goods).
    auto_capture = models.BooleanField(_("capture at once"), default=False)
    # Where the customer finishes a payment that needs them (3-D Secure, hosted page).
    next_action_url = models.CharField(max_length=500, blank=True)
    # Where the customer goes back to after paying (the page that asked for the payment).
    return_url = models.CharField(max_length=500, blank=True)
    failure_code = models.CharField(_("failure code"), max_length=64, blank=True)
    failure_message = models.CharField(_("failure message"), max_length=300, blank=True)
    authorized_at = models.DateTimeField(_("authorized at"), null=True, blank=True)
    authorization_expires_at = models.DateTimeField(
        _("authorization expires at"), null=True, blank=True
    )
    captured_at = models.DateTimeField(_("captured at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Supplied by callers that may retry creating the same payment.
    idempotency_key = models.CharField(max_length=100, unique=True, null=True, blank=True)

    class Meta:
        verbose_name = _("transaction")
        verbose_name_plural = _("transactions")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="tx_account_created"),
            # amount INCLUDEd: a search by state, dates and amount counts its matches from
            # the index alone (bench transaction_search).
            models.Index(
                fields=["account", "state", "-created_at"],
                name="tx_account_state",
                include=["amount"],
            ),
            models.Index(fields=["state", "authorization_expires_at"], name="tx_expiry"),
            models.Index(
                fields=["pending_since"],
                name="tx_pending",
                condition=~Q(pending_operation=""),
            ),
            models.Index(fields=["gateway", "gateway_reference"], name="tx_gateway_ref"),
            models.Index(fields=["purpose_type", "purpose_id"], name="tx_pays_for"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="tx_amount_positive"),
            models.CheckConstraint(
                condition=Q(captured_amount__gte=0) & Q(captured_amount__lte=F("amount")),
                name="tx_captured_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("captured_amount")),
                name="tx_refunded_within_captured",
            ),
            models.CheckConstraint(
                condition=Q(captured_amount_currency=F("amount_currency"))
                & Q(refunded_amount_currency=F("amount_currency")),
                name="tx_one_currency",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=[State.CAPTURED, State.PARTIALLY_REFUNDED, State.REFUNDED])
                | Q(captured_amount__gt=0),
                name="tx_captured_states_have_captured_amount",
            ),
            models.CheckConstraint(
                condition=~Q(state=State.REFUNDED) | Q(refunded_amount=F("captured_amount")),
                name="tx_refunded_state_is_full",
            ),
            models.CheckConstraint(
                condition=Q(card_last4="") | Q(card_last4__regex=r"^[0-9]{4}$"),
                name="tx_card_last4_digits",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.short_id} {self.amount} {self.get_state_display()}"

    @property
    def short_id(self) -> str:
        return str(self.public_id).split("-")[0].upper()

    @property
    def currency(self) -> str:
        return str(self.amount.currency)

    def money(self, amount: Decimal | int | str) -> Money:
        return Money(amount, self.currency)

    @property
    def capturable_amount(self) -> Money:
        return self.amount if self.state == State.AUTHORIZED else self.money(0)

    @property
    def refundable_amount(self) -> Money:
        return self.captured_amount - self.refunded_amount

    @property
    def is_partly_captured(self) -> bool:
        return Decimal(0) < self.captured_amount.amount < self.amount.amount

    def purpose_set(self, obj: models.Model) -> None:
        self.purpose_type = ContentType.objects.get_for_model(obj)
        self.purpose_id = obj.pk


@pgtrigger.register(
    # The message log is a record: the database refuses to change or delete it.
    pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
)
class TransactionEvent(models.Model):
    """One line of a transaction's message log: a system action or a person's note."""

    class Kind(models.TextChoices):
        ACTION = "action", _("Action")
        NOTE = "note", _("Note")
        GATEWAY = "gateway", _("Gateway notification")

    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    action = models.CharField(_("action"), max_length=40, blank=True)
    old_state = models.CharField(max_length=24, choices=State.choices, blank=True)
    new_state = models.CharField(max_length=24, choices=State.choices, blank=True)
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    gateway_code = models.CharField(_("gateway response"), max_length=64, blank=True)
    message = models.TextField(_("message"), blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The task or process that acted when no person did (e.g. "expire-authorizations").
    system_actor = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("log entry")
        verbose_name_plural = _("message log")
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="note") | (~Q(message="") & Q(author__isnull=False)),
                name="tx_event_note_has_author_and_text",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action or self.kind}"

    @property
    def actor_label(self) -> str:
        if self.author_id:
            return str(self.author)
        return self.system_actor or "system"


class SavedCard(models.Model):
    """A card the customer let us keep for later charges: a gateway token, never the number."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="saved_cards")
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    gateway = models.CharField(max_length=24, choices=Gateway.choices)
    token = models.CharField(max_length=120)
    # Stripe keeps saved cards on a customer object.
    gateway_customer = models.CharField(max_length=100, blank=True)
    brand = models.CharField(_("brand"), max_length=16, choices=CardBrand.choices)
    last4 = models.CharField(_("last four digits"), max_length=4)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"))
    exp_year = models.PositiveSmallIntegerField(_("expiry year"))
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("saved card")
        verbose_name_plural = _("saved cards")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "token"], name="saved_card_token_unique"),
            models.CheckConstraint(
                condition=Q(last4__regex=r"^[0-9]{4}$"), name="saved_card_last4_digits"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_brand_display()} •••• {self.last4} ({self.exp_month:02d}/{self.exp_year})"
        )


class WebhookEvent(models.Model):
    """A gateway notification, stored under a unique id so each is processed once."""

    gateway = models.CharField(max_length=24, choices=Gateway.choices)
    event_id = models.CharField(max_length=120)
    event_type = models.CharField(max_length=80)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "event_id"], name="webhook_event_once"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_type} {self.event_id}"


class Shipment(models.Model):
    """Goods sent after authorization; the money is captured when delivery is confirmed."""

    class Status(models.TextChoices):
        AWAITING = "awaiting", _("Waiting to be shipped")
        SHIPPED = "shipped", _("Shipped")
        DELIVERED = "delivered", _("Delivered")

    transaction = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, related_name="shipment"
    )
    recipient_name = models.CharField(_("recipient"), max_length=200)
    street = models.CharField(_("street and number"), max_length=200)
    city = models.CharField(_("city"), max_length=100)
    postal_code = models.CharField(_("postal code"), max_length=20)
    country = models.CharField(_("country"), max_length=2)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    items = models.TextField(_("items"), help_text=_("What is in the parcel, one item per line."))
    carrier = models.CharField(_("carrier"), max_length=80, blank=True)
    tracking_number = models.CharField(_("tracking number"), max_length=80, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.AWAITING
    )
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    shipped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("shipment")
        verbose_name_plural = _("shipments")
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "tracking_number"],
                condition=~Q(tracking_number=""),
                name="shipment_tracking_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.transaction.short_id} {self.get_status_display()}"


class DeliveryNotification(models.Model):
    """A courier's signed delivery confirmation, kept under its id so a replay does nothing."""

    notification_id = models.CharField(max_length=120, unique=True)
    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, null=True, blank=True, related_name="notifications"
    )
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = _("delivery notification")
        verbose_name_plural = _("delivery notifications")
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return self.notification_id


class SandboxCharge(models.Model):
    """The sandbox gateway's own record of a charge (what a real gateway keeps on its side)."""

    reference = models.CharField(max_length=40, unique=True)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20)
    captured = models.DecimalField(**MONEY, default=Decimal("0"))
    refunded = models.DecimalField(**MONEY, default=Decimal("0"))
    capture_on_authentication = models.BooleanField(default=False)
    brand = models.CharField(max_length=16)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField(default=1)
    exp_year = models.PositiveSmallIntegerField(default=2000)
    card_token = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sandbox charge")
        verbose_name_plural = _("sandbox charges")

    def __str__(self) -> str:
        return self.reference


class SandboxRequest(models.Model):
    """The sandbox answers a repeated idempotency key with its first response."""

    key = models.CharField(max_length=120, unique=True)
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
