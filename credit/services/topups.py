"""Top-ups: started by card or bank transfer, credited exactly once when their payment is
captured or their transfer arrives; proofs of payment and their review by staff.

The crediting rule lives in ``topup_credit``: credit.handlers calls it when the
top-up's payment is captured (a card payment confirmed on the hosted page or by
a webhook, whichever comes first; a bank transfer confirmed by staff or matched
by a statement import). It locks the top-up and credits under the idempotency
key ``topup-<id>``, so the wallet is credited once however often it is called.

Starting a top-up records it and its payment in one database transaction; the
card is charged later on the payments hosted page, never here.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from accounts.models import Platform, User
from billing_site.mail import Email, email_send_on_commit, emails_send_on_commit
from credit.exceptions import TopUpError
from credit.models import TopUp, Transfer, Wallet
from credit.services.ledger import CreditOrder, wallet_credit, wallets_credit_many
from payments.exceptions import PaymentError
from payments.models import Gateway, Purpose
from payments.models import State as PaymentState
from payments.services.transactions import (
    Actor,
    transaction_authorize,
    transaction_create,
    transaction_fail,
    transaction_transfer_received,
)

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")


def topup_credit(*, topup_id: int) -> TopUp:
    """Credit the wallet for a paid top-up, once (the idempotency key is the top-up's id).

    The first call also queues the confirmation e-mail (after commit)."""
    with transaction.atomic():
        # The top-up and its wallet locked; the account and platform read for the e-mail.
        topup = (
            TopUp.objects.select_for_update(of=("self", "wallet"))
            .select_related("wallet__account", "wallet__platform")
            .get(pk=topup_id)
        )
        if topup.state == TopUp.State.PAID:
            return topup
        order = _credit_order(topup)
        credited = wallet_credit(
            wallet=topup.wallet,
            amount=order.amount,
            kind=order.kind,
            idempotency_key=order.idempotency_key,
            memo=order.memo,
            payment_id=order.payment_id,
        )
        topup.transfer = credited
        topup.state = TopUp.State.PAID
        topup.paid_at = timezone.now()
        topup.save(update_fields=["transfer", "state", "paid_at"])
        # The balance right after this credit (the wallet stays locked until the commit).
        _credited_email(topup, balance=credited.wallet.balance)
    return topup


def _credit_order(topup: TopUp) -> CreditOrder:
    """The ledger credit a paid top-up makes, one or many at once: its key (``topup-<id>``)
    and content must be the same on both paths, so that either recognises the other's."""
    return CreditOrder(
        wallet_id=topup.wallet_id,
        amount=Money(topup.amount, topup.currency),
        kind=Transfer.Kind.TOPUP_CARD
        if topup.method == TopUp.Method.CARD
        else Transfer.Kind.TOPUP_TRANSFER,
        idempotency_key=f"topup-{topup.pk}",
        memo=str(topup),
        payment_id=topup.payment_id,
    )


def topups_credit_many(topups: list[TopUp]) -> list[TopUp]:
    """``topup_credit`` for many pending top-ups at once, in the caller's transaction: the
    caller has locked them (SELECT ... FOR UPDATE), read with their wallet's account and
    platform, and checked they are pending. Each ends as topup_credit leaves it: credited
    under the key ``topup-<id>`` (wallets_credit_many, in the order given), paid, and its
    confirmation e-mail queued for the commit with the balance right after its credit."""
    if not topups:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("topups_credit_many runs in the caller's transaction")
    credited = wallets_credit_many([_credit_order(topup) for topup in topups])
    now = timezone.now()
    for topup, result in zip(topups, credited, strict=True):
        topup.transfer = result.transfer
        topup.state = TopUp.State.PAID
        topup.paid_at = now
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE credit_topup SET transfer_id = v.transfer_id, state = %s, paid_at = %s "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, transfer_id) "
            "WHERE credit_topup.id = v.id",
            [
                TopUp.State.PAID.value,
                now,
                [topup.pk for topup in topups],
                [topup.transfer_id for topup in topups],
            ],
        )
    # One task for all their e-mails (rendered now, sent in this order by the worker).
    emails_send_on_commit(
        [
            _credited_email_to(topup, balance=result.balance)
            for topup, result in zip(topups, credited, strict=True)
        ]
    )
    return topups


def topup_fail(*, topup_id: int) -> TopUp:
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if topup.state == TopUp.State.PENDING:
            topup.state = TopUp.State.FAILED
            topup.save(update_fields=["state"])
    return topup


