"""Bank statement import and the review of its unmatched payments.

Importing runs in two steps, so that no lock is held while payments settle:

1. *record*: the whole file is read and checked first (a bad file raises
   StatementError and writes nothing). Then, in one database transaction under
   a per-platform lock (imports of one platform run one at a time), the
   statement and every payment not seen before are inserted; a payment that
   matches a pending top-up (credit.statements.matching) is inserted MATCHED
   and linked to it, which reserves the top-up; the rest UNMATCHED, for review.
   BankStatement is unique per (platform, statement id) and StatementLine per
   (platform, bank reference): a payment is recorded once, ever. This step is
   a handful of queries whatever the statement's size: the known references,
   the variable symbols and the candidate top-ups are each read at once, the
   lines inserted in bulk.
2. *settle*, after that commit, in batches of SETTLE_BATCH lines, each batch one
   database transaction of a few statements: every matched or staff-assigned line
   whose top-up is still pending has its bank-transfer payment marked received
   (payments.services.transactions.transactions_transfers_received) and its top-up
   credited once (credit.services.topups.topups_credit_many, keyed by the top-up,
   through credit.services.ledger.wallets_credit_many), with the same rows, log and
   e-mail as settling it alone. The payments' captures are announced after the commit
   as ever, saying their purpose is settled, so credit.handlers does nothing more.

A crash between the steps leaves lines MATCHED (or ASSIGNED) with a pending
top-up; every later import of the platform (the same file again, or any other)
settles them first, so re-importing an interrupted statement finishes it and
credits nothing twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from djmoney.money import Money

from accounts.models import Account, Platform, User
from credit.exceptions import StatementError
from credit.models import BankStatement, StatementLine, TopUp
from credit.services.ledger import wallet_for
from credit.services.topups import topups_credit_many
from credit.statements import (
    MAX_FILE_BYTES,
    CreditLine,
    ParsedStatement,
    statement_check,
    statement_parse,
)
from credit.statements.matching import accounts_on_platform, pending_topups
from payments.models import Gateway, Purpose
from payments.models import State as PaymentState
from payments.services.transactions import (
    Actor,
    transaction_create,
    transactions_transfers_received,
)

logger = logging.getLogger(__name__)

Status = StatementLine.Status
SETTLING = (Status.MATCHED, Status.ASSIGNED)


@dataclass
class StatementImportResult:
    statement: BankStatement
    # The statement had been imported before: nothing of it was recorded again.
    already_imported: bool
    matched: int = 0  # payments credited automatically
    waiting: int = 0  # payments left for review
    duplicates: int = 0  # payments recorded before (same bank reference)
    ignored: int = 0  # debits, pending and reversed bookings
    # Earlier matched or assigned payments whose crediting was finished now.
    resumed: int = 0
    new_line_ids: list[int] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One paragraph for the admin page and the management command."""
        if self.already_imported:
            text = _(
                "Statement %(statement)s was already imported on %(when)s: nothing new was "
                "recorded and nothing was credited again."
            ) % {
                "statement": self.statement.statement_id,
                "when": timezone.localtime(self.statement.imported_at).strftime("%Y-%m-%d %H:%M"),
            }
            parts = [text]
            if self.new_line_ids:
                parts.append(self._counts())
        else:
            parts = [
                _("Statement %(statement)s imported.") % {"statement": self.statement.statement_id},
                self._counts(),
            ]
        if self.resumed:
            parts.append(
                ngettext(
                    "%(count)d payment matched earlier was credited now (its import had been "
                    "interrupted).",
                    "%(count)d payments matched earlier were credited now (their import had "
                    "been interrupted).",
                    self.resumed,
                )
                % {"count": self.resumed}
            )
        return " ".join(parts)

    def _counts(self) -> str:
        return _(
            "Credited automatically: %(matched)d. Waiting for review: %(waiting)d. "
            "Skipped as already imported: %(duplicates)d. Debits and unbooked entries "
            "ignored: %(ignored)d."
        ) % {
            "matched": self.matched,
            "waiting": self.waiting,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
        }


def _read(file: IO[bytes] | bytes) -> bytes:
    if isinstance(file, bytes):
        return file
    data = file.read(MAX_FILE_BYTES + 1)
    return data.encode() if isinstance(data, str) else data


