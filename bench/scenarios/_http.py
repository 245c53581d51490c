"""Shared by the HTTP scenarios (history_pages, csv_export): a gunicorn server, a signed-in
session, a keep-alive HTTP client, and a bulk loader of one wallet's history.

Server: gunicorn as production runs it (sync workers; ``--workers`` as the scenario asks),
on a free port of 127.0.0.1, against the scratch database with the bench's environment
and the test settings (DEBUG off, ALLOWED_HOSTS with 127.0.0.1, static files through
WhiteNoise). Two differences from ``billing_site.settings.test``, both from production:
persistent database connections (CONN_MAX_AGE=60, production's default) and an access
log. The URLconf is ``bench.urls``: the product's URLs plus one trivial view, so that the
trivial view goes through the same middleware; it is set by ``wsgi_application()``, the
app factory gunicorn is given (so no settings module is added for the bench).

Loader: ``bulk_history`` writes a wallet's transfers, entries, lots and lot allocations
with a few set-based INSERT ... SELECT statements, exactly as the ledger's services write
them (same columns and values, fingerprints computed the same way, balances after each
entry, lots consumed first in, first out), with every trigger and constraint in force.
``verify_bulk`` then posts one top-up and one debit through the real services on the same
wallet and checks that those rows agree with bulk rows of the same content on every
column but ids, keys and times, and that the ledger adds up.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from billing_site.devtools.paths import BASE_DIR

USER_AGENT = "bench-http/1.0"
CLIENT_ADDRESS = "127.0.0.1"
TRIVIAL_PATH = "/bench/trivial/"
# What production sets (billing_site/settings/production.py); the test settings have 0.
CONN_MAX_AGE = "60"
PLATFORM_TIME_ZONE = "Europe/Prague"
SHOP_NAMES = ("North", "South", "East", "West", "Centre", "Outlet")


# --- The server ---------------------------------------------------------------------------


def wsgi_application():  # type: ignore[no-untyped-def]
    """Gunicorn's app factory: the project's WSGI application with ``bench.urls``."""
    from django.conf import settings

    settings.ROOT_URLCONF = "bench.urls"
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path
    workers: int

    def wait_ready(self, seconds: float = 60) -> None:
        """Return once /healthz/live answers and every worker is up; else raise."""
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"gunicorn exited at start:\n{tail}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/healthz/live")
                status = connection.getresponse().status
                connection.close()
                if status == 200 and len(self.worker_pids()) == self.workers:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"gunicorn did not answer within {seconds:.0f} s:\n{tail}")
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def worker_pid(self) -> int:
        pids = self.worker_pids()
        if len(pids) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {pids}")
        return pids[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.unlink(missing_ok=True)

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""


def start_server(database_url: str, *, workers: int = 1, timeout: int = 30) -> Server:
    """gunicorn with ``workers`` sync workers, starting; ``wait_ready`` waits for it.

    Returns at once, so that the caller can load its data while the server boots.
    ``timeout`` is gunicorn's worker timeout, 30 s unless told (production passes none,
    so it has gunicorn's default of 30 s).
    """
    port = free_port()
    handle, log_name = tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")
    os.close(handle)
    log = Path(log_name)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "bench.scenarios._http:wsgi_application()",
                f"--bind=127.0.0.1:{port}",
                f"--workers={workers}",
                "--worker-class=sync",
                f"--timeout={timeout}",
                "--access-logfile=-",
            ],
            env=env,
            cwd=BASE_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process, port, log, workers)


# --- The client ---------------------------------------------------------------------------


class Client:
    """Sequential HTTP/1.1 requests with a session cookie, on one keep-alive connection.

    gunicorn's sync workers close the connection after each response (they expect a
    buffering proxy in front), so http.client opens a new one for the next request:
    each request then includes a TCP connect on the loopback (about 0.1 ms), trivial
    view and pages alike.
    """

    def __init__(self, port: int, session_key: str, *, timeout: float = 600) -> None:
        from django.conf import settings

        self.port = port
        self.headers = {
            "Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}",
            "User-Agent": USER_AGENT,
            "Accept": "text/html,*/*",
            "Accept-Language": "en",
        }
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str) -> tuple[int, bytes, float]:
        """Status, body and seconds from sending the request to the last byte."""
        start = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        return response.status, body, elapsed

    def stream(self, path: str, *, block: int = 1 << 16) -> tuple[int, int, int, float, bytes]:
        """Read a response as it arrives: status, bytes, lines, seconds, the first block."""
        start = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        size = lines = 0
        first = b""
        while True:
            chunk = response.read1(block)
            if not chunk:
                break
            if not first:
                first = chunk[:4096]
            size += len(chunk)
            lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - start
        return response.status, size, lines, elapsed, first

    def close(self) -> None:
        self.connection.close()


# --- People, platform, wallets ------------------------------------------------------------


@dataclass
class Member:
    """An account on the bench platform, its wallet, shops and an owner with a session."""

    account: Any
    wallet: Any
    shops: list[Any]
    user: Any
    session_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def bench_platform(code: str):  # type: ignore[no-untyped-def]
    from accounts.models import Platform

    platform, _created = Platform.objects.get_or_create(
        code=code,
        defaults={
            "name": f"Bench {code}",
            "legal_name": "Bench s.r.o.",
            "country": "CZ",
            "currency": "EUR",
            "iban": "CZ6508000000192000145399",
            "bic": "KOMBCZPP",
            "proforma_prefix": "ZF",
            "invoice_prefix": "FV",
            "credit_note_prefix": "DB",
            "time_zone": PLATFORM_TIME_ZONE,
        },
    )
    return platform


def make_member(platform, name: str) -> Member:  # type: ignore[no-untyped-def]
    """An account registered on ``platform`` with shops, its wallet, and an owner."""
    from accounts.models import Membership, Registration, Shop, User
    from accounts.services.core import account_create
    from credit.services import ledger

    slug = uuid.uuid4().hex[:10]
    account = account_create(name=name, email=f"{slug}@example.com", country="CZ")
    registration = Registration.objects.create(account=account, platform=platform)
    shops = [Shop.objects.create(registration=registration, name=shop) for shop in SHOP_NAMES]
    wallet = ledger.wallet_for(account=account, platform=platform)
    user = User.objects.create_user(email=f"owner-{slug}@example.com", password=None)
    Membership.objects.create(user=user, account=account, role=Membership.Role.OWNER)
    member = Member(account=account, wallet=wallet, shops=shops, user=user)
    member.session_key = session_for(member)
    return member


def session_for(member: Member) -> str:
    """A signed-in session of the member's owner acting for the member's account.

    Made as django.contrib.auth.login makes one, and stamped with the client's user agent
    and address, so the server has no reason to rewrite it on the first request.
    """
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from accounts.selectors import CURRENT_ACCOUNT_SESSION_KEY

    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(user_agent=USER_AGENT, ip=CLIENT_ADDRESS)
    session[SESSION_KEY] = member.user._meta.pk.value_to_string(member.user)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = member.user.get_session_auth_hash()
    session[CURRENT_ACCOUNT_SESSION_KEY] = member.account.pk
    session.save(must_create=True)
    return session.session_key


def test_client(member: Member):  # type: ignore[no-untyped-def]
    """Django's in-process test client with the member's session (for counting queries)."""
    from django.conf import settings
    from django.test import Client as DjangoClient

    client = DjangoClient(headers={"User-Agent": USER_AGENT}, REMOTE_ADDR=CLIENT_ADDRESS)
    client.cookies[settings.SESSION_COOKIE_NAME] = member.session_key
    return client


# --- Bulk history -------------------------------------------------------------------------

# One in ten operations is a top-up (by card and by bank transfer in turn), the rest are
# payments from credit of 1.00 to 99.98, six in seven of them with one of six shops. The
# first top-up is 1,000.00, later ones 500.00: the balance never goes below zero, so every
# debit is covered by lots paid in before it (checked). Ids are taken from the tables'
# sequences in advance, in time order, as the services would have taken them.
_PLAN = """
CREATE UNLOGGED TABLE {plan} AS
WITH base AS (
    SELECT i,
           CASE WHEN i %% 20 = 1 THEN 'topup_card'
                WHEN i %% 10 = 1 THEN 'topup_transfer'
                ELSE 'debit' END AS kind,
           CASE WHEN i = 1 THEN 1000.00
                WHEN i %% 10 = 1 THEN 500.00
                ELSE 1.00 + ((i::bigint * 2654435761) %% 9899) / 100.0 END::numeric(14, 2)
               AS amount,
           %(start)s::timestamptz + (i - 1) * %(step)s::interval AS created_at
    FROM generate_series(1, %(count)s) AS i
), signed AS (
    SELECT base.*,
           kind <> 'debit' AS is_credit,
           CASE WHEN kind = 'debit' THEN -amount ELSE amount END AS change,
           CASE WHEN kind = 'debit' AND i %% 7 <> 0
                THEN (%(shops)s::bigint[])[1 + i %% cardinality(%(shops)s::bigint[])] END
               AS shop_id
    FROM base
)
SELECT i,
       %(first_id)s::bigint + i - 1 AS id,
       kind, is_credit, amount, change, shop_id, created_at,
       CASE WHEN is_credit THEN '' ELSE 'Order ' || (100000 + i) END AS memo,
       SUM(change) OVER w AS balance_after,
       SUM(CASE WHEN is_credit THEN amount ELSE 0 END) OVER w AS credited_after,
       -- Positions on the "paid in" and "spent" axes, for first-in-first-out lots.
       SUM(CASE WHEN is_credit THEN amount ELSE 0 END) OVER w
           - CASE WHEN is_credit THEN amount ELSE 0 END AS paid_before,
       SUM(CASE WHEN is_credit THEN 0 ELSE amount END) OVER w
           - CASE WHEN is_credit THEN 0 ELSE amount END AS spent_before,
       COUNT(*) FILTER (WHERE is_credit) OVER w AS credits_so_far
