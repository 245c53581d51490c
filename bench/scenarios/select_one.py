"""Harness self-check: `SELECT 1` round trips through Django's connection vs raw psycopg.

Not a benchmark of the product. It exists so that every run exercises the whole harness
(scratch database, Django set up on it, alternating rounds, reports) with a workload
whose answer is known: Django's cursor wrapper adds a little Python to each query on
top of the same psycopg driver, so ours should be somewhat slower than the baseline and
comfortably above half its speed.
"""

from __future__ import annotations

import time

import psycopg
from django.db import connection

from bench.scenarios import Context, Scenario

WARM_UP_QUERIES = 50


def prepare(ctx: Context) -> None:
    # Connecting and the first queries (catalog caches, psycopg's statement preparation)
    # are not what this scenario compares, so both sides pay for them here.
    connection.ensure_connection()
    ctx.state["raw"] = psycopg.connect(ctx.database_url, autocommit=True)
    ctx.state["queries"] = ctx.size(quick=300, full=20_000)
    django_round_trips(WARM_UP_QUERIES)
    raw_round_trips(ctx.state["raw"], WARM_UP_QUERIES)


def django_round_trips(count: int) -> float:
    """Queries per second, each through a fresh Django cursor as the ORM does."""
    start = time.perf_counter()
    for _ in range(count):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    return count / (time.perf_counter() - start)


def raw_round_trips(raw: psycopg.Connection, count: int) -> float:
    """Queries per second, each with psycopg's own one-liner (which also opens a cursor)."""
    start = time.perf_counter()
    for _ in range(count):
        raw.execute("SELECT 1").fetchone()
    return count / (time.perf_counter() - start)


def run_ours(ctx: Context) -> float:
    return django_round_trips(ctx.state["queries"])


def run_baseline(ctx: Context) -> float:
    return raw_round_trips(ctx.state["raw"], ctx.state["queries"])


def cleanup(ctx: Context) -> None:
    raw = ctx.state.pop("raw", None)
    if raw is not None:
        raw.close()


SCENARIO = Scenario(
    name="select_one",
    description=(
        "Harness self-check, not a product benchmark: SELECT 1 round trips per second "
        "through Django's connection vs the same with raw psycopg"
    ),
    unit="queries/s",
    higher_is_better=True,
    goal=0.5,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes=(
        "Both sides autocommit on one connection each, over the same socket. Django uses "
        "psycopg's client-side binding cursor; raw psycopg prepares the statement after "
        "five executions, which is part of what the baseline is."
    ),
)