def statement_import(
    *,
    platform: Platform,
    file: IO[bytes] | bytes,
    filename: str,
    staff: User | None,
) -> StatementImportResult:
    """Import a bank statement for ``platform``: record its incoming payments once, credit
    those that match a pending top-up, leave the others for review.

    Raises StatementError (nothing written) for a malformed file, another bank account
    than the platform's, or another currency. Importing the same statement again records
    nothing new and credits nothing twice (``already_imported``); it finishes crediting
    any payment an interrupted import left half-done.
    """
    parsed = statement_parse(_read(file), filename=filename)
    statement_check(parsed, iban=platform.iban, currency=str(platform.currency), name=platform.name)
    actor = Actor(user=staff) if staff else Actor.task("statement_import")

    # Finish what an interrupted import left first, so its lines are not counted as new.
    resumed = statement_lines_settle(platform=platform, actor=actor)
    statement, created, new_line_ids, duplicates = _record(parsed, platform=platform, staff=staff)
    _lines_settle(new_line_ids, actor=actor)

    statuses = list(
        StatementLine.objects.filter(pk__in=new_line_ids).values_list("status", flat=True)
    )
    return StatementImportResult(
        statement=statement,
        already_imported=not created,
        matched=statuses.count(Status.MATCHED),
        waiting=statuses.count(Status.UNMATCHED),
        duplicates=duplicates,
        ignored=parsed.ignored,
        resumed=len(resumed),
        new_line_ids=new_line_ids,
    )


def _record(
    parsed: ParsedStatement, *, platform: Platform, staff: User | None
) -> tuple[BankStatement, bool, list[int], int]:
    with transaction.atomic():
        # One import per platform at a time: two files with the same payment, or two
        # payments for the same top-up, are matched one after the other. (NO KEY: rows
        # referring to the platform can still be inserted meanwhile.)
        Platform.objects.select_for_update(no_key=True).only("pk").get(pk=platform.pk)
        statement, created = BankStatement.objects.get_or_create(
            platform=platform,
            statement_id=parsed.statement_id,
            defaults={
                "format": parsed.format,
                "file_sha256": parsed.file_sha256,
                "iban": parsed.iban,
                "currency": parsed.currency or str(platform.currency),
                "period_from": parsed.period_from,
                "period_to": parsed.period_to,
                "imported_by": staff,
            },
        )
        known: set[str] = set()
        for references in _chunks([line.bank_reference for line in parsed.lines]):
            known.update(
                StatementLine.objects.filter(
                    platform=platform, bank_reference__in=references
                ).values_list("bank_reference", flat=True)
            )
        new_lines = []
        duplicates = 0
        for line in parsed.lines:
            if line.bank_reference in known:
                duplicates += 1
                continue
            known.add(line.bank_reference)
            new_lines.append(line)
        topups = _topups_match(platform=platform, lines=new_lines)
        recorded = StatementLine.objects.bulk_create(
            [
                StatementLine(
                    statement=statement,
                    platform=platform,
                    bank_reference=line.bank_reference,
                    booked_on=line.booked_on,
                    amount=line.amount,
                    currency=line.currency,
                    variable_symbol=line.variable_symbol,
                    counterparty=line.counterparty,
                    counterparty_account=line.counterparty_account,
                    message=line.message,
                    status=Status.MATCHED if topup_id else Status.UNMATCHED,
                    topup_id=topup_id,
                )
                for line, topup_id in zip(new_lines, topups, strict=True)
            ],
            batch_size=CHUNK,
        )
        new_line_ids = [line.pk for line in recorded]
        if created:
            _audit(
                statement,
                actor=staff,
                changes={
                    "imported": [None, parsed.format],
                    "payments": [None, str(len(new_line_ids))],
                    "skipped_as_duplicates": [None, str(duplicates)],
                },
            )
    return statement, created, new_line_ids, duplicates


# Rows per query when a statement's lines are read or written in bulk.
CHUNK = 1000


def _chunks(items: list, size: int = CHUNK) -> list[list]:  # type: ignore[type-arg]
    return [items[start : start + size] for start in range(0, len(items), size)]


