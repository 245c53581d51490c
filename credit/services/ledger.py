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
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from auditlog.models import LogEntry
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    models,
    transaction,
)
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


# One encoder for every fingerprint (json.dumps would build one per call); the output is
# the same as json.dumps(content, sort_keys=True, default=str, separators=(",", ":")),
# which fingerprints stored before were made with.
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def _fingerprint(**content: object) -> str:
    return hashlib.sha256(_CANONICAL.encode(content).encode()).hexdigest()


def _credit_fingerprint(
    *, wallet_id: int, kind: str, amount: Decimal, payment_id: int | None
) -> str:
    """A credit's content, the same for wallet_credit and wallets_credit_many (a key replayed
    through either path must match)."""
    return _fingerprint(op="credit", wallet=wallet_id, kind=kind, amount=amount, payment=payment_id)


def _conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        _("The idempotency key %(key)s was already used for a different movement.") % {"key": key}
    )


def _replayed(key: str, fingerprint: str) -> Transfer | None:
    earlier = Transfer.objects.filter(idempotency_key=key).first()
    if earlier is None:
        return None
    if earlier.fingerprint != fingerprint:
        raise _conflict(key)
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
    now = transfer.created_at
    wallet.balance += change
    _count_movement(wallet, change, now)
    Entry.objects.bulk_create(
        [
            Entry(
                transfer=transfer,
                ledger_account_id=wallet.ledger_account_id,
                amount=change,
                currency=wallet.currency,
                balance_after=wallet.balance,
                credited_after=wallet.credited_total,
                movement_number=wallet.movement_count,
                created_at=wallet.last_movement_at,
            ),
            Entry(
                transfer=transfer,
                ledger_account=counter,
                amount=-change,
                currency=wallet.currency,
                created_at=now,
            ),
        ]
    )
    wallet.save(update_fields=["balance", *_TOTALS])
    return transfer


# The wallet's running totals (with its balance, moved only under its row lock).
_TOTALS = ("credited_total", "movement_count", "last_movement_at")