FROM signed
WINDOW w AS (ORDER BY i)
"""

_TRANSFERS = """
INSERT INTO credit_transfer (id, kind, idempotency_key, fingerprint, amount, currency, memo,
                             wallet_id, shop_id, pays_for_type_id, pays_for_id, payment_id,
                             refund_of_id, reverses_id, created_by_id, created_at)
SELECT id, kind, %(key_prefix)s || i,
       encode(sha256(convert_to(
           CASE WHEN is_credit
                THEN '{{"amount":"' || amount || '","kind":"' || kind
                     || '","op":"credit","payment":null,"wallet":' || %(wallet)s || '}}'
                ELSE '{{"amount":"' || amount || '","kind":"debit","op":"debit",'
                     || '"pays":[null,null],"shop":' || COALESCE(shop_id::text, 'null')
                     || ',"wallet":' || %(wallet)s || '}}' END,
           'UTF8')), 'hex'),
       amount, %(currency)s, memo, %(wallet)s, shop_id, NULL, NULL, NULL, NULL, NULL, NULL,
       created_at
FROM {plan} WHERE i BETWEEN %(low)s AND %(high)s ORDER BY i
"""

# The wallet's leg first, then the counter-account's, as both services write them.
_ENTRIES = """
INSERT INTO credit_entry (id, transfer_id, ledger_account_id, amount, currency, balance_after,
                          credited_after, movement_number, created_at)
