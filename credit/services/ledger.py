"""The ledger's only writer: every change of credit goes through these services.

Each service is one database transaction that

1. returns the earlier transfer at once when its idempotency key was used
   before with the same content (a replay moves nothing), and refuses the key
   used with other content;
2. locks the wallet row (SELECT ... FOR UPDATE; several wallets in primary-key
   order), then checks (currency, available credit) and writes nothing on refusal;
3. inserts the transfer and its entries (a deferred trigger checks they sum to
   zero at commit), updates the wallet's cached balance in the same
   transaction, and books the lots (first in, first out);
4. after commit, sends the low-balance warning and queues an automatic recharge
   when the balance has crossed the line.

No service here calls a payment gateway: card money comes in through
payments, whose captured transactions are credited by credit.handlers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from auditlog.models import LogEntry
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from accounts.models import Account, Platform, Shop, User
from credit.exceptions import (
    IdempotencyConflict,
    InsufficientCredit,
    RefundTooLarge,
    WrongCurrency,
)
from credit.models import (
    Allocation,
    Entry,
    LedgerAccount,
    Lot,
    PendingAllocation,
    Transfer,
    Wallet,
)

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
Kind = Transfer.Kind


# --- Ledger accounts and wallets ------------------------------------------------------


def ledger_system_account(*, platform: Platform, kind: str) -> LedgerAccount:
    """The platform's system account of ``kind`` (clearing, revenue, ...), created once."""
    found = LedgerAccount.objects.filter(platform=platform, kind=kind).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return LedgerAccount.objects.create(
                platform=platform,
                kind=kind,
                currency=str(platform.currency),
                name=f"{LedgerAccount.Kind(kind).label} · {platform.name}",
            )
    except IntegrityError:
        return LedgerAccount.objects.get(platform=platform, kind=kind)


def wallet_for(*, account: Account, platform: Platform) -> Wallet:
    """The account's wallet on the platform, created on first use (in its currency)."""
    found = Wallet.objects.filter(account=account, platform=platform).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            ledger_account = LedgerAccount.objects.create(
                platform=platform,
                kind=LedgerAccount.Kind.WALLET,
                currency=str(platform.currency),
                name=f"{account.name} · {platform.name}",
            )
            return Wallet.objects.create(
                account=account,
                platform=platform,
                ledger_account=ledger_account,
                currency=str(platform.currency),
            )
    except IntegrityError:
        return Wallet.objects.get(account=account, platform=platform)


def _lock(wallet_id: int) -> Wallet:
    return Wallet.objects.select_for_update().select_related("platform").get(pk=wallet_id)


def wallets_lock(wallet_ids: list[int]) -> list[Wallet]:
    """Lock several wallets, always in primary-key order so two callers cannot deadlock."""
    return list(Wallet.objects.select_for_update().filter(pk__in=wallet_ids).order_by("pk"))


# --- Amounts and idempotency ------------------------------------------------------------


def amount_check(amount: Money, *, wallet: Wallet) -> Decimal:
    """The decimal amount: positive, whole cents, in the wallet's currency."""
    if str(amount.currency) != wallet.currency:
        raise WrongCurrency(
            _("This credit is in %(currency)s; %(given)s cannot be used here.")
            % {"currency": wallet.currency, "given": amount.currency},
            extra={"field": "amount"},
        )
    value = amount.amount
    if value <= 0:
        raise WrongCurrency(_("The amount must be more than zero."), extra={"field": "amount"})
    if value != value.quantize(CENT):
        raise WrongCurrency(
            _("The amount can have at most two decimal places."), extra={"field": "amount"}
        )
    return value


def _fingerprint(**content: object) -> str:
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replayed(key: str, fingerprint: str) -> Transfer | None:
    earlier = Transfer.objects.filter(idempotency_key=key).first()
    if earlier is None:
        return None
    if earlier.fingerprint != fingerprint:
        raise IdempotencyConflict(
            _("The idempotency key %(key)s was already used for a different movement.")
            % {"key": key}
        )
    return earlier


