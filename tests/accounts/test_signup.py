"""Sign-up creates a user, an account on a platform and an owner membership, then asks
for the e-mail address to be confirmed through a signed, expiring link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, Membership, Registration, User
from accounts.services.signup import (
    EmailAlreadyRegistered,
    _resend_cache_key,
    email_verification_token,
    signup_create,
)
from tests.factories import PlatformFactory, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "plum-harbour-47-lantern"


@pytest.fixture
def platform():
    return PlatformFactory(name="WebHost CZ", country="CZ", currency="CZK")


@pytest.fixture(autouse=True)
def _no_resend_slot_taken():
    """The resend limit lives in the (real, shared) cache: start every test without it."""
    addresses = ["jana@example.com", "nobody@example.com"]
    for address in addresses:
        cache.delete(_resend_cache_key(address))
    yield
    for address in addresses:
        cache.delete(_resend_cache_key(address))


def signup_data(platform, **overrides):
    data = {
        "first_name": "Jana",
        "last_name": "Nováková",
        "email": "jana@example.com",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        "account_kind": "company",
        "account_name": "Acme Web s.r.o.",
        "country": "CZ",
        "street": "Karlova 5",
        "city": "Brno",
        "postal_code": "602 00",
        "vat_id": "CZ27082440",
        "company_id": "27082440",
        "platform": str(platform.pk),
        "terms": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def row_counts():
    return {
        model.__name__: model.objects.count() for model in (User, Account, Registration, Membership)
    }


def link_in(message) -> str:
    match = re.search(r"https?://\S+/verify/\S+/", message.body)
    assert match, message.body
    return match.group(0)


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_signup_creates_user_account_registration_and_owner_membership(
    client, platform, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), signup_data(platform))

    assert response.status_code == 302
    assert response["Location"] == reverse("signup_sent")
    user = User.objects.get(email="jana@example.com")
    assert user.check_password(NEW_PASSWORD)
    assert (user.first_name, user.last_name, user.language) == ("Jana", "Nováková", "en")
    assert user.email_verified_at is None
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.OWNER
    account = membership.account
    assert account.name == "Acme Web s.r.o."
    assert account.kind == Account.Kind.COMPANY
    assert account.email == "jana@example.com"
    assert (account.street, account.city, account.postal_code) == ("Karlova 5", "Brno", "602 00")
    assert str(account.country) == "CZ"
    assert (account.vat_id, account.company_id) == ("CZ27082440", "27082440")
    assert list(account.registrations.values_list("platform_id", flat=True)) == [platform.pk]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["jana@example.com"]
    assert "Confirm your e-mail address" in mailoutbox[0].subject
    page = client.get(response["Location"]).content.decode()
    assert "Check your e-mail" in page
    assert "jana@example.com" in page


def test_the_emailed_link_confirms_the_address_and_logs_the_user_in(
    client, platform, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("signup"), signup_data(platform))
    link = path_of(link_in(mailoutbox[0]))

    confirm_page = client.get(link)
    assert confirm_page.status_code == 200
    assert "Confirm my e-mail address" in confirm_page.content.decode()
    # Opening the link (as mail scanners do) confirms nothing yet.
    assert User.objects.get(email="jana@example.com").email_verified_at is None

    response = client.post(link, follow=True)

    assert response.redirect_chain == [("/", 302)]
    html = response.content.decode()
    assert "your e-mail address is confirmed" in html
    assert "Acme Web s.r.o." in html
    user = User.objects.get(email="jana@example.com")
    assert user.email_verified_at is not None
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_person_account_is_named_after_the_person_by_default(
    client, platform, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("signup"),
            signup_data(platform, account_kind="person", account_name="", vat_id="", company_id=""),
        )

    assert response.status_code == 302
    account = Account.objects.get(memberships__user__email="jana@example.com")
    assert account.kind == Account.Kind.PERSON
    assert account.name == "Jana Nováková"


def test_signup_takes_the_language_the_visitor_is_using(
    client, platform, django_capture_on_commit_callbacks
):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cs"

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("signup"), signup_data(platform))

    user = User.objects.get(email="jana@example.com")
    assert user.language == "cs"
    assert Account.objects.get(memberships__user=user).language == "cs"


def test_the_only_open_platform_is_preselected_and_closed_ones_are_not_offered(client):
    open_platform = PlatformFactory(name="WebHost ES", country="ES", currency="EUR")
    PlatformFactory(name="Closed Platform", is_active=False)

    html = client.get(reverse("signup")).content.decode()

    assert "WebHost ES" in html
    assert "Closed Platform" not in html
    assert re.search(rf'value="{open_platform.pk}"[^>]*checked', html)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"vat_id": "CZ27082441"}, "vat_id", "This is not a valid EU VAT ID"),
        ({"company_id": "27082441"}, "company_id", "This is not a valid company ID for Czechia"),
        ({"terms": None}, "terms", "Accept the terms of service to create an account."),
        ({"password2": "something-else-entirely"}, "password2", "The two passwords differ."),
        ({"password1": "12345678", "password2": "12345678"}, "password1", "too common"),
        ({"account_name": ""}, "account_name", "Enter the company&#x27;s name"),
    ],
    ids=["bad-vat-id", "bad-company-id", "terms-not-accepted", "mismatch", "weak", "no-name"],
)
def test_bad_signup_input_is_a_field_error_and_creates_nothing(
    client, platform, mailoutbox, django_capture_on_commit_callbacks, overrides, field, message
):
    before = row_counts()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), signup_data(platform, **overrides))

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    # The message sits next to its field and the field points at it.
    error = re.search(rf'<div class="invalid-feedback[^"]*" id="id_{field}_error">([^<]*)', html)
    assert error, html
    assert message in error.group(1)
    tag = re.search(rf'<input[^>]*\bid="id_{field}"[^>]*>', html)
    assert tag, html
    assert f"id_{field}_error" in tag.group(0)
    assert 'aria-invalid="true"' in tag.group(0)
    assert row_counts() == before
    assert mailoutbox == []


def test_duplicate_email_in_any_case_is_refused_and_suggests_logging_in(
    client, platform, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com")
    before = row_counts()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("signup"), signup_data(platform, email="JANA@Example.com"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "There is already a user with this e-mail address" in html
    assert 'id="id_email_error"' in html
    assert f'href="{reverse("password_reset")}"' in html
    assert row_counts() == before
    assert mailoutbox == []


def test_logged_in_user_visiting_signup_goes_home(client_for):
    client = client_for(UserFactory())

    response = client.get(reverse("signup"))

    assert response.status_code == 302
    assert response["Location"] == "/"


# --- Verification links ---------------------------------------------------------


def test_expired_link_says_so_offers_a_new_one_and_changes_nothing(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory(email="jana@example.com", email_verified_at=None)
    with time_machine.travel(timezone.now() - timedelta(days=4)):
        token = email_verification_token(user=user)
    link = reverse("verify_email", kwargs={"token": token})

    response = client.post(link)

    html = response.content.decode()
    assert response.status_code == 400
    assert "This confirmation link has expired" in html
    assert f'action="{reverse("verify_resend")}"' in html
    assert 'value="jana@example.com"' in html
    user.refresh_from_db()
    assert user.email_verified_at is None
    assert "_auth_user_id" not in client.session

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("verify_resend"), {"email": "jana@example.com"})
    assert len(mailoutbox) == 1
    assert client.get(path_of(link_in(mailoutbox[0]))).status_code == 200


def test_link_is_still_good_just_before_it_expires(client):
    user = UserFactory(email_verified_at=None)
    with time_machine.travel(timezone.now() - timedelta(days=3) + timedelta(minutes=5)):
        token = email_verification_token(user=user)

    response = client.post(reverse("verify_email", kwargs={"token": token}))

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.email_verified_at is not None


def test_reused_link_says_already_confirmed_and_changes_nothing(client):
    user = UserFactory(email_verified_at=None)
    link = reverse("verify_email", kwargs={"token": email_verification_token(user=user)})
    client.post(link)
    user.refresh_from_db()
    verified_at = user.email_verified_at
    client.post(reverse("logout"))

    response = client.post(link)

    html = response.content.decode()
    assert response.status_code == 200
    assert "This e-mail address is already confirmed. Log in" in html
    assert "_auth_user_id" not in client.session
    user.refresh_from_db()
    assert user.email_verified_at == verified_at


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_link_is_not_valid(client, method):
    user = UserFactory(email_verified_at=None)
    token = email_verification_token(user=user)
    tampered = token[:-2] + ("aa" if not token.endswith("aa") else "bb")

    response = getattr(client, method)(reverse("verify_email", kwargs={"token": tampered}))

    assert response.status_code == 400
    assert "This confirmation link is not valid" in response.content.decode()
    user.refresh_from_db()
    assert user.email_verified_at is None


def test_link_for_an_address_that_has_since_changed_is_not_valid(client):
    user = UserFactory(email="old@example.com", email_verified_at=None)
    token = email_verification_token(user=user)
    User.objects.filter(pk=user.pk).update(email="new@example.com")

    response = client.post(reverse("verify_email", kwargs={"token": token}))

    assert "This confirmation link is not valid" in response.content.decode()
    user.refresh_from_db()
    assert user.email_verified_at is None


def test_resend_answers_the_same_for_unknown_addresses_and_sends_nothing(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com", email_verified_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        known = client.post(reverse("verify_resend"), {"email": "jana@example.com"}, follow=True)
        unknown = client.post(
            reverse("verify_resend"), {"email": "nobody@example.com"}, follow=True
        )

    def answer(response):
        html = response.content.decode().replace("nobody@example.com", "jana@example.com")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)

    assert answer(known) == answer(unknown)
    assert "a new link is on its way" in known.content.decode()
    assert [message.to for message in mailoutbox] == [["jana@example.com"]]


def test_resend_sends_at_most_one_mail_per_address_per_minute(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com", email_verified_at=None)

    with django_capture_on_commit_callbacks(execute=True):
        for _attempt in range(3):
            response = client.post(reverse("verify_resend"), {"email": "Jana@example.com"})
            assert response.status_code == 302

    assert len(mailoutbox) == 1


def test_resend_sends_nothing_to_a_confirmed_address(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="jana@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("verify_resend"), {"email": "jana@example.com"})

    assert mailoutbox == []


def test_verified_user_logs_in_with_the_password_chosen_at_signup(
    client, platform, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("signup"), signup_data(platform))
    client.post(path_of(link_in(mailoutbox[0])))
    client.post(reverse("logout"))

    response = client.post(
        reverse("login"), {"username": "jana@example.com", "password": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_signup_service_refuses_an_address_taken_in_another_case(platform):
    UserFactory(email="jana@example.com")
    before = row_counts()

    with pytest.raises(EmailAlreadyRegistered):
        signup_create(
            email="Jana@EXAMPLE.com",
            password=NEW_PASSWORD,
            first_name="Jana",
            last_name="Nováková",
            language="en",
            account_kind="person",
            account_name="",
            country="CZ",
            street="Karlova 5",
            city="Brno",
            postal_code="602 00",
            platform=platform,
        )

    assert row_counts() == before


def test_signup_on_a_platform_closed_meanwhile_creates_nothing(
    client, platform, django_capture_on_commit_callbacks
):
    form_data = signup_data(platform)
    platform.is_active = False
    platform.save()
    before = row_counts()

    response = client.post(reverse("signup"), form_data)

    assert response.status_code == 200
    assert 'id="id_platform_error"' in response.content.decode()
    assert row_counts() == before
