"""history_pages: a wallet's pages over HTTP for an account with 200,000 ledger entries.

Ours: the portal pages of one wallet whose account has 200,000 credit operations (two
years of top-ups and payments, most with a shop), served by gunicorn (one sync worker,
as production runs it) and requested over HTTP on 127.0.0.1 by a signed-in owner:

- the wallet dashboard (balance, days left, the 90-day spend chart and its table);
- the history, page 1 and page 500 (reached by the page links' keyset cursor);
- the accounting view of the longest period the form accepts (366 days, up to today),
  with its summary and first page of movements.

Each run sends N requests to each page in turn (page 1, page 500, ..., then again), one
at a time, after a warm-up, and takes each page's median and 95th percentile; ours is
the worst page's 95th percentile. Baseline: the same client and server, N requests to a
trivial view (bench/urls.py) that goes through the same middleware (session, user,
language, CSRF, OTP, messages, audit log, axes) and names the signed-in user. The
baseline runs alternate them with requests to a second bench-only view, the portal's
layout (base.html) with nothing in it, behind the same membership check as the wallet
pages: not part of the ratio, it shows in the details what any page pays before its
own content.

Before measuring, the test client counts the queries of each page in-process for this
account and for an account with 100 operations (made by the real services): they must
be equal (a page whose queries grow with the history fails the scenario).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time

from bench.scenarios import Context, Scenario, _http

ENTRIES = 200_000
SMALL_ENTRIES = 100
HISTORY_DAYS = 730
DEEP_PAGE = 500
PAGES = ("dashboard", "history p1", "history deep", "accounting")
LAYOUT_PATH = "/bench/layout/"
# A page's query slower than this gets its plan in the report.
SLOW_QUERY_SECONDS = 0.010


def _paths(member: _http.Member, deep_page: int) -> dict[str, str]:
    from django.urls import reverse

    from credit import selectors
    from credit.forms_wallet import MAX_PERIOD_DAYS
    from credit.models import Transfer

    wallet = member.wallet
    code = wallet.platform.code
    history = reverse("credit:history", kwargs={"platform_code": code})
    # Page n starts after the last row of page n - 1: the cursor its "Older" link carries.
    position = (deep_page - 1) * selectors.HISTORY_PAGE_SIZE - 1
    last_of_previous = Transfer.objects.filter(wallet=wallet).order_by("-created_at", "-id")[
        position
    ]
    after = selectors.Cursor.of(last_of_previous).encode()
    today = selectors.platform_today(wallet.platform)
    first = today - dt.timedelta(days=MAX_PERIOD_DAYS - 1)
    accounting = reverse("credit:accounting", kwargs={"platform_code": code})
    return {
        "dashboard": reverse("credit:wallet", kwargs={"platform_code": code}),
        "history p1": history,
        "history deep": f"{history}?after={after}",
        "accounting": f"{accounting}?from={first.isoformat()}&to={today.isoformat()}",
    }


def _deep_page(count: int, wanted: int) -> int:
    """Page ``wanted``, or the last page when the history is shorter (quick runs)."""
    from credit.selectors import HISTORY_PAGE_SIZE

    return min(wanted, math.ceil(count / HISTORY_PAGE_SIZE))


def _count_queries(
    member: _http.Member, paths: dict[str, str], slowest: dict[str, str] | None = None
) -> dict[str, int]:
    """Each page's query count (its second request: the first may write the session or
    sum up closed days); ``slowest`` gets each page's slowest query, for the report."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _http.test_client(member)
    counts = {}
    for name, path in paths.items():
        response = client.get(path)  # the first request may write the session
        if response.status_code != 200:
            raise RuntimeError(f"{name} {path}: HTTP {response.status_code}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{name} {path}: HTTP {response.status_code}")
        counts[name] = len(captured.captured_queries)
        if slowest is not None and captured.captured_queries:
            query = max(captured.captured_queries, key=lambda query: float(query["time"]))
            sql = " ".join(query["sql"].split())
            slowest[name] = f"{float(query['time']) * 1000:.0f} ms: {sql[:160]}"
            if float(query["time"]) > SLOW_QUERY_SECONDS:  # its plan, for the report
                with connection.cursor() as cursor:
                    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS OFF) {query['sql']}")
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                slowest[name] += f"\n\n```\n{plan}\n```\n"
    return counts


def _check_page(name: str, body: bytes) -> None:
    """The page shows what it should: rows of history or movements, the chart."""
    text = body.decode()
    if name.startswith("history"):
        rows = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0].count("<tr>")
        if rows != 50:
            raise RuntimeError(f"{name}: {rows} rows instead of 50")
    elif name == "accounting":
        rows = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0].count("<tr")
        if rows < 100:
            raise RuntimeError(f"{name}: {rows} rows instead of 100 movements and the opening")
    elif name == "dashboard" and "<svg" not in text:
        raise RuntimeError("dashboard: no spend chart")


