"""Portal pages for the account's members and invitations, and the invitation link.

The rules (last owner, owners protected from administrators, no duplicate
members) live in accounts.services.members; these views turn its errors into
messages or form errors. Objects are looked up within ``request.account``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from accounts import permissions
from accounts.exceptions import (
    AlreadyMemberError,
    InvitationUnavailable,
    OwnerProtectedError,
)
from accounts.forms.members import InvitationForm, InvitationSignupForm, MemberRoleForm
from accounts.models import Invitation, Membership, User
from accounts.permissions import Capability, role_can
from accounts.portal import member_required
from accounts.selectors import CURRENT_ACCOUNT_SESSION_KEY
from accounts.selectors import members as selectors
from accounts.services import members as services
from billing_site.exceptions import ApplicationError

Role = Membership.Role

# A user created from an invitation logs in with a password: the model backend
# (the first backend, django-axes, only guards authenticate()).
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _post_only(request: HttpRequest) -> HttpResponse | None:
    """405 for anything but POST, checked after the object lookup so that another
    account's object is a 404 whatever the method."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


def _invitation_form(request: HttpRequest, data: object = None) -> InvitationForm:
    return InvitationForm(
        data,
        roles=Role.choices,
        offered=permissions.member_assignable_roles(actor_role=request.membership.role),
    )


def _members_page(
    request: HttpRequest, invite_form: InvitationForm | None = None, status: int = 200
) -> HttpResponse:
    can_manage = role_can(request.membership.role, Capability.MANAGE_MEMBERS)
    if can_manage and invite_form is None:
        invite_form = _invitation_form(request)
    return render(
        request,
        "accounts/members/members.html",
        {
            "rows": selectors.member_rows(
                account_id=request.account.pk, actor_membership=request.membership
            ),
            "invitations": selectors.invitations_unused_for_account(account_id=request.account.pk),
            "invite_form": invite_form if can_manage else None,
            "assignable_roles": permissions.member_assignable_roles(
                actor_role=request.membership.role
            ),
            "invitation_max_age_days": settings.INVITATION_MAX_AGE_DAYS,
        },
        status=status,
    )


@member_required(Capability.VIEW_MEMBERS)
def members(request: HttpRequest) -> HttpResponse:
    return _members_page(request)


@member_required(Capability.MANAGE_MEMBERS)
def member_invite(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("accounts:members")
    form = _invitation_form(request, request.POST)
    if form.is_valid():
        try:
            invitation = services.invitation_create(
                account=request.account, actor=request.user, **form.cleaned_data
            )
        except AlreadyMemberError as error:
            form.add_error("email", error.message)
        except OwnerProtectedError as error:
            form.add_error("role", error.message)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                _("An invitation has been sent to %(email)s.") % {"email": invitation.email},
            )
            return redirect("accounts:members")
    return _members_page(request, invite_form=form, status=400)


