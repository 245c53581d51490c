"""Portal pages of the current account: company details, account switching, shops,
billing profiles and platform registrations.

Objects are looked up within ``request.account``: another account's id is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.exceptions import BillingProfileInUse, BillingProfileLabelTaken, ShopNameTaken
from accounts.forms.organisation import (
    BillingProfileForm,
    CompanyForm,
    PlatformRegisterForm,
    ShopForm,
)
from accounts.models import BillingProfile
from accounts.permissions import Capability, role_can
from accounts.portal import member_required
from accounts.selectors import (
    CURRENT_ACCOUNT_SESSION_KEY,
    memberships_for_user,
    registrations_for_account,
)
from accounts.selectors import organisation as selectors
from accounts.services import core as core_services
from accounts.services import organisation as services

# --- Company details ----------------------------------------------------------------


@member_required(Capability.VIEW_ACCOUNT)
def company(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/organisation/company.html",
        {
            "account": request.account,
            "registrations": registrations_for_account(account_id=request.account.pk),
        },
    )


@member_required(Capability.CHANGE_ACCOUNT)
def company_edit(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = CompanyForm(request.POST)
        if form.is_valid():
            services.account_update(account=request.account, **form.cleaned_data)
            messages.success(request, _("The company details have been saved."))
            return redirect("accounts:company")
    else:
        form = CompanyForm(initial=CompanyForm.initial_for(request.account))
    return render(
        request,
        "accounts/organisation/company_edit.html",
        {"account": request.account, "form": form},
    )


# --- Switching the current account ------------------------------------------------------


@require_POST
@login_required
def switch(request: HttpRequest) -> HttpResponse:
    """Act for another of the user's accounts from now on (in this session)."""
    account_id = request.POST.get("account", "")
    membership = (
        memberships_for_user(user=request.user).filter(account_id=account_id).first()
        if account_id.isdigit()
        else None
    )
    if membership is None:
        raise Http404("Not a member of this account")
    request.session[CURRENT_ACCOUNT_SESSION_KEY] = membership.account_id
    messages.info(
        request,
        _("%(account)s is now the account you are working in.")
        % {"account": membership.account.name},
    )
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "home"
    return redirect(next_url)


# --- Shops -------------------------------------------------------------------------------


@member_required(Capability.VIEW_SHOPS)
def shops(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/organisation/shops.html",
        {"platforms": selectors.shops_by_platform(account_id=request.account.pk)},
    )


@member_required(Capability.MANAGE_SHOPS)
def shop_create(request: HttpRequest) -> HttpResponse:
    registrations = registrations_for_account(account_id=request.account.pk)
    form = ShopForm(request.POST or None, registrations=registrations)
    if request.method == "POST" and form.is_valid():
        try:
            shop = services.shop_create(account=request.account, **form.cleaned_data)
        except ShopNameTaken as error:
            form.add_error("name", error.message)
        else:
            messages.success(request, _("The shop “%(name)s” has been added.") % {"name": shop})
            return redirect("accounts:shops")
    return render(
        request,
        "accounts/organisation/shop_form.html",
        {"form": form, "shop": None, "has_platforms": registrations.exists()},
    )


@member_required(Capability.MANAGE_SHOPS)
def shop_edit(request: HttpRequest, shop_id: int) -> HttpResponse:
    shop = selectors.shop_for_account(account_id=request.account.pk, shop_id=shop_id)
    if shop is None:
        raise Http404("No such shop in this account")
    if request.method == "POST":
        form = ShopForm(request.POST)
        if form.is_valid():
            try:
                services.shop_update(account=request.account, shop=shop, **form.cleaned_data)
            except ShopNameTaken as error:
                form.add_error("name", error.message)
            else:
                messages.success(request, _("The shop has been saved."))
                return redirect("accounts:shops")
    else:
        form = ShopForm(initial=ShopForm.initial_for(shop))
    return render(
        request,
        "accounts/organisation/shop_form.html",
        {"form": form, "shop": shop, "has_platforms": True},
    )


