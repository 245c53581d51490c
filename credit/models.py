"""The credit ledger: double-entry transfers between ledger accounts, wallets, lots.

Every movement of money is a Transfer with two or more Entries whose amounts sum
to zero (a deferred database trigger checks it at commit). An account's balance
is the sum of its entries. Transfers, entries and lot allocations are never
updated or deleted (database triggers refuse it); a correction is a reversing
transfer.

Sign convention: a positive entry increases the ledger account's balance. A
wallet's balance is the customer's credit: a top-up is +wallet / -clearing, a
debit is -wallet / +revenue, a refund of a debit is +wallet / -revenue.

A Wallet is one customer account's credit on one platform, in that platform's
currency. Its `balance` is a cached copy of its ledger account's balance, written
only by credit.services.ledger in the same database transaction as the entries,
after locking the wallet row; a CHECK keeps it at or above minus the overdraft
limit.
"""

from __future__ import annotations

from decimal import Decimal

import pgtrigger
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import RangeOperators
from django.db import models
from django.db.models import F, Func, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from accounts.models import Account, Platform, Shop

MONEY = {"max_digits": 14, "decimal_places": 2}
# Running totals over a wallet's life.
TOTAL = {"max_digits": 18, "decimal_places": 2}
ZERO = Decimal("0.00")


