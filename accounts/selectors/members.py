"""Reads about an account's members and invitations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Invitation, Membership
from accounts.permissions import member_can_manage


class InvitationStatus:
    OPEN = "open"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def members_for_account(*, account_id: int) -> QuerySet[Membership]:
    """Members with their user and whether they log in with a second factor."""
    return (
        Membership.objects.filter(account_id=account_id)
        .select_related("user")
        .annotate(
            two_factor=Exists(TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True))
        )
        .order_by("user__last_name", "user__first_name", "user__email")
    )


def invitations_unused_for_account(*, account_id: int) -> QuerySet[Invitation]:
    """Invitations neither accepted nor revoked (expired ones included, to resend)."""
    return Invitation.objects.filter(
        account_id=account_id, accepted_at__isnull=True, revoked_at__isnull=True
    ).order_by("-created_at")


def invitation_by_token(*, token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("account", "invited_by")
        .filter(token_hash=token_hash(token))
        .first()
    )


def invitation_status(*, invitation: Invitation | None) -> str:
    if invitation is None:
        return InvitationStatus.UNKNOWN
    if invitation.accepted_at is not None:
        return InvitationStatus.ACCEPTED
    if invitation.revoked_at is not None:
        return InvitationStatus.REVOKED
    if invitation.expires_at <= timezone.now():
        return InvitationStatus.EXPIRED
    return InvitationStatus.OPEN


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    is_self: bool
    can_manage: bool


def member_rows(*, account_id: int, actor_membership: Membership) -> list[MemberRow]:
    """The members list as the acting member sees it: which rows they may change."""
    return [
        MemberRow(
            membership=membership,
            is_self=membership.user_id == actor_membership.user_id,
            can_manage=member_can_manage(
                actor_role=actor_membership.role, target_role=membership.role
            ),
        )
        for membership in members_for_account(account_id=account_id)
    ]
