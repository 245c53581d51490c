"""The signed-in user's own security: profile, TOTP two-factor, backup codes, sessions.

Two-factor is one TOTP device (an authenticator app) plus one static device
holding single-use backup codes. A user has at most one *confirmed* TOTP
device; setting up keeps one unconfirmed device until a correct code confirms it.

Sessions are django-qsessions rows: deleting a row ends that browser's sign-in
(its next request is anonymous). Session keys are bearer secrets, so pages and
URLs never show them: they name a session by ``session_reference``, a keyed
digest of the key that cannot be turned back into it.

The reads that the security pages need are in accounts.selectors.security.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from qsessions.models import Session

from accounts.exceptions import (
    SessionNotFound,
    TotpSetupNotStarted,
    TotpThrottled,
    TwoFactorAlreadyEnabled,
    TwoFactorNotEnabled,
    WrongPassword,
    WrongTotpCode,
)
from accounts.models import User
from accounts.selectors.security import confirmed_totp_device
from billing_site.exceptions import ApplicationError
from billing_site.mail import email_send_on_commit

BACKUP_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Authenticator app"
STATIC_DEVICE_NAME = "Backup codes"
_SESSION_REFERENCE_SALT = "accounts.security.session_reference"


# --- Errors -----------------------------------------------------------------


# --- Profile ----------------------------------------------------------------


@transaction.atomic
def user_profile_update(*, user: User, first_name: str, last_name: str, language: str) -> User:
    """Save the user's name and portal language (one of settings.LANGUAGES)."""
    if language not in dict(settings.LANGUAGES):
        raise ApplicationError(_("Choose one of the offered languages."), code="invalid_language")
    user.first_name = first_name.strip()
    user.last_name = last_name.strip()
    user.language = language
    user.save(update_fields=["first_name", "last_name", "language"])
    return user


# --- Two-factor ---------------------------------------------------------------


@dataclass(frozen=True)
class TwoFactorEnabled:
    device: TOTPDevice
    backup_codes: list[str]


def _password_check(*, user: User, password: str) -> None:
    if not password or not user.check_password(password):
        raise WrongPassword()


def _backup_codes_replace(*, user: User) -> list[str]:
    """Give the user one static device with fresh codes; every older code stops working."""
    device = StaticDevice.objects.filter(user=user).order_by("pk").first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name=STATIC_DEVICE_NAME, confirmed=True)
    else:
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        if not device.confirmed:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
    codes: list[str] = []
    while len(codes) < BACKUP_CODE_COUNT:
        code = StaticToken.random_token()
        if code not in codes:
            codes.append(code)
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _security_email(*, user: User, template: str) -> None:
    email_send_on_commit(
        to=[user.email],
        template=template,
        context={
            "user": user,
            "changed_at": timezone.now(),
            "security_url": settings.SITE_URL.rstrip("/") + reverse("me:security"),
        },
        language=user.language or settings.LANGUAGE_CODE,
    )


@transaction.atomic
def totp_device_start(*, user: User) -> TOTPDevice:
    """The user's one unconfirmed TOTP device, created on first call and reused after.

    Refuses when two-factor is already on: a second authenticator is not offered.
    """
    # Lock the user row so two set-up tabs opened at once share one device.
    User.objects.select_for_update().filter(pk=user.pk).first()
    if confirmed_totp_device(user=user) is not None:
        raise TwoFactorAlreadyEnabled()
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def totp_device_confirm(*, user: User, token: str) -> TwoFactorEnabled:
    """Confirm the unconfirmed TOTP device with a code from the app: two-factor is on.

    On success: the device is confirmed (its ``created_at`` becomes the moment
    two-factor was switched on), other unconfirmed devices are deleted, a static
    device gets ``BACKUP_CODE_COUNT`` fresh backup codes (returned, to be shown
    once), and an e-mail tells the user. A wrong code changes nothing but
    django-otp's failure counter, which throttles guessing.
    """
    token = re.sub(r"\s+", "", token or "")
    # Verification writes the throttle counter; it must commit even when the code is
    # wrong, so the refusal is raised after this block, not inside it.
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        if confirmed_totp_device(user=user) is not None:
            raise TwoFactorAlreadyEnabled()
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("pk")
            .first()
        )
        if device is None:
            raise TotpSetupNotStarted()
        allowed, details = device.verify_is_allowed()
        verified = allowed and device.verify_token(token)
        if verified:
            device.confirmed = True
            device.created_at = timezone.now()
            device.save(update_fields=["confirmed", "created_at"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            codes = _backup_codes_replace(user=user)
            _security_email(user=user, template="security_totp_enabled")
            return TwoFactorEnabled(device=device, backup_codes=codes)
    if not allowed:
        locked_until = (details or {}).get("locked_until")
        seconds = 1
        if locked_until is not None:
            seconds = max(1, int((locked_until - timezone.now()).total_seconds() + 0.999))
        raise TotpThrottled(seconds)
    raise WrongTotpCode()


@transaction.atomic
def backup_codes_regenerate(*, user: User, password: str) -> list[str]:
    """New backup codes after the password is re-entered; all earlier codes stop working."""
    _password_check(user=user, password=password)
    User.objects.select_for_update().filter(pk=user.pk).first()
    if confirmed_totp_device(user=user) is None:
        raise TwoFactorNotEnabled()
    codes = _backup_codes_replace(user=user)
    _security_email(user=user, template="security_backup_codes_regenerated")
    return codes


@transaction.atomic
def two_factor_disable(*, user: User, password: str) -> None:
    """Switch two-factor off after the password is re-entered: every TOTP and static
    device of the user is deleted (with its backup codes) and the user is e-mailed.

    Staff lose access to the admin until they set it up again (the admin asks for it).
    """
    _password_check(user=user, password=password)
    User.objects.select_for_update().filter(pk=user.pk).first()
    if confirmed_totp_device(user=user) is None:
        raise TwoFactorNotEnabled()
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    _security_email(user=user, template="security_totp_disabled")


# --- Sessions -----------------------------------------------------------------


def session_end(*, user: User, session_key: str) -> None:
    """End one of the user's own sessions: that browser is signed out at its next request.

    Another user's session is not found (``SessionNotFound``), never ended.
    """
    # A queryset delete (not Session.delete on a fetched row) so that a session ended
    # twice at once is simply already gone.
    deleted, _by_model = Session.objects.filter(user=user, session_key=session_key).delete()
    if not deleted:
        raise SessionNotFound()


def sessions_end_others(*, user: User, current_session_key: str | None) -> int:
    """End every session of the user except ``current_session_key``; returns how many."""
    others = Session.objects.filter(user=user)
    if current_session_key:
        others = others.exclude(session_key=current_session_key)
    _count, by_model = others.delete()
    return by_model.get(Session._meta.label, 0)


# --- Reads for the security pages --------------------------------------------
