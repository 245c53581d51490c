"""Run the scenarios: servers, scratch database, alternating rounds, reports.

Ours and baseline alternate round by round (ours, baseline, ours, baseline, ...) so
that whatever else the machine does at the time (other load, thermal throttling,
autovacuum) falls on both sides alike instead of on whichever ran second.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench import report
from bench.database import (
    BENCH_DATABASE,
    SETTINGS_MODULE,
    BenchError,
    scratch_database,
    server_version,
)
from bench.scenarios import NAMES, Context, Scenario, load
from billing_site.devtools.services import ServiceError, local_services
from billing_site.startup import redact_url

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"
# Fewer rounds give no spread worth reporting and let one noisy run decide the median.
MIN_ROUNDS = 3


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def rounds_argument(text: str) -> int:
    rounds = int(text)
    if rounds < MIN_ROUNDS:
        raise argparse.ArgumentTypeError(f"at least {MIN_ROUNDS} rounds are needed")
    return rounds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small workloads: checks that everything runs"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="folder for latest.json and latest.md (default: bench/results)",
    )
    parser.add_argument(
        "--rounds",
        type=rounds_argument,
        default=MIN_ROUNDS,
        help=f"runs of each side per scenario (default and minimum: {MIN_ROUNDS})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        metavar="NAME",
        help=f"run only this scenario; repeatable (one of: {', '.join(NAMES)})",
    )
    return parser.parse_args(argv)


def setup_django(database_url: str, env: dict[str, str]) -> None:
    """Make the scratch database Django's default one in this process.

    The test settings are the ones the migrations ran with: DEBUG off (so Django does
    not keep every query in memory) and nothing that needs a worker.
    """
    os.environ.update({**env, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE})
    os.environ["DATABASE_URL"] = database_url
    # Never share cache keys or a queue with `make run` or the tests on the same Redis.
    os.environ.setdefault("CACHE_KEY_PREFIX", "billing-bench")
    os.environ.setdefault("CELERY_QUEUE", "billing-bench")
    # Tasks go through the broker as in production (recharge_reaction measures that).
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    import django

    django.setup()


def measurement(value: object, scenario: Scenario, side: str) -> float:
    """A run's result, refused unless it is a positive finite number (the ratio divides)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BenchError(f"{scenario.name}: run_{side} returned {value!r}, not a number")
    if not (math.isfinite(value) and value > 0):
        raise BenchError(f"{scenario.name}: run_{side} returned {value!r}; need a positive number")
    return float(value)


def spread(samples: list[float]) -> dict[str, float]:
    return {"min": min(samples), "max": max(samples), "stdev": statistics.stdev(samples)}


def measure(scenario: Scenario, ctx: Context, rounds: int) -> dict[str, Any]:
    """Prepare, alternate the runs, clean up; one row of the report."""
    ours: list[float] = []
    baseline: list[float] = []
    scenario.prepare(ctx)
    try:
        for number in range(1, rounds + 1):
            ours.append(measurement(scenario.run_ours(ctx), scenario, "ours"))
            baseline.append(measurement(scenario.run_baseline(ctx), scenario, "baseline"))
            say(
                f"{scenario.name} round {number}/{rounds}: ours {report.number(ours[-1])}, "
                f"baseline {report.number(baseline[-1])} {scenario.unit}"
            )
    finally:
        scenario.cleanup(ctx)
    ours_median = statistics.median(ours)
    baseline_median = statistics.median(baseline)
    ratio = scenario.ratio(ours_median, baseline_median)
    row = {
        "name": scenario.name,
        "unit": scenario.unit,
        "ours": ours_median,
        "baseline": baseline_median,
        "ratio": ratio,
        "goal": scenario.goal,
        "met": ratio >= scenario.goal,
        "higher_is_better": scenario.higher_is_better,
        "ours_spread": spread(ours),
        "baseline_spread": spread(baseline),
        "ours_samples": ours,
        "baseline_samples": baseline,
        "rounds": rounds,
        "quick": ctx.quick,
        "description": scenario.description,
        "notes": scenario.notes,
    }
    # Optional: what a scenario wants on record beside its numbers (plans, data checks),
    # a dict of texts (one line or several) that latest.md prints below the table.
    details = ctx.state.get("details")
    if details:
        row["details"] = {str(key): str(value) for key, value in details.items()}
    return row


def run(options: argparse.Namespace, database_url: str, env: dict[str, str]) -> dict[str, Any]:
    setup_django(database_url, env)
    from django.db import connections

    try:
        selected = [name for name in NAMES if not options.only or name in options.only]
        rows = []
        for scenario in load(selected):
            say(f"{scenario.name}: {scenario.description}")
            ctx = Context(database_url=database_url, quick=options.quick)
            rows.append(measure(scenario, ctx, options.rounds))
        return {"machine": report.machine(server_version(database_url)), "scenarios": rows}
    finally:
        # The scratch database is dropped next; leave it no connection of ours.
        connections.close_all()


def _terminate(_signum: int, _frame: object) -> NoReturn:
    # Unwind like Ctrl-C, so the scratch database is dropped and the servers stopped.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with local_services("bench", log=say) as env:
            server = env["DATABASE_URL"]
            say(f"Creating and migrating {BENCH_DATABASE} on {redact_url(server)}")
            with scratch_database(server, env) as database_url:
                results = run(options, database_url, env)
            say(f"Dropped {BENCH_DATABASE}")
    except (BenchError, ServiceError) as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; no results written", file=sys.stderr)
        return 130
    for row in results["scenarios"]:
        verdict = "met" if row["met"] else "NOT met"
        say(f"{row['name']}: ratio {row['ratio']:.2f}, goal {row['goal']:.2f} {verdict}")
    for path in report.write(results, options.output):
        say(f"Wrote {path}")
    return 0
