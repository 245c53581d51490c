"""Sign-up, e-mail verification and the writes of the login flow.

A sign-up creates, in one transaction, the user (the e-mail is the login), the
account they bill to, its registration on one platform and the user's OWNER
membership, then e-mails a verification link. The user exists from then on but
cannot log in until ``email_verified_at`` is set by following the link.

Verification links are stateless: a TimestampSigner signature (salt
"accounts.verify-email") over ``"<user id>:<e-mail>"``. Nothing is stored, so a
link stops working when it is older than EMAIL_VERIFICATION_MAX_AGE_DAYS, when
the address was changed, and (as "already confirmed") once the address is verified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Account, Membership, Platform, User
from accounts.services.core import account_create, membership_create
from billing_site.exceptions import ApplicationError
from billing_site.mail import email_send_on_commit

EMAIL_VERIFICATION_SALT = "accounts.verify-email"
# At most one verification e-mail per address in this many seconds, however often
# someone asks (the resend form answers the same either way).
VERIFICATION_RESEND_INTERVAL_SECONDS = 60


# --- Errors -----------------------------------------------------------------


class SignupError(ApplicationError):
    code = "signup_error"


class EmailAlreadyRegistered(SignupError):
    code = "email_already_registered"

    def __init__(self) -> None:
        super().__init__(
            _(
                "There is already a user with this e-mail address. Log in, or reset your "
                "password if you have forgotten it."
            )
        )


class PlatformClosedForSignup(SignupError):
    code = "platform_closed_for_signup"

    def __init__(self) -> None:
        super().__init__(
            _("This platform does not accept new customers at the moment. Choose another one.")
        )


class VerificationLinkError(ApplicationError):
    """The verification link cannot be used; ``reason`` says why."""

    code = "verification_link_error"


class VerificationLinkInvalid(VerificationLinkError):
    code = "verification_link_invalid"

    def __init__(self) -> None:
        super().__init__(
            _(
                "This confirmation link is not valid. Check that you opened the whole link "
                "from the e-mail, or ask for a new one."
            )
        )


class VerificationLinkExpired(VerificationLinkError):
    code = "verification_link_expired"

    def __init__(self, *, email: str) -> None:
        super().__init__(
            ngettext(
                "This confirmation link has expired: links are valid for %(days)s day. "
                "We can send you a new one.",
                "This confirmation link has expired: links are valid for %(days)s days. "
                "We can send you a new one.",
                settings.EMAIL_VERIFICATION_MAX_AGE_DAYS,
            )
            % {"days": settings.EMAIL_VERIFICATION_MAX_AGE_DAYS},
            extra={"email": email},
        )
        self.email = email


class EmailAlreadyVerified(VerificationLinkError):
    code = "email_already_verified"

    def __init__(self) -> None:
        super().__init__(
            _("This e-mail address is already confirmed. Log in with it and your password.")
        )


# --- Sign-up ------------------------------------------------------------------


@dataclass(frozen=True)
class Signup:
    user: User
    account: Account
    membership: Membership


def signup_create(
    *,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    language: str,
    account_kind: str,
    account_name: str,
    country: str,
    street: str,
    city: str,
    postal_code: str,
    platform: Platform,
    vat_id: str = "",
    company_id: str = "",
) -> Signup:
    """Create a user, their account registered on ``platform`` and their OWNER membership.

    All or nothing: an address already in use (compared without regard to case)
    or a platform closed for new customers raises and creates nothing. The
    password must already have passed the password validators and the
    identifiers must be normalised (the sign-up form does both). On commit the
    user is e-mailed a verification link; until they follow it they cannot log in.
    """
    email = User.objects.normalize_email(email.strip()).lower()
    if language not in dict(settings.LANGUAGES):
        language = settings.LANGUAGE_CODE
    try:
        with transaction.atomic():
            if User.objects.filter(email__iexact=email).exists():
                raise EmailAlreadyRegistered()
            # Re-read under a row lock: a platform closed a moment ago takes nobody new.
            if not Platform.objects.select_for_update().filter(pk=platform.pk, is_active=True):
                raise PlatformClosedForSignup()
            user = User.objects.create_user(
                email,
                password,
                first_name=first_name.strip(),
                last_name=last_name.strip(),
                language=language,
            )
            account = account_create(
                name=account_name.strip() or user.get_full_name() or email,
                email=email,
                country=country,
                kind=account_kind,
                language=language,
                street=street.strip(),
                city=city.strip(),
                postal_code=postal_code.strip(),
                vat_id=vat_id,
                company_id=company_id,
                platforms=[platform],
            )
            membership = membership_create(user=user, account=account, role=Membership.Role.OWNER)
            email_verification_send(user=user)
    except IntegrityError as error:
        # Two sign-ups with one address at once: the unique index decides.
        if "accounts_user_email" in str(error):
            raise EmailAlreadyRegistered() from None
        raise
    return Signup(user=user, account=account, membership=membership)


# --- E-mail verification --------------------------------------------------------


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=EMAIL_VERIFICATION_SALT)


def email_verification_token(*, user: User) -> str:
    # sign_object: URL-safe base64 of the value, so the address (which may even
    # contain "/") is neither cut by the URL nor written in plain text to logs.
    return _signer().sign_object(f"{user.pk}:{user.email}")


def email_verification_url(*, user: User) -> str:
    path = reverse("verify_email", kwargs={"token": email_verification_token(user=user)})
    return settings.SITE_URL.rstrip("/") + path


def email_verification_send(*, user: User) -> None:
    """E-mail ``user`` a fresh verification link, in their language, after commit."""
    email_send_on_commit(
        to=[user.email],
        template="verify_email",
        context={
            "user": user,
            "verify_url": email_verification_url(user=user),
            "max_age_days": settings.EMAIL_VERIFICATION_MAX_AGE_DAYS,
        },
        language=user.language or settings.LANGUAGE_CODE,
    )


def email_verification_user(*, token: str) -> User:
    """The user a verification link is for, if it can still be used.

    Raises VerificationLinkInvalid (tampered, or the address has changed since),
    EmailAlreadyVerified, or VerificationLinkExpired (which carries the address,
    so a new link can be offered). Changes nothing.
    """
    signer = _signer()
    try:
        # First without an age limit: a tampered link is "invalid", even when old.
        value = signer.unsign_object(token)
    except (signing.BadSignature, ValueError):
        raise VerificationLinkInvalid() from None
    if not isinstance(value, str):
        raise VerificationLinkInvalid()
    user_id, _separator, email = value.partition(":")
    user = User.objects.filter(pk=int(user_id) if user_id.isdigit() else 0).first()
    if user is None or user.email != email:
        raise VerificationLinkInvalid()
    if user.email_verified_at is not None:
        raise EmailAlreadyVerified()
    try:
        signer.unsign_object(
            token, max_age=timedelta(days=settings.EMAIL_VERIFICATION_MAX_AGE_DAYS)
        )
    except signing.SignatureExpired:
        raise VerificationLinkExpired(email=user.email) from None
    return user


def email_verify(*, token: str) -> User:
    """Mark the link's user's e-mail address as verified; returns the user.

    Refuses like ``email_verification_user``; a link used a second time is
    EmailAlreadyVerified and changes nothing.
    """
    user = email_verification_user(token=token)
    with transaction.atomic():
        updated = User.objects.filter(pk=user.pk, email_verified_at__isnull=True).update(
            email_verified_at=timezone.now()
        )
        if not updated:  # verified by another click a moment ago
            raise EmailAlreadyVerified()
    user.refresh_from_db(fields=["email_verified_at"])
    return user


def _resend_cache_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"accounts:verify-resend:{digest}"


def email_verification_resend(*, email: str) -> None:
    """Send a new verification link to ``email`` if it belongs to an unverified user.

    Answers nothing either way, so callers cannot tell which addresses exist. At
    most one e-mail per address per VERIFICATION_RESEND_INTERVAL_SECONDS.
    """
    email = email.strip()
    if not email:
        return
    user = User.objects.filter(
        email__iexact=email, email_verified_at__isnull=True, is_active=True
    ).first()
    if user is None:
        return
    # cache.add is atomic: only the first request in the interval wins the slot.
    if not cache.add(_resend_cache_key(email), 1, VERIFICATION_RESEND_INTERVAL_SECONDS):
        return
    email_verification_send(user=user)


# --- Login ------------------------------------------------------------------------


@transaction.atomic
def password_reset_finish(*, user: User) -> User:
    """After a password was set through an e-mailed reset link: let the user back in.

    The failed logins recorded for the address are forgotten (whoever guessed
    at the old password no longer matters, and the lockout page promises that
    resetting the password helps), and an unconfirmed address counts as
    confirmed, since the link proved that the user reads that mailbox.
    """
    from axes.models import AccessAttempt

    # Without regard to case: the admin's login form records the address as typed.
    AccessAttempt.objects.filter(username__iexact=user.email).delete()
    if user.email_verified_at is None:
        User.objects.filter(pk=user.pk, email_verified_at__isnull=True).update(
            email_verified_at=timezone.now()
        )
        user.refresh_from_db(fields=["email_verified_at"])
    return user
