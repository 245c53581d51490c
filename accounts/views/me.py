"""The signed-in user's own pages: profile, two-factor sign-in, backup codes, sessions.

These are about the person, not an account: ``login_required`` only, no
capability, and they work for staff (who set up their authenticator here before
the admin lets them in). Nothing here is cached by the browser.
"""

from __future__ import annotations

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import exceptions
from accounts.forms.me import PasswordConfirmForm, ProfileForm, TotpConfirmForm
from accounts.selectors import security as security_selectors
from accounts.services import security
from billing_site.exceptions import ApplicationError

# Fresh backup codes wait here between the POST that made them and the page that
# shows them, which takes them out: they are shown once, and a reload does not repeat them.
BACKUP_CODES_SESSION_KEY = "me_backup_codes_once"


def _keep_codes_for_one_showing(request: HttpRequest, codes: list[str]) -> None:
    request.session[BACKUP_CODES_SESSION_KEY] = codes


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                security.user_profile_update(user=user, **form.cleaned_data)
            except ApplicationError as error:
                form.add_error("language", error.message)
            else:
                language = form.cleaned_data["language"]
                # Switch now: this response's message, and this browser from here on
                # (the language cookie is what the language switch in the header sets).
                translation.activate(language)
                messages.success(request, _("Your profile is saved."))
                response = redirect("me:profile")
                response.set_cookie(
                    settings.LANGUAGE_COOKIE_NAME,
                    language,
                    max_age=settings.LANGUAGE_COOKIE_AGE,
                    path=settings.LANGUAGE_COOKIE_PATH,
                    domain=settings.LANGUAGE_COOKIE_DOMAIN,
                    secure=settings.LANGUAGE_COOKIE_SECURE,
                    httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                    samesite=settings.LANGUAGE_COOKIE_SAMESITE,
                )
                return response
    else:
        form = ProfileForm(
            initial={
                "first_name": user.first_name,
                "last_name": user.last_name,
                "language": user.language or translation.get_language(),
            }
        )
    return render(request, "me/profile.html", {"form": form})


@never_cache
@login_required
def security_overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "me/security.html",
        {
            "two_factor": security_selectors.two_factor_status(user=request.user),
            "sessions": security_selectors.sessions_for_user(
                user=request.user, current_session_key=request.session.session_key
            ),
        },
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def totp_setup(request: HttpRequest) -> HttpResponse:
    try:
        device = security.totp_device_start(user=request.user)
    except exceptions.TwoFactorAlreadyEnabled as error:
        messages.info(request, error.message)
        return redirect("me:security")

    form = TotpConfirmForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            enabled = security.totp_device_confirm(
                user=request.user, token=form.cleaned_data["token"]
            )
        except exceptions.TwoFactorAlreadyEnabled as error:
            messages.info(request, error.message)
            return redirect("me:security")
        except exceptions.SecurityError as error:
            form.add_error("token", error.message)
        else:
            # This browser has just proved the second factor.
            django_otp.login(request, enabled.device)
            _keep_codes_for_one_showing(request, enabled.backup_codes)
            messages.success(request, _("Two-factor sign-in is on."))
            return redirect("me:backup_codes")

    return render(
        request,
        "me/totp_setup.html",
        {"form": form, "provisioning": security_selectors.totp_provisioning(device=device)},
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def backup_codes(request: HttpRequest) -> HttpResponse:
    """GET shows codes made just now (once), else how many are left and the form to make
    new ones; POST makes new ones after the password is re-entered."""
    if request.method == "POST":
        form = PasswordConfirmForm(request.POST)
        if form.is_valid():
            try:
                codes = security.backup_codes_regenerate(
                    user=request.user, password=form.cleaned_data["password"]
                )
            except exceptions.WrongPassword as error:
                form.add_error("password", error.message)
            except exceptions.TwoFactorNotEnabled as error:
                messages.error(request, error.message)
                return redirect("me:security")
            else:
                _keep_codes_for_one_showing(request, codes)
                messages.success(
                    request, _("New backup codes are ready. The old ones no longer work.")
                )
                return redirect("me:backup_codes")
    else:
        form = PasswordConfirmForm()

    fresh_codes = request.session.pop(BACKUP_CODES_SESSION_KEY, None)
    two_factor = security_selectors.two_factor_status(user=request.user)
    if not two_factor.enabled and not fresh_codes:
        messages.info(request, _("Backup codes come with two-factor sign-in; set it up first."))
        return redirect("me:security")
    return render(
        request,
        "me/backup_codes.html",
        {"form": form, "fresh_codes": fresh_codes, "two_factor": two_factor},
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def totp_disable(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PasswordConfirmForm(request.POST)
        if form.is_valid():
            try:
                security.two_factor_disable(
                    user=request.user, password=form.cleaned_data["password"]
                )
            except exceptions.WrongPassword as error:
                form.add_error("password", error.message)
            except exceptions.TwoFactorNotEnabled as error:
                messages.info(request, error.message)
                return redirect("me:security")
            else:
                messages.success(
                    request, _("Two-factor sign-in is off. Your backup codes no longer work.")
                )
                return redirect("me:security")
    else:
        if not security_selectors.two_factor_status(user=request.user).enabled:
            messages.info(request, exceptions.TwoFactorNotEnabled().message)
            return redirect("me:security")
        form = PasswordConfirmForm()
    return render(request, "me/totp_disable.html", {"form": form})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def session_end(request: HttpRequest, session_key: str) -> HttpResponse:
    """End one of the user's sessions. ``session_key`` in the URL is the session's public
    reference (security_selectors.session_reference), never the secret key itself: URLs end up in
    logs. Anything that is not one of this user's live sessions is a 404.

    GET asks for confirmation; POST ends it. Ending this browser's own session logs out.
    """
    session = security_selectors.session_for_user_by_reference(
        user=request.user,
        reference=session_key,
        current_session_key=request.session.session_key,
    )
    if session is None:
        raise Http404
    if request.method == "GET":
        return render(request, "me/session_end.html", {"session": session})

    if session.is_current:
        logout(request)
        messages.info(request, _("You have been logged out."))
        return redirect(settings.LOGIN_URL)
    try:
        security.session_end(user=request.user, session_key=session.session_key)
    except exceptions.SessionNotFound as error:
        messages.info(request, error.message)
    else:
        messages.success(request, _("That session has ended; that browser is logged out."))
    return redirect("me:security")


@never_cache
@login_required
@require_POST
def sessions_end_others(request: HttpRequest) -> HttpResponse:
    ended = security.sessions_end_others(
        user=request.user, current_session_key=request.session.session_key
    )
    if ended:
        messages.success(request, _("Every other session has ended."))
    else:
        messages.info(request, _("There were no other sessions to end."))
    return redirect("me:security")
