"""Forgotten passwords are reset through a single-use e-mailed link; a changed password
keeps this browser signed in and signs out every other one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "plum-harbour-47-lantern"


def reset_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/reset/\S+/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def request_reset(client, email, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("password_reset"), {"email": email})


def set_new_password(client, link, password=NEW_PASSWORD):
    form_page = client.get(link, follow=True)
    set_password_url = form_page.redirect_chain[-1][0] if form_page.redirect_chain else link
    return client.post(
        set_password_url, {"new_password1": password, "new_password2": password}, follow=True
    )


def can_log_in(email, password) -> bool:
    response = Client().post(reverse("login"), {"username": email, "password": password})
    return response.status_code == 302


def test_password_reset_emails_a_link_that_sets_a_new_password(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com", first_name="Jana")

    response = request_reset(client, "JANA@example.com", django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["jana@example.com"]
    assert "Reset your password" in message.subject
    assert "Hello Jana," in message.body

    response = set_new_password(client, reset_link(message))

    assert response.redirect_chain[-1][0] == reverse("password_reset_complete")
    assert "Your new password is set" in response.content.decode()
    assert can_log_in("jana@example.com", NEW_PASSWORD)
    assert not can_log_in("jana@example.com", PASSWORD)


def test_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    response = request_reset(client, "nobody@example.com", django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert mailoutbox == []


def test_password_reset_link_works_once(client, mailoutbox, django_capture_on_commit_callbacks):
    UserFactory(email="jana@example.com")
    request_reset(client, "jana@example.com", django_capture_on_commit_callbacks)
    link = reset_link(mailoutbox[0])
    set_new_password(client, link)

    response = Client().get(link, follow=True)

    assert "This password reset link has already been used or has expired." in (
        response.content.decode()
    )
    assert can_log_in("jana@example.com", NEW_PASSWORD)


def test_expired_password_reset_link_is_refused(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com")
    request_reset(client, "jana@example.com", django_capture_on_commit_callbacks)
    link = reset_link(mailoutbox[0])

    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1)):
        response = set_new_password(client, link)

    assert "This password reset link has already been used or has expired." in (
        response.content.decode()
    )
    assert can_log_in("jana@example.com", PASSWORD)


def test_weak_new_password_is_a_field_error_and_changes_nothing(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com")
    request_reset(client, "jana@example.com", django_capture_on_commit_callbacks)

    response = set_new_password(client, reset_link(mailoutbox[0]), password="password")

    html = response.content.decode()
    assert "This password is too common." in html
    assert 'id="id_new_password2_error"' in html
    assert can_log_in("jana@example.com", PASSWORD)


def test_resetting_the_password_lifts_a_lockout(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com")
    for _attempt in range(5):
        client.post(reverse("login"), {"username": "jana@example.com", "password": "wrong"})
    locked = client.post(reverse("login"), {"username": "jana@example.com", "password": PASSWORD})
    assert locked.status_code == 429

    request_reset(client, "jana@example.com", django_capture_on_commit_callbacks)
    set_new_password(client, reset_link(mailoutbox[0]))

    response = client.post(
        reverse("login"), {"username": "jana@example.com", "password": NEW_PASSWORD}
    )
    assert response.status_code == 302


def test_resetting_the_password_confirms_an_unconfirmed_address(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory(email="jana@example.com", email_verified_at=None)
    request_reset(client, "jana@example.com", django_capture_on_commit_callbacks)

    set_new_password(client, reset_link(mailoutbox[0]))

    user.refresh_from_db()
    assert user.email_verified_at is not None
    assert can_log_in("jana@example.com", NEW_PASSWORD)


# --- Change -------------------------------------------------------------------------


def test_password_change_keeps_this_session_and_logs_out_the_others(client):
    user = UserFactory(email="jana@example.com")
    client.force_login(user)
    other_browser = Client()
    other_browser.force_login(user)
    assert other_browser.get("/").status_code == 200

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("password_change_done")
    assert client.get("/").status_code == 200
    logged_out = other_browser.get("/")
    assert logged_out.status_code == 302
    assert logged_out["Location"].startswith(reverse("login"))
    assert can_log_in("jana@example.com", NEW_PASSWORD)


def test_password_change_with_a_wrong_current_password_changes_nothing(client_for):
    user = UserFactory(email="jana@example.com")
    client = client_for(user)

    response = client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_old_password_error"' in html
    assert can_log_in("jana@example.com", PASSWORD)


def test_password_change_needs_a_login(client):
    response = client.get(reverse("password_change"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