def _prepare(ctx: Context) -> None:
    from credit.models import Transfer

    started = time.perf_counter()
    entries = ctx.size(quick=2_000, full=ENTRIES)
    requests = ctx.size(quick=8, full=60)
    # The server boots while the data is loaded (the pages are not requested before).
    server = _http.start_server(ctx.database_url, workers=1)
    ctx.state["server"] = server
    platform = _http.bench_platform("bench-pages")
    small = _http.make_member(platform, "Pages small")
    _http.service_history(small, SMALL_ENTRIES)
    big = _http.make_member(platform, "Pages big")
    verified = _http.load_history(big, entries, days=HISTORY_DAYS, database_url=ctx.database_url)

    loaded = time.perf_counter()
    count = Transfer.objects.filter(wallet=big.wallet).count()
    deep = _deep_page(count, DEEP_PAGE)
    paths = _paths(big, deep)
    small_paths = _paths(small, _deep_page(SMALL_ENTRIES, DEEP_PAGE))
    slowest: dict[str, str] = {}
    queries = _count_queries(big, paths, slowest)
    small_queries = _count_queries(small, small_paths)
    if queries != small_queries:
        raise RuntimeError(
            f"the pages' queries grow with the history: {queries} for {count} operations, "
            f"{small_queries} for {SMALL_ENTRIES}"
        )
    counted = time.perf_counter()

    server.wait_ready()
    client = _http.Client(server.port, big.session_key)
    ctx.state["client"] = client
    for name, path in paths.items():
        status, body, _elapsed = client.get(path)
        if status != 200:
            raise RuntimeError(f"{name} {path}: HTTP {status}\n{server.log_tail()}")
        _check_page(name, body)
    status, body, _elapsed = client.get(_http.TRIVIAL_PATH)
    if status != 200 or not body.startswith(b"ok "):
        raise RuntimeError(f"trivial view: HTTP {status} {body[:200]!r}")
    status, body, _elapsed = client.get(LAYOUT_PATH)
    if status != 200 or b"</html>" not in body:
        raise RuntimeError(f"layout view: HTTP {status} {body[:200]!r}")
    # Warm-up: code paths, templates, the database's and the OS's caches.
    for _round in range(ctx.size(quick=2, full=10)):
        for path in [*paths.values(), _http.TRIVIAL_PATH, LAYOUT_PATH]:
            client.get(path)

    ctx.state.update(paths=paths, requests=requests, samples={name: [] for name in PAGES})
    ctx.state["trivial"] = []
    ctx.state["layout"] = []
    ctx.state["details"] = {
        "data": f"{count:,} operations ({2 * count:,} ledger entries) over {HISTORY_DAYS} days "
        f"on the measured wallet; history page {deep}; accounting period "
        f"{paths['accounting'].split('?', 1)[1]}; {requests} requests per page per run",
        "verified": verified,
        "slowest query per page": "; ".join(f"{name} {text}" for name, text in slowest.items()),
        "queries per page": ", ".join(f"{name} {number}" for name, number in queries.items())
        + f" (the same with {SMALL_ENTRIES} operations)",
        "prepare": f"{time.perf_counter() - started:.0f} s: data {loaded - started:.0f} s, "
        f"query counts {counted - loaded:.0f} s, server and warm-up "
        f"{time.perf_counter() - counted:.0f} s",
    }


def _p95(samples: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def _get(ctx: Context, path: str) -> float:
    status, _body, elapsed = ctx.state["client"].get(path)
    if status != 200:
        raise RuntimeError(f"{path}: HTTP {status}\n{ctx.state['server'].log_tail()}")
    return elapsed * 1000


def run_ours(ctx: Context) -> float:
    paths = ctx.state["paths"]
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    for _n in range(ctx.state["requests"]):
        for name in PAGES:
            times[name].append(_get(ctx, paths[name]))
    for name in PAGES:
        ctx.state["samples"][name].append(times[name])
    _describe(ctx)
    return max(_p95(samples) for samples in times.values())


def run_baseline(ctx: Context) -> float:
    times, layout = [], []
    for _n in range(ctx.state["requests"]):
        times.append(_get(ctx, _http.TRIVIAL_PATH))
        layout.append(_get(ctx, LAYOUT_PATH))
    ctx.state["trivial"].append(times)
    ctx.state["layout"].append(layout)
    _describe(ctx)
    return _p95(times)


def _describe(ctx: Context) -> None:
    """Each page's median and 95th percentile per run, for the report."""

    def line(runs: list[list[float]]) -> str:
        return "; ".join(
            f"median {statistics.median(run):.1f} / p95 {_p95(run):.1f}" for run in runs
        )

    details = ctx.state["details"]
    for name in PAGES:
        details[f"{name} (ms, per run)"] = line(ctx.state["samples"][name])
    details["trivial view (ms, per run)"] = line(ctx.state["trivial"])
    details["reference: empty portal page, base.html only (ms, per run)"] = line(
        ctx.state["layout"]
    )


def prepare(ctx: Context) -> None:
    # The runner cleans up only after a successful prepare: stop the server here otherwise.
    try:
        _prepare(ctx)
    except BaseException:
        cleanup(ctx)
        raise


def cleanup(ctx: Context) -> None:
    client = ctx.state.pop("client", None)
    if client is not None:
        client.close()
    server = ctx.state.pop("server", None)
    if server is not None:
        server.stop()


SCENARIO = Scenario(
    name="history_pages",
    description=(
        "The worst 95th-percentile latency over a wallet's dashboard, history page 1 and "
        "page 500, and accounting view of a year, for an account with 200,000 operations, "
        "over HTTP from gunicorn (1 sync worker), vs a trivial view through the same "
        "middleware"
    ),
    unit="ms p95",
    higher_is_better=False,
    goal=0.33,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes="Sequential requests from one client with the owner's session cookie; gunicorn's "
    "sync workers close each connection, so every request includes a loopback TCP connect "
    "(both sides). The history is bulk-loaded in SQL with the rows the services write "
    "(checked against service-made rows); each page's queries are counted for this account "
    "and for one with 100 operations, and must be equal. The accounting form accepts at "
    "most 366 days, so the period is the last 366 days (about half the history).",
)