# --- Starting a top-up --------------------------------------------------------------------


def topup_amount_check(*, platform: Platform, amount: Money) -> Decimal:
    """The decimal amount of a top-up on ``platform``: in its currency, positive, whole
    cents, within its minimum and maximum. Refusals name the amount field."""

    def refuse(message: str) -> TopUpError:
        return TopUpError(message, extra={"field": "amount"})

    if str(amount.currency) != str(platform.currency):
        raise refuse(
            _("Top-ups on %(platform)s are in %(currency)s.")
            % {"platform": platform.name, "currency": platform.currency}
        )
    value = amount.amount
    if value <= 0:
        raise refuse(_("The amount must be more than zero."))
    if value != value.quantize(CENT):
        raise refuse(_("The amount can have at most two decimal places."))
    if value < platform.topup_minimum:
        raise refuse(
            _("The smallest top-up is %(minimum)s.") % {"minimum": platform.topup_minimum_money}
        )
    if value > platform.topup_maximum:
        raise refuse(
            _("The largest top-up is %(maximum)s.") % {"maximum": platform.topup_maximum_money}
        )
    return value


def _topup_new(
    *, wallet: Wallet, amount: Money, method: str, terms_accepted: bool, created_by: User | None
) -> TopUp:
    if not terms_accepted:
        raise TopUpError(_("Accept the terms and conditions to top up."), extra={"field": "terms"})
    value = topup_amount_check(platform=wallet.platform, amount=amount)
    return TopUp.objects.create(
        wallet=wallet,
        amount=value,
        currency=wallet.currency,
        method=method,
        terms_accepted_at=timezone.now(),
        created_by=created_by,
    )


def topup_result_path(topup: TopUp) -> str:
    """The portal page showing the top-up's state (and, for transfers, the instructions)."""
    return reverse(
        "credit:topup_detail",
        kwargs={"platform_code": topup.wallet.platform.code, "topup_id": topup.pk},
    )


def _payment_for(topup: TopUp, *, gateway: str | None, created_by: User | None):  # type: ignore[no-untyped-def]
    """The top-up's payment; its idempotency key is the top-up's, so a retry makes no second.
    A card payment is captured at once (a purchase); a transfer is settled when it arrives."""
    wallet = topup.wallet
    return transaction_create(
        account=wallet.account,
        platform=wallet.platform,
        amount=topup.amount_money,
        purpose=Purpose.TOPUP,
        gateway=gateway,
        description=_("Credit top-up on %(platform)s") % {"platform": wallet.platform.name},
        pays_for=topup,
        created_by=created_by,
        idempotency_key=f"topup-{topup.pk}",
        auto_capture=gateway != Gateway.BANK_TRANSFER,
        return_url=topup_result_path(topup),
    )


def topup_card_start(
    *, wallet: Wallet, amount: Money, terms_accepted: bool, created_by: User | None
) -> TopUp:
    """A card top-up waiting for its payment: the TopUp and its payment (charged at once
    when the customer pays on the hosted card page, ``payments:pay``), in one transaction.

    Nothing is credited here; the captured payment credits the wallet (credit.handlers).
    Refuses a bad amount or unaccepted terms with TopUpError, creating nothing.
    """
    with transaction.atomic():
        topup = _topup_new(
            wallet=wallet,
            amount=amount,
            method=TopUp.Method.CARD,
            terms_accepted=terms_accepted,
            created_by=created_by,
        )
        topup.payment = _payment_for(topup, gateway=None, created_by=created_by)
        topup.save(update_fields=["payment"])
    return topup


def topup_transfer_start(
    *, wallet: Wallet, amount: Money, terms_accepted: bool, created_by: User | None
) -> TopUp:
    """A bank transfer top-up: the TopUp and a bank-transfer payment that awaits the money.

    The payment settles when staff approve the transfer (``topup_transfer_approve``) or a
    bank statement matches it; then the wallet is credited (credit.handlers).
    """
    with transaction.atomic():
        topup = _topup_new(
            wallet=wallet,
            amount=amount,
            method=TopUp.Method.TRANSFER,
            terms_accepted=terms_accepted,
            created_by=created_by,
        )
        topup.payment = _payment_for(topup, gateway=Gateway.BANK_TRANSFER, created_by=created_by)
        topup.save(update_fields=["payment"])
    # Outside our transaction, as every gateway call: the payment now awaits the transfer.
    transaction_authorize(
        transaction_id=topup.payment_id,
        payment_method="",
        actor=Actor(user=created_by) if created_by else Actor(system="topup"),
    )
    return topup