@dataclass(frozen=True)
class _Pays:
    type_id: int | None = None
    object_id: int | None = None

    @classmethod
    def of(cls, obj: models.Model | None) -> _Pays:
        if obj is None:
            return cls()
        from django.contrib.contenttypes.models import ContentType

        return cls(ContentType.objects.get_for_model(obj).pk, obj.pk)


# --- Posting ------------------------------------------------------------------------------


def _post(
    *,
    wallet: Wallet,
    counter: LedgerAccount,
    kind: str,
    change: Decimal,
    key: str,
    fingerprint: str,
    memo: str = "",
    shop: Shop | None = None,
    pays: _Pays = _Pays(),
    payment_id: int | None = None,
    refund_of: Transfer | None = None,
    reverses: Transfer | None = None,
    created_by: User | None = None,
) -> Transfer:
    """Write a transfer moving ``change`` into the (locked) wallet from ``counter``.

    ``change`` is signed from the wallet's side: positive credits it, negative
    debits it. Updates the cached balance in the same transaction.
    """
    transfer = Transfer.objects.create(
        kind=kind,
        idempotency_key=key,
        fingerprint=fingerprint,
        amount=abs(change),
        currency=wallet.currency,
        memo=memo[:300],
        wallet=wallet,
        shop=shop,
        pays_for_type_id=pays.type_id,
        pays_for_id=pays.object_id,
        payment_id=payment_id,
        refund_of=refund_of,
        reverses=reverses,
        created_by=created_by,
    )
    wallet.balance += change
    Entry.objects.bulk_create(
        [
            Entry(
                transfer=transfer,
                ledger_account_id=wallet.ledger_account_id,
                amount=change,
                currency=wallet.currency,
                balance_after=wallet.balance,
            ),
            Entry(
                transfer=transfer,
                ledger_account=counter,
                amount=-change,
                currency=wallet.currency,
            ),
        ]
    )
    wallet.save(update_fields=["balance"])
    return transfer


def _idempotent(key: str, fingerprint: str, post):  # type: ignore[no-untyped-def]
    """Run ``post()`` unless the key was seen; a concurrent twin loses the unique race."""
    earlier = _replayed(key, fingerprint)
    if earlier is not None:
        return earlier, False
    try:
        with transaction.atomic():
            return post(), True
    except IntegrityError as error:
        if "idempotency_key" not in str(error):
            raise
        earlier = _replayed(key, fingerprint)
        if earlier is None:
            raise
        return earlier, False


# --- Lots (first in, first out) -------------------------------------------------------


