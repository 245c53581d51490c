"""wallet_debit_2: 2 client processes debiting 1,000 wallets vs pgbench with the same SQL."""

from __future__ import annotations

from decimal import Decimal

from bench.scenarios import Context, Scenario, _ledger

CLIENTS = 2


def prepare(ctx: Context) -> None:
    ctx.state["wallets"] = _ledger.make_wallets(
        ctx, ctx.size(quick=50, full=1000), Decimal("1000000.00")
    )
    ctx.state["seconds"] = ctx.size(quick=2, full=10)


def run_ours(ctx: Context) -> float:
    return _ledger.debits_per_second(ctx.state["wallets"], CLIENTS, ctx.state["seconds"])


def run_baseline(ctx: Context) -> float:
    return _ledger.pgbench_per_second(ctx, ctx.state["wallets"], CLIENTS, ctx.state["seconds"])


def cleanup(ctx: Context) -> None:
    _ledger.verify_ledger(ctx.state["wallets"])


SCENARIO = Scenario(
    name="wallet_debit_2",
    description=(
        f"{CLIENTS} client processes debiting 1,000 wallets through credit.services.ledger."
        "wallet_debit vs pgbench running the same SQL statements at the same client count"
    ),
    unit="debits/s",
    higher_is_better=True,
    goal=0.6,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes="Each debit: idempotency check, wallet row lock, transfer + 2 entries, balance "
    "update, FIFO lot allocation; the ledger is verified consistent after the runs.",
)
