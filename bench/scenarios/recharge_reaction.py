"""recharge_reaction: from the commit of the debit that crosses the recharge threshold to
the charge being queued.

Ours: a debit that leaves a wallet below its automatic-recharge threshold. The charge
task is queued by that commit's hook (transaction.on_commit → Celery → Redis); a
listener blocked on the queue's Redis list notes when the message arrives. The time
is taken from the moment the debit's database call returned (its commit: outside a
transaction credit_debit() is its own transaction) to the arrival.

Baseline: the same listener and clock around a bare LPUSH of a message of the same
size to the same list: the physical limit of handing work to a worker through Redis.
A polling design would add half its polling interval on average; the ratio shows how
close the hook comes to the bare hop.
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

from bench.scenarios import Context, Scenario


def _wallets(count: int) -> list[int]:
    """Wallets one debit away from their threshold, each with a saved sandbox card."""
    from django.utils import timezone
    from djmoney.money import Money

    from accounts.models import Platform, Registration
    from accounts.services.core import account_create
    from credit.models import Transfer, Wallet
    from credit.services import ledger
    from payments.gateways import sandbox
    from payments.models import SavedCard

    platform, _created = Platform.objects.get_or_create(
        code="bench-recharge",
        defaults={
            "name": "Bench recharge",
            "legal_name": "Bench s.r.o.",
            "country": "CZ",
            "currency": "EUR",
            "iban": "CZ6508000000192000145399",
            "bic": "KOMBCZPP",
            "proforma_prefix": "ZF",
            "invoice_prefix": "FV",
            "credit_note_prefix": "DB",
        },
    )
    today = timezone.localdate()
    ids = []
    for index in range(count):
        account = account_create(
            name=f"Recharge {index}", email=f"r{index}@example.com", country="CZ"
        )
        Registration.objects.create(account=account, platform=platform)
        wallet = ledger.wallet_for(account=account, platform=platform)
        ledger.wallet_credit(
            wallet=wallet,
            amount=Money("1000.00", "EUR"),
            kind=Transfer.Kind.TOPUP_CARD,
            idempotency_key=f"rb-{uuid.uuid4()}",
        )
        # 300.00 spent in the last 30 days: 10.00 a day, a threshold of 50.00.
        ledger.wallet_debit(
            wallet=wallet, amount=Money("300.00", "EUR"), idempotency_key=f"rb-{uuid.uuid4()}"
        )
        card = SavedCard.objects.create(
            account=account,
            platform=platform,
            gateway="sandbox",
            token=sandbox.tokenize(
                number="4242424242424242",
                exp_month=12,
                exp_year=today.year + 3,
                cvc="123",
                today=today,
            ),
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=today.year + 3,
        )
        Wallet.objects.filter(pk=wallet.pk).update(
            auto_recharge_enabled=True,
            auto_recharge_amount=Decimal("200.00"),
            auto_recharge_card=card,
        )
        ids.append(wallet.pk)
    return ids


def _queue_key() -> str:
    from django.conf import settings

    return settings.CELERY_TASK_DEFAULT_QUEUE


class _Listener:
    """Blocks on the queue's Redis list and records when each message arrives.

    Other messages share the queue (the debit that queues a recharge may also send the
    low-balance e-mail), so a run waits for the message it is timing, not the next one.
    """

    def __init__(self) -> None:
        import redis
        from django.conf import settings

        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.arrived: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        key = _queue_key()
        while not self.stop:
            item = self.client.blpop([key], timeout=1)
            if item is not None:
                self.arrived.put((time.perf_counter(), item[1]))

    def wait(self, wanted: Callable[[bytes], bool]) -> float:
        """When the first message that ``wanted`` accepts arrived (earlier ones dropped)."""
        deadline = time.perf_counter() + 10
        while (left := deadline - time.perf_counter()) > 0:
            try:
                arrived, body = self.arrived.get(timeout=left)
            except queue.Empty:
                break
            if wanted(body):
                return arrived
        raise RuntimeError("the message did not reach the queue within 10 seconds")

    def close(self) -> None:
        self.stop = True
        self.thread.join(timeout=5)


def _recharge_task(body: bytes) -> bool:
    """A Celery message running the automatic-recharge charge."""
    return b"credit.tasks.auto_recharge_charge" in body


def prepare(ctx: Context) -> None:
    from django.conf import settings

    if settings.CELERY_TASK_ALWAYS_EAGER:
        raise RuntimeError("the bench needs real queueing (CELERY_TASK_ALWAYS_EAGER=false)")
    ctx.state["samples"] = ctx.size(quick=5, full=30)
    ctx.state["listener"] = _Listener()


def run_ours(ctx: Context) -> float:
    from djmoney.money import Money

    from credit.models import AutoRecharge, Wallet
    from credit.services import ledger

    listener: _Listener = ctx.state["listener"]
    times = []
    # Fresh wallets (one recharge per wallet per 72 hours), made before the clock runs.
    fresh = _wallets(ctx.state["samples"])
    for wallet_id in fresh:
        wallet = Wallet.objects.get(pk=wallet_id)
        before = AutoRecharge.objects.filter(wallet=wallet).count()
        # 700.00 - 660.00 = 40.00, below the 50.00 threshold: the recharge is queued.
        with _commit_clock() as clock:
            ledger.wallet_debit(
                wallet=wallet, amount=Money("660.00", "EUR"), idempotency_key=f"rb-{uuid.uuid4()}"
            )
        arrived = listener.wait(_recharge_task)
        if AutoRecharge.objects.filter(wallet=wallet).count() != before + 1:
            raise RuntimeError("the debit did not queue a recharge")
        times.append((arrived - clock.committed) * 1000)
    return statistics.median(times)


class _commit_clock:
    """Notes the moment the debit's database call returned (its commit)."""

    def __enter__(self) -> _commit_clock:
        from django.db import connection

        self.committed = 0.0
        self._wrapper = connection.execute_wrapper(self._watch)
        self._wrapper.__enter__()
        return self

    def _watch(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        result = execute(sql, params, many, context)
        if "credit_debit(" in sql:
            self.committed = time.perf_counter()
        return result

    def __exit__(self, *exc: object) -> None:
        self._wrapper.__exit__(*exc)


def run_baseline(ctx: Context) -> float:
    import redis
    from django.conf import settings

    listener: _Listener = ctx.state["listener"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    body = b"x" * 1200  # about the size of a Celery message
    times = []
    for _ in range(ctx.state["samples"]):
        sent = time.perf_counter()
        client.lpush(_queue_key(), body)
        times.append((listener.wait(lambda message: message == body) - sent) * 1000)
    client.close()
    return statistics.median(times)


def cleanup(ctx: Context) -> None:
    listener = ctx.state.pop("listener", None)
    if listener is not None:
        listener.close()


SCENARIO = Scenario(
    name="recharge_reaction",
    description=(
        "time from the commit of the debit crossing the automatic-recharge threshold to "
        "the charge task in the queue, vs a bare Redis LPUSH reaching the same listener"
    ),
    unit="ms",
    higher_is_better=False,
    # Within 20x of a bare Redis hop: only an on-commit hook can do that; any polling
    # interval of 100 ms or more could not.
    goal=0.05,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes="Queued by the debit's on-commit hook (credit.services.ledger.wallet_debit); "
    "no polling is involved.",
)