def _topups_match(*, platform: Platform, lines: list[CreditLine]) -> list[int | None]:
    """The pending top-up each payment pays for (its id, or None), in the order given, by
    the rule of credit.statements.matching.topup_match applied to one payment after the
    other: the account with the payment's variable symbol registered on the platform, and
    its oldest pending bank-transfer top-up of exactly the amount that no statement line
    has reserved (nor an earlier payment of this list). Two queries for the whole list.

    The caller holds the transaction; the candidate top-ups are locked (FOR UPDATE), so a
    concurrent review cannot assign one of them to another line meanwhile.
    """
    symbols = {int(line.variable_symbol) for line in lines if line.variable_symbol}
    accounts: dict[str, int] = {}
    for chunk in _chunks(sorted(symbols)):
        accounts.update(
            (str(symbol), account_id)
            for symbol, account_id in accounts_on_platform(platform=platform)
            .filter(variable_symbol__in=chunk)
            .values_list("variable_symbol", "pk")
        )
    wanted = {
        (accounts[line.variable_symbol], line.amount)
        for line in lines
        if line.variable_symbol in accounts
    }
    # Each account's candidates, oldest first, per amount.
    waiting: dict[tuple[int, Decimal], deque[int]] = defaultdict(deque)
    if wanted:
        candidates = (
            TopUp.objects.filter(
                method=TopUp.Method.TRANSFER,
                state=TopUp.State.PENDING,
                wallet__platform=platform,
                wallet__account_id__in={account for account, _amount in wanted},
                amount__in={amount for _account, amount in wanted},
                currency=str(platform.currency),
            )
            .exclude(pk__in=StatementLine.objects.filter(topup__isnull=False).values("topup_id"))
            .order_by("created_at", "pk")
            .select_for_update(of=("self",))
            .values_list("pk", "wallet__account_id", "amount")
        )
        for topup_id, account_id, amount in candidates:
            if (account_id, amount) in wanted:
                waiting[(account_id, amount)].append(topup_id)
    matched: list[int | None] = []
    for line in lines:
        account = accounts.get(line.variable_symbol)
        queue = waiting.get((account, line.amount)) if account is not None else None
        matched.append(queue.popleft() if queue else None)
    return matched


# --- Settling: the payment received, the top-up credited ------------------------------------


def statement_lines_settle(*, platform: Platform, actor: Actor) -> list[int]:
    """Finish every matched or assigned line of the platform whose top-up is not paid yet
    (left so by an interrupted import or review): credit it, or, when its top-up can no
    longer be paid, send it back to review. Returns the lines credited now."""
    waiting = (
        StatementLine.objects.filter(platform=platform, status__in=SETTLING, topup__isnull=False)
        .exclude(topup__state=TopUp.State.PAID)
        .order_by("pk")
    )
    return _lines_settle(list(waiting.values_list("pk", flat=True)), actor=actor)


# Lines settled per database transaction: their top-ups, payments and wallets stay locked
# until it commits, so a batch is short (tens of milliseconds), and one failure rolls back
# only its own batch (the lines stay matched, and the next import settles them).
SETTLE_BATCH = 200


def _lines_settle(line_ids: list[int], *, actor: Actor) -> list[int]:
    """Settle the lines (in the order given) that are matched or assigned to a top-up, in
    batches (``_batch_settle``); returns those credited now."""
    credited = []
    for chunk in _chunks(line_ids, SETTLE_BATCH):
        credited.extend(_batch_settle(chunk, actor=actor))
    return credited


def _line_settle(*, line_id: int, actor: Actor) -> bool:
    return bool(_lines_settle([line_id], actor=actor))


