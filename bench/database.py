"""The scratch database the benchmarks run in: created fresh, migrated, dropped.

A database of its own keeps benchmark data away from `make run`'s and the tests', and
starting from an empty one means a crashed earlier run cannot skew this one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

from billing_site.devtools.paths import BASE_DIR

# Per process, so that two runs on one server (the suite's harness check and a
# developer's `make bench`) never drop each other's database.
BENCH_DATABASE = f"billing_bench_{os.getpid()}"
# Every PostgreSQL server has it; CREATE/DROP DATABASE cannot run inside the target.
MAINTENANCE_DATABASE = "postgres"
SETTINGS_MODULE = "billing_site.settings.test"


class BenchError(RuntimeError):
    """The harness cannot go on; the message says why, in a few lines."""


def with_database(url: str, name: str) -> str:
    """``url`` naming database ``name`` on the same server, with the same options.

    Handles socket URLs such as ``postgres://postgres@/billing?host=/path/to/socket``.
    """
    return urlsplit(url)._replace(path="/" + quote(name)).geturl()


def _admin(server_url: str) -> psycopg.Connection:
    url = with_database(server_url, MAINTENANCE_DATABASE)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as error:
        raise BenchError(
            f"cannot reach the {MAINTENANCE_DATABASE!r} database on the server in "
            f"DATABASE_URL: {error}"
        ) from error


def _drop(admin: psycopg.Connection) -> None:
    # FORCE ends connections a killed earlier run may have left behind (PostgreSQL 13+).
    admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DATABASE))
    )


def migrate(database_url: str, env: dict[str, str]) -> None:
    """Apply every migration, in a child process exactly as a deployment would."""
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"],
        env={
            **os.environ,
            **env,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": database_url,
        },
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise BenchError("manage.py migrate failed:\n" + "\n".join(tail))


@contextlib.contextmanager
def scratch_database(server_url: str, env: dict[str, str]) -> Iterator[str]:
    """A freshly created and migrated `billing_bench` on ``server_url``'s server; its URL.

    ``env`` (REDIS_URL and the like) is passed to the migrate process. The database is
    dropped afterwards; callers must close their connections to it first.
    """
    with _admin(server_url) as admin:
        _drop(admin)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DATABASE)))
    try:
        database_url = with_database(server_url, BENCH_DATABASE)
        migrate(database_url, env)
        yield database_url
    finally:
        with _admin(server_url) as admin:
            _drop(admin)


def server_version(database_url: str) -> str:
    with psycopg.connect(database_url, connect_timeout=10) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"
