"""Start-up fails in one clear line, never a traceback, when the environment is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import BASE_DIR, run_manage

pytestmark = pytest.mark.filterwarnings("ignore")


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_production_settings_pass_check_deploy_without_warnings(production_env):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "needle"),
    [
        ("SECRET_KEY", "SECRET_KEY"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS"),
        ("EMAIL_URL", "EMAIL_URL"),
        ("DATABASE_URL", "DATABASE_URL"),
        ("REDIS_URL", "REDIS_URL"),
    ],
)
def test_production_settings_without_a_required_variable_stop_with_one_line(
    production_env, variable, needle
):
    env = {k: v for k, v in production_env.items() if k != variable}

    result = run_manage("check", env=env)

    assert_one_clear_line(result, needle)


def test_production_refuses_a_short_or_default_secret_key(production_env):
    result = run_manage("check", env={**production_env, "SECRET_KEY": "changeme"})

    assert_one_clear_line(result, "SECRET_KEY", "50 characters")


def test_unreachable_database_gives_one_line_saying_what_to_set(production_env):
    env = {**production_env, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing"}

    result = run_manage("migrate", "--noinput", env=env)

    line = assert_one_clear_line(result, "DATABASE_URL", "127.0.0.1:1/nothing")
    assert line.startswith("billing_site: cannot connect to PostgreSQL")


def test_a_database_url_that_is_not_postgres_is_refused(production_env):
    result = run_manage("check", env={**production_env, "DATABASE_URL": "sqlite:///db.sqlite3"})

    assert_one_clear_line(result, "DATABASE_URL must point at PostgreSQL", "sqlite")


def test_preflight_reports_an_unreachable_broker_in_one_line(production_env):
    env = {**production_env, "REDIS_URL": "redis://127.0.0.1:1/0"}

    result = run_manage("preflight", env=env)

    assert_one_clear_line(result, "cannot reach Redis at redis://127.0.0.1:1/0", "REDIS_URL")


def test_preflight_passes_when_both_services_answer(production_env):
    result = run_manage("preflight", env=production_env)

    assert result.returncode == 0, result.stderr
    assert "reachable" in result.stdout


def test_worker_with_unreachable_broker_stops_with_one_line(production_env):
    env = {**production_env, "REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}

    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "billing_site", "worker", "--pool=solo"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "billing_site: cannot reach Redis at redis://127.0.0.1:1/0" in result.stderr


def test_development_settings_need_nothing_but_the_services(service_env):
    result = run_manage(
        "check", env={**service_env, "DJANGO_SETTINGS_MODULE": "billing_site.settings.dev"}
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
