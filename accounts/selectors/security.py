"""Reads for the security pages: two-factor status, authenticator set-up, sessions.

Session keys are bearer secrets, so pages and URLs never show them: they name a
session by ``session_reference``, a keyed digest that cannot be turned back into it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

import qrcode
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from qrcode.image.svg import SvgPathFillImage
from qsessions.models import Session

from accounts.models import User

_SESSION_REFERENCE_SALT = "accounts.security.session_reference"


def session_reference(session_key: str) -> str:
    """A stable public name for a session: a keyed digest, useless as a session cookie."""
    return salted_hmac(_SESSION_REFERENCE_SALT, session_key, algorithm="sha256").hexdigest()[:32]


def confirmed_totp_device(*, user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def active_sessions(*, user: User) -> QuerySet[Session]:
    return Session.objects.filter(user=user, expire_date__gt=timezone.now())


@dataclass(frozen=True)
class TwoFactorStatus:
    enabled: bool
    enabled_at: datetime | None = None
    backup_codes_left: int = 0


def two_factor_status(*, user: User) -> TwoFactorStatus:
    device = confirmed_totp_device(user=user)
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
        for session in active_sessions(user=user).order_by("-updated_at")
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
