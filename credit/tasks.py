"""credit's background work: thin wrappers around one service each."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def auto_recharge_charge(recharge_id: int) -> None:
    """Charge the saved card of a queued automatic recharge (queued on the debit's commit)."""
    from credit.services.wallets import auto_recharge_charge as charge

    charge(recharge_id=recharge_id)


@shared_task(acks_late=True, ignore_result=True)
def verify_ledger() -> int:
    """Compare every cached balance with its entries and the ledger's zero sum; log problems."""
    from credit.services.ledger import ledger_mismatches

    problems = ledger_mismatches()
    for problem in problems:
        logger.error("ledger check: %s", problem)
    return len(problems)


@shared_task(acks_late=True, ignore_result=True)
def allocate_pending_lots() -> int:
    """Allocate debits still waiting for their lots (normally done right after each debit)."""
    from credit.services.ledger import lots_allocate_all_pending

    return lots_allocate_all_pending()
