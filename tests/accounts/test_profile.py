"""The profile page: name and language; the e-mail address is shown, not edited."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PROFILE_URL = reverse("me:profile")


def test_profile_shows_the_email_read_only(client_for):
    user = UserFactory(first_name="Jana", last_name="Nováková")

    page = client_for(user).get(PROFILE_URL).content.decode()

    assert f'value="{user.email}" readonly' in page
    assert 'value="Jana"' in page
    assert 'value="Nováková"' in page


def test_profile_saves_the_name_and_language_and_switches_the_portal_now(client_for):
    user = UserFactory(language="en")
    browser = client_for(user)

    response = browser.post(
        PROFILE_URL,
        {"first_name": " Jan ", "last_name": "Novák", "language": "cs", "email": "x@example.com"},
    )

    assert response.status_code == 302
    assert response["Location"] == PROFILE_URL
    user.refresh_from_db()
    assert (user.first_name, user.last_name, user.language) == ("Jan", "Novák", "cs")
    assert user.email != "x@example.com", "the e-mail address is not editable here"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "cs"
    page = browser.get(PROFILE_URL).content.decode()
    assert '<html lang="cs">' in page
    assert '<option value="cs" selected>' in page


def test_profile_refuses_a_language_that_is_not_offered(client_for):
    user = UserFactory(language="en", first_name="Ana")

    response = client_for(user).post(
        PROFILE_URL, {"first_name": "Changed", "last_name": "", "language": "xx"}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose one of the offered languages." in page
    assert 'aria-describedby="id_language_helptext id_language_error"' in page
    user.refresh_from_db()
    assert (user.first_name, user.language) == ("Ana", "en")


def test_profile_needs_a_login(client):
    response = client.get(PROFILE_URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
