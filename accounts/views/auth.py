"""Sign-up, e-mail verification, login with an optional second factor, passwords.

The login is two steps for a user with a confirmed django-otp device: the
password step only remembers, in the session, who passed it (and where to go
next) for LOGIN_PENDING_SECONDS; the code step then logs them in. Nobody is
logged in before both have passed.
"""

from __future__ import annotations

import time

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.forms.auth import (
    LoginForm,
    PortalPasswordChangeForm,
    PortalPasswordResetForm,
    PortalSetPasswordForm,
    SignupForm,
    TwoFactorLoginForm,
    VerificationResendForm,
)
from accounts.models import User
from accounts.services.signup import (
    EmailAlreadyRegistered,
    EmailAlreadyVerified,
    PlatformClosedForSignup,
    VerificationLinkError,
    VerificationLinkExpired,
    email_verification_resend,
    email_verification_user,
    email_verify,
    signup_create,
)

# The session key holding who passed the password step and is yet to give a code.
LOGIN_PENDING_SESSION_KEY = "accounts.login_pending"
LOGIN_PENDING_SECONDS = 5 * 60
# The address just signed up with, shown on the "check your e-mail" page.
SIGNUP_EMAIL_SESSION_KEY = "accounts.signup_email"
_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _has_two_factor(user: User) -> bool:
    return django_otp.user_has_device(user, confirmed=True)


# --- Sign-up ------------------------------------------------------------------


@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = signup_create(
                email=data["email"],
                password=data["password1"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                language=get_language() or settings.LANGUAGE_CODE,
                account_kind=data["account_kind"],
                account_name=data["account_name"],
                country=data["country"],
                street=data["street"],
                city=data["city"],
                postal_code=data["postal_code"],
                vat_id=data["vat_id"],
                company_id=data["company_id"],
                platform=data["platform"],
            )
        except EmailAlreadyRegistered as error:
            form.email_taken = True
            form.add_error("email", error.message)
        except PlatformClosedForSignup as error:
            form.add_error("platform", error.message)
        else:
            request.session[SIGNUP_EMAIL_SESSION_KEY] = result.user.email
            return redirect("signup_sent")
    return render(request, "accounts/auth/signup.html", {"form": form})


@require_http_methods(["GET"])
def signup_sent(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/auth/signup_sent.html",
        {
            "email": request.session.get(SIGNUP_EMAIL_SESSION_KEY, ""),
            "max_age_days": settings.EMAIL_VERIFICATION_MAX_AGE_DAYS,
        },
    )


# --- E-mail verification ----------------------------------------------------------


def _verification_refused(request: HttpRequest, error: VerificationLinkError) -> HttpResponse:
    resend_form = None
    if isinstance(error, VerificationLinkExpired):
        resend_form = VerificationResendForm(initial={"email": error.email})
    return render(
        request,
        "accounts/auth/verify_email.html",
        {
            "error": error,
            "already_verified": isinstance(error, EmailAlreadyVerified),
            "resend_form": resend_form,
        },
        status=200 if isinstance(error, EmailAlreadyVerified) else 400,
    )


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link will do; the button POSTs. (Mail scanners that open
    every link would otherwise use it up before the person does.)"""
    if request.method == "GET":
        try:
            user = email_verification_user(token=token)
        except VerificationLinkError as error:
            return _verification_refused(request, error)
        return render(request, "accounts/auth/verify_email.html", {"pending_user": user})
    try:
        user = email_verify(token=token)
    except VerificationLinkError as error:
        return _verification_refused(request, error)
    if _has_two_factor(user):
        # Never skip a second factor: such a user logs in the usual way.
        messages.success(request, _("Thank you, your e-mail address is confirmed. Log in now."))
        return redirect("login")
    auth_login(request, user, backend=_MODEL_BACKEND)
    messages.success(request, _("Thank you, your e-mail address is confirmed. Welcome!"))
    return redirect(settings.LOGIN_REDIRECT_URL)


@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def verify_resend(request: HttpRequest) -> HttpResponse:
    """Always the same answer, so the page does not tell which addresses exist."""
    if request.method == "POST":
        form = VerificationResendForm(request.POST)
        if form.is_valid():
            email = form.cleaned_data["email"]
            email_verification_resend(email=email)
            messages.info(
                request,
                _(
                    "If %(email)s belongs to an account that is waiting for confirmation, "
                    "a new link is on its way. It can take a few minutes to arrive."
                )
                % {"email": email},
            )
            request.session[SIGNUP_EMAIL_SESSION_KEY] = email
            return redirect("signup_sent")
    else:
        form = VerificationResendForm(initial={"email": request.GET.get("email", "")})
    return render(request, "accounts/auth/verify_resend.html", {"form": form})


# --- Login ----------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Password first; a user with two-factor is sent on to the code step."""

    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form: LoginForm) -> HttpResponse:
        user = form.get_user()
        if not _has_two_factor(user):
            return super().form_valid(form)
        self.request.session[LOGIN_PENDING_SESSION_KEY] = {
            "user_id": user.pk,
            "backend": getattr(user, "backend", _MODEL_BACKEND),
            "next": self.get_success_url(),
            "expires_at": time.time() + LOGIN_PENDING_SECONDS,
        }
        return redirect("login_two_factor")


def _pending_login(request: HttpRequest) -> tuple[User, dict] | None:
    """Who passed the password step in this session, if it was recently enough."""
    pending = request.session.get(LOGIN_PENDING_SESSION_KEY)
    if not isinstance(pending, dict) or pending.get("expires_at", 0) < time.time():
        return None
    user = get_user_model().objects.filter(pk=pending.get("user_id"), is_active=True).first()
    if user is None:
        return None
    return user, pending


def _safe_next(request: HttpRequest, url: str) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@sensitive_post_parameters("token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_two_factor(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        request.session.pop(LOGIN_PENDING_SESSION_KEY, None)
        return redirect(settings.LOGIN_REDIRECT_URL)
    found = _pending_login(request)
    if found is None:
        had_pending = request.session.pop(LOGIN_PENDING_SESSION_KEY, None) is not None
        if had_pending:
            messages.warning(
                request,
                _(
                    "Signing in took too long, so we stopped it to keep your account safe. "
                    "Enter your e-mail address and password again."
                ),
            )
        return redirect("login")
    user, pending = found
    form = TwoFactorLoginForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        request.session.pop(LOGIN_PENDING_SESSION_KEY, None)
        auth_login(request, user, backend=pending.get("backend") or _MODEL_BACKEND)
        django_otp.login(request, form.device)
        return redirect(_safe_next(request, pending.get("next", "")))
    return render(request, "accounts/auth/login_two_factor.html", {"form": form})


# --- Passwords ------------------------------------------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PortalPasswordResetForm
    template_name = "registration/password_reset_form.html"
    # PortalPasswordResetForm.send_mail renders templates/emails/password_reset_*.txt
    # in the user's language; these names only document that.
    subject_template_name = "emails/password_reset_subject.txt"
    email_template_name = "emails/password_reset_body.txt"
    success_url = reverse_lazy("password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = PortalSetPasswordForm
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django keeps this session signed in (update_session_auth_hash); every other
    session of the user no longer matches the password hash and is signed out."""

    form_class = PortalPasswordChangeForm
    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("password_change_done")
