"""The ledger under real concurrency: threads with their own PostgreSQL connections."""

from __future__ import annotations

import random
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum

from credit.exceptions import InsufficientCredit, RefundTooLarge
from credit.models import Entry, Lot, PendingAllocation, Transfer, Wallet
from credit.services import ledger
from tests.credit.conftest import eur

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def in_threads(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released together; collect results or errors."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_one_hundred_concurrent_debits_of_x_on_ten_x_leave_exactly_ten_and_zero(make_wallet):
    wallet = make_wallet("100.00")

    results = in_threads(
        100,
        lambda i: ledger.wallet_debit(wallet=wallet, amount=eur("10.00"), idempotency_key=f"d{i}"),
    )

    succeeded = [r for r in results if isinstance(r, Transfer)]
    refused = [r for r in results if isinstance(r, InsufficientCredit)]
    assert len(succeeded) == 10
    assert len(refused) == 90
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("0.00")
    assert ledger.ledger_mismatches() == []


def test_the_bank_eight_threads_five_hundred_random_operations_on_ten_wallets(make_wallet):
    wallets = [make_wallet() for _ in range(10)]
    operations_per_thread = 500
    applied: list[list[str]] = [[] for _ in range(8)]

    def work(thread: int) -> None:
        rng = random.Random(thread)
        mine = applied[thread]
        for step in range(operations_per_thread):
            wallet = rng.choice(wallets)
            key = f"bank-{thread}-{step}"
            roll = rng.random()
            try:
                if roll < 0.4:
                    amount = eur(f"{rng.randint(1, 20000) / 100:.2f}")
                    ledger.wallet_credit(
                        wallet=wallet,
                        amount=amount,
                        kind=Transfer.Kind.TOPUP_CARD,
                        idempotency_key=key,
                    )
                elif roll < 0.85:
                    amount = eur(f"{rng.randint(1, 15000) / 100:.2f}")
                    ledger.wallet_debit(wallet=wallet, amount=amount, idempotency_key=key)
                else:
                    debit = (
                        Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.DEBIT)
                        .order_by("?")
                        .first()
                    )
                    if debit is None:
                        continue
                    amount = eur(
                        f"{max(1, int(debit.amount * 100) // rng.randint(1, 4)) / 100:.2f}"
                    )
                    ledger.wallet_refund(debit=debit, amount=amount, idempotency_key=key)
            except (InsufficientCredit, RefundTooLarge):
                continue
            mine.append(key)
            # Replaying the same key moves nothing (checked below by the entry counts).
            if step % 50 == 0 and roll < 0.4:
                ledger.wallet_credit(
                    wallet=wallet,
                    amount=amount,
                    kind=Transfer.Kind.TOPUP_CARD,
                    idempotency_key=key,
                )

    errors = [r for r in in_threads(8, work) if isinstance(r, Exception)]
    assert errors == []

    keys = [key for thread in applied for key in thread]
    per_key = Counter(
        Transfer.objects.filter(idempotency_key__startswith="bank-").values_list(
            "idempotency_key", flat=True
        )
    )
    assert set(per_key) == set(keys)
    assert max(per_key.values()) == 1
    legs = (
        Entry.objects.filter(transfer__idempotency_key__startswith="bank-")
        .values("transfer")
        .annotate(n=Count("id"), total=Sum("amount"))
    )
    assert all(row["n"] == 2 and row["total"] == 0 for row in legs)
    for wallet in Wallet.objects.filter(pk__in=[w.pk for w in wallets]):
        entries = Entry.objects.filter(ledger_account_id=wallet.ledger_account_id).aggregate(
            total=Sum("amount")
        )["total"] or Decimal(0)
        assert wallet.balance == entries
        assert wallet.balance >= -wallet.overdraft_limit
    for row in Entry.objects.values("currency").annotate(total=Sum("amount")):
        assert row["total"] == 0
    assert ledger.ledger_mismatches() == []
    # Every debit found its lots: none waits, and with no overdraft what is left in the
    # lots is exactly the balance. A debit whose allocation found another process holding
    # the wallet's lot lock, just after that process's last look at the queue, waits for
    # the sweep that beat runs every minute: run it here, as beat would.
    ledger.lots_allocate_all_pending()
    assert not PendingAllocation.objects.exists()
    for wallet in Wallet.objects.filter(pk__in=[w.pk for w in wallets]):
        left = Lot.objects.filter(wallet=wallet).aggregate(total=Sum("remaining"))["total"]
        assert (left or Decimal(0)) == wallet.balance