def _count_movement(wallet: Wallet, change: Decimal, now: datetime) -> None:
    """Move the (locked) wallet's running totals by one entry of ``change`` at ``now``;
    the entry's time is then ``wallet.last_movement_at``: never before the wallet's
    previous entry, so ordered by time the entries are in the order of their balances."""
    if change > 0:
        wallet.credited_total += change
    wallet.movement_count += 1
    last = wallet.last_movement_at
    wallet.last_movement_at = now if last is None or now > last else last


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
    fingerprint = _credit_fingerprint(
        wallet_id=wallet.pk, kind=kind, amount=value, payment_id=payment_id
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


@dataclass(frozen=True)
class CreditOrder:
    """One credit for ``wallets_credit_many``: what ``wallet_credit`` takes, by wallet id."""

    wallet_id: int
    amount: Money
    kind: str
    idempotency_key: str
    memo: str = ""
    payment_id: int | None = None
    created_by_id: int | None = None


@dataclass(frozen=True)
class Credited:
    """A credit's outcome: its transfer, the wallet's balance right after it (for a replay:
    the balance now), and whether it was written now (False: a replayed key)."""

    transfer: Transfer
    balance: Decimal
    created: bool


def wallets_credit_many(orders: list[CreditOrder]) -> list[Credited]:
    """``wallet_credit`` for many credits at once (a statement's top-ups), in one database
    transaction (the caller's, when it has one) and a fixed number of statements whatever
    the count: every credit leaves the rows ``wallet_credit`` would leave had it been
    called for each in the order given.

    - A key seen before with the same content returns that transfer and moves nothing; the
      same key with other content raises IdempotencyConflict (nothing written). A key
      twice in one call is a ValueError. A concurrent writer of the same key makes the
      insert fail (IntegrityError, all rolled back): callers serialise their keys (the
      top-ups are locked by theirs).
    - The wallets are locked in primary-key order; each one's waiting debits are allocated
      to its lots first (credit_allocate, as wallet_credit does), then the transfers, both
      legs of each (``balance_after`` running per wallet in the order given), the lots
      (first in, first out = the order given; each first covers the wallet's overdrawn
      debits, oldest first) and the balances are written in bulk.
    - The low-balance state follows each credit as ``_after_change`` does.

    The deferred balanced-transfer trigger and every constraint apply as for one credit.
    """
    if not orders:
        return []
    keys = [order.idempotency_key for order in orders]
    if len(set(keys)) != len(keys):
        raise ValueError("wallets_credit_many: an idempotency key appears twice")
    from credit.services.wallets import low_balance_update

    with transaction.atomic():
        wallets = {
            wallet.pk: wallet
            for wallet in Wallet.objects.select_for_update(of=("self",))
            .select_related("platform")
            .filter(pk__in={order.wallet_id for order in orders})
            .order_by("pk")
        }
        prepared = []
        for order in orders:
            wallet = wallets.get(order.wallet_id)
            if wallet is None:
                raise Wallet.DoesNotExist(f"no wallet {order.wallet_id}")
            value = amount_check(order.amount, wallet=wallet)
            fingerprint = _credit_fingerprint(
                wallet_id=wallet.pk, kind=order.kind, amount=value, payment_id=order.payment_id
            )
            prepared.append((order, wallet, value, fingerprint))
        earlier = {
            transfer.idempotency_key: transfer
            for transfer in Transfer.objects.filter(idempotency_key__in=keys)
        }
        for order, _wallet, _value, fingerprint in prepared:
            found = earlier.get(order.idempotency_key)
            if found is not None and found.fingerprint != fingerprint:
                raise _conflict(order.idempotency_key)
        new = [item for item in prepared if item[0].idempotency_key not in earlier]
        credited: dict[str, Credited] = {}
        if new:
            credited = _credits_post(new)
        results = []
        for order, wallet, *_rest in prepared:
            if order.idempotency_key in credited:
                results.append(credited[order.idempotency_key])
            else:
                results.append(
                    Credited(
                        transfer=earlier[order.idempotency_key],
                        balance=wallet.balance,
                        created=False,
                    )
                )
        # The low-balance state after each credit, in order (a query only when it flips).
        for result in results:
            if result.created:
                wallet = wallets[result.transfer.wallet_id]
                wallet.balance = result.balance
                low_balance_update(wallet)
    return results


def _credits_post(new: list[tuple[CreditOrder, Wallet, Decimal, str]]) -> dict[str, Credited]:
    """Write the new credits of ``wallets_credit_many`` (its wallets locked)."""
    wallet_ids = sorted({wallet.pk for _order, wallet, _value, _fp in new})
    now = timezone.now()
    with connection.cursor() as cursor:
        # Debits waiting for their lots come first: they are older than these lots.
        cursor.execute(
            "SELECT credit_allocate(w.id, true, %s) "
            "FROM (SELECT id FROM unnest(%s::bigint[]) AS u(id) ORDER BY id) AS w",
            [now, wallet_ids],
        )
        cursor.fetchall()
    counters: dict[tuple[int, str], LedgerAccount] = {}
    balances = {wallet.pk: wallet.balance for _order, wallet, _value, _fp in new}
    transfers, entries, running = [], [], []
    for order, wallet, value, fingerprint in new:
        counter_kind, _source = _CREDIT_SOURCES[order.kind]
        counter = counters.get((wallet.platform_id, counter_kind))
        if counter is None:
            counter = ledger_system_account(platform=wallet.platform, kind=counter_kind)
            counters[(wallet.platform_id, counter_kind)] = counter
        transfer = Transfer(
            kind=order.kind,
            idempotency_key=order.idempotency_key,
            fingerprint=fingerprint,
            amount=value,
            currency=wallet.currency,
            memo=order.memo[:300],
            wallet=wallet,
            payment_id=order.payment_id,
            created_by_id=order.created_by_id,
        )
        balances[wallet.pk] += value
        _count_movement(wallet, value, now)
        transfers.append(transfer)
        running.append(balances[wallet.pk])
        entries.append(
            Entry(
                ledger_account_id=wallet.ledger_account_id,
                amount=value,
                currency=wallet.currency,
                balance_after=balances[wallet.pk],
                credited_after=wallet.credited_total,
                movement_number=wallet.movement_count,
                created_at=wallet.last_movement_at,
            )
        )
        entries.append(
            Entry(ledger_account=counter, amount=-value, currency=wallet.currency, created_at=now)
        )
    Transfer.objects.bulk_create(transfers)
    for index, transfer in enumerate(transfers):
        entries[2 * index].transfer = entries[2 * index + 1].transfer = transfer
    Entry.objects.bulk_create(entries)
    # Debits that went into overdraft, per wallet, oldest first: each new lot covers them
    # in turn (as _open_lot does for one).
    uncovered: dict[int, list[list]] = {}
    for row in (
        Allocation.objects.filter(debit__wallet_id__in=wallet_ids, lot__isnull=True)
        .values("debit__wallet_id", "debit")
        .annotate(total=Sum("amount"))
        .filter(total__gt=0)
        .order_by("debit")
    ):
        uncovered.setdefault(row["debit__wallet_id"], []).append([row["debit"], row["total"]])
    lots, covering = [], []
    for transfer, (order, wallet, value, _fp) in zip(transfers, new, strict=True):
        _counter_kind, source = _CREDIT_SOURCES[order.kind]
        remaining = value
        taken = []
        for row in uncovered.get(wallet.pk, []):
            if remaining == 0:
                break
            take = min(remaining, row[1])
            if take == 0:
                continue
            taken.append((row[0], take))
            row[1] -= take
            remaining -= take
        lots.append(
            Lot(wallet=wallet, transfer=transfer, source=source, amount=value, remaining=remaining)
        )
        covering.append(taken)
    Lot.objects.bulk_create(lots)
    allocations = [
        allocation
        for transfer, lot, taken in zip(transfers, lots, covering, strict=True)
        for debit_id, take in taken
        for allocation in (
            Allocation(transfer=transfer, debit_id=debit_id, lot=None, amount=-take),
            Allocation(transfer=transfer, debit_id=debit_id, lot=lot, amount=take),
        )
    ]
    if allocations:
        Allocation.objects.bulk_create(allocations)
    credited = {wallet.pk: wallet for _order, wallet, _value, _fp in new}.values()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE credit_wallet SET balance = v.balance, credited_total = v.credited, "
            "movement_count = v.movements, last_movement_at = v.last "
            "FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::bigint[], "
            "%s::timestamptz[]) AS v(id, balance, credited, movements, last) "
            "WHERE credit_wallet.id = v.id",
            [
                [wallet.pk for wallet in credited],
                [balances[wallet.pk] for wallet in credited],
                [wallet.credited_total for wallet in credited],
                [wallet.movement_count for wallet in credited],
                [wallet.last_movement_at for wallet in credited],
            ],
        )
    for _order, wallet, _value, _fp in new:
        wallet.balance = balances[wallet.pk]
    return {
        transfer.idempotency_key: Credited(transfer=transfer, balance=after, created=True)
        for transfer, after in zip(transfers, running, strict=True)
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
    (credit/migrations/0002_functions.py, 0003_debit_hot_path.py): the idempotency
    check, the wallet row lock, the funds check, the transfer and both entries, the
    balance, the queue entry for the lots, the low-balance flag and the
    automatic-recharge decision. Outside a transaction that call is its own
    transaction, so the wallet stays locked for one round trip; inside one it runs in
    a savepoint. A second call, ``credit_allocate()``, then allocates the waiting
    debits to the lots.

    This runs for every payment from credit, so it does only what it must in Python:
    one cursor for both calls, and the returned transfer is built the way the ORM
    builds a fetched row (``Transfer.from_db``) rather than through the model's
    keyword constructor.
    """
    value = amount_check(amount, wallet=wallet)
    if shop is not None and (
        shop.registration.account_id != wallet.account_id
        or shop.registration.platform_id != wallet.platform_id
    ):
        raise WrongCurrency(_("The shop belongs to another account or platform."))
    pays = _Pays.of(pays_for)
    shop_id = shop.pk if shop is not None else None
    created_by_id = created_by.pk if created_by is not None else None
    fingerprint = _fingerprint(
        op="debit",
        wallet=wallet.pk,
        kind=kind,
        amount=value,
        shop=shop_id,
        pays=(pays.type_id, pays.object_id),
    )
    memo = memo[:300]
    now = timezone.now()
    # The kinds as plain strings (an enum member costs psycopg a class look-up per call);
    # the SQL sent is the same.
    arguments = [
        wallet.pk,
        value,
        str(kind),
        _ADJUSTMENTS if kind == Kind.ADJUSTMENT else _REVENUE,
        idempotency_key,
        fingerprint,
        memo,
        shop_id,
        pays.type_id,
        pays.object_id,
        created_by_id,
        now,
    ]
    db = connections[DEFAULT_DB_ALIAS]
    in_transaction = db.in_atomic_block
    with db.cursor() as cursor:
        try:
            if in_transaction:
                # Inside the caller's transaction: a savepoint, so a refusal leaves it usable.
                with transaction.atomic(using=db.alias):
                    cursor.execute(_DEBIT_SQL, arguments)
                    row = cursor.fetchone()
            else:
                # On its own the call is its own transaction: the wallet's lock lasts one
                # round trip.
                cursor.execute(_DEBIT_SQL, arguments)
                row = cursor.fetchone()
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
        # In the caller's transaction: allocate now, waiting for the lot lock (held until
        # its commit). Otherwise the debit has committed: allocate in a short transaction
        # of its own, unless another process is allocating this wallet's debits right now
        # (see lots_allocate_pending).
        cursor.execute(_ALLOCATE_SQL, [wallet.pk, in_transaction, timezone.now()])
    if warn_low_balance:
        from credit.services.wallets import low_balance_warning_send

        transaction.on_commit(lambda: low_balance_warning_send(wallet.pk))
    if recharge_id is not None:
        from credit.tasks import auto_recharge_charge

        transaction.on_commit(lambda: auto_recharge_charge.delay(recharge_id))
    # The row as credit_debit() wrote it, with the wallet (and shop, user) attached.
    transfer = Transfer.from_db(
        db.alias,
        _TRANSFER_COLUMNS,
        [
            transfer_id,
            kind,
            idempotency_key,
            fingerprint,
            value,
            wallet.currency,
            memo,
            wallet.pk,
            shop_id,
            pays.type_id,
            pays.object_id,
            None,  # payment
            None,  # refund_of
            None,  # reverses
            created_by_id,
            now,
        ],
    )
    _TRANSFER_WALLET.set_cached_value(transfer, wallet)
    if shop is not None:
        _TRANSFER_SHOP.set_cached_value(transfer, shop)
    if created_by is not None:
        _TRANSFER_CREATED_BY.set_cached_value(transfer, created_by)
    return transfer


_REVENUE = str(LedgerAccount.Kind.REVENUE)
_ADJUSTMENTS = str(LedgerAccount.Kind.ADJUSTMENTS)
_DEBIT_SQL = "SELECT * FROM credit_debit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_ALLOCATE_SQL = "SELECT credit_allocate(%s, %s, %s)"
# Transfer's columns in model order: Transfer.from_db() takes the values by position.
_TRANSFER_COLUMNS = [
    "id",
    "kind",
    "idempotency_key",
    "fingerprint",
    "amount",
    "currency",
    "memo",
    "wallet_id",
    "shop_id",
    "pays_for_type_id",
    "pays_for_id",
    "payment_id",
    "refund_of_id",
    "reverses_id",
    "created_by_id",
    "created_at",
]
if [field.attname for field in Transfer._meta.concrete_fields] != _TRANSFER_COLUMNS:
    raise RuntimeError("credit.Transfer's fields changed: update wallet_debit's Transfer.from_db")
_TRANSFER_WALLET = Transfer._meta.get_field("wallet")
_TRANSFER_SHOP = Transfer._meta.get_field("shop")
_TRANSFER_CREATED_BY = Transfer._meta.get_field("created_by")


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
    with connection.cursor() as cursor:
        cursor.execute(_RUNNING_TOTALS_CHECK)
        for wallet_id, entry_id, stored, computed in cursor.fetchall():
            where = f"entry {entry_id}" if entry_id is not None else "its running totals"
            problems.append(
                f"wallet {wallet_id}: {where} {stored} != {computed}, the running totals "
                "of its entries in time order"
            )
    return problems


# Each wallet entry's running totals are those of the wallet's entries up to it in time
# order (so time order is balance order), and the wallet's totals those of all of them.
_RUNNING_TOTALS_CHECK = """
WITH running AS (
    SELECT w.id AS wallet_id, e.id, e.created_at, e.balance_after, e.credited_after,
           e.movement_number,
           SUM(e.amount) OVER o AS balance, SUM(GREATEST(e.amount, 0)) OVER o AS credited,
           ROW_NUMBER() OVER o AS number
    FROM credit_entry e JOIN credit_wallet w ON w.ledger_account_id = e.ledger_account_id
    WINDOW o AS (PARTITION BY e.ledger_account_id ORDER BY e.created_at, e.id)
), totals AS (
    SELECT wallet_id, MAX(credited) AS credited, MAX(number) AS number,
           MAX(created_at) AS last
    FROM running GROUP BY wallet_id
)
(SELECT wallet_id, id,
        ROW(balance_after, credited_after, movement_number)::text,
        ROW(balance, credited, number)::text
 FROM running
 WHERE (balance_after, credited_after, movement_number)
       IS DISTINCT FROM (balance, credited, number)
 ORDER BY wallet_id, created_at, id LIMIT 20)
UNION ALL
SELECT w.id, NULL, ROW(w.credited_total, w.movement_count, w.last_movement_at)::text,
       ROW(COALESCE(t.credited, 0), COALESCE(t.number, 0), t.last)::text
FROM credit_wallet w LEFT JOIN totals t ON t.wallet_id = w.id
WHERE (w.credited_total, w.movement_count, w.last_movement_at)
      IS DISTINCT FROM (COALESCE(t.credited, 0), COALESCE(t.number, 0), t.last)
"""


def average_daily_spend(*, wallet: Wallet, days: int, now=None) -> Decimal:  # type: ignore[no-untyped-def]
    """Debits minus refunds over the last ``days`` days, per day."""
    since = (now or timezone.now()) - timedelta(days=days)
    # One index range of the wallet's debits and refunds (credit/migrations/0007).
    with connection.cursor() as cursor:
        cursor.execute("SELECT credit_spend_since(%s, %s)", [wallet.pk, since])
        spent = cursor.fetchone()[0]
    # Half away from zero, as PostgreSQL's round() in credit_debit() does.
    return (max(spent, Decimal(0)) / days).quantize(CENT, rounding=ROUND_HALF_UP)
