from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.permissions import ROLE_CAPABILITIES
from accounts.selectors import membership_chosen, memberships_for_user


def site(request: HttpRequest) -> dict:
    return {"SITE_NAME": settings.SITE_NAME}


def portal(request: HttpRequest) -> dict:
    """The account switcher and the navigation: memberships, current one, its capabilities."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def load() -> dict:
        # member_required has already read them for a portal page; others read them here.
        memberships = getattr(request, "memberships", None)
        if memberships is None:
            memberships = list(memberships_for_user(user=user))
        current = getattr(request, "membership", None) or membership_chosen(
            memberships, session=request.session
        )
        return {
            "memberships": memberships,
            "current": current,
            "can": {str(c): True for c in ROLE_CAPABILITIES.get(current.role, ())}
            if current
            else {},
        }

    # Evaluated only when a template uses it (the login page never does).
    return {"portal": SimpleLazyObject(load)}