@member_required(Capability.MANAGE_MEMBERS)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership, pk=membership_id, account=request.account)
    if refused := _post_only(request):
        return refused
    form = MemberRoleForm(request.POST, roles=Role.choices)
    if not form.is_valid():
        messages.error(request, _("Choose one of the roles offered."))
        return redirect("accounts:members")
    try:
        changed = services.member_role_change(
            account=request.account,
            actor=request.user,
            membership_id=membership.pk,
            role=form.cleaned_data["role"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(name)s is now: %(role)s.")
            % {"name": changed.user, "role": changed.get_role_display()},
        )
    return redirect("accounts:members")


# Leaving the account needs only membership, every role can see the members;
# removing someone else needs MANAGE_MEMBERS (checked below and in the service).
@member_required(Capability.VIEW_MEMBERS)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, account=request.account
    )
    leaving = membership.user_id == request.user.pk
    if not leaving and not role_can(request.membership.role, Capability.MANAGE_MEMBERS):
        raise PermissionDenied(Capability.MANAGE_MEMBERS)
    if request.method == "POST":
        try:
            services.member_remove(
                account=request.account, actor=request.user, membership_id=membership.pk
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("accounts:members")
        if leaving:
            request.session.pop(CURRENT_ACCOUNT_SESSION_KEY, None)
            messages.success(
                request,
                _("You have left the account “%(account)s”.") % {"account": request.account.name},
            )
            return redirect("home")
        messages.success(
            request,
            _("%(name)s has been removed from the account.") % {"name": membership.user},
        )
        return redirect("accounts:members")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    return render(
        request,
        "accounts/members/member_remove.html",
        {"membership": membership, "leaving": leaving},
    )


def _invitation(request: HttpRequest, invitation_id: int) -> Invitation:
    return get_object_or_404(Invitation, pk=invitation_id, account=request.account)


@member_required(Capability.MANAGE_MEMBERS)
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = _invitation(request, invitation_id)
    if refused := _post_only(request):
        return refused
    try:
        services.invitation_revoke(
            account=request.account, actor=request.user, invitation_id=invitation.pk
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("The invitation for %(email)s has been revoked; its link no longer works.")
            % {"email": invitation.email},
        )
    return redirect("accounts:members")


@member_required(Capability.MANAGE_MEMBERS)
def invitation_resend(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = _invitation(request, invitation_id)
    if refused := _post_only(request):
        return refused
    try:
        services.invitation_resend(
            account=request.account, actor=request.user, invitation_id=invitation.pk
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("The invitation has been sent to %(email)s again with a new link.")
            % {"email": invitation.email},
        )
    return redirect("accounts:members")


# --- The e-mailed link ------------------------------------------------------------------


def _unavailable(request: HttpRequest, invitation: Invitation | None, reason: str):
    return render(
        request,
        "accounts/members/invitation_unavailable.html",
        {"invitation": invitation, "reason": reason},
        status=404 if reason == selectors.InvitationStatus.UNKNOWN else 410,
    )


def _supported_language(code: str | None) -> str:
    return code if code in dict(settings.LANGUAGES) else ""


def _joined(request: HttpRequest, membership: Membership) -> HttpResponse:
    request.session[CURRENT_ACCOUNT_SESSION_KEY] = membership.account_id
    messages.success(
        request,
        _("You have joined %(account)s as %(role)s.")
        % {"account": membership.account.name, "role": membership.get_role_display()},
    )
    return redirect("home")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Anyone with the link: the addressee joins (signing in or signing up first)."""
    invitation = selectors.invitation_by_token(token=token)
    status = selectors.invitation_status(invitation=invitation)
    if status != selectors.InvitationStatus.OPEN:
        return _unavailable(request, invitation, status)
    context = {"invitation": invitation}

    if request.user.is_authenticated:
        if request.user.email.lower() != invitation.email.lower():
            return render(request, "accounts/members/invitation_mismatch.html", context, status=403)
        if request.method == "POST":
            try:
                membership = services.invitation_accept(token=token, user=request.user)
            except InvitationUnavailable as error:
                return _unavailable(request, invitation, error.reason)
            except ApplicationError as error:
                messages.error(request, error.message)
                return redirect("home")
            return _joined(request, membership)
        return render(request, "accounts/members/invitation_accept.html", context)

    if User.objects.filter(email__iexact=invitation.email).exists():
        if request.method == "POST":
            return redirect_to_login(request.get_full_path())
        return render(request, "accounts/members/invitation_login.html", context)

    form = InvitationSignupForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invitation_accept_as_new_user(
                token=token,
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                password=form.cleaned_data["password1"],
                language=_supported_language(get_language()),
            )
        except InvitationUnavailable as error:
            return _unavailable(request, invitation, error.reason)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            login(request, membership.user, backend=MODEL_BACKEND)
            return _joined(request, membership)
    return render(request, "accounts/members/invitation_signup.html", {**context, "form": form})
