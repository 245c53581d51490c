"""Top-ups: credited exactly once, when their payment is captured or their transfer arrives.

(Creating card and bank-transfer top-ups, proofs of payment and their review
are added by the portal work; the crediting rule lives here.)
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from credit.models import TopUp, Transfer
from credit.services.ledger import wallet_credit


def topup_credit(*, topup_id: int) -> TopUp:
    """Credit the wallet for a paid top-up, once (the idempotency key is the top-up's id)."""
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().select_related("wallet").get(pk=topup_id)
        if topup.state == TopUp.State.PAID:
            return topup
        kind = (
            Transfer.Kind.TOPUP_CARD
            if topup.method == TopUp.Method.CARD
            else Transfer.Kind.TOPUP_TRANSFER
        )
        credited = wallet_credit(
            wallet=topup.wallet,
            amount=Money(topup.amount, topup.currency),
            kind=kind,
            idempotency_key=f"topup-{topup.pk}",
            memo=str(topup),
            payment_id=topup.payment_id,
        )
        topup.transfer = credited
        topup.state = TopUp.State.PAID
        topup.paid_at = timezone.now()
        topup.save(update_fields=["transfer", "state", "paid_at"])
    return topup


def topup_fail(*, topup_id: int) -> TopUp:
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if topup.state == TopUp.State.PENDING:
            topup.state = TopUp.State.FAILED
            topup.save(update_fields=["state"])
    return topup