def _allocate(wallet_id: int, *, wait: bool) -> int:
    """Allocate the wallet's waiting debits to its lots (credit_allocate(), first in, first
    out), holding the wallet's lot lock until the surrounding transaction ends.

    Returns how many debits were allocated, or -1 when ``wait`` is false and another
    transaction holds the lock (it will find this wallet's waiting debits itself).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT credit_allocate(%s, %s, %s)", [wallet_id, wait, timezone.now()])
        return cursor.fetchone()[0]


def lots_allocate_pending(*, wallet_id: int) -> int:
    """After a debit's commit: allocate the wallet's waiting debits, unless another
    process is doing it right now (then nothing is waited for).

    One statement, its own transaction. A debit that committed while another
    process held the lot lock is allocated by the next debit, credit or refund on
    that wallet, or within a minute by the periodic sweep
    (credit.tasks.allocate_pending_lots); readers that need exact lots (refunds,
    credits, documents) drain the queue first.
    """
    return _allocate(wallet_id, wait=False)


def lots_allocate_all_pending() -> int:
    """The safety net (a periodic task): allocate every waiting debit of every wallet."""
    count = 0
    for wallet_id in PendingAllocation.objects.values_list("wallet_id", flat=True).distinct():
        with transaction.atomic():
            count += max(_allocate(wallet_id, wait=True), 0)
    return count


def _open_lot(*, wallet: Wallet, transfer: Transfer, source: str, amount: Decimal) -> Lot:
    """A new lot; it first covers earlier debits that went into overdraft, oldest first."""
    lot = Lot.objects.create(
        wallet=wallet, transfer=transfer, source=source, amount=amount, remaining=amount
    )
    uncovered = (
        Allocation.objects.filter(debit__wallet=wallet, lot__isnull=True)
        .values("debit")
        .annotate(total=Sum("amount"))
        .filter(total__gt=0)
        .order_by("debit")
    )
    for row in uncovered:
        if lot.remaining == 0:
            break
        take = min(lot.remaining, row["total"])
        Allocation.objects.create(transfer=transfer, debit_id=row["debit"], lot=None, amount=-take)
        Allocation.objects.create(transfer=transfer, debit_id=row["debit"], lot=lot, amount=take)
        lot.remaining -= take
    lot.save(update_fields=["remaining"])
    return lot


def _return_to_lots(*, refund: Transfer, debit: Transfer, amount: Decimal) -> None:
    """Give a refunded amount back to the lots the debit drew from, newest first;
    an uncovered (overdraft) part is given back before any lot."""
    per_lot = (
        Allocation.objects.filter(debit=debit)
        .values("lot")
        .annotate(total=Sum("amount"))
        .filter(total__gt=0)
    )
    drawn = {row["lot"]: row["total"] for row in per_lot}
    left = amount
    order = [None, *sorted((lot_id for lot_id in drawn if lot_id is not None), reverse=True)]
    for lot_id in order:
        if lot_id not in drawn or left == 0:
            continue
        give = min(drawn[lot_id], left)
        Allocation.objects.create(transfer=refund, debit=debit, lot_id=lot_id, amount=-give)
        if lot_id is not None:
            Lot.objects.filter(pk=lot_id).update(remaining=models.F("remaining") + give)
        left -= give


# --- Services -----------------------------------------------------------------------------


def wallet_credit(
    *,
    wallet: Wallet,
    amount: Money,
    kind: str,
    idempotency_key: str,
    memo: str = "",
    payment_id: int | None = None,
    created_by: User | None = None,
) -> Transfer:
    """Add paid-in credit (a top-up, an automatic recharge, a promotion) as a new lot.

    The counter-account follows the kind: card money from gateway clearing, transfers
    from bank clearing, promotions from promotional credit.
    """
    value = amount_check(amount, wallet=wallet)
    counter_kind, source = _CREDIT_SOURCES[kind]
    fingerprint = _fingerprint(
        op="credit", wallet=wallet.pk, kind=kind, amount=value, payment=payment_id
    )

    def post() -> Transfer:
        locked = _lock(wallet.pk)
        # Debits waiting for their lots come first: they are older than this lot.
        _allocate(locked.pk, wait=True)
        counter = ledger_system_account(platform=locked.platform, kind=counter_kind)
        transfer = _post(
            wallet=locked,
            counter=counter,
            kind=kind,
            change=value,
            key=idempotency_key,
            fingerprint=fingerprint,
            memo=memo,
            payment_id=payment_id,
            created_by=created_by,
        )
        _open_lot(wallet=locked, transfer=transfer, source=source, amount=value)
        _after_change(locked)
        return transfer

    transfer, _created = _idempotent(idempotency_key, fingerprint, post)
    return transfer


_CREDIT_SOURCES = {
    Kind.TOPUP_CARD: (LedgerAccount.Kind.GATEWAY_CLEARING, Lot.Source.CARD),
    Kind.AUTO_RECHARGE: (LedgerAccount.Kind.GATEWAY_CLEARING, Lot.Source.AUTO_RECHARGE),
    Kind.TOPUP_TRANSFER: (LedgerAccount.Kind.BANK_CLEARING, Lot.Source.TRANSFER),
    Kind.PROMOTION: (LedgerAccount.Kind.PROMOTIONAL, Lot.Source.PROMOTION),
    Kind.ADJUSTMENT: (LedgerAccount.Kind.ADJUSTMENTS, Lot.Source.ADJUSTMENT),
}


def wallet_debit(
    *,
    wallet: Wallet,
    amount: Money,
    idempotency_key: str,
    memo: str = "",
    shop: Shop | None = None,
    pays_for: models.Model | None = None,
    created_by: User | None = None,
    kind: str = Kind.DEBIT,
) -> Transfer:
    """Pay from credit: -wallet, +revenue, drawn from the oldest lots.

    Refuses (InsufficientCredit, nothing written) when the balance plus the
    overdraft limit does not cover the amount. Records the shop and what it
    paid for. After commit: the low-balance warning and the automatic recharge.

    Everything after the input checks is one database call, ``credit_debit()``
    (credit/migrations/0002_debit_function.py): the idempotency check, the wallet
    row lock, the funds check, the transfer and both entries, the balance, the
    lot allocations, the low-balance flag and the automatic-recharge decision.
    Outside a transaction that call is its own transaction, so the wallet stays
    locked for one round trip; inside one it runs in a savepoint.
    """
    value = amount_check(amount, wallet=wallet)
    if shop is not None and (
        shop.registration.account_id != wallet.account_id
        or shop.registration.platform_id != wallet.platform_id
    ):
        raise WrongCurrency(_("The shop belongs to another account or platform."))
    pays = _Pays.of(pays_for)
    fingerprint = _fingerprint(
        op="debit",
        wallet=wallet.pk,
        kind=kind,
        amount=value,
        shop=shop.pk if shop else None,
        pays=(pays.type_id, pays.object_id),
    )
    counter_kind = (
        LedgerAccount.Kind.ADJUSTMENTS if kind == Kind.ADJUSTMENT else LedgerAccount.Kind.REVENUE
    )

    now = timezone.now()
    arguments = [
        wallet.pk,
        value,
        kind,
        counter_kind,
        idempotency_key,
        fingerprint,
        memo[:300],
        shop.pk if shop else None,
        pays.type_id,
        pays.object_id,
        created_by.pk if created_by else None,
        now,
    ]
    try:
        if connection.in_atomic_block:
            # Inside the caller's transaction: a savepoint, so a refusal leaves it usable.
            with transaction.atomic():
                row = _call_debit(arguments)
        else:
            # On its own the call is its own transaction: the wallet's lock lasts one round trip.
            row = _call_debit(arguments)
    except IntegrityError as error:
        # The same key at the same moment from another process: it committed first.
        if "idempotency_key" not in str(error):
            raise
        return _replayed(idempotency_key, fingerprint) or _raise(error)
    except DatabaseError as error:
        state = _sqlstate(error)
        if state == INSUFFICIENT_CREDIT:
            available = wallet.money(Decimal(_detail(error) or "0"))
            raise InsufficientCredit(
                _("Insufficient credit: %(amount)s is needed, %(available)s is available.")
                % {"amount": wallet.money(value), "available": available},
                extra={"needed": str(value), "available": str(available.amount)},
            ) from None
        if state == KEY_CONFLICT:
            raise IdempotencyConflict(
                _("The idempotency key %(key)s was already used for a different movement.")
                % {"key": idempotency_key}
            ) from None
        raise
    transfer_id, replayed, _balance, warn_low_balance, recharge_id = row
    if replayed:
        return Transfer.objects.get(pk=transfer_id)
    if connection.in_atomic_block:
        # In the caller's transaction: allocate now (the lot lock lasts until its commit).
        _allocate(wallet.pk, wait=True)
    else:
        # The debit has committed; allocate in a short transaction of its own.
        lots_allocate_pending(wallet_id=wallet.pk)
    if warn_low_balance:
        from credit.services.wallets import low_balance_warning_send

        transaction.on_commit(lambda: low_balance_warning_send(wallet.pk))
    if recharge_id is not None:
        from credit.tasks import auto_recharge_charge

        transaction.on_commit(lambda: auto_recharge_charge.delay(recharge_id))
    transfer = Transfer(
        id=transfer_id,
        kind=kind,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        amount=value,
        currency=wallet.currency,
        memo=memo[:300],
        wallet=wallet,
        shop=shop,
        pays_for_type_id=pays.type_id,
        pays_for_id=pays.object_id,
        created_by=created_by,
        created_at=now,
    )
    transfer._state.adding = False
    transfer._state.db = connection.alias
    return transfer


def _call_debit(arguments: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM credit_debit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            arguments,
        )
        return cursor.fetchone()


def _raise(error: Exception):  # type: ignore[no-untyped-def]
    raise error


INSUFFICIENT_CREDIT = "LE001"
KEY_CONFLICT = "LE004"


def _sqlstate(error: DatabaseError) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def _detail(error: DatabaseError) -> str | None:
    diagnostic = getattr(error.__cause__, "diag", None)
    return getattr(diagnostic, "message_detail", None)


def wallet_refund(
    *,
    debit: Transfer,
    idempotency_key: str,
    amount: Money | None = None,
    memo: str = "",
    created_by: User | None = None,
) -> Transfer:
    """Give (part of) a debit back to the wallet and to the lots it was drawn from."""
    if debit.kind != Kind.DEBIT or debit.wallet_id is None:
        raise RefundTooLarge(_("Only a payment from credit can be refunded to credit."))
    wallet = debit.wallet
    value = debit.amount if amount is None else amount_check(amount, wallet=wallet)
    fingerprint = _fingerprint(op="refund", debit=debit.pk, amount=value)

    def post() -> Transfer:
        locked = _lock(wallet.pk)
        refunded = Transfer.objects.filter(refund_of=debit).aggregate(total=Sum("amount"))[
            "total"
        ] or Decimal(0)
        if refunded + value > debit.amount:
            raise RefundTooLarge(
                _("At most %(amount)s of this payment can still be refunded.")
                % {"amount": locked.money(debit.amount - refunded)},
                extra={"field": "amount"},
            )
        counter = ledger_system_account(platform=locked.platform, kind=LedgerAccount.Kind.REVENUE)
        transfer = _post(
            wallet=locked,
            counter=counter,
            kind=Kind.REFUND,
            change=value,
            key=idempotency_key,
            fingerprint=fingerprint,
            memo=memo or debit.memo,
            shop=debit.shop,
            pays=_Pays(debit.pays_for_type_id, debit.pays_for_id),
            refund_of=debit,
            created_by=created_by,
        )
        _return_to_lots(refund=transfer, debit=debit, amount=value)
        _after_change(locked)
        return transfer

    transfer, _created = _idempotent(idempotency_key, fingerprint, post)
    return transfer


def wallet_adjust(
    *,
    wallet: Wallet,
    amount: Money,
    reason: str,
    staff: User,
    idempotency_key: str,
    direction: str,
) -> Transfer:
    """A staff correction: ``direction`` "credit" adds, "debit" takes away. The reason is
    required and, with the staff member, goes to the audit log."""
    reason = reason.strip()
    if not reason:
        raise WrongCurrency(_("Give the reason for the adjustment."), extra={"field": "reason"})
    memo = _("Adjustment: %(reason)s") % {"reason": reason}
    if direction == "credit":
        transfer = wallet_credit(
            wallet=wallet,
            amount=amount,
            kind=Kind.ADJUSTMENT,
            idempotency_key=idempotency_key,
            memo=memo,
            created_by=staff,
        )
    elif direction == "debit":
        transfer = wallet_debit(
            wallet=wallet,
            amount=amount,
            kind=Kind.ADJUSTMENT,
            idempotency_key=idempotency_key,
            memo=memo,
            created_by=staff,
        )
    else:
        raise ValueError(direction)
    _audit(transfer, staff=staff, reason=reason, direction=direction)
    return transfer


def _audit(transfer: Transfer, *, staff: User, reason: str, direction: str) -> None:
    from auditlog.models import LogEntry

    if LogEntry.objects.get_for_object(transfer).exists():
        return  # a replayed adjustment is already recorded
    LogEntry.objects.log_create(
        transfer,
        action=LogEntry.Action.CREATE,
        changes={
            "adjustment": [None, f"{direction} {transfer.amount} {transfer.currency}"],
            "reason": [None, reason],
            "wallet": [None, str(transfer.wallet)],
        },
        actor=staff,
        force_log=True,
    )


def overdraft_set(*, wallet: Wallet, limit: Money, staff: User) -> Wallet:
    """Grant (or withdraw) an overdraft; it cannot go below what is already overdrawn."""
    value = limit.amount
    if str(limit.currency) != wallet.currency or value < 0 or value != value.quantize(CENT):
        raise WrongCurrency(_("Enter a positive amount in the wallet's currency."))
    with transaction.atomic():
        locked = _lock(wallet.pk)
        if locked.balance < -value:
            raise InsufficientCredit(
                _("The balance is %(balance)s; the overdraft cannot be smaller than that.")
                % {"balance": locked.balance_money}
            )
        before = locked.overdraft_limit
        locked.overdraft_limit = value
        locked.save(update_fields=["overdraft_limit"])
        # Staff's decision goes into the audit log with the change, in the same transaction.
        LogEntry.objects.log_create(
            locked,
            action=LogEntry.Action.UPDATE,
            changes={"overdraft_limit": [str(before), str(value)]},
            actor=staff,
            force_log=True,
        )
    return locked


# --- After every change -----------------------------------------------------------------


def _after_change(wallet: Wallet, *, debit: Transfer | None = None) -> None:
    """Low-balance warning state, and the automatic recharge a debit may trigger.

    Runs inside the posting transaction with the wallet locked, so that two
    debits crossing the line at once are serialised: only the first warns and
    only one recharge can be queued (the database's exclusion constraint backs it).
    """
    from credit.services import wallets as wallet_services

    wallet_services.low_balance_update(wallet)
    if debit is not None:
        wallet_services.auto_recharge_consider(wallet, trigger=debit)


# --- Verification -------------------------------------------------------------------------


def ledger_mismatches() -> list[str]:
    """Every way the ledger disagrees with itself (should always be empty)."""
    problems = []
    sums = dict(
        Entry.objects.values("ledger_account")
        .annotate(total=Sum("amount"))
        .values_list("ledger_account", "total")
    )
    for wallet in Wallet.objects.only("pk", "balance", "ledger_account_id"):
        if wallet.balance != sums.get(wallet.ledger_account_id, Decimal(0)):
            problems.append(
                f"wallet {wallet.pk}: cached balance {wallet.balance} != entries "
                f"{sums.get(wallet.ledger_account_id, Decimal(0))}"
            )
    for row in Entry.objects.values("currency").annotate(total=Sum("amount")):
        if row["total"] != 0:
            problems.append(f"ledger in {row['currency']} sums to {row['total']}, not zero")
    return problems


def average_daily_spend(*, wallet: Wallet, days: int, now=None) -> Decimal:  # type: ignore[no-untyped-def]
    """Debits minus refunds over the last ``days`` days, per day."""
    since = (now or timezone.now()) - timedelta(days=days)
    rows = dict(
        Transfer.objects.filter(
            wallet=wallet, kind__in=[Kind.DEBIT, Kind.REFUND], created_at__gte=since
        )
        .values("kind")
        .annotate(total=Sum("amount"))
        .values_list("kind", "total")
    )
    spent = rows.get(Kind.DEBIT, Decimal(0)) - rows.get(Kind.REFUND, Decimal(0))
    # Half away from zero, as PostgreSQL's round() in credit_debit() does.
    return (max(spent, Decimal(0)) / days).quantize(CENT, rounding=ROUND_HALF_UP)
