"""The production configuration serves the portal from gunicorn, static files included."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import BASE_DIR, run_manage

pytestmark = pytest.mark.integration


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - local server
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn(production_env, tmp_path):
    static_root = tmp_path / "static"
    env = {**production_env, "STATIC_ROOT": str(static_root), "ALLOWED_HOSTS": "127.0.0.1"}
    collected = run_manage("collectstatic", "--noinput", "-v", "0", env=env)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "billing_site.wsgi",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
        ],
        env={**os.environ, **env},
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            fetch(base_url + "/healthz/live")
            break
        except OSError:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
    yield base_url
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


HTTPS = {"X-Forwarded-Proto": "https"}


def test_gunicorn_serves_the_login_page_with_hashed_compressed_static_files(gunicorn):
    status, _headers, body = fetch(gunicorn + "/login/", HTTPS)

    assert status == 200
    stylesheet = re.search(
        r'href="(/static/vendor/bootstrap-5\.3\.9/bootstrap\.min\.\w{12}\.css)"', body.decode()
    )
    assert stylesheet, "the stylesheet URL carries a content hash"
    status, headers, _body = fetch(
        gunicorn + stylesheet.group(1), {**HTTPS, "Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers.get("Content-Encoding") == "gzip"
    assert "immutable" in headers["Cache-Control"]


def test_plain_http_is_redirected_to_https_except_health_checks(gunicorn):
    status, headers, _body = fetch(gunicorn + "/login/")

    assert status == 301
    assert headers["Location"].startswith("https://")
    assert fetch(gunicorn + "/healthz/live")[0] == 200


def test_production_responses_carry_the_security_headers(gunicorn):
    _status, headers, _body = fetch(gunicorn + "/login/", HTTPS)

    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
