"""Who acts for an account: roles, removals and e-mailed invitations.

Every write locks the Account row first (``select_for_update``), so changes to
one account's members serialise: two owners removing each other at the same
moment end with one owner, never none. Rules, checked after the lock:

- an account always keeps at least one owner (the last owner cannot be
  removed, leave, or be demoted);
- only an owner may change or remove an owner, or make someone an owner
  (an administrator manages everyone else);
- an invitation goes only to an address that is not yet a member; inviting an
  address again replaces its open invitation.

An invitation link carries a random token; only its SHA-256 is stored.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.exceptions import (
    AlreadyMemberError,
    InvitationEmailMismatch,
    InvitationUnavailable,
    InvitationUserExists,
    LastOwnerError,
    MemberActionNotAllowed,
    MemberNotFound,
    OwnerProtectedError,
)
from accounts.models import Account, Invitation, Membership, User
from accounts.permissions import Capability, role_can
from accounts.selectors.members import (
    InvitationStatus,
    invitation_by_token,
    invitation_status,
    token_hash,
)
from billing_site.mail import email_send_on_commit

Role = Membership.Role


# --- Internal helpers -----------------------------------------------------------


def _account_lock(account_id: int) -> Account:
    """Lock the account row: every change to its members waits for the one before."""
    return Account.objects.select_for_update().get(pk=account_id)


def _actor_membership(*, account: Account, actor: User, manage: bool = True) -> Membership:
    membership = Membership.objects.filter(account=account, user=actor).first()
    if membership is None:
        raise MemberActionNotAllowed(_("You are no longer a member of this account."))
    if manage and not role_can(membership.role, Capability.MANAGE_MEMBERS):
        raise MemberActionNotAllowed(_("Your role does not allow managing members."))
    return membership


def _target_membership(*, account: Account, membership_id: int) -> Membership:
    target = (
        Membership.objects.filter(account=account, pk=membership_id).select_related("user").first()
    )
    if target is None:
        raise MemberNotFound(_("This person is no longer a member of the account."))
    return target


def _owner_count(account: Account) -> int:
    return Membership.objects.filter(account=account, role=Role.OWNER).count()


def _is_member_email(*, account: Account, email: str) -> bool:
    return Membership.objects.filter(account=account, user__email__iexact=email).exists()


def _invitation_locked(*, account: Account, invitation_id: int) -> Invitation:
    invitation = Invitation.objects.select_for_update().filter(account=account, pk=invitation_id)
    found = invitation.first()
    if found is None:
        raise InvitationUnavailable(
            _("This invitation no longer exists."), reason=InvitationStatus.UNKNOWN
        )
    return found


def _refuse_unless_open(invitation: Invitation) -> None:
    status = invitation_status(invitation=invitation)
    if status == InvitationStatus.ACCEPTED:
        raise InvitationUnavailable(
            _("This invitation has already been used."), reason=InvitationStatus.ACCEPTED
        )
    if status == InvitationStatus.REVOKED:
        raise InvitationUnavailable(
            _("This invitation has been revoked."), reason=InvitationStatus.REVOKED
        )
    if status == InvitationStatus.EXPIRED:
        raise InvitationUnavailable(
            _("This invitation has expired."), reason=InvitationStatus.EXPIRED
        )


def _invitation_email_send(*, invitation: Invitation, token: str, inviter: User) -> None:
    """E-mail the link after commit, in the invitee's language if we know them."""
    existing = User.objects.filter(email__iexact=invitation.email).first()
    language = (existing.language if existing else "") or invitation.account.language
    accept_path = reverse("accounts:invitation_accept", kwargs={"token": token})
    email_send_on_commit(
        to=[invitation.email],
        template="invitation",
        language=language,
        context={
            "account_name": invitation.account.name,
            "inviter_name": inviter.get_full_name() or inviter.email,
            "role": invitation.role,
            "role_label": Role(invitation.role).label,
            "accept_url": settings.SITE_URL.rstrip("/") + accept_path,
            "expires_at": invitation.expires_at,
            "max_age_days": settings.INVITATION_MAX_AGE_DAYS,
        },
    )


def _new_token_and_expiry() -> tuple[str, str, datetime]:
    token = secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=settings.INVITATION_MAX_AGE_DAYS)
    return token, token_hash(token), expires_at


# --- Roles and removal ----------------------------------------------------------------


@transaction.atomic
def member_role_change(
    *, account: Account, actor: User, membership_id: int, role: str
) -> Membership:
    """Give a member another role.

    Refuses (changing nothing) to demote the last owner, and lets only owners
    touch an owner's role or hand out the owner role.
    """
    account = _account_lock(account.pk)
    actor_membership = _actor_membership(account=account, actor=actor)
    target = _target_membership(account=account, membership_id=membership_id)
    role = Role(role)
    if actor_membership.role != Role.OWNER:
        if target.role == Role.OWNER:
            raise OwnerProtectedError(_("Only an owner can change the role of an owner."))
        if role == Role.OWNER:
            raise OwnerProtectedError(_("Only an owner can make someone an owner."))
    if target.role == Role.OWNER and role != Role.OWNER and _owner_count(account) <= 1:
        raise LastOwnerError(
            _(
                "%(name)s is the last owner of the account and must stay an owner. "
                "Make someone else an owner first."
            )
            % {"name": target.user}
        )
    if target.role != role:
        target.role = role
        target.save(update_fields=["role"])
    return target