SELECT %(first_entry)s::bigint + 2 * (i - 1) + leg.n, id, leg.account, leg.amount,
       %(currency)s, leg.balance_after, leg.credited_after, leg.movement_number, created_at
FROM {plan}
CROSS JOIN LATERAL (VALUES
    (0, %(wallet_account)s::bigint, change, balance_after, credited_after, i::bigint),
    (1, CASE kind WHEN 'topup_card' THEN %(card_account)s::bigint
                  WHEN 'topup_transfer' THEN %(bank_account)s::bigint
                  ELSE %(revenue_account)s::bigint END, -change, NULL::numeric, NULL::numeric,
        NULL::bigint)
) AS leg(n, account, amount, balance_after, credited_after, movement_number)
WHERE i BETWEEN %(low)s AND %(high)s
ORDER BY i, leg.n
"""

_LOTS = """
INSERT INTO credit_lot (id, wallet_id, transfer_id, source, amount, remaining, created_at)
SELECT %(first_lot)s::bigint + credits_so_far - 1, %(wallet)s, id,
       CASE kind WHEN 'topup_card' THEN 'card' ELSE 'transfer' END, amount,
       amount - LEAST(amount, GREATEST(%(spent_total)s - paid_before, 0)), created_at
FROM {plan} WHERE is_credit AND i BETWEEN %(low)s AND %(high)s ORDER BY i
"""

# Each debit is drawn from the lots its stretch of the "spent" axis overlaps: at most two,
# since no debit is larger than a lot.
_ALLOCATIONS = """
INSERT INTO credit_allocation (transfer_id, debit_id, lot_id, amount, created_at)
SELECT d.id, d.id, lot.id,
       LEAST(lot.paid_before + lot.amount, d.spent_before + d.amount)
           - GREATEST(lot.paid_before, d.spent_before),
       d.created_at
