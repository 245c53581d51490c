"""Shared fixtures. PostgreSQL and Redis are real (started by `make test` when unset)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)


def database_url(settings_dict: dict, name: str | None = None) -> str:
    """A DATABASE_URL that reaches the same server as ``settings_dict``."""
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password)}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or ""
    port = settings_dict.get("PORT") or ""
    database = name or settings_dict["NAME"]
    if host.startswith("/"):
        return f"postgres://{credentials}/{database}?host={host}"
    return f"postgres://{credentials}{host}{':' + str(port) if port else ''}/{database}"


def run_manage(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run manage.py in a fresh process with exactly ``env`` on top of PATH/HOME."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env={**base, **env},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def service_env() -> dict[str, str]:
    """DATABASE_URL and REDIS_URL of the servers this test run uses."""
    return {
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": settings.REDIS_URL,
    }


@pytest.fixture
def production_env(service_env: dict[str, str]) -> dict[str, str]:
    """Realistic production values for every variable production settings require."""
    return {
        **service_env,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.production",
        "SECRET_KEY": "q0W8vJ2-"
        + "x7Kp3NzR9sT1uV4wY6bD8fH0jL2mQ5"
        + "eA3cG5iK7oM9rS1tU3vX5zB7dF9h",
        "ALLOWED_HOSTS": "billing.example.com",
        "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
        "CSRF_TRUSTED_ORIGINS": "https://billing.example.com",
    }