# --- Proof of payment ---------------------------------------------------------------------

PROOF_MAX_BYTES = 5 * 1024 * 1024
# What a proof may be, recognised by its first bytes (never by its name or the browser's word).
PROOF_SIGNATURES: dict[str, tuple[bytes, str]] = {
    "pdf": (b"%PDF-", "application/pdf"),
    "jpg": (b"\xff\xd8\xff", "image/jpeg"),
    "png": (b"\x89PNG\r\n\x1a\n", "image/png"),
}


def proof_kind(head: bytes) -> str | None:
    """ "pdf", "jpg" or "png" from a file's first bytes; None for anything else."""
    for kind, (signature, _content_type) in PROOF_SIGNATURES.items():
        if head.startswith(signature):
            return kind
    return None


def proof_content_type(name: str) -> str:
    """The content type of a stored proof (its extension was set from its content)."""
    kind = name.rsplit(".", 1)[-1].lower()
    return PROOF_SIGNATURES.get(kind, (b"", "application/octet-stream"))[1]


def proof_check(file: IO[bytes], *, size: int) -> str:
    """The kind of an uploaded proof, or TopUpError (field ``proof``) saying what is wrong."""

    def refuse(message: str) -> TopUpError:
        return TopUpError(message, extra={"field": "proof"})

    if size == 0:
        raise refuse(_("The file is empty."))
    if size > PROOF_MAX_BYTES:
        raise refuse(
            _("The file is too large (%(size)s MB); the limit is 5 MB.")
            % {"size": f"{size / 1024 / 1024:.1f}"}
        )
    file.seek(0)
    kind = proof_kind(file.read(8))
    file.seek(0)
    if kind is None:
        raise refuse(
            _(
                "This file is not a PDF, JPEG or PNG. Upload the bank's confirmation "
                "in one of these formats."
            )
        )
    if kind in ("jpg", "png") and not _image_readable(file):
        raise refuse(_("This image is damaged or incomplete; please upload it again."))
    return kind


def _image_readable(file: IO[bytes]) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False
    finally:
        file.seek(0)
    return True


def topup_proof_submit(*, topup_id: int, file: UploadedFile, submitted_by: User) -> TopUp:
    """Attach a proof of payment to a pending bank transfer top-up for staff to review.

    The type is checked by content (PDF, JPEG or PNG) and the size (5 MB); the file is
    stored under MEDIA_ROOT with an extension from its content, never the uploaded name.
    A new proof replaces one not yet reviewed. Refusals store nothing.
    """
    kind = proof_check(file, size=file.size or 0)
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().select_related("wallet").get(pk=topup_id)
        if topup.method != TopUp.Method.TRANSFER or topup.state != TopUp.State.PENDING:
            raise TopUpError(
                _("A proof can be added only to a bank transfer that is still awaited."),
                extra={"field": "proof"},
            )
        topup.proof.save(f"proof.{kind}", file, save=False)
        topup.proof_status = TopUp.Proof.SUBMITTED
        topup.save(update_fields=["proof", "proof_status"])
    logger.info("top-up %s: proof submitted by user %s", topup.pk, submitted_by.pk)
    return topup


# --- Staff review of transfers ------------------------------------------------------------


def _audit(topup: TopUp, *, staff: User, changes: dict[str, list]) -> None:
    """An audit row for a staff action on a top-up: who, what, before and after."""
    from auditlog.models import LogEntry

    LogEntry.objects.log_create(
        topup,
        action=LogEntry.Action.UPDATE,
        changes={key: [_plain(before), _plain(after)] for key, (before, after) in changes.items()},
        actor=staff,
        force_log=True,
    )


