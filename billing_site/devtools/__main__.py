"""`python -m billing_site.devtools <command>`: what `make run` and `make test` call.

Commands:
  setup              check system libraries, compile translations
  run [--port N]     local servers + migrate + demo data + web, worker and beat
  test [ARGS...]     local servers + pytest ARGS
  manage ARGS...     local servers + manage.py ARGS (the `run` data)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from billing_site.devtools import i18n, syslibs
from billing_site.devtools.paths import BASE_DIR
from billing_site.devtools.services import ServiceError, local_services

PYTHON = sys.executable
MANAGE = str(BASE_DIR / "manage.py")
COLOURS = {"web": "36", "worker": "35", "beat": "33", "setup": "32"}


def die_with_parent() -> None:
    """Have Linux send us SIGTERM if our parent (make, a terminal) goes away.

    Without it a killed `make run` would leave the launcher, and with it the
    servers, running as orphans. Harmless no-op elsewhere.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def write(text: str) -> None:
    """Print without ever failing: when the terminal or a pipe (`| tee`) is gone,
    the launcher must still stop its processes and servers."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def say(message: str) -> None:
    write(f"==> {message}\n")


def setup() -> int:
    if not syslibs.ensure(log=say):
        return 1
    written = i18n.compile_catalogs()
    if written:
        say(f"Compiled {len(written)} translation catalogs")
    return 0


def child_env(service_env: dict[str, str], settings_module: str) -> dict[str, str]:
    return {
        **os.environ,
        **service_env,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "PYTHONUNBUFFERED": "1",
    }


def run_checked(args: Sequence[str], env: dict[str, str], *, capture: bool = False) -> str:
    """Run a setup step; on failure print its last lines and stop the launcher."""
    result = subprocess.run(
        list(args), env=env, cwd=BASE_DIR, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        for line in output[-15:]:
            print(line, file=sys.stderr)
        raise SystemExit(result.returncode or 1)
    return result.stdout if capture else ""


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    threads: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Starts named processes in their own sessions, prefixes their output, stops them all."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.children: list[Child] = []
        self.colour = sys.stdout.isatty()

    def _prefix(self, name: str) -> str:
        label = f"{name:<6}|"
        if self.colour:
            return f"\033[{COLOURS.get(name, '0')}m{label}\033[0m "
        return label + " "

    def start(self, name: str, args: list[str]) -> Child:
        child = Child(name, args)
        child.process = subprocess.Popen(
            args,
            env=self.env,
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        thread = threading.Thread(target=self._pump, args=(child,), daemon=True)
        thread.start()
        child.threads.append(thread)
        self.children.append(child)
        return child

    def _pump(self, child: Child) -> None:
        assert child.process
        assert child.process.stdout
        prefix = self._prefix(child.name)
        for line in child.process.stdout:
            write(prefix + line)

    def exited(self) -> Child | None:
        for child in self.children:
            if child.process and child.process.poll() is not None:
                return child
        return None

    def stop_all(self, grace_seconds: float = 15) -> None:
        for child in self.children:
            if child.process and child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for child in self.children:
            if not child.process:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        for child in self.children:
            for thread in child.threads:
                thread.join(timeout=2)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_http(
    url: str, timeout_seconds: float, supervisor: Supervisor, stop_requested: threading.Event
) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if supervisor.exited() or stop_requested.is_set():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own local URL
                return True
        except urllib.error.HTTPError:
            return True  # it answered; /healthz says 503 until every part is up
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    return False


def run(host: str, port: int) -> int:
    if setup() != 0:
        return 1
    if not port_is_free(host, port):
        print(
            f"billing_site: port {port} on {host} is in use; stop what uses it or run "
            f"`make run PORT=<another port>`",
            file=sys.stderr,
        )
        return 1
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    die_with_parent()

    with local_services("run", log=say) as service_env:
        env = child_env(service_env, "billing_site.settings.dev")
        # Links in e-mails point at this server unless configured otherwise.
        env.setdefault("SITE_URL", f"http://{host}:{port}")
        say("Checking the database and the broker")
        run_checked([PYTHON, MANAGE, "preflight"], env)
        say("Applying database migrations")
        run_checked([PYTHON, MANAGE, "migrate", "--noinput", "-v", "0"], env)
        say("Loading demo data")
        logins = run_checked([PYTHON, MANAGE, "demo_data"], env, capture=True)

        supervisor = Supervisor(env)
        base_url = f"http://{host}:{port}"
        supervisor.start(
            "web", [PYTHON, MANAGE, "runserver", f"{host}:{port}", "--nostatic", "--skip-checks"]
        )
        supervisor.start(
            "worker",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "billing_site",
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--hostname=worker@%h",
            ],
        )
        supervisor.start(
            "beat",
            [PYTHON, "-m", "celery", "-A", "billing_site", "beat", "--loglevel=INFO", "--pidfile="],
        )
        try:
            return supervise(supervisor, base_url, logins, stop_requested)
        finally:
            say("Stopping web, worker and beat")
            supervisor.stop_all()


def supervise(
    supervisor: Supervisor, base_url: str, logins: str, stop_requested: threading.Event
) -> int:
    """Wait until Ctrl-C (exit 0) or until a process dies (exit 1)."""
    if not wait_for_http(f"{base_url}/healthz", 90, supervisor, stop_requested):
        if stop_requested.is_set():
            return 0
        say("the web server did not answer within 90 seconds")
        return 1
    write(banner(base_url, logins) + "\n")
    while not stop_requested.wait(0.5):
        failed = supervisor.exited()
        if failed and failed.process:
            say(f"{failed.name} exited with code {failed.process.returncode}")
            return 1
    return 0


def banner(base_url: str, logins: str) -> str:
    lines = [
        "",
        "=" * 72,
        "  Billing site is running",
        f"    Portal:  {base_url}/",
        f"    Admin:   {base_url}/admin/",
        f"    Health:  {base_url}/healthz",
        "",
        *[f"  {line}" for line in logins.strip().splitlines()],
        "",
        "  Press Ctrl-C to stop the web server, the worker and beat.",
        "=" * 72,
        "",
    ]
    return "\n".join(lines)


def test(pytest_args: list[str]) -> int:
    die_with_parent()
    if setup() != 0:
        return 1
    with local_services("test", log=say) as service_env:
        env = child_env(service_env, "billing_site.settings.test")
        return subprocess.run(
            [PYTHON, "-m", "pytest", *pytest_args], env=env, cwd=BASE_DIR, check=False
        ).returncode


def manage(args: list[str]) -> int:
    with local_services("run", log=say) as service_env:
        env = child_env(service_env, "billing_site.settings.dev")
        return subprocess.run(
            [PYTHON, MANAGE, *args], env=env, cwd=BASE_DIR, check=False
        ).returncode


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `test` and `manage` pass everything after them through untouched.
    if argv and argv[0] in ("test", "manage"):
        try:
            return test(argv[1:]) if argv[0] == "test" else manage(argv[1:])
        except ServiceError as error:
            print(f"billing_site: {error}", file=sys.stderr)
            return 1
    parser = argparse.ArgumentParser(prog="python -m billing_site.devtools")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup")
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--host", default="127.0.0.1")
    run_parser.add_argument("--port", type=int, default=8000)
    commands.add_parser("test", help="run pytest with the given arguments")
    commands.add_parser("manage", help="run manage.py with the given arguments")
    options = parser.parse_args(argv)
    try:
        if options.command == "setup":
            return setup()
        return run(options.host, options.port)
    except ServiceError as error:
        print(f"billing_site: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
