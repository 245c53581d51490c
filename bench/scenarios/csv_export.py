"""csv_export: a wallet's history as CSV over HTTP, 1,000,000 operations, vs PostgreSQL's COPY.

Ours: the portal's "Export all to CSV" of a wallet's history (credit:history_csv) with
1,000,000 operations (two years of top-ups and payments), served by gunicorn (one sync
worker, production's worker class) and read over HTTP on 127.0.0.1 by a signed-in
owner; rows per second = the CSV's data lines / the time from sending the request to
the last byte.

Baseline: PostgreSQL's own CSV writer on the export's query, without Django, gunicorn
or HTTP: the SELECT the view sends (captured from a run of the view in the benchmark
process) in ``COPY (...) TO STDOUT WITH CSV``, read to the end over a raw psycopg
connection. Since the view itself has PostgreSQL write the rows with the same COPY,
the ratio is what the portal (and HTTP) adds to the database's own CSV writer.

Memory: the gunicorn worker's peak resident memory during an export, less its resident
memory just before (the kernel's high-water mark is reset before each export by
writing 5 to /proc/<pid>/clear_refs). The goal is at most 50 MB; the runner's verdict
only covers the ratio, so the details say whether the memory goal holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from bench.scenarios import Context, Scenario, _http

ENTRIES = 1_000_000
HISTORY_DAYS = 730
MEMORY_GOAL_MB = 50
MB = 1024 * 1024
# The export has PostgreSQL write its rows: COPY (<select>) TO STDOUT WITH (FORMAT csv).
_COPY = re.compile(r"^COPY \((?P<select>.*)\) TO STDOUT WITH \(FORMAT csv\)$", re.DOTALL)


def _status_kb(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _sep, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def _reset_peak(pid: int) -> None:
    """Set the process's VmHWM back to its current resident size (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _export_query(member: _http.Member, path: str) -> str:
    """The SELECT the export view sends, with its parameters, from a run in this process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _http.test_client(member)
    client.get(path)  # the session's first request may write it
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}")
        next(iter(response.streaming_content))  # the query starts with the first block
        response.close()
    selects = [
        match["select"]
        for query in captured.captured_queries
        if (match := _COPY.match(query["sql"]))
    ]
    if len(selects) != 1:
        raise RuntimeError(f"expected one COPY in the export, found {len(selects)}")
    return selects[0]


def _prepare(ctx: Context) -> None:
    from django.urls import reverse

    from credit.models import Transfer

    entries = ctx.size(quick=2_000, full=ENTRIES)
    # The server boots while the data is loaded.
    server = _http.start_server(ctx.database_url, workers=1)
    ctx.state["server"] = server
    platform = _http.bench_platform("bench-csv")
    member = _http.make_member(platform, "Export big")
    verified = _http.load_history(member, entries, days=HISTORY_DAYS, database_url=ctx.database_url)
    count = Transfer.objects.filter(wallet=member.wallet).count()
    path = reverse("credit:history_csv", kwargs={"platform_code": platform.code})
    ctx.state["query"] = _export_query(member, path)
    ctx.state["raw"] = psycopg.connect(ctx.database_url, autocommit=True)

    server.wait_ready()
    client = _http.Client(server.port, member.session_key)
    ctx.state["client"] = client
    # Warm-up of the worker (code, templates, translations) with a small export.
    status, body, _elapsed = client.get(f"{path}?type=topup_card")
    if status != 200 or not body.startswith("\ufeff".encode()):
        raise RuntimeError(f"warm-up export: HTTP {status}\n{server.log_tail()}")
    ctx.state.update(path=path, count=count, worker=server.worker_pid(), growth_mb=[])
    ctx.state["details"] = {
        "data": f"{count:,} operations ({2 * count:,} ledger entries) over {HISTORY_DAYS} days",
        "verified": verified,
        # (control characters shown escaped: the query holds a tab and a carriage return)
        "baseline query": ctx.state["query"].replace("\t", "\\t").replace("\r", "\\r"),
    }


def run_ours(ctx: Context) -> float:
    pid = ctx.state["worker"]
    _reset_peak(pid)
    before = _status_kb(pid)["VmRSS"]
    status, size, lines, elapsed, first = ctx.state["client"].stream(ctx.state["path"])
    peak = _status_kb(pid)["VmHWM"]
    if status != 200 or not first.startswith("\ufeff".encode()):
        raise RuntimeError(f"export: HTTP {status}\n{ctx.state['server'].log_tail()}")
    rows = lines - 1  # the header
    if rows != ctx.state["count"]:
        raise RuntimeError(f"the export has {rows} rows, the wallet {ctx.state['count']}")
    growth = (peak - before) / 1024
    ctx.state["growth_mb"].append(growth)
    details = ctx.state["details"]
    worst = max(ctx.state["growth_mb"])
    details["worker memory growth (MB, per run)"] = ", ".join(
        f"{value:.1f}" for value in ctx.state["growth_mb"]
    )
    details["memory_goal_met"] = (
        f"{worst <= MEMORY_GOAL_MB} (worst {worst:.1f} MB, goal at most {MEMORY_GOAL_MB} MB)"
    )
    details["response"] = f"{size / MB:.1f} MB, {rows:,} rows"
    return rows / elapsed


def run_baseline(ctx: Context) -> float:
    import time

    raw = ctx.state["raw"]
    rows = 0
    start = time.perf_counter()
    with raw.cursor().copy(f"COPY ({ctx.state['query']}) TO STDOUT WITH CSV") as copy:
        for data in copy:
            rows += bytes(data).count(b"\n")
    elapsed = time.perf_counter() - start
    if rows != ctx.state["count"]:
        raise RuntimeError(f"COPY gave {rows} rows, the wallet has {ctx.state['count']}")
    return rows / elapsed


def prepare(ctx: Context) -> None:
    # The runner cleans up only after a successful prepare: stop the server here otherwise.
    try:
        _prepare(ctx)
    except BaseException:
        cleanup(ctx)
        raise


def cleanup(ctx: Context) -> None:
    for name in ("client", "raw"):
        resource = ctx.state.pop(name, None)
        if resource is not None:
            resource.close()
    server = ctx.state.pop("server", None)
    if server is not None:
        server.stop()


SCENARIO = Scenario(
    name="csv_export",
    description=(
        "The history CSV export of a wallet with 1,000,000 operations over HTTP from gunicorn "
        "(1 sync worker), rows per second, vs PostgreSQL's COPY (the same SELECT) TO STDOUT "
        "WITH CSV over a raw connection"
    ),
    unit="rows/s",
    higher_is_better=True,
    goal=0.5,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes="Ours is timed from the request to the last byte at the client; the baseline "
    "runs the export's own SELECT, so both sides pay for the same query (which formats "
    "times and amounts in PostgreSQL). The worker's peak memory growth per export is in "
    "the details (memory_goal_met: growth at most 50 MB); the runner's 'met' is the ratio "
    "alone.",
)