FROM {plan} AS d
CROSS JOIN LATERAL (
    SELECT %(first_lot)s::bigint + credits_so_far - 1 AS id, paid_before, amount
    FROM {plan} AS l
    WHERE l.is_credit AND l.paid_before + l.amount > d.spent_before
    ORDER BY l.paid_before + l.amount
    LIMIT 2
) AS lot
WHERE NOT d.is_credit AND d.i BETWEEN %(low)s AND %(high)s
  AND lot.paid_before < d.spent_before + d.amount
ORDER BY d.i, lot.paid_before
"""

# Every pgtrigger trigger first asks _pgtrigger_should_ignore() whether it is switched off
# for this transaction; that function reads the setting pgtrigger.ignore inside an
# EXCEPTION block and, when the setting does not exist, the error aborts a subtransaction,
# and each such abort scans the transaction's whole queue of deferred trigger events. With
# hundreds of thousands of entries in one transaction that is quadratic (minutes for a few
# thousand rows). Defining the setting as the empty list ("ignore no trigger") avoids the
# error: every trigger still runs and checks each row (the balanced-transfer check at
# commit, the currency check, append-only).
IGNORE_NO_TRIGGER = "SET LOCAL pgtrigger.ignore = '{}'"


def _connect(database_url: str, **options: object) -> psycopg.Connection:
    # Client-side binding, as Django's cursors: parameters also work in CREATE TABLE AS.
    return psycopg.connect(database_url, cursor_factory=psycopg.ClientCursor, **options)


def _reserve(connection: psycopg.Connection, table: str, count: int) -> int:
    """The first of ``count`` consecutive ids taken from ``table``'s id sequence."""
    if count == 0:
        return 0
    row = connection.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
        "nextval(pg_get_serial_sequence(%s, 'id')) + %s - 1)",
        [table, table, count],
    ).fetchone()
    return row[0] - count + 1


def _parallel(database_url: str, jobs: list[tuple[list[str], dict]], workers: int) -> None:
    """Run each job (statements and their parameters) as one transaction, ``workers`` at a
    time, each on a connection of its own."""

    def run(job: tuple[list[str], dict]) -> None:
        statements, parameters = job
        with _connect(database_url) as connection, connection.transaction():
            connection.execute(IGNORE_NO_TRIGGER)
            for statement in statements:
                connection.execute(statement, parameters)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _done in pool.map(run, jobs):
            pass


