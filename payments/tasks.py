"""Periodic payment work; thin wrappers around one service each."""

from __future__ import annotations

from celery import shared_task

from payments.services import transactions


@shared_task(acks_late=True, ignore_result=True)
def expire_authorizations() -> int:
    """Void (at the gateway) and expire authorizations past their window."""
    return len(transactions.transactions_expire_due())


@shared_task(acks_late=True, ignore_result=True)
def reconcile_transactions() -> int:
    """Settle operations whose gateway answer never arrived; fail abandoned payments."""
    return len(transactions.transactions_reconcile_stuck())


@shared_task(acks_late=True, ignore_result=True)
def capture_delivered_shipments() -> int:
    """Capture delivered shipments whose capture never ran (a crash after the delivery commit)."""
    from payments.services import shipping

    return len(shipping.shipments_capture_delivered())
