"""The security page: TOTP two-factor with backup codes, and ending sessions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from qsessions.models import Session

from accounts.selectors import security as security_selectors
from accounts.services import security
from tests.conftest import totp_token
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

SECURITY_URL = reverse("me:security")
SETUP_URL = reverse("me:totp_setup")
BACKUP_CODES_URL = reverse("me:backup_codes")
DISABLE_URL = reverse("me:totp_disable")
END_OTHERS_URL = reverse("me:sessions_end_others")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)


def wrong_code(device: TOTPDevice) -> str:
    """A 6-digit code the device refuses now: none of the codes its tolerance accepts."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    accepted = set()
    for offset in range(-device.tolerance, device.tolerance + 1):
        totp.drift = device.drift + offset
        accepted.add(totp.token())
    return next(f"{n:06d}" for n in range(1_000_000) if n not in accepted)


def end_url(session_key: str) -> str:
    return reverse(
        "me:session_end", kwargs={"session_key": security_selectors.session_reference(session_key)}
    )


def signed_in(user, user_agent: str | None = None) -> Client:
    """A separate browser signed in as ``user``; its first request records its user agent."""
    browser = Client(headers={"user-agent": user_agent} if user_agent else {})
    browser.force_login(user)
    return browser


def two_factor_on(user) -> list[str]:
    """Two-factor switched on through the services, as the set-up page does; its codes."""
    device = security.totp_device_start(user=user)
    return security.totp_device_confirm(user=user, token=totp_token(device)).backup_codes


def codes_on_page(html: str) -> list[str]:
    """The backup codes a page shows (in two groups of four, for reading them out)."""
    return [
        first + second
        for first, second in re.findall(
            r'<span class="d-block[^"]*">([a-z2-7]{4}) ([a-z2-7]{4})</span>', html
        )
    ]


# --- Setting up two-factor ------------------------------------------------------


def test_setup_page_shows_a_qr_code_and_the_secret_for_an_unconfirmed_device(client_for):
    user = UserFactory()

    response = client_for(user).get(SETUP_URL)

    assert response.status_code == 200
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    html = response.content.decode()
    assert "<svg" in html
    assert 'role="img"' in html
    secret = security_selectors.totp_provisioning(device=device).secret_groups
    assert " ".join(secret) in html
    assert "http://" not in html.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org/2000/svg", ""
    ), "the QR code is drawn inline, not fetched"


def test_setup_page_reuses_the_same_unconfirmed_device(client_for):
    user = UserFactory()
    browser = client_for(user)

    first = browser.get(SETUP_URL)
    second = browser.get(SETUP_URL)

    assert TOTPDevice.objects.filter(user=user).count() == 1
    device = TOTPDevice.objects.get(user=user)
    secret = " ".join(security_selectors.totp_provisioning(device=device).secret_groups)
    assert secret in first.content.decode()
    assert secret in second.content.decode()