def _batch_settle(line_ids: list[int], *, actor: Actor) -> list[int]:
    """Mark the lines' top-up payments received and credit the top-ups, all in one database
    transaction and a fixed number of statements; returns the lines credited now.

    Per line the effect is what settling it alone did: its bank-transfer payment captured
    with the line's bank reference and logged (payments.transactions_transfers_received,
    which announces each capture after the commit), its top-up credited once under the
    key ``topup-<id>`` and paid, the confirmation e-mail queued. The top-ups are credited
    here, in the captures' own transaction, so the captures are announced (after the
    commit, as ever) with ``purpose_settled``, and credit.handlers does nothing more. A
    line whose top-up is paid already (by a proof approval, an earlier import) is left as
    it is; one whose top-up can no longer be paid (cancelled, failed, its payment closed)
    goes back to review; one whose payment has another operation in flight is left for
    the next import.

    Locks, in this order (as topup_transfer_reject and topup_credit take them): the
    top-ups, their payments, their wallets, each set in primary-key order.
    """
    rows = list(
        StatementLine.objects.filter(
            pk__in=line_ids, status__in=SETTLING, topup__isnull=False
        ).values_list("pk", "topup_id", "bank_reference")
    )
    if not rows:
        return []
    order = {line_id: position for position, line_id in enumerate(line_ids)}
    rows.sort(key=lambda row: order[row[0]])
    back_to_review: list[tuple[int, str]] = []
    credited_lines: list[int] = []
    with transaction.atomic():
        topups = {
            topup.pk: topup
            for topup in TopUp.objects.select_for_update(of=("self",))
            .select_related("wallet__account", "wallet__platform")
            .filter(pk__in={topup_id for _line, topup_id, _reference in rows})
            .order_by("pk")
        }
        # (line id, top-up) to credit, in the lines' order, and the payments to receive.
        settling: list[tuple[int, TopUp]] = []
        receipts: list[tuple[int, str]] = []
        seen: set[int] = set()
        for line_id, topup_id, reference in rows:
            topup = topups[topup_id]
            if topup.state == TopUp.State.PAID or topup_id in seen:
                continue
            if topup.state != TopUp.State.PENDING:
                back_to_review.append(
                    (
                        line_id,
                        _("The top-up was %(state)s before the payment was credited.")
                        % {"state": topup.get_state_display().lower()},
                    )
                )
                continue
            seen.add(topup_id)
            settling.append((line_id, topup))
            if topup.payment_id is not None:
                receipts.append((topup.payment_id, reference))
        received = transactions_transfers_received(
            items=receipts, actor=actor, purposes_settled=True
        )
        to_credit: list[TopUp] = []
        for line_id, topup in settling:
            payment = received.refused.get(topup.payment_id) if topup.payment_id else None
            if payment is not None and payment.pending_operation:
                logger.warning("statement line %s: payment %s busy", line_id, payment.pk)
                continue
            if payment is not None and payment.state != PaymentState.CAPTURED:
                back_to_review.append(
                    (
                        line_id,
                        _(
                            "The top-up's payment is %(state)s; it cannot be settled by this "
                            "transfer."
                        )
                        % {"state": payment.get_state_display().lower()},
                    )
                )
                continue
            # Captured now, or before (an interrupted run): credit the top-up.
            to_credit.append(topup)
            credited_lines.append(line_id)
        topups_credit_many(to_credit)
        for line_id, note in back_to_review:
            _line_back_to_review(line_id, note=note)
    return credited_lines


def _line_back_to_review(line_id: int, *, note: str) -> None:
    with transaction.atomic():
        line = StatementLine.objects.select_for_update().get(pk=line_id)
        if line.status not in SETTLING:
            return
        before = line.status
        line.status = Status.UNMATCHED
        line.topup = None
        line.reviewed_by = None
        line.reviewed_at = None
        line.review_note = note[:300]
        line.save(update_fields=["status", "topup", "reviewed_by", "reviewed_at", "review_note"])
        _audit(line, actor=None, changes={"status": [before, line.status], "note": [None, note]})


# --- Review by staff ----------------------------------------------------------------------


