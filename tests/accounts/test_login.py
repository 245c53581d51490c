"""Logging in: confirmed addresses only, a second step for users with two-factor, and a
lockout after repeated wrong passwords (django-axes)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import totp_token
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
TWO_FACTOR = reverse("login_two_factor")


def log_in(client, email, password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": email, "password": password, **extra})


def is_logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def totp_user():
    user = MembershipFactory(user__email="jana@example.com").user
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


def test_login_page_links_to_signup_and_password_reset(client):
    html = client.get(LOGIN).content.decode()

    assert f'href="{reverse("signup")}">Create an account</a>' in html
    assert f'href="{reverse("password_reset")}">Forgot your password?</a>' in html


def test_logged_in_user_is_sent_on_from_the_login_page(client_for):
    client = client_for(UserFactory())

    response = client.get(LOGIN)

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_unverified_user_is_not_logged_in_and_is_offered_a_new_link(client):
    UserFactory(email="jana@example.com", email_verified_at=None)

    response = log_in(client, "jana@example.com")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Please confirm your e-mail address first" in html
    assert f'action="{reverse("verify_resend")}"' in html
    assert 'name="email" value="jana@example.com"' in html
    assert not is_logged_in(client)


def test_unverified_user_with_a_wrong_password_learns_nothing_about_verification(client):
    UserFactory(email="jana@example.com", email_verified_at=None)

    html = log_in(client, "jana@example.com", "wrong").content.decode()

    assert "Please enter a correct e-mail address and password." in html
    assert "confirm your e-mail address" not in html


# --- Two-factor ---------------------------------------------------------------------


def test_totp_user_logs_in_in_two_steps(client, totp_user):
    user, device = totp_user

    response = log_in(client, "jana@example.com", next="/password/change/")

    assert response.status_code == 302
    assert response["Location"] == TWO_FACTOR
    assert not is_logged_in(client)
    page = client.get(TWO_FACTOR).content.decode()
    assert "Two-factor sign-in" in page
    assert 'autocomplete="one-time-code"' in page

    response = client.post(TWO_FACTOR, {"token": totp_token(device)})

    assert response.status_code == 302
    assert response["Location"] == "/password/change/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/").status_code == 200


def test_two_factor_step_ignores_a_next_url_on_another_site(client, totp_user):
    _user, device = totp_user
    log_in(client, "jana@example.com", next="https://evil.example/steal")

    response = client.post(TWO_FACTOR, {"token": totp_token(device)})

    assert response["Location"] == "/"


def test_wrong_totp_code_is_refused_with_a_clear_error(client, totp_user):
    _user, device = totp_user
    log_in(client, "jana@example.com")
    wrong = f"{(int(totp_token(device)) + 1) % 1_000_000:06d}"

    response = client.post(TWO_FACTOR, {"token": wrong})

    assert response.status_code == 200
    html = response.content.decode()
    assert "That code is not right." in html
    assert 'id="id_token_error"' in html
    assert not is_logged_in(client)

    # Right away again: django-otp makes a guesser wait.
    response = client.post(TWO_FACTOR, {"token": totp_token(device)})
    assert "Too many wrong codes. Wait" in response.content.decode()
    assert not is_logged_in(client)

    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        response = client.post(TWO_FACTOR, {"token": totp_token(device)})
    assert response.status_code == 302
    assert is_logged_in(client)


def test_backup_code_logs_in_once_only(client):
    user = UserFactory(email="jana@example.com")
    device = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    device.token_set.create(token="abcd2345")

    log_in(client, "jana@example.com")
    response = client.post(TWO_FACTOR, {"token": "ABCD 2345"})

    assert response.status_code == 302
    assert is_logged_in(client)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id

    client.post(reverse("logout"))
    log_in(client, "jana@example.com")
    response = client.post(TWO_FACTOR, {"token": "abcd2345"})

    assert "That code is not right." in response.content.decode()
    assert not is_logged_in(client)
    assert not device.token_set.exists()


def test_a_six_digit_code_is_only_tried_on_the_authenticator(client, totp_user):
    user, device = totp_user
    backup = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    backup.token_set.create(token="123456")  # not a real backup code, but a trap
    log_in(client, "jana@example.com")

    client.post(TWO_FACTOR, {"token": "123456" if totp_token(device) != "123456" else "654321"})

    assert not is_logged_in(client)
    assert backup.token_set.count() == 1
    backup.refresh_from_db()
    device.refresh_from_db()
    assert backup.throttling_failure_count == 0
    assert device.throttling_failure_count == 1


def test_two_factor_step_expires_after_five_minutes(client, totp_user):
    _user, device = totp_user
    log_in(client, "jana@example.com")

    with time_machine.travel(timezone.now() + timedelta(minutes=5, seconds=5)):
        response = client.post(TWO_FACTOR, {"token": totp_token(device)}, follow=True)

    assert response.redirect_chain == [(LOGIN, 302)]
    assert "Signing in took too long" in response.content.decode()
    assert not is_logged_in(client)


def test_two_factor_step_without_a_password_goes_to_login(client):
    response = client.get(TWO_FACTOR)

    assert response.status_code == 302
    assert response["Location"] == LOGIN


# --- Lockout (django-axes) ------------------------------------------------------------


def test_sixth_attempt_after_five_failures_shows_the_lockout_page(client):
    UserFactory(email="jana@example.com")
    for attempt in range(5):
        # Any spelling of the address counts against the same login.
        email = "jana@example.com" if attempt % 2 else "JANA@example.com"
        log_in(client, email, "wrong")

    response = log_in(client, "jana@example.com", "wrong-again")

    html = response.content.decode()
    assert response.status_code == 429
    assert (
        "Too many failed attempts for this e-mail address; try again in 15 minutes or reset "
        "your password." in html
    )
    assert f'href="{reverse("password_reset")}"' in html
    assert not is_logged_in(client)


def test_locked_out_user_is_refused_even_with_the_right_password(client):
    UserFactory(email="jana@example.com")
    for _attempt in range(5):
        log_in(client, "jana@example.com", "wrong")

    response = log_in(client, "jana@example.com", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed attempts" in response.content.decode()
    assert not is_logged_in(client)

    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        response = log_in(client, "jana@example.com", PASSWORD)
    assert response.status_code == 302
    assert is_logged_in(client)


def test_lockout_of_one_address_does_not_lock_out_another(client):
    UserFactory(email="jana@example.com")
    UserFactory(email="petr@example.com")
    for _attempt in range(6):
        log_in(client, "jana@example.com", "wrong")

    response = log_in(client, "petr@example.com", PASSWORD)

    assert response.status_code == 302