# --- Billing profiles -------------------------------------------------------------------


def _billing_profile(request: HttpRequest, billing_profile_id: int) -> BillingProfile:
    return get_object_or_404(BillingProfile, pk=billing_profile_id, account=request.account)


@member_required(Capability.VIEW_BILLING_PROFILES)
def billing_profiles(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/organisation/billing_profiles.html",
        {"profiles": selectors.billing_profiles_for_account(account_id=request.account.pk)},
    )


@member_required(Capability.MANAGE_BILLING_PROFILES)
def billing_profile_create(request: HttpRequest) -> HttpResponse:
    form = BillingProfileForm(
        request.POST or None, initial={"country": request.account.country.code}
    )
    if request.method == "POST" and form.is_valid():
        try:
            profile = services.billing_profile_create(account=request.account, **form.cleaned_data)
        except BillingProfileLabelTaken as error:
            form.add_error("label", error.message)
        else:
            messages.success(
                request, _("The billing profile “%(label)s” has been added.") % {"label": profile}
            )
            return redirect("accounts:billing_profiles")
    return render(
        request, "accounts/organisation/billing_profile_form.html", {"form": form, "profile": None}
    )


@member_required(Capability.MANAGE_BILLING_PROFILES)
def billing_profile_edit(request: HttpRequest, billing_profile_id: int) -> HttpResponse:
    profile = _billing_profile(request, billing_profile_id)
    if request.method == "POST":
        form = BillingProfileForm(request.POST)
        if form.is_valid():
            try:
                services.billing_profile_update(
                    account=request.account, billing_profile=profile, **form.cleaned_data
                )
            except BillingProfileLabelTaken as error:
                form.add_error("label", error.message)
            else:
                messages.success(request, _("The billing profile has been saved."))
                return redirect("accounts:billing_profiles")
    else:
        form = BillingProfileForm(initial=BillingProfileForm.initial_for(profile))
    return render(
        request,
        "accounts/organisation/billing_profile_form.html",
        {"form": form, "profile": profile},
    )


@member_required(Capability.MANAGE_BILLING_PROFILES)
def billing_profile_delete(request: HttpRequest, billing_profile_id: int) -> HttpResponse:
    profile = _billing_profile(request, billing_profile_id)
    if request.method == "POST":
        try:
            services.billing_profile_delete(account=request.account, billing_profile=profile)
        except BillingProfileInUse as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request, _("The billing profile “%(label)s” has been deleted.") % {"label": profile}
            )
        return redirect("accounts:billing_profiles")
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    return render(
        request, "accounts/organisation/billing_profile_delete.html", {"profile": profile}
    )


# --- Platforms -------------------------------------------------------------------------


@member_required(Capability.VIEW_ACCOUNT)
def platforms(request: HttpRequest) -> HttpResponse:
    """The platforms the account buys on; members who may, register it on another one."""
    can_register = role_can(request.membership.role, Capability.MANAGE_PLATFORMS)
    if request.method == "POST" and not can_register:
        raise PermissionDenied(Capability.MANAGE_PLATFORMS)
    available = selectors.platforms_available_to_register(account_id=request.account.pk)
    form = PlatformRegisterForm(request.POST or None, platforms=available) if can_register else None
    if form is not None and request.method == "POST" and form.is_valid():
        platform = form.cleaned_data["platform"]
        core_services.registration_create(account=request.account, platform=platform)
        messages.success(
            request,
            _("Your account is now registered on %(platform)s.") % {"platform": platform.name},
        )
        return redirect("accounts:platforms")
    return render(
        request,
        "accounts/organisation/platforms.html",
        {
            "registrations": registrations_for_account(account_id=request.account.pk),
            "form": form,
            "has_available": available.exists(),
        },
    )
