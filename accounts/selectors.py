"""Reads of accounts, scoped to what a user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Membership, User


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("account")
        .order_by("account__name", "account_id")
    )
