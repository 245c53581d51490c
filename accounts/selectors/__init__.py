"""Reads of accounts, scoped to what a user may see."""

from __future__ import annotations

from django.contrib.sessions.backends.base import SessionBase
from django.db.models import QuerySet

from accounts.models import Membership, Platform, Registration, User

# The session key holding the account the user currently acts for.
CURRENT_ACCOUNT_SESSION_KEY = "current_account_id"


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("account")
        .order_by("account__name", "account_id")
    )


def current_membership(*, user: User, session: SessionBase) -> Membership | None:
    """The membership of the account chosen in this session, else the user's first one."""
    return membership_chosen(list(memberships_for_user(user=user)), session=session)


def membership_chosen(memberships: list[Membership], *, session: SessionBase) -> Membership | None:
    """Of a user's ``memberships`` (in memberships_for_user order), the one chosen in this
    session, else the first; no query, so a page that already has the list reuses it."""
    chosen = session.get(CURRENT_ACCOUNT_SESSION_KEY)
    if chosen is not None:
        for membership in memberships:
            if membership.account_id == chosen:
                return membership
    return memberships[0] if memberships else None


def registrations_for_account(*, account_id: int) -> QuerySet[Registration]:
    return Registration.objects.filter(account_id=account_id).select_related("platform")


def platforms_open_for_signup() -> QuerySet[Platform]:
    return Platform.objects.filter(is_active=True).order_by("name")
