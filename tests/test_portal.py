"""The portal's base pages: log in, see your accounts, switch language, log out."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_login_page_has_a_labelled_form_and_local_assets(client):
    response = client.get("/login/")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<label class="form-label" for="id_username">E-mail address</label>' in html
    assert 'autocomplete="current-password"' in html
    assert '<html lang="en">' in html
    # No CDN: every stylesheet and script is served from our own /static/.
    for url in re.findall(r'(?:href|src)="([^"]+\.(?:css|js))"', html):
        assert url.startswith("/static/"), url


def test_wrong_password_shows_a_clear_error_and_logs_nobody_in(client):
    UserFactory(email="jana@example.com")

    response = client.post("/login/", {"username": "jana@example.com", "password": "wrong"})

    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_member_logs_in_and_sees_their_account_and_variable_symbol(client):
    membership = MembershipFactory(user__email="jana@example.com", user__first_name="Jana")

    response = client.post(
        "/login/", {"username": "JANA@example.com", "password": "a-good-password-1"}, follow=True
    )

    html = response.content.decode()
    assert response.redirect_chain == [("/", 302)]
    assert "Welcome, Jana" in html
    assert membership.account.name in html
    assert str(membership.account.variable_symbol) in html


def test_home_lists_only_the_users_own_accounts(client):
    mine = MembershipFactory()
    theirs = MembershipFactory()
    client.force_login(mine.user)

    html = client.get("/").content.decode()

    assert mine.account.name in html
    assert theirs.account.name not in html


def test_logout_is_a_post_and_ends_the_session(client):
    user = UserFactory()
    client.force_login(user)

    response = client.post("/logout/")

    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    ("language", "log_in_text"),
    [
        ("en", "Log in"),
        ("cs", "Přihlásit se"),
        ("sk", "Prihlásiť sa"),
        ("es", "Iniciar sesión"),
        ("bg", "Вход"),
        ("ro", "Autentificare"),
    ],
)
def test_language_switch_translates_the_portal(client, language, log_in_text):
    response = client.post(
        reverse("set_language"), {"language": language, "next": "/login/"}, follow=True
    )

    html = response.content.decode()
    assert f'<html lang="{language}">' in html
    assert f'<h1 class="h3 mb-1">{log_in_text}</h1>' in html
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == language


def test_admin_requires_a_staff_login(client):
    customer = UserFactory()
    client.force_login(customer)

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
