"""How portal views (and later API endpoints) find the account they act for.

Every account-scoped view is wrapped in ``member_required(capability)``: it
resolves the current membership, refuses a role without the capability with
403, and exposes ``request.account`` and ``request.membership``. Views then
look objects up *within* ``request.account`` so that another account's object
is a 404, never a leak.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.permissions import Capability, role_can
from accounts.selectors import membership_chosen, memberships_for_user

View = Callable[..., HttpResponse]


def member_required(capability: Capability) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            # One query for the user's memberships: the navigation (account switcher)
            # reuses the list through request.memberships.
            memberships = list(memberships_for_user(user=request.user))
            membership = membership_chosen(memberships, session=request.session)
            request.memberships = memberships
            if membership is None:
                # Signed in but in no account (e.g. the last one removed them).
                return redirect("home")
            if not role_can(membership.role, capability):
                raise PermissionDenied(capability)
            request.membership = membership
            request.account = membership.account
            return view(request, *args, **kwargs)

        wrapper.required_capability = capability  # type: ignore[attr-defined]
        return wrapper

    return decorator
