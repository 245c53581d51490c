"""The signed-in user's own security: profile, TOTP two-factor, backup codes, sessions.

Two-factor is one TOTP device (an authenticator app) plus one static device
holding single-use backup codes. A user has at most one *confirmed* TOTP
device; setting up keeps one unconfirmed device until a correct code confirms it.

Sessions are django-qsessions rows: deleting a row ends that browser's sign-in
(its next request is anonymous). Session keys are bearer secrets, so pages and
URLs never show them: they name a session by ``session_reference``, a keyed
digest of the key that cannot be turned back into it.

The reads that the security pages need live at the bottom of this module,
next to the writes they describe.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime

import qrcode
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from qrcode.image.svg import SvgPathFillImage
from qsessions.models import Session

from accounts.models import User
from billing_site.exceptions import ApplicationError
from billing_site.mail import email_send_on_commit

BACKUP_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Authenticator app"
STATIC_DEVICE_NAME = "Backup codes"
_SESSION_REFERENCE_SALT = "accounts.security.session_reference"


# --- Errors -----------------------------------------------------------------


class SecurityError(ApplicationError):
    code = "security_error"


class WrongPassword(SecurityError):
    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__(_("That is not your current password."))


class WrongTotpCode(SecurityError):
    code = "wrong_totp_code"

    def __init__(self) -> None:
        super().__init__(
            _(
                "That code is not right. Enter the 6-digit code your authenticator app "
                "shows now; check that the phone's clock is correct."
            )
        )


class TotpThrottled(SecurityError):
    code = "totp_throttled"

    def __init__(self, seconds: int) -> None:
        super().__init__(
            ngettext(
                "Too many wrong codes. Wait %(seconds)s second and try again.",
                "Too many wrong codes. Wait %(seconds)s seconds and try again.",
                seconds,
            )
            % {"seconds": seconds},
            extra={"seconds": seconds},
        )


class TwoFactorAlreadyEnabled(SecurityError):
    code = "two_factor_already_enabled"

    def __init__(self) -> None:
        super().__init__(_("Two-factor sign-in is already switched on."))


class TwoFactorNotEnabled(SecurityError):
    code = "two_factor_not_enabled"

    def __init__(self) -> None:
        super().__init__(_("Two-factor sign-in is not switched on."))


class TotpSetupNotStarted(SecurityError):
    code = "totp_setup_not_started"

    def __init__(self) -> None:
        super().__init__(
            _("This set-up has expired or was finished elsewhere. Start it again, please.")
        )


class SessionNotFound(SecurityError):
    code = "session_not_found"

    def __init__(self) -> None:
        super().__init__(_("That session has already ended."))


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


def _confirmed_totp_device(*, user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


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
    if _confirmed_totp_device(user=user) is not None:
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
        if _confirmed_totp_device(user=user) is not None:
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
    if _confirmed_totp_device(user=user) is None:
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
    if _confirmed_totp_device(user=user) is None:
        raise TwoFactorNotEnabled()
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    _security_email(user=user, template="security_totp_disabled")


# --- Sessions -----------------------------------------------------------------


def session_reference(session_key: str) -> str:
    """A stable public name for a session: a keyed digest, useless as a session cookie."""
    return salted_hmac(_SESSION_REFERENCE_SALT, session_key, algorithm="sha256").hexdigest()[:32]


def _active_sessions(*, user: User) -> QuerySet[Session]:
    return Session.objects.filter(user=user, expire_date__gt=timezone.now())


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


@dataclass(frozen=True)
class TwoFactorStatus:
    enabled: bool
    enabled_at: datetime | None = None
    backup_codes_left: int = 0


def two_factor_status(*, user: User) -> TwoFactorStatus:
    device = _confirmed_totp_device(user=user)
    if device is None:
        return TwoFactorStatus(enabled=False)
    codes_left = StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
    return TwoFactorStatus(enabled=True, enabled_at=device.created_at, backup_codes_left=codes_left)


@dataclass(frozen=True)
class TotpProvisioning:
    """What an authenticator app needs: the otpauth:// URI as a QR code, or the secret typed."""

    config_url: str
    secret_groups: list[str]
    qr_svg: str


def totp_provisioning(*, device: TOTPDevice) -> TotpProvisioning:
    """The QR code (inline SVG, drawn here: no image leaves the server) and the base32
    secret in groups of four for typing it in by hand."""
    secret = base64.b32encode(device.bin_key).decode("ascii").rstrip("=")
    code = qrcode.QRCode(border=2, image_factory=SvgPathFillImage)
    code.add_data(device.config_url)
    image = code.make_image(
        **{
            "role": "img",
            "aria-label": _("QR code for your authenticator app"),
            "class": "qr-code",
            # The library sizes in millimetres; let the page decide.
            "style": "width: 100%; height: auto; max-width: 14rem;",
        }
    )
    svg = image.to_string(encoding="unicode")
    return TotpProvisioning(
        config_url=device.config_url,
        secret_groups=[secret[i : i + 4] for i in range(0, len(secret), 4)],
        qr_svg=svg,
    )


@dataclass(frozen=True)
class ActiveSession:
    reference: str
    # The secret key, for the services only; pages and URLs show ``reference``.
    session_key: str = field(repr=False)
    browser: str
    ip: str | None
    location: str | None
    signed_in_at: datetime | None
    last_active_at: datetime | None
    is_current: bool


def _browser_description(session: Session) -> str:
    info = session.device_info
    if info is None:
        return _("Unknown browser")
    parts = []
    if info.user_agent and info.user_agent.family and info.user_agent.family != "Other":
        version = info.user_agent.major or ""
        parts.append(f"{info.user_agent.family} {version}".strip())
    else:
        parts.append(_("Unknown browser"))
    system = ""
    if info.os and info.os.family and info.os.family != "Other":
        system = f"{info.os.family} {info.os.major or ''}".strip()
    device = info.device.family if info.device and info.device.family != "Other" else ""
    where = ", ".join(part for part in (device, system) if part)
    if where:
        return _("%(browser)s on %(system)s") % {"browser": parts[0], "system": where}
    return parts[0]


def sessions_for_user(*, user: User, current_session_key: str | None) -> list[ActiveSession]:
    """The user's live sessions, this browser's first, then the most recently active."""
    rows = [
        ActiveSession(
            reference=session_reference(session.session_key),
            session_key=session.session_key,
            browser=_browser_description(session),
            ip=session.ip,
            # Needs a GeoIP2 database (GEOIP_PATH); without one qsessions gives None.
            location=session.location,
            signed_in_at=session.created_at,
            last_active_at=session.updated_at,
            is_current=session.session_key == current_session_key,
        )
        for session in _active_sessions(user=user).order_by("-updated_at")
    ]
    return sorted(rows, key=lambda row: not row.is_current)


def session_for_user_by_reference(
    *, user: User, reference: str, current_session_key: str | None
) -> ActiveSession | None:
    """The user's live session named ``reference``; None for anyone else's (or a raw key)."""
    if not reference:
        return None
    for session in sessions_for_user(user=user, current_session_key=current_session_key):
        if constant_time_compare(session.reference, reference):
            return session
    return None