def _plain(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def topup_transfer_approve(*, topup_id: int, staff: User) -> TopUp:
    """Staff saw the transfer arrive: settle its payment, which credits the wallet.

    The payment is settled with payments.transaction_transfer_received; its capture
    reaches credit.handlers, which credits the wallet once (``topup_credit``). A top-up
    whose payment is already settled (approved twice, or matched by a statement) is left
    as it is and nothing is recorded. Otherwise records the review on the top-up and an
    audit row with the staff member and the change.
    """
    topup = TopUp.objects.select_related("payment").get(pk=topup_id)
    if topup.state == TopUp.State.PAID:
        return topup
    if topup.method != TopUp.Method.TRANSFER:
        raise TopUpError(_("Only a bank transfer top-up can be approved."))
    if topup.state != TopUp.State.PENDING or topup.payment is None:
        raise TopUpError(
            _("This top-up is %(state)s; it cannot be approved.")
            % {"state": topup.get_state_display().lower()}
        )
    payment_before = topup.payment.state
    # No lock held here: the payment service locks its own row and refuses a second
    # settlement, so of two approvals at once exactly one gets through.
    try:
        payment = transaction_transfer_received(
            transaction_id=topup.payment_id, actor=Actor(user=staff)
        )
    except PaymentError as error:
        topup.refresh_from_db()
        topup.payment.refresh_from_db()
        if topup.state == TopUp.State.PAID or topup.payment.state == PaymentState.CAPTURED:
            return topup  # settled meanwhile by another approval or a statement import
        raise TopUpError(
            _("The transfer could not be confirmed: %(reason)s") % {"reason": error.message}
        ) from error
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        proof_before = topup.proof_status
        topup.proof_status = TopUp.Proof.APPROVED
        topup.reviewed_by = staff
        topup.reviewed_at = timezone.now()
        topup.save(update_fields=["proof_status", "reviewed_by", "reviewed_at"])
        _audit(
            topup,
            staff=staff,
            changes={
                "review": (None, "approved"),
                "proof_status": (proof_before, topup.proof_status),
                "payment": (payment_before, payment.state),
                "amount": (None, topup.amount_money),
            },
        )
    return topup


def topup_transfer_reject(*, topup_id: int, staff: User, note: str) -> TopUp:
    """Staff found no such transfer: the top-up is cancelled with the reason, its payment
    is closed as failed, and the wallet is not touched. The note is required; the audit
    log records who rejected it, why, and the change."""
    note = " ".join(note.split())
    if not note:
        raise TopUpError(_("Write why the transfer is rejected."), extra={"field": "note"})
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if topup.method != TopUp.Method.TRANSFER:
            raise TopUpError(_("Only a bank transfer top-up can be rejected."))
        if topup.state != TopUp.State.PENDING:
            raise TopUpError(
                _("This top-up is %(state)s; it cannot be rejected.")
                % {"state": topup.get_state_display().lower()}
            )
        before = {"state": topup.state, "proof_status": topup.proof_status}
        topup.state = TopUp.State.CANCELLED
        topup.proof_status = TopUp.Proof.REJECTED
        topup.reviewed_by = staff
        topup.reviewed_at = timezone.now()
        topup.review_note = note[:300]
        topup.save(
            update_fields=["state", "proof_status", "reviewed_by", "reviewed_at", "review_note"]
        )
        if topup.payment_id is not None:
            try:
                transaction_fail(
                    transaction_id=topup.payment_id,
                    reason=_("Transfer rejected by staff: %(note)s") % {"note": note},
                    actor=Actor(user=staff),
                )
            except PaymentError as error:
                # Settled or in flight meanwhile: roll the rejection back.
                raise TopUpError(
                    _("The payment of this top-up can no longer be rejected: %(reason)s")
                    % {"reason": error.message}
                ) from error
        _audit(
            topup,
            staff=staff,
            changes={
                "review": (None, "rejected"),
                "state": (before["state"], topup.state),
                "proof_status": (before["proof_status"], topup.proof_status),
                "review_note": (None, topup.review_note),
            },
        )
    return topup


# --- E-mail -------------------------------------------------------------------------------


def _credited_email(topup: TopUp, *, balance: Decimal) -> None:
    """The confirmation to the account's contact address, in the account's language,
    sent when the surrounding transaction commits. ``balance``: the wallet's after the
    credit."""
    email = _credited_email_to(topup, balance=balance)
    email_send_on_commit(
        to=email.to, template=email.template, context=email.context, language=email.language
    )


def _credited_email_to(topup: TopUp, *, balance: Decimal) -> Email:
    wallet = topup.wallet
    account = wallet.account
    return Email(
        to=[account.email],
        template="credit_topup_credited",
        context={
            "account_name": account.name,
            "platform_name": wallet.platform.name,
            "amount": topup.amount_money,
            "balance": wallet.money(balance),
            "method": topup.method,
            "topup_url": settings.SITE_URL.rstrip("/") + topup_result_path(topup),
        },
        language=account.language,
    )
