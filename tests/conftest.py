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
        "DELIVERY_WEBHOOK_SECRET": "courier-shared-secret-for-tests",
    }


# --- Portal members and staff ------------------------------------------------


@pytest.fixture
def account(db):
    """An account registered on one platform."""
    from tests.factories import RegistrationFactory

    return RegistrationFactory().account


@pytest.fixture
def member_of(db):
    """member_of(account, role) -> a Membership with a fresh, verified user."""
    from tests.factories import MembershipFactory

    def make(account, role="owner", **user_fields):
        kwargs = {f"user__{name}": value for name, value in user_fields.items()}
        return MembershipFactory(account=account, role=role, **kwargs)

    return make


@pytest.fixture
def client_for(client):
    """client_for(user) -> the test client, signed in as ``user`` (no second factor)."""

    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


def totp_token(device) -> str:
    """The code an authenticator app shows right now for a django-otp TOTP device."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def staff_client(client, db):
    """staff_client(user=None) -> a client signed in to the admin through its real
    login form, password plus TOTP code (a superuser with a device by default)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.factories import PASSWORD, UserFactory

    def sign_in(user=None):
        user = user or UserFactory(is_staff=True, is_superuser=True)
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        response = client.post(
            "/admin/login/",
            {"username": user.email, "password": PASSWORD, "otp_token": totp_token(device)},
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        return client

    return sign_in
