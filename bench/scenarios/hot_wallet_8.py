"""hot_wallet_8: 8 clients debiting ONE wallet vs pgbench updating one row from 8 clients."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from decimal import Decimal

from bench.scenarios import Context, Scenario, _ledger

CLIENTS = 8

# The physical limit of a hot row: every client updates the same row, one at a time.
ONE_ROW_SCRIPT = """\
BEGIN;
UPDATE credit_wallet SET balance = balance - 0.00 WHERE id = :wid;
COMMIT;
"""


def prepare(ctx: Context) -> None:
    ctx.state["wallets"] = _ledger.make_wallets(ctx, 1, Decimal("100000000.00"))
    ctx.state["seconds"] = ctx.size(quick=2, full=10)


def run_ours(ctx: Context) -> float:
    return _ledger.debits_per_second(ctx.state["wallets"], CLIENTS, ctx.state["seconds"])


def run_baseline(ctx: Context) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(ONE_ROW_SCRIPT)
    try:
        seconds = max(1, round(ctx.state["seconds"]))
        result = subprocess.run(
            [
                _ledger.pgbench_path(),
                "--no-vacuum",
                f"--client={CLIENTS}",
                f"--jobs={CLIENTS}",
                f"--time={seconds}",
                f"--file={script.name}",
                f"--define=wid={ctx.state['wallets'][0]}",
                ctx.database_url.replace("postgres://", "postgresql://", 1),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ),
            timeout=seconds + 120,
        )
    finally:
        os.unlink(script.name)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", result.stdout)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"pgbench failed: {result.stderr.strip()[-500:]}")
    return float(match.group(1))


def cleanup(ctx: Context) -> None:
    ctx.state["verified"] = _ledger.verify_ledger(ctx.state["wallets"])


SCENARIO = Scenario(
    name="hot_wallet_8",
    description=(
        "8 client processes debiting one wallet through wallet_debit vs pgbench updating "
        "that wallet's row from 8 clients"
    ),
    unit="debits/s",
    higher_is_better=True,
    goal=0.5,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes="Afterwards the balance equals the sum of its entries and never went below its "
    "limit (the CHECK constraint holds it; the ledger is verified after the runs).",
)