def statement_line_assign(
    *,
    line_id: int,
    account: Account,
    staff: User,
    topup_id: int | None = None,
    note: str = "",
) -> StatementLine:
    """Staff say whose payment a waiting line is, and it is credited once.

    With ``topup_id``: that pending bank-transfer top-up of the account, of the same
    amount, is paid by this line. Without: a new bank-transfer top-up of the line's
    amount (and its payment) is created for the account and paid by this line. The
    review (who, when, note) is recorded on the line and in the audit log.
    """
    with transaction.atomic():
        line = StatementLine.objects.select_for_update().select_related("platform").get(pk=line_id)
        if line.status != Status.UNMATCHED:
            raise StatementError(
                _("This payment is no longer waiting for review (it is %(status)s).")
                % {"status": line.get_status_display().lower()}
            )
        platform = line.platform
        if not accounts_on_platform(platform=platform).filter(pk=account.pk).exists():
            raise StatementError(
                _("%(account)s is not registered on %(platform)s.")
                % {"account": account.name, "platform": platform.name},
                extra={"field": "account"},
            )
        if topup_id is not None:
            topup = _topup_for_assignment(line, account=account, topup_id=topup_id)
        else:
            topup = _topup_create(line, account=account, staff=staff)
        line.status = Status.ASSIGNED
        line.topup = topup
        line.reviewed_by = staff
        line.reviewed_at = timezone.now()
        line.review_note = note.strip()[:300]
        line.save(update_fields=["status", "topup", "reviewed_by", "reviewed_at", "review_note"])
        _audit(
            line,
            actor=staff,
            changes={
                "status": [Status.UNMATCHED, Status.ASSIGNED],
                "account": [None, f"{account.name} (VS {account.variable_symbol})"],
                "topup": [None, f"{topup.pk}: {topup}"],
                "note": [None, line.review_note],
            },
        )
    _line_settle(line_id=line.pk, actor=Actor(user=staff))
    line.refresh_from_db()
    return line


def _topup_for_assignment(line: StatementLine, *, account: Account, topup_id: int) -> TopUp:
    candidates = pending_topups(platform=line.platform, account=account, amount=line.amount)
    topup = candidates.select_for_update(of=("self",)).filter(pk=topup_id).first()
    if topup is None:
        raise StatementError(
            _(
                "That top-up is not a pending bank-transfer top-up of %(amount)s by %(account)s "
                "(it may have been paid or assigned meanwhile)."
            )
            % {"amount": Money(line.amount, line.currency), "account": account.name},
            extra={"field": "choice"},
        )
    return topup


def _topup_create(line: StatementLine, *, account: Account, staff: User) -> TopUp:
    """A bank-transfer top-up for a payment that arrived without one (and its payment)."""
    wallet = wallet_for(account=account, platform=line.platform)
    topup = TopUp.objects.create(
        wallet=wallet,
        amount=line.amount,
        currency=line.currency,
        method=TopUp.Method.TRANSFER,
        # Nobody accepted terms for money that simply arrived; the field records when the
        # top-up was agreed, here by staff.
        terms_accepted_at=timezone.now(),
        created_by=staff,
    )
    payment = transaction_create(
        account=account,
        platform=line.platform,
        amount=Money(line.amount, line.currency),
        purpose=Purpose.TOPUP,
        gateway=Gateway.BANK_TRANSFER,
        description=_("Bank transfer %(reference)s") % {"reference": line.bank_reference[:60]},
        pays_for=topup,
        created_by=staff,
        idempotency_key=f"statement-line-{line.pk}",
    )
    topup.payment = payment
    topup.save(update_fields=["payment"])
    return topup


def statement_line_reject(*, line_id: int, staff: User, note: str) -> StatementLine:
    """Staff decide a waiting payment is not credit (sent back, not ours): no money moves.
    The reason is required and goes with the reviewer to the line and the audit log."""
    note = note.strip()
    if not note:
        raise StatementError(
            _("Say why the payment is rejected (e.g. returned to the sender)."),
            extra={"field": "note"},
        )
    with transaction.atomic():
        line = StatementLine.objects.select_for_update().get(pk=line_id)
        if line.status != Status.UNMATCHED:
            raise StatementError(
                _("This payment is no longer waiting for review (it is %(status)s).")
                % {"status": line.get_status_display().lower()}
            )
        line.status = Status.REJECTED
        line.reviewed_by = staff
        line.reviewed_at = timezone.now()
        line.review_note = note[:300]
        line.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
        _audit(
            line,
            actor=staff,
            changes={
                "status": [Status.UNMATCHED, Status.REJECTED],
                "note": [None, line.review_note],
            },
        )
    return line


def _audit(instance: BankStatement | StatementLine, *, actor: User | None, changes: dict) -> None:
    from auditlog.models import LogEntry

    LogEntry.objects.log_create(
        instance,
        action=LogEntry.Action.CREATE
        if isinstance(instance, BankStatement)
        else LogEntry.Action.UPDATE,
        changes=changes,
        actor=actor,
        force_log=True,
    )