def bulk_history(
    member: Member, count: int, *, days: int, database_url: str, batch: int = 50_000
) -> dict:
    """Write ``count`` transfers (two entries each) on the member's wallet, spread evenly
    over the ``days`` days before the last hour, on as many connections as there are
    cores. Returns timings."""
    import datetime as dt

    from django.utils import timezone

    from credit.models import LedgerAccount
    from credit.services import ledger

    started = time.perf_counter()
    wallet = member.wallet
    if wallet.balance != 0 or wallet.transfers.exists():
        raise RuntimeError("bulk_history needs a new wallet")
    platform = wallet.platform
    accounts = {
        kind: ledger.ledger_system_account(platform=platform, kind=kind).pk
        for kind in (
            LedgerAccount.Kind.GATEWAY_CLEARING,
            LedgerAccount.Kind.BANK_CLEARING,
            LedgerAccount.Kind.REVENUE,
        )
    }
    end = timezone.now() - dt.timedelta(hours=1)
    start = end - dt.timedelta(days=days)
    plan = f"bench_plan_{wallet.pk}"
    with _connect(database_url, autocommit=True) as connection:
        first_id = _reserve(connection, "credit_transfer", count)
        connection.execute(f"DROP TABLE IF EXISTS {plan}")
        connection.execute(
            _PLAN.format(plan=plan),
            {
                "count": count,
                "start": start,
                "step": (end - start) / max(count, 1),
                "shops": [shop.pk for shop in member.shops],
                "first_id": first_id,
            },
        )
        connection.execute(f"CREATE INDEX ON {plan} (i)")
        connection.execute(f"CREATE INDEX ON {plan} ((paid_before + amount)) WHERE is_credit")
        connection.execute(f"ANALYZE {plan}")
        credits, lowest, spent_total, balance, credited, last = connection.execute(
            f"SELECT COUNT(*) FILTER (WHERE is_credit), MIN(balance_after), "
            f"SUM(amount) FILTER (WHERE NOT is_credit), "
            f"(SELECT balance_after FROM {plan} ORDER BY i DESC LIMIT 1), "
            f"SUM(amount) FILTER (WHERE is_credit), MAX(created_at) FROM {plan}"
        ).fetchone()
        if lowest < 0:
            raise RuntimeError(f"the planned history goes below zero ({lowest})")
        parameters = {
            "wallet": wallet.pk,
            "currency": wallet.currency,
            "key_prefix": f"bench-{wallet.pk}-{uuid.uuid4().hex[:8]}-",
            "wallet_account": wallet.ledger_account_id,
            "card_account": accounts[LedgerAccount.Kind.GATEWAY_CLEARING],
            "bank_account": accounts[LedgerAccount.Kind.BANK_CLEARING],
            "revenue_account": accounts[LedgerAccount.Kind.REVENUE],
            "first_lot": _reserve(connection, "credit_lot", credits),
            "first_entry": _reserve(connection, "credit_entry", 2 * count),
            "spent_total": spent_total or Decimal(0),
        }
        planned = time.perf_counter()
        ranges = [
            {**parameters, "low": low, "high": min(low + batch - 1, count)}
            for low in range(1, count + 1, batch)
        ]
        workers = max(1, min(len(os.sched_getaffinity(0)), 4))
        # Transfers with their entries and lots first (the deferred balanced-transfer
        # trigger checks each batch at its commit), then the lot allocations, which may
        # draw on lots of any earlier batch.
        _parallel(
            database_url,
            [
                (
                    [
                        _TRANSFERS.format(plan=plan),
                        _ENTRIES.format(plan=plan),
                        _LOTS.format(plan=plan),
                    ],
                    bounds,
                )
                for bounds in ranges
            ],
            workers,
        )
        _parallel(
            database_url, [([_ALLOCATIONS.format(plan=plan)], bounds) for bounds in ranges], workers
        )
        with connection.transaction():
            # The balance and running totals the services would have left.
            connection.execute(
                "UPDATE credit_wallet SET balance = %s, credited_total = %s, "
                "movement_count = %s, last_movement_at = %s WHERE id = %s",
                [balance, credited or 0, count, last, wallet.pk],
            )
        connection.execute(f"DROP TABLE {plan}")
    wallet.refresh_from_db()
    return {"plan": planned - started, "load": time.perf_counter() - planned, "workers": workers}