def test_setup_with_the_right_code_switches_two_factor_on_with_ten_backup_codes(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory(language="en")
    browser = client_for(user)
    browser.get(SETUP_URL)
    device = TOTPDevice.objects.get(user=user)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(SETUP_URL, {"token": totp_token(device)})

    assert response.status_code == 302
    assert response["Location"] == BACKUP_CODES_URL
    device.refresh_from_db()
    assert device.confirmed is True
    # This browser has passed the second factor.
    assert browser.session[DEVICE_ID_SESSION_KEY] == device.persistent_id

    page = browser.get(BACKUP_CODES_URL).content.decode()
    codes = codes_on_page(page)
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert "only time they are shown" in page
    static = StaticDevice.objects.get(user=user, confirmed=True)
    assert sorted(codes) == sorted(static.token_set.values_list("token", flat=True))

    # Shown once: the page does not repeat them.
    assert codes_on_page(browser.get(BACKUP_CODES_URL).content.decode()) == []

    # Each code works exactly once.
    for code in codes:
        static.refresh_from_db()
        assert static.verify_token(code) is True
        assert static.verify_token(code) is False
        static.throttle_reset()
    assert not StaticToken.objects.filter(device__user=user).exists()

    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [user.email]
    assert "switched on" in mailoutbox[0].subject


def test_setup_with_a_wrong_code_leaves_two_factor_off(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory()
    browser = client_for(user)
    browser.get(SETUP_URL)
    device = TOTPDevice.objects.get(user=user)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(SETUP_URL, {"token": wrong_code(device)})

    assert response.status_code == 200
    assert "That code is not right" in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False
    assert not StaticDevice.objects.filter(user=user).exists()
    assert DEVICE_ID_SESSION_KEY not in browser.session
    assert mailoutbox == []
    assert security_selectors.two_factor_status(user=user).enabled is False


def test_setup_refuses_a_code_that_is_not_six_digits(client_for):
    user = UserFactory()
    browser = client_for(user)
    browser.get(SETUP_URL)

    response = browser.post(SETUP_URL, {"token": "12ab"})

    assert response.status_code == 200
    assert "The code is 6 digits" in response.content.decode()
    assert TOTPDevice.objects.get(user=user).confirmed is False


def test_setup_after_a_wrong_code_asks_to_wait_then_accepts_the_right_one(client_for):
    user = UserFactory()
    browser = client_for(user)
    browser.get(SETUP_URL)
    device = TOTPDevice.objects.get(user=user)
    now = timezone.now()

    with time_machine.travel(now, tick=False):
        browser.post(SETUP_URL, {"token": wrong_code(device)})
        too_soon = browser.post(SETUP_URL, {"token": totp_token(device)})
    assert "Too many wrong codes" in too_soon.content.decode()

    with time_machine.travel(now + timedelta(seconds=5), tick=False):
        device.refresh_from_db()
        response = browser.post(SETUP_URL, {"token": totp_token(device)})
    assert response.status_code == 302
    assert TOTPDevice.objects.get(user=user).confirmed is True


def test_confirming_deletes_other_unconfirmed_devices(client_for):
    user = UserFactory()
    device = security.totp_device_start(user=user)
    stray = TOTPDevice.objects.create(user=user, name="old attempt", confirmed=False)

    client_for(user).post(SETUP_URL, {"token": totp_token(device)})

    assert list(TOTPDevice.objects.filter(user=user)) == [device]
    assert not TOTPDevice.objects.filter(pk=stray.pk).exists()


def test_setup_page_sends_a_user_with_two_factor_back_to_security(client_for):
    user = UserFactory()
    two_factor_on(user)

    response = client_for(user).get(SETUP_URL)

    assert response.status_code == 302
    assert response["Location"] == SECURITY_URL
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_security_page_shows_two_factor_status_and_backup_codes_left(client_for):
    user = UserFactory()
    browser = client_for(user)
    assert "Set up two-factor sign-in" in browser.get(SECURITY_URL).content.decode()

    codes = two_factor_on(user)
    StaticDevice.objects.get(user=user).verify_token(codes[0])

    page = browser.get(SECURITY_URL).content.decode()
    assert "Switched on" in page
    assert "9 codes" in page
    assert DISABLE_URL in page
    assert BACKUP_CODES_URL in page


def test_security_page_works_for_staff_without_a_membership(client_for):
    staff = UserFactory(is_staff=True)

    response = client_for(staff).get(SECURITY_URL)

    assert response.status_code == 200
    assert "the back office lets you in only with two-factor" in response.content.decode()


def test_my_pages_need_a_login(client):
    for url in (SECURITY_URL, SETUP_URL, BACKUP_CODES_URL, DISABLE_URL, reverse("me:profile")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


# --- Backup codes ---------------------------------------------------------------


def test_new_backup_codes_need_the_password(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory()
    old_codes = two_factor_on(user)
    browser = client_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(BACKUP_CODES_URL, {"password": "not my password"})

    assert response.status_code == 200
    assert "That is not your current password." in response.content.decode()
    assert sorted(old_codes) == sorted(
        StaticToken.objects.filter(device__user=user).values_list("token", flat=True)
    )
    assert mailoutbox == []


def test_new_backup_codes_replace_the_old_ones_and_are_shown_once(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory()
    old_codes = two_factor_on(user)
    browser = client_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(BACKUP_CODES_URL, {"password": PASSWORD}, follow=True)

    new_codes = codes_on_page(response.content.decode())
    assert len(new_codes) == 10
    assert sorted(new_codes) == sorted(
        StaticToken.objects.filter(device__user=user).values_list("token", flat=True)
    )
    assert not set(old_codes) & set(new_codes)
    static = StaticDevice.objects.get(user=user)
    assert static.verify_token(old_codes[0]) is False
    assert codes_on_page(browser.get(BACKUP_CODES_URL).content.decode()) == []
    assert len(mailoutbox) == 1
    assert "backup codes" in mailoutbox[0].subject.lower()


def test_backup_codes_page_without_two_factor_goes_to_security(client_for):
    user = UserFactory()

    response = client_for(user).post(BACKUP_CODES_URL, {"password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == SECURITY_URL
    assert not StaticDevice.objects.filter(user=user).exists()


# --- Switching two-factor off ---------------------------------------------------


def test_switching_two_factor_off_with_a_wrong_password_changes_nothing(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory()
    two_factor_on(user)
    browser = client_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(DISABLE_URL, {"password": "wrong-password"})

    assert response.status_code == 200
    assert "That is not your current password." in response.content.decode()
    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert StaticToken.objects.filter(device__user=user).count() == 10
    assert mailoutbox == []


def test_switching_two_factor_off_with_the_password_deletes_the_devices(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    user = UserFactory()
    two_factor_on(user)
    browser = client_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(DISABLE_URL, {"password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == SECURITY_URL
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()
    assert len(mailoutbox) == 1
    assert "switched off" in mailoutbox[0].subject
    assert "Set up two-factor sign-in" in browser.get(SECURITY_URL).content.decode()


def test_switch_off_page_warns_staff_about_the_back_office(client_for):
    staff = UserFactory(is_staff=True)
    two_factor_on(staff)

    page = client_for(staff).get(DISABLE_URL).content.decode()

    assert "you cannot enter the back office" in page


def test_switch_off_page_does_not_warn_customers(client_for, account, member_of):
    user = member_of(account).user
    two_factor_on(user)

    page = client_for(user).get(DISABLE_URL).content.decode()

    assert "Confirm with your password" in page
    assert "back office" not in page


# --- Sessions -------------------------------------------------------------------


def test_security_page_lists_every_session_of_the_user(account, member_of):
    user = member_of(account).user
    laptop = signed_in(user, FIREFOX)
    phone = signed_in(user, IPHONE)
    # A browser's first request records its user agent (force_login sees none).
    laptop.get(SECURITY_URL)
    phone.get(SECURITY_URL)

    page = laptop.get(SECURITY_URL).content.decode()

    assert len(re.findall(r'action="/me/security/sessions/[0-9a-f]+/end/"', page)) == 2
    assert page.count("This browser") == 1
    assert "Firefox 128 on Linux" in page
    assert "Mobile Safari 17 on iPhone, iOS 17" in page
    assert laptop.session.session_key not in page, "session keys are secrets"
    assert phone.session.session_key not in page


def test_ending_another_session_logs_that_browser_out(account, member_of):
    user = member_of(account).user
    laptop = signed_in(user)
    phone = signed_in(user)

    response = laptop.post(end_url(phone.session.session_key))

    assert response.status_code == 302
    assert response["Location"] == SECURITY_URL
    logged_out = phone.get(SECURITY_URL)
    assert logged_out.status_code == 302
    assert logged_out["Location"].startswith(reverse("login"))
    assert laptop.get(SECURITY_URL).status_code == 200


def test_asking_to_end_a_session_shows_a_confirmation_and_ends_nothing(account, member_of):
    user = member_of(account).user
    laptop = signed_in(user)
    phone = signed_in(user)

    response = laptop.get(end_url(phone.session.session_key))

    assert response.status_code == 200
    assert "End session" in response.content.decode()
    assert phone.get(SECURITY_URL).status_code == 200


def test_another_users_session_is_not_found_and_keeps_going(account, member_of):
    me = signed_in(member_of(account).user)
    someone_else = signed_in(member_of(account).user)
    their_key = someone_else.session.session_key

    for url in (end_url(their_key), f"/me/security/sessions/{their_key}/end/"):
        assert me.post(url).status_code == 404
        assert me.get(url).status_code == 404

    assert Session.objects.filter(session_key=their_key).exists()
    assert someone_else.get(SECURITY_URL).status_code == 200


def test_ending_this_browsers_session_logs_out(account, member_of):
    user = member_of(account).user
    laptop = signed_in(user)
    key = laptop.session.session_key

    response = laptop.post(end_url(key))

    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert not Session.objects.filter(session_key=key).exists()
    assert laptop.get(SECURITY_URL).status_code == 302


def test_ending_all_other_sessions_keeps_this_one(account, member_of):
    user = member_of(account).user
    laptop, phone, tablet = signed_in(user), signed_in(user), signed_in(user)
    stranger = signed_in(member_of(account).user)

    response = laptop.post(END_OTHERS_URL)

    assert response.status_code == 302
    assert laptop.get(SECURITY_URL).status_code == 200
    assert phone.get(SECURITY_URL).status_code == 302
    assert tablet.get(SECURITY_URL).status_code == 302
    assert stranger.get(SECURITY_URL).status_code == 200
    assert list(Session.objects.filter(user=user).values_list("session_key", flat=True)) == [
        laptop.session.session_key
    ]


def test_ending_other_sessions_needs_a_post(account, member_of):
    user = member_of(account).user
    laptop, phone = signed_in(user), signed_in(user)

    assert laptop.get(END_OTHERS_URL).status_code == 405
    assert phone.get(SECURITY_URL).status_code == 200