@transaction.atomic
def member_remove(*, account: Account, actor: User, membership_id: int) -> Membership:
    """Remove a member from the account; a member removing themselves leaves it.

    Leaving needs only membership; removing someone else needs the right to
    manage members, and only an owner removes an owner. The last owner can
    never go. Returns the removed membership (no longer in the database).
    """
    account = _account_lock(account.pk)
    target = _target_membership(account=account, membership_id=membership_id)
    leaving = target.user_id == actor.pk
    actor_membership = _actor_membership(account=account, actor=actor, manage=not leaving)
    if not leaving and target.role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise OwnerProtectedError(_("Only an owner can remove an owner."))
    if target.role == Role.OWNER and _owner_count(account) <= 1:
        if leaving:
            raise LastOwnerError(
                _(
                    "You are the last owner of this account, so you cannot leave it. "
                    "Make someone else an owner first."
                )
            )
        raise LastOwnerError(
            _("%(name)s is the last owner of the account and cannot be removed.")
            % {"name": target.user}
        )
    target.delete()
    return target


# --- Invitations -------------------------------------------------------------------------


@transaction.atomic
def invitation_create(*, account: Account, actor: User, email: str, role: str) -> Invitation:
    """Invite ``email`` to the account with ``role`` and e-mail them the link.

    An address that already belongs to a member is refused; an open (or
    expired, unused) invitation to the same address is revoked and replaced.
    """
    account = _account_lock(account.pk)
    actor_membership = _actor_membership(account=account, actor=actor)
    email = email.strip().lower()
    role = Role(role)
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise OwnerProtectedError(_("Only an owner can invite another owner."))
    if _is_member_email(account=account, email=email):
        raise AlreadyMemberError(
            _("%(email)s is already a member of this account.") % {"email": email}
        )
    now = timezone.now()
    # Unused invitations to the same address (open or expired) give way to the new one.
    Invitation.objects.filter(
        account=account, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    token, hashed, expires_at = _new_token_and_expiry()
    invitation = Invitation.objects.create(
        account=account,
        email=email,
        role=role,
        token_hash=hashed,
        invited_by=actor,
        expires_at=expires_at,
    )
    _invitation_email_send(invitation=invitation, token=token, inviter=actor)
    return invitation


@transaction.atomic
def invitation_resend(*, account: Account, actor: User, invitation_id: int) -> Invitation:
    """Send an unused invitation again with a new link and a new expiry; the old link
    stops working."""
    account = _account_lock(account.pk)
    actor_membership = _actor_membership(account=account, actor=actor)
    invitation = _invitation_locked(account=account, invitation_id=invitation_id)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        _refuse_unless_open(invitation)
    if invitation.role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise OwnerProtectedError(_("Only an owner can send an invitation to become an owner."))
    if _is_member_email(account=account, email=invitation.email):
        raise AlreadyMemberError(
            _("%(email)s is already a member of this account.") % {"email": invitation.email}
        )
    token, hashed, expires_at = _new_token_and_expiry()
    invitation.token_hash = hashed
    invitation.expires_at = expires_at
    invitation.invited_by = actor
    invitation.save(update_fields=["token_hash", "expires_at", "invited_by"])
    _invitation_email_send(invitation=invitation, token=token, inviter=actor)
    return invitation


@transaction.atomic
def invitation_revoke(*, account: Account, actor: User, invitation_id: int) -> Invitation:
    """Make an unused invitation's link stop working. Revoking twice is harmless."""
    account = _account_lock(account.pk)
    _actor_membership(account=account, actor=actor)
    invitation = _invitation_locked(account=account, invitation_id=invitation_id)
    if invitation.accepted_at is not None:
        raise InvitationUnavailable(
            _("This invitation has already been accepted; remove the member instead."),
            reason=InvitationStatus.ACCEPTED,
        )
    if invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def _invitation_for_accepting(token: str) -> Invitation:
    """The invitation behind ``token``, its account locked, checked to be open."""
    found = invitation_by_token(token=token)
    if found is None:
        raise InvitationUnavailable(
            _("This invitation link is not valid."), reason=InvitationStatus.UNKNOWN
        )
    _account_lock(found.account_id)
    invitation = Invitation.objects.select_for_update().select_related("account").get(pk=found.pk)
    _refuse_unless_open(invitation)
    return invitation


def _accept(*, invitation: Invitation, user: User) -> Membership:
    if _is_member_email(account=invitation.account, email=user.email):
        raise AlreadyMemberError(
            _("You are already a member of “%(account)s”.") % {"account": invitation.account}
        )
    membership = Membership.objects.create(
        user=user, account=invitation.account, role=invitation.role
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """The signed-in ``user`` joins the account with the invited role.

    Only the addressee may accept (e-mail compared without case); the link is
    single-use. Opening the link proves the address, so it counts as verified.
    """
    invitation = _invitation_for_accepting(token)
    if invitation.email.lower() != user.email.lower():
        raise InvitationEmailMismatch(
            _(
                "This invitation was sent to another e-mail address. Log out and open "
                "the link again to accept it with that address."
            )
        )
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    return _accept(invitation=invitation, user=user)


@transaction.atomic
def invitation_accept_as_new_user(
    *, token: str, first_name: str, last_name: str, password: str, language: str = ""
) -> Membership:
    """Create the invited person's user (verified: the link proves the address) and
    their membership. Refused if a user with that address already exists."""
    invitation = _invitation_for_accepting(token)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise InvitationUserExists(
            _("A user with the address %(email)s already exists. Log in to accept.")
            % {"email": invitation.email}
        )
    user = User.objects.create_user(
        invitation.email,
        password,
        first_name=first_name,
        last_name=last_name,
        language=language,
        email_verified_at=timezone.now(),
    )
    return _accept(invitation=invitation, user=user)


# --- Who may do what to whom (for the templates) ------------------------------------------


# --- Reads (selectors; see the report: they belong in accounts/selectors.py) ---------------