class LedgerAccount(models.Model):
    """An account of the double-entry ledger, in one currency."""

    class Kind(models.TextChoices):
        WALLET = "wallet", _("Customer credit")
        GATEWAY_CLEARING = "gateway_clearing", _("Card payments received")
        BANK_CLEARING = "bank_clearing", _("Bank transfers received")
        REVENUE = "revenue", _("Revenue")
        PROMOTIONAL = "promotional", _("Promotional credit")
        ADJUSTMENTS = "adjustments", _("Staff adjustments")

    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(_("currency"), max_length=3)
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        constraints = [
            # One of each system account per platform; wallets have their own rows.
            models.UniqueConstraint(
                fields=["platform", "kind"],
                condition=~Q(kind="wallet"),
                name="ledger_account_one_system_account_per_platform",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Wallet(models.Model):
    """One account's credit on one platform, in the platform's currency."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="wallets")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="wallets")
    ledger_account = models.OneToOneField(
        LedgerAccount, on_delete=models.PROTECT, related_name="wallet"
    )
    currency = models.CharField(_("currency"), max_length=3)
    # The cached balance: equal to the sum of ledger_account's entries, always.
    balance = models.DecimalField(_("balance"), **MONEY, default=ZERO)
    # Running totals, moved with the balance under the wallet's row lock: all money ever
    # credited (the sum of the wallet's positive entries), the number of entries, and the
    # time of the last one. Each wallet entry copies them (Entry.credited_after,
    # Entry.movement_number, Entry.created_at), so a period's totals are two look-ups.
    credited_total = models.DecimalField(**TOTAL, default=ZERO, db_default=ZERO)
    movement_count = models.BigIntegerField(default=0, db_default=0)
    last_movement_at = models.DateTimeField(null=True, blank=True)
    overdraft_limit = models.DecimalField(
        _("overdraft limit"),
        **MONEY,
        default=ZERO,
        help_text=_("How far below zero the balance may go; granted by staff."),
    )
    # Seed 000: pay new orders from credit automatically.
    pay_from_credit = models.BooleanField(_("pay from credit"), default=False)
    # Seed 000: warn once when the balance falls below this (0 switches warnings off).
    low_balance_limit = models.DecimalField(_("low-balance limit"), **MONEY, default=ZERO)
    low_balance_warned = models.BooleanField(default=False)
    # Seed 003: charge the saved card when the credit runs low.
    auto_recharge_enabled = models.BooleanField(_("automatic recharge"), default=False)
    auto_recharge_amount = models.DecimalField(_("recharge amount"), **MONEY, null=True, blank=True)
    auto_recharge_card = models.ForeignKey(
        "payments.SavedCard",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("card for automatic recharge"),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("wallet")
        verbose_name_plural = _("wallets")
        ordering = ["account", "platform"]
        constraints = [
            models.UniqueConstraint(fields=["account", "platform"], name="wallet_one_per_platform"),
            models.CheckConstraint(
                condition=Q(balance__gte=-F("overdraft_limit")),
                name="wallet_balance_within_overdraft",
            ),
            models.CheckConstraint(
                condition=Q(overdraft_limit__gte=0), name="wallet_overdraft_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(low_balance_limit__gte=0), name="wallet_low_balance_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(auto_recharge_amount__isnull=True) | Q(auto_recharge_amount__gt=0),
                name="wallet_recharge_amount_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} · {self.platform.name}"

    def money(self, amount: Decimal | int | str) -> Money:
        return Money(amount, self.currency)

    @property
    def balance_money(self) -> Money:
        return self.money(self.balance)

    @property
    def available(self) -> Money:
        """What may still be spent: the balance plus the overdraft."""
        return self.money(self.balance + self.overdraft_limit)

    @property
    def is_below_low_balance_limit(self) -> bool:
        return self.low_balance_limit > 0 and self.balance < self.low_balance_limit


@pgtrigger.register(
    pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
)
class Transfer(models.Model):
    """One movement of money: two or more entries that sum to zero."""

    class Kind(models.TextChoices):
        TOPUP_CARD = "topup_card", _("Top-up by card")
        TOPUP_TRANSFER = "topup_transfer", _("Top-up by bank transfer")
        AUTO_RECHARGE = "auto_recharge", _("Automatic recharge")
        DEBIT = "debit", _("Payment from credit")
        REFUND = "refund", _("Refund to credit")
        ADJUSTMENT = "adjustment", _("Staff adjustment")
        PROMOTION = "promotion", _("Promotional credit")
        REVERSAL = "reversal", _("Correction")

    kind = models.CharField(_("type"), max_length=24, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=120, unique=True)
    # A digest of what the transfer does, so the same key with other content is an error.
    fingerprint = models.CharField(max_length=64)
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(_("currency"), max_length=3)
    memo = models.CharField(_("description"), max_length=300, blank=True)
    # The wallet it concerns (every transfer here moves one wallet's credit). Indexed by
    # transfer_wallet_time and transfer_wallet_kind, which start with it (see Meta).
    wallet = models.ForeignKey(
        Wallet,
        on_delete=models.PROTECT,
        related_name="transfers",
        null=True,
        blank=True,
        db_index=False,
    )
    shop = models.ForeignKey(
        Shop,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_transfers",
        db_index=False,
    )
    # What a debit paid for (an order, a fee, ...), in the app that owns it.
    pays_for_type = models.ForeignKey(
        ContentType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    pays_for_id = models.PositiveBigIntegerField(null=True, blank=True)
    pays_for = GenericForeignKey("pays_for_type", "pays_for_id")
    # The card or bank payment that brought the money in (top-ups).
    payment = models.ForeignKey(
        "payments.Transaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_transfers",
        db_index=False,
    )
    # A refund names the debit it returns; a reversal names what it corrects.
    refund_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refunds",
        db_index=False,
    )
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        ordering = ["-created_at", "-id"]
        # Every index is written by every debit, so each one must serve a query. The
        # optional references are indexed only where set (a debit usually sets none of
        # them): lookups by value (refunds of a debit, the PROTECT check when a user, shop,
        # payment or content type is deleted) still use these partial indexes.
        indexes = [
            models.Index(fields=["wallet", "-created_at", "-id"], name="transfer_wallet_time"),
            models.Index(fields=["wallet", "kind", "-created_at"], name="transfer_wallet_kind"),
            models.Index(
                fields=["pays_for_type", "pays_for_id"],
                condition=Q(pays_for_type__isnull=False),
                name="transfer_pays_for",
            ),
            models.Index(
                fields=["refund_of"],
                condition=Q(refund_of__isnull=False),
                name="transfer_refund_of",
            ),
            models.Index(fields=["shop"], condition=Q(shop__isnull=False), name="transfer_shop"),
            models.Index(
                fields=["payment"], condition=Q(payment__isnull=False), name="transfer_payment"
            ),
            models.Index(
                fields=["created_by"],
                condition=Q(created_by__isnull=False),
                name="transfer_created_by",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency}"

    @property
    def amount_money(self) -> Money:
        return Money(self.amount, self.currency)


# Legs of a transfer sum to zero, checked when the database transaction commits
# (a deferred constraint trigger, so a transfer's entries can be inserted one by one).
_BALANCED = """
    SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, legs
        FROM credit_entry WHERE transfer_id = NEW.transfer_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'credit: the entries of transfer % do not sum to zero', NEW.transfer_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF legs < 2 THEN
        RAISE EXCEPTION 'credit: transfer % has fewer than two entries', NEW.transfer_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
"""

# An entry is in its ledger account's currency.
_SAME_CURRENCY = """
    IF NEW.currency <> (SELECT currency FROM credit_ledgeraccount WHERE id = NEW.ledger_account_id)
    THEN
        RAISE EXCEPTION 'credit: entry in % on a ledger account in another currency', NEW.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
"""


@pgtrigger.register(
    pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
    pgtrigger.Trigger(
        name="transfer_balanced",
        operation=pgtrigger.Insert,
        when=pgtrigger.After,
        timing=pgtrigger.Deferred,
        declare=[("total", "numeric"), ("legs", "integer")],
        func=_BALANCED,
    ),
    pgtrigger.Trigger(
        name="entry_currency",
        operation=pgtrigger.Insert,
        when=pgtrigger.Before,
        func=_SAME_CURRENCY,
    ),
)
class Entry(models.Model):
    """One leg of a transfer: a signed amount on one ledger account."""

    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="entries")
    # Indexed by entry_account_time, which starts with it.
    ledger_account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    # For wallet entries, the wallet right after this entry: its balance, all it was ever
    # credited, and this entry's number among the wallet's entries (1, 2, ...). A
    # period's credits are the difference of credited_after at its two ends, its count
    # of movements that of movement_number (credit.selectors.accounting_summary).
    balance_after = models.DecimalField(**MONEY, null=True, blank=True)
    credited_after = models.DecimalField(**TOTAL, null=True, blank=True)
    movement_number = models.BigIntegerField(null=True, blank=True)
    # A wallet entry's time is taken under the wallet's lock and is never earlier than
    # the wallet's previous entry: ordered by time, the wallet's entries are in the order
    # their balances were computed (a period's boundary never splits that order).
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("entry")
        verbose_name_plural = _("entries")
        indexes = [
            models.Index(fields=["ledger_account", "created_at", "id"], name="entry_account_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_not_zero"),
            models.CheckConstraint(
                condition=(
                    Q(balance_after__isnull=True, credited_after__isnull=True)
                    & Q(movement_number__isnull=True)
                )
                | Q(
                    balance_after__isnull=False,
                    credited_after__isnull=False,
                    movement_number__gt=0,
                ),
                name="entry_wallet_totals_together",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.ledger_account_id}"


class Lot(models.Model):
    """A paid-in amount of credit (a top-up, a promotion), spent first in, first out.

    ``remaining`` is what is left of it; it changes only under the wallet's row
    lock, and Allocation rows record every change (so it can be recomputed).
    """

    class Source(models.TextChoices):
        CARD = "card", _("Card")
        TRANSFER = "transfer", _("Bank transfer")
        AUTO_RECHARGE = "auto_recharge", _("Automatic recharge")
        PROMOTION = "promotion", _("Promotion")
        ADJUSTMENT = "adjustment", _("Adjustment")

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="lots")
    transfer = models.OneToOneField(Transfer, on_delete=models.PROTECT, related_name="lot")
    source = models.CharField(max_length=16, choices=Source.choices)
    amount = models.DecimalField(**MONEY)
    remaining = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["wallet", "created_at", "id"],
                condition=Q(remaining__gt=0),
                name="lot_open_fifo",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")),
                name="lot_remaining_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.amount} ({self.remaining} left)"


@pgtrigger.register(
    pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
)
class Allocation(models.Model):
    """How much of a debit was drawn from which lot (negative: given back by a refund).

    A debit beyond every open lot (an overdraft) is allocated with no lot; the
    next lot paid in covers it first.
    """

    transfer = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="allocations")
    # The debit this allocation belongs to (for a refund: the debit being refunded).
    # Indexed by allocation_debit.
    debit = models.ForeignKey(
        Transfer, on_delete=models.PROTECT, related_name="debit_allocations", db_index=False
    )
    lot = models.ForeignKey(
        Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="allocations"
    )
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        indexes = [models.Index(fields=["debit"], name="allocation_debit")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="allocation_amount_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of debit {self.debit_id} from lot {self.lot_id or '-'}"


class PendingAllocation(models.Model):
    """A debit whose lots are not allocated yet (a work queue, emptied within moments).

    The debit itself writes only this row; the allocation to lots (first in,
    first out) runs right after the debit commits, in a short transaction of its
    own, so that the wallet row is not locked while lots are updated: on a busy
    wallet one allocation serves many debits at once. Refunds, credits and the
    periodic sweep (credit.tasks.allocate_pending_lots) drain the queue first.
    """

    transfer = models.OneToOneField(
        Transfer, on_delete=models.PROTECT, primary_key=True, related_name="+"
    )
    # Indexed by pending_allocation_wallet.
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="+", db_index=False)
    amount = models.DecimalField(**MONEY)

    class Meta:
        verbose_name = _("debit waiting for lot allocation")
        verbose_name_plural = _("debits waiting for lot allocation")
        indexes = [models.Index(fields=["wallet"], name="pending_allocation_wallet")]

    def __str__(self) -> str:
        return f"{self.amount} of transfer {self.transfer_id}"


class SpendRollup(models.Model):
    """How far a wallet's spending per day (SpendDay) is summed up, and in which zone.

    A day is summed up once it is closed: once the wallet has a movement after it ends,
    no entry can ever be dated in it again (a wallet entry is never dated before the
    wallet's previous one, see Entry.created_at). Days after ``through`` are summed from
    the entries when the wallet page is shown (credit.selectors.spend_per_day); the
    wallet page sums up newly closed days (credit.services.spend).
    """

    wallet = models.OneToOneField(
        Wallet, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    # The platform's time zone the days are in; another zone starts over.
    time_zone = models.CharField(max_length=64)
    through = models.DateField()

    class Meta:
        verbose_name = _("spend summary")
        verbose_name_plural = _("spend summaries")

    def __str__(self) -> str:
        return f"wallet {self.wallet_id} through {self.through} ({self.time_zone})"


class SpendDay(models.Model):
    """A closed day's net spending (payments less refunds) from a wallet, per shop."""

    wallet = models.ForeignKey(Wallet, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    shop = models.ForeignKey(
        "accounts.Shop", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    amount = models.DecimalField(**TOTAL)

    class Meta:
        verbose_name = _("spend per day")
        verbose_name_plural = _("spend per day")
        constraints = [
            models.UniqueConstraint(
                fields=["wallet", "day", "shop"], nulls_distinct=False, name="spend_day_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} on {self.day} (wallet {self.wallet_id}, shop {self.shop_id})"


class AutoRecharge(models.Model):
    """A charge of the saved card queued when a debit left the credit low (seed 003).

    The exclusion constraint allows at most one per wallet in any 72 hours: two
    recharges whose 72-hour windows overlap cannot both exist.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        CHARGING = "charging", _("Charging the card")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="auto_recharges")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # What crossed the threshold: the balance after the debit and the threshold then.
    balance_at_trigger = models.DecimalField(**MONEY)
    threshold = models.DecimalField(**MONEY)
    trigger = models.ForeignKey(Transfer, on_delete=models.PROTECT, related_name="+")
    payment = models.OneToOneField(
        "payments.Transaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="auto_recharge",
    )
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("automatic recharge")
        verbose_name_plural = _("automatic recharges")
        ordering = ["-created_at"]
        constraints = [
            ExclusionConstraint(
                name="auto_recharge_one_per_72_hours",
                expressions=[
                    (F("wallet"), RangeOperators.EQUAL),
                    (
                        Func(
                            F("created_at"),
                            Func(F("created_at"), function="credit_recharge_window_end"),
                            function="TSTZRANGE",
                        ),
                        RangeOperators.OVERLAPS,
                    ),
                ],
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="auto_recharge_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.wallet} {self.amount} {self.currency} {self.get_state_display()}"


def proof_upload_path(topup: TopUp, filename: str) -> str:
    import secrets
    from pathlib import PurePath

    suffix = PurePath(filename).suffix.lower()[:8]
    return f"proofs/{topup.wallet.account_id}/{topup.pk or 'new'}-{secrets.token_hex(8)}{suffix}"


class TopUp(models.Model):
    """A customer's request to add credit, paid by card or bank transfer.

    The wallet is credited exactly once, when its payment is captured (card) or
    the transfer is received (staff approval or a matching bank statement line).
    """

    class Method(models.TextChoices):
        CARD = "card", _("Card")
        TRANSFER = "transfer", _("Bank transfer")

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for payment")
        PAID = "paid", _("Credited")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Proof(models.TextChoices):
        NONE = "", _("No proof")
        SUBMITTED = "submitted", _("Proof submitted")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="topups")
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(max_length=3)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    payment = models.OneToOneField(
        "payments.Transaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="topup",
    )
    transfer = models.OneToOneField(
        Transfer, on_delete=models.PROTECT, null=True, blank=True, related_name="topup"
    )
    terms_accepted_at = models.DateTimeField(_("terms accepted at"))
    proof = models.FileField(_("proof of payment"), upload_to=proof_upload_path, blank=True)
    proof_status = models.CharField(
        _("proof"), max_length=16, choices=Proof.choices, default=Proof.NONE, blank=True
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(_("review note"), max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    paid_at = models.DateTimeField(_("credited at"), null=True, blank=True)

    class Meta:
        verbose_name = _("top-up")
        verbose_name_plural = _("top-ups")
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["method", "state", "amount"],
                condition=Q(state="pending"),
                name="topup_pending_match",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="topup_amount_positive"),
            models.CheckConstraint(
                condition=~Q(state="paid") | Q(transfer__isnull=False),
                name="topup_paid_has_transfer",
            ),
        ]

    def __str__(self) -> str:
        state = self.get_state_display()
        return f"{self.get_method_display()} {self.amount} {self.currency} ({state})"

    @property
    def amount_money(self) -> Money:
        return Money(self.amount, self.currency)


class BankStatement(models.Model):
    """An imported bank statement (ISO 20022 CAMT.053 or our CSV layout)."""

    class Format(models.TextChoices):
        CAMT053 = "camt053", "ISO 20022 CAMT.053"
        CSV = "csv", "CSV"

    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=16, choices=Format.choices)
    # The statement's own identifier (CAMT Stmt/Id), or the file digest for CSV.
    statement_id = models.CharField(_("statement"), max_length=120)
    file_sha256 = models.CharField(max_length=64)
    iban = models.CharField(_("IBAN"), max_length=34, blank=True)
    currency = models.CharField(max_length=3)
    period_from = models.DateField(null=True, blank=True)
    period_to = models.DateField(null=True, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        ordering = ["-imported_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "statement_id"], name="bank_statement_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.statement_id} ({self.get_format_display()})"


class StatementLine(models.Model):
    """One incoming payment of a statement, matched to a pending top-up or reviewed by staff."""

    class Status(models.TextChoices):
        MATCHED = "matched", _("Credited automatically")
        UNMATCHED = "unmatched", _("Waiting for review")
        ASSIGNED = "assigned", _("Assigned by staff")
        REJECTED = "rejected", _("Rejected")

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="+")
    # The bank's unique reference of the booking (CAMT AcctSvcrRef): imported once, ever.
    bank_reference = models.CharField(_("bank reference"), max_length=120)
    booked_on = models.DateField(_("booked on"))
    amount = models.DecimalField(_("amount"), **MONEY)
    currency = models.CharField(max_length=3)
    variable_symbol = models.CharField(_("variable symbol"), max_length=10, blank=True)
    counterparty = models.CharField(_("from"), max_length=200, blank=True)
    counterparty_account = models.CharField(_("from account"), max_length=60, blank=True)
    message = models.CharField(_("message"), max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNMATCHED)
    topup = models.OneToOneField(
        TopUp, on_delete=models.PROTECT, null=True, blank=True, related_name="statement_line"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.CharField(_("review note"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        ordering = ["booked_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "bank_reference"], name="statement_line_once"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="statement_line_incoming"),
        ]

    def __str__(self) -> str:
        return f"{self.booked_on} {self.amount} {self.currency} VS {self.variable_symbol}"