def vacuum(database_url: str) -> None:
    """VACUUM ANALYZE the ledger's tables, as autovacuum would have done long since on a
    production database: fresh statistics for the planner, the visibility map for
    index-only scans, and no autovacuum of our rows during the measurements."""
    tables = ["credit_entry", "credit_transfer", "credit_allocation", "credit_lot"]
    workers = max(1, min(len(os.sched_getaffinity(0)), len(tables)))

    def run(table: str) -> None:
        with _connect(database_url, autocommit=True) as connection:
            connection.execute(f"VACUUM (ANALYZE) {table}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _done in pool.map(run, tables):
            pass


def load_history(member: Member, count: int, *, days: int, database_url: str) -> str:
    """The member's wallet with ``count`` operations: all but the last two bulk-loaded,
    those two posted by the real services and compared with bulk rows (verify_bulk),
    then the tables vacuumed. Returns what was done and how long it took, for the report.
    """
    started = time.perf_counter()
    timings = bulk_history(member, count - 2, days=days, database_url=database_url)
    loaded = time.perf_counter()
    verified = verify_bulk(member)
    checked = time.perf_counter()
    vacuum(database_url)
    done = time.perf_counter()
    return (
        f"{verified}. Loading took {done - started:.0f} s: plan {timings['plan']:.0f} s, "
        f"insert {timings['load']:.0f} s on {timings['workers']} connections, check "
        f"{checked - loaded:.0f} s, VACUUM ANALYZE {done - checked:.0f} s"
    )


_TRANSFER_SAME = (
    "kind",
    "fingerprint",
    "amount",
    "currency",
    "memo",
    "wallet_id",
    "shop_id",
    "pays_for_type_id",
    "pays_for_id",
    "payment_id",
    "refund_of_id",
    "reverses_id",
    "created_by_id",
)


def _transfer_shape(transfer) -> dict:  # type: ignore[no-untyped-def]
    return {name: getattr(transfer, name) for name in _TRANSFER_SAME}


def _entries_shape(transfer) -> list:  # type: ignore[no-untyped-def]
    """The transfer's legs, in no particular order (the services may write either first)."""
    return sorted(
        (
            entry.ledger_account_id,
            entry.amount,
            entry.currency,
            entry.balance_after is None,
            entry.credited_after is None,
            entry.movement_number is None,
        )
        for entry in transfer.entries.all()
    )


def verify_bulk(member: Member) -> str:
    """Post a top-up and a debit through the real services after the bulk rows and check
    that they agree with bulk rows of the same content, and that the ledger adds up.

    Raises RuntimeError when anything differs.
    """
    from django.db import connection
    from djmoney.money import Money

    from credit.models import Allocation, Lot, Transfer
    from credit.services import ledger

    wallet = member.wallet
    problems: list[str] = []
    bulk_credit = (
        Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.TOPUP_CARD)
        .order_by("-created_at", "-id")
        .first()
    )
    bulk_debit = (
        Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.DEBIT, shop__isnull=False)
        .order_by("-created_at", "-id")
        .first()
    )
    if bulk_credit is None or bulk_debit is None:
        raise RuntimeError("verify_bulk needs at least one bulk top-up and one debit with a shop")
    # The lot the next debit must draw from: the oldest with something left.
    oldest_open = Lot.objects.filter(wallet=wallet, remaining__gt=0).order_by("created_at", "id")
    expected_lot = oldest_open.first()
    balance_before = wallet.balance
    credited_before, count = wallet.credited_total, wallet.movement_count

    credit = ledger.wallet_credit(
        wallet=wallet,
        amount=Money(bulk_credit.amount, wallet.currency),
        kind=Transfer.Kind.TOPUP_CARD,
        idempotency_key=f"bench-service-{uuid.uuid4()}",
    )
    debit = ledger.wallet_debit(
        wallet=wallet,
        amount=Money(bulk_debit.amount, wallet.currency),
        idempotency_key=f"bench-service-{uuid.uuid4()}",
        memo=bulk_debit.memo,
        shop=next(shop for shop in member.shops if shop.pk == bulk_debit.shop_id),
    )
    credit = Transfer.objects.get(pk=credit.pk)
    debit = Transfer.objects.get(pk=debit.pk)
    for service, bulk in ((credit, bulk_credit), (debit, bulk_debit)):
        if _transfer_shape(service) != _transfer_shape(bulk):
            problems.append(
                f"{service.kind}: service {_transfer_shape(service)} "
                f"!= bulk {_transfer_shape(bulk)}"
            )
        if _entries_shape(service) != _entries_shape(bulk):
            problems.append(
                f"{service.kind} entries: service {_entries_shape(service)} "
                f"!= bulk {_entries_shape(bulk)}"
            )
    legs = {
        t.pk: t.entries.values_list("balance_after", "credited_after", "movement_number").get(
            ledger_account_id=wallet.ledger_account_id
        )
        for t in (credit, debit)
    }
    # The services continue the bulk rows' running totals.
    expected = {
        credit.pk: (balance_before + credit.amount, credited_before + credit.amount, count + 1),
        debit.pk: (
            balance_before + credit.amount - debit.amount,
            credited_before + credit.amount,
            count + 2,
        ),
    }
    for transfer_id, leg in legs.items():
        if leg != expected[transfer_id]:
            problems.append(
                f"wallet leg (balance, credited, number) {leg} != {expected[transfer_id]}"
            )
    service_lot = Lot.objects.get(transfer=credit)
    bulk_lot = Lot.objects.get(transfer=bulk_credit)
    lot_shape = ("wallet_id", "source", "amount")
    if [getattr(service_lot, n) for n in lot_shape] != [getattr(bulk_lot, n) for n in lot_shape]:
        problems.append("lots differ")
    allocation_shape = [
        (a.transfer_id == a.debit_id == debit.pk, a.lot_id, a.amount)
        for a in Allocation.objects.filter(debit=debit).order_by("id")
    ]
    bulk_allocations = list(Allocation.objects.filter(debit=bulk_debit).order_by("id"))
    if (
        not all(a.transfer_id == a.debit_id == bulk_debit.pk for a in bulk_allocations)
        or sum(a.amount for a in bulk_allocations) != bulk_debit.amount
    ):
        problems.append("a bulk debit's allocations do not cover it")
    expected_allocation = (
        [(True, expected_lot.pk, debit.amount)]
        if expected_lot and expected_lot.remaining >= debit.amount
        else None
    )
    if expected_allocation is not None and allocation_shape != expected_allocation:
        problems.append(f"service allocation {allocation_shape} != FIFO {expected_allocation}")

    # The whole wallet: its balance is the sum of its entries; each transfer has one entry
    # on the wallet (the balanced-transfer trigger saw to the rest at each commit); every
    # lot has given what its allocations say; every debit is allocated in full, none to
    # an overdraft; nothing waits for allocation.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH legs AS (
                SELECT COUNT(*) AS legs, COALESCE(SUM(amount), 0) AS total
                FROM credit_entry WHERE ledger_account_id = %(a)s
            ), drawn AS (
                SELECT a.debit_id, a.lot_id, a.amount
                FROM credit_allocation a JOIN credit_transfer t ON t.id = a.debit_id
                WHERE t.wallet_id = %(w)s
            )
            SELECT
              (SELECT balance FROM credit_wallet WHERE id = %(w)s) - (SELECT total FROM legs),
              (SELECT COUNT(*) FROM credit_transfer WHERE wallet_id = %(w)s)
                - (SELECT legs FROM legs),
              (SELECT COUNT(*) FROM credit_lot l
                  LEFT JOIN (SELECT lot_id, SUM(amount) AS used FROM drawn
                             WHERE lot_id IS NOT NULL GROUP BY lot_id) x ON x.lot_id = l.id
                  WHERE l.wallet_id = %(w)s AND l.amount - l.remaining <> COALESCE(x.used, 0)),
              (SELECT COUNT(*) FROM credit_transfer t
                  LEFT JOIN (SELECT debit_id, SUM(amount) AS total FROM drawn
                             GROUP BY debit_id) x ON x.debit_id = t.id
                  WHERE t.wallet_id = %(w)s AND t.kind = 'debit'
                    AND t.amount <> COALESCE(x.total, 0)),
              (SELECT COUNT(*) FROM drawn WHERE lot_id IS NULL),
              (SELECT COUNT(*) FROM credit_pendingallocation WHERE wallet_id = %(w)s)
            """,
            {"w": wallet.pk, "a": wallet.ledger_account_id},
        )
        difference, legless, lots_off, debits_off, overdrawn, pending = cursor.fetchone()
    if difference != 0:
        problems.append(f"cached balance differs from the entries by {difference}")
    for label, number in (
        ("transfers without exactly one entry on the wallet", legless),
        ("lots whose allocations differ from amount - remaining", lots_off),
        ("debits not fully allocated", debits_off),
        ("overdraft allocations", overdrawn),
        ("debits waiting for allocation", pending),
    ):
        if number:
            problems.append(f"{number} {label}")
    if problems:
        raise RuntimeError("bulk rows differ from the services' rows: " + "; ".join(problems))
    wallet.refresh_from_db()
    return (
        "bulk rows checked against a top-up and a debit made by the real services on the "
        "same wallet (every column but ids, keys and times; first-in-first-out lots), and "
        "the wallet's ledger adds up"
    )


def service_history(member: Member, count: int) -> None:
    """``count`` operations through the real services (a top-up, then debits)."""
    from djmoney.money import Money

    from credit.models import Transfer
    from credit.services import ledger

    wallet = member.wallet
    for n in range(count):
        if n % 10 == 0:
            ledger.wallet_credit(
                wallet=wallet,
                amount=Money("500.00", wallet.currency),
                kind=Transfer.Kind.TOPUP_CARD if n % 20 == 0 else Transfer.Kind.TOPUP_TRANSFER,
                idempotency_key=f"bench-small-{uuid.uuid4()}",
            )
        else:
            ledger.wallet_debit(
                wallet=wallet,
                amount=Money(Decimal(1 + n % 90), wallet.currency),
                idempotency_key=f"bench-small-{uuid.uuid4()}",
                memo=f"Order {n}",
                shop=member.shops[n % len(member.shops)] if n % 7 else None,
            )
    wallet.refresh_from_db()
