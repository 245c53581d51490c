"""Under concurrency one operation on a transaction wins; the others are refused cleanly."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from payments.exceptions import InvalidTransition, OperationInProgress
from payments.models import SandboxCharge, State, Transaction
from payments.services import transactions as tx_services

pytestmark = pytest.mark.django_db(transaction=True)


def race(count: int, work) -> list[object]:
    """Run ``work(i)`` in ``count`` threads (own connections) released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_twenty_concurrent_captures_and_voids_have_exactly_one_winner(authorized_tx):
    tx = authorized_tx("100.00")

    def attempt(index: int) -> Transaction:
        if index % 2:
            return tx_services.transaction_capture(transaction_id=tx.pk)
        return tx_services.transaction_void(transaction_id=tx.pk)

    results = race(20, attempt)

    winners = [r for r in results if isinstance(r, Transaction)]
    refused = [r for r in results if isinstance(r, OperationInProgress | InvalidTransition)]
    assert len(winners) == 1, results
    assert len(refused) == 19, results
    final = Transaction.objects.get(pk=tx.pk)
    assert final.state == winners[0].state
    assert final.state in (State.CAPTURED, State.VOIDED)
    assert final.pending_operation == ""
    charge = SandboxCharge.objects.get(reference=final.gateway_reference)
    assert charge.status == ("captured" if final.state == State.CAPTURED else "voided")
    # One request reached the gateway, one outcome was logged.
    outcomes = final.events.filter(action__in=["capture", "void"])
    assert outcomes.count() == 1


def test_concurrent_partial_refunds_never_exceed_what_was_captured(authorized_tx):
    from djmoney.money import Money

    tx = authorized_tx("100.00")
    tx_services.transaction_capture(transaction_id=tx.pk)

    def attempt(index: int) -> Transaction:
        return tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("30.00", "EUR"))

    race(10, attempt)

    final = Transaction.objects.get(pk=tx.pk)
    assert final.refunded_amount.amount <= final.captured_amount.amount
    charge = SandboxCharge.objects.get(reference=final.gateway_reference)
    assert charge.refunded == final.refunded_amount.amount
