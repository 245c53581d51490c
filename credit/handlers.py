"""credit's reactions to payments (connected in CreditConfig.ready)."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType

from credit.models import AutoRecharge, TopUp
from credit.services import topups as topup_services
from credit.services import wallets as wallet_services
from credit.services.ledger import wallet_credit


def payment_state_changed(  # type: ignore[no-untyped-def]
    sender, *, transaction, old_state, new_state, purpose_settled=False, **kwargs
) -> None:
    """A captured top-up or recharge payment credits the wallet; a failed one is recorded.

    ``purpose_settled``: whoever captured the payment settled what it pays for in the
    capture's own transaction (a statement import credits its top-ups so, in bulk):
    nothing is left to do, and nothing is read.
    """
    from djmoney.money import Money

    from credit.models import Transfer
    from payments.models import Purpose, State

    if purpose_settled:
        return
    if transaction.purpose == Purpose.TOPUP:
        topup = TopUp.objects.filter(payment=transaction).first()
        if topup is None:
            return
        if new_state == State.CAPTURED:
            topup_services.topup_credit(topup_id=topup.pk)
        elif new_state == State.FAILED:
            topup_services.topup_fail(topup_id=topup.pk)
    elif transaction.purpose == Purpose.AUTO_RECHARGE:
        recharge_type = ContentType.objects.get_for_model(AutoRecharge)
        if transaction.purpose_type_id != recharge_type.pk:
            return
        recharge = AutoRecharge.objects.select_related("wallet").get(pk=transaction.purpose_id)
        if new_state == State.CAPTURED:
            wallet_credit(
                wallet=recharge.wallet,
                amount=Money(recharge.amount, recharge.currency),
                kind=Transfer.Kind.AUTO_RECHARGE,
                idempotency_key=f"auto-recharge-{recharge.pk}",
                memo=str(recharge),
                payment_id=transaction.pk,
            )
            wallet_services.auto_recharge_finish(recharge_id=recharge.pk, succeeded=True)
        elif new_state == State.FAILED:
            wallet_services.auto_recharge_finish(
                recharge_id=recharge.pk,
                succeeded=False,
                message=transaction.failure_message or transaction.failure_code,
            )
