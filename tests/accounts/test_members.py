"""Members and invitations: who may join, change roles, remove and leave, and the
rules that always hold (an account keeps an owner; only owners touch owners)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.exceptions import LastOwnerError, MemberActionNotAllowed, MemberNotFound
from accounts.models import Invitation, Membership, User
from accounts.selectors import CURRENT_ACCOUNT_SESSION_KEY
from accounts.services import members as member_services
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MEMBERS = reverse("accounts:members")
INVITE = reverse("accounts:member_invite")
LINK = re.compile(r"https?://\S+/account/invitations/accept/([^/\s]+)/")


@pytest.fixture
def owner(account, member_of):
    return member_of(account, "owner", first_name="Olga", last_name="Owner")


@pytest.fixture
def send_invitation(client_for, mailoutbox, django_capture_on_commit_callbacks):
    """send_invitation(inviter, email, role) -> (response, path of the e-mailed link)."""

    def send(inviter: User, email: str, role: str = "billing"):
        client = client_for(inviter)
        sent_before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(INVITE, {"email": email, "role": role})
        if len(mailoutbox) == sent_before:
            return response, None
        match = LINK.search(mailoutbox[-1].body)
        assert match, mailoutbox[-1].body
        return response, reverse("accounts:invitation_accept", kwargs={"token": match[1]})

    return send


def html(response) -> str:
    return response.content.decode()


# --- The members page ----------------------------------------------------------------


def test_members_page_lists_members_with_role_since_and_two_factor(client_for, owner, member_of):
    accountant = member_of(owner.account, "accountant", first_name="Adam", last_name="Counter")
    TOTPDevice.objects.create(user=accountant.user, name="phone", confirmed=True)

    page = html(client_for(owner.user).get(MEMBERS))

    assert "Olga Owner" in page
    assert owner.user.email in page
    assert "Adam Counter" in page
    assert accountant.user.email in page
    assert "Accountant" in page
    row = page[page.index("Adam Counter") : page.index("</tr>", page.index("Adam Counter"))]
    assert ">On<" in row
    owner_row = page[page.index("Olga Owner") : page.index("</tr>", page.index("Olga Owner"))]
    assert ">Off<" in owner_row


def test_members_page_lists_open_invitations_with_role_and_expiry(
    client_for, owner, send_invitation
):
    send_invitation(owner.user, "new.person@example.com", "technical")

    page = html(client_for(owner.user).get(MEMBERS))

    invitations = page[page.index("Open invitations") :]
    assert "new.person@example.com" in invitations
    assert "Technical" in invitations
    assert "Send again" in invitations
    assert "Revoke" in invitations


def test_accountant_sees_members_without_forms_and_gets_403_on_every_change(
    client_for, owner, member_of, send_invitation
):
    send_invitation(owner.user, "someone@example.com")
    invitation = Invitation.objects.get()
    accountant = member_of(owner.account, "accountant")
    client = client_for(accountant.user)

    page = html(client.get(MEMBERS))
    refused = [
        client.post(INVITE, {"email": "x@example.com", "role": "billing"}),
        client.post(reverse("accounts:member_role", args=[owner.pk]), {"role": "billing"}),
        client.get(reverse("accounts:member_remove", args=[owner.pk])),
        client.post(reverse("accounts:member_remove", args=[owner.pk])),
        client.post(reverse("accounts:invitation_revoke", args=[invitation.pk])),
        client.post(reverse("accounts:invitation_resend", args=[invitation.pk])),
    ]

    assert owner.user.email in page
    assert "Invite someone" not in page
    assert "Change role" not in page
    assert "Revoke" not in page
    assert [response.status_code for response in refused] == [403] * 6
    assert Invitation.objects.count() == 1
    assert Invitation.objects.get().revoked_at is None
    assert Membership.objects.get(pk=owner.pk).role == "owner"


# --- Inviting ----------------------------------------------------------------


def test_invitation_email_carries_a_link_and_only_the_tokens_hash_is_stored(
    owner, send_invitation, mailoutbox
):
    response, link = send_invitation(owner.user, "New.Person@Example.com", "billing")

    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "new.person@example.com"
    assert invitation.role == "billing"
    assert mailoutbox[-1].to == ["new.person@example.com"]
    assert owner.account.name in mailoutbox[-1].subject
    token = link.rstrip("/").rsplit("/", 1)[-1]
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in invitation.token_hash
    expected_expiry = timezone.now() + timedelta(days=7)
    assert abs((invitation.expires_at - expected_expiry).total_seconds()) < 60


def test_existing_member_cannot_be_invited(client_for, owner, member_of, send_invitation):
    member = member_of(owner.account, "billing", email="jana@example.com")

    response, link = send_invitation(owner.user, "JANA@example.com")

    assert response.status_code == 400
    assert link is None
    assert Invitation.objects.count() == 0
    page = html(response)
    assert "jana@example.com is already a member of this account." in page
    assert re.search(r'aria-describedby="[^"]*\bid_email_error\b', page)
    assert 'id="id_email_error"' in page
    assert Membership.objects.filter(pk=member.pk).exists()


def test_reinviting_an_address_replaces_its_open_invitation(client, owner, send_invitation):
    _, first_link = send_invitation(owner.user, "new@example.com", "billing")
    _, second_link = send_invitation(owner.user, "new@example.com", "technical")
    client.logout()

    old = client.get(first_link)
    new = client.get(second_link)

    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 1
    assert Invitation.objects.get(revoked_at__isnull=True).role == "technical"
    assert old.status_code == 410
    assert "This invitation has been revoked" in html(old)
    assert new.status_code == 200


def test_admin_cannot_invite_an_owner(owner, member_of, send_invitation):
    admin = member_of(owner.account, "admin")

    response, link = send_invitation(admin.user, "boss@example.com", "owner")

    assert response.status_code == 400
    assert link is None
    assert "Only an owner can invite another owner." in html(response)
    assert Invitation.objects.count() == 0


def test_owner_can_invite_another_owner(owner, send_invitation):
    response, link = send_invitation(owner.user, "partner@example.com", "owner")

    assert response.status_code == 302
    assert link
    assert Invitation.objects.get().role == "owner"


def test_resending_sends_a_new_link_with_a_new_expiry_and_the_old_link_stops_working(
    client_for, owner, send_invitation, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(timezone.now() - timedelta(days=3)):
        _, old_link = send_invitation(owner.user, "late@example.com")
    invitation = Invitation.objects.get()
    old_expiry = invitation.expires_at
    client = client_for(owner.user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:invitation_resend", args=[invitation.pk]))

    assert response.status_code == 302
    new_link = reverse(
        "accounts:invitation_accept", kwargs={"token": LINK.search(mailoutbox[-1].body)[1]}
    )
    assert new_link != old_link
    invitation.refresh_from_db()
    assert invitation.expires_at > old_expiry + timedelta(days=2)
    client.logout()
    assert client.get(old_link).status_code == 404
    assert client.get(new_link).status_code == 200


def test_revoking_an_invitation_makes_its_link_say_so_and_change_nothing(
    client, client_for, owner, send_invitation
):
    _, link = send_invitation(owner.user, "gone@example.com")
    invitation = Invitation.objects.get()
    client_for(owner.user).post(reverse("accounts:invitation_revoke", args=[invitation.pk]))
    client.logout()

    shown = client.get(link)
    posted = client.post(
        link,
        {"first_name": "G", "last_name": "One", "password1": "x9!Pq7-zz", "password2": "x9!Pq7-zz"},
    )

    assert shown.status_code == 410
    assert "This invitation has been revoked" in html(shown)
    assert posted.status_code == 410
    assert not User.objects.filter(email="gone@example.com").exists()
    assert Membership.objects.filter(account=owner.account).count() == 1


# --- Accepting ----------------------------------------------------------------


def signup_data(**overrides: str) -> dict[str, str]:
    return {
        "first_name": "Nina",
        "last_name": "Novak",
        "password1": "plum-orchard-77",
        "password2": "plum-orchard-77",
        **overrides,
    }


def test_new_user_joins_through_the_invitation_link(owner, send_invitation):
    _, link = send_invitation(owner.user, "nina@example.com", "technical")
    visitor = Client()

    form = visitor.get(link)
    response = visitor.post(link, signup_data(), follow=True)

    assert form.status_code == 200
    assert "Create my login and join" in html(form)
    user = User.objects.get(email="nina@example.com")
    assert user.email_verified
    assert user.get_full_name() == "Nina Novak"
    assert user.check_password("plum-orchard-77")
    membership = Membership.objects.get(user=user)
    assert (membership.account, membership.role) == (owner.account, "technical")
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == user
    assert invitation.accepted_at is not None
    # Logged in, working in the new account.
    assert response.redirect_chain[-1] == ("/", 302)
    assert f"You have joined {owner.account.name} as Technical." in html(response)
    assert visitor.session[CURRENT_ACCOUNT_SESSION_KEY] == owner.account.pk


def test_signup_from_an_invitation_refuses_differing_passwords_and_creates_nothing(
    owner, send_invitation
):
    _, link = send_invitation(owner.user, "nina@example.com")

    response = Client().post(link, signup_data(password2="plum-orchard-78"))

    assert response.status_code == 200
    assert "The two passwords differ" in html(response)
    assert not User.objects.filter(email="nina@example.com").exists()
    assert Invitation.objects.get().accepted_at is None


def test_existing_user_is_asked_to_log_in_and_then_accepts(owner, send_invitation):
    elsewhere = MembershipFactory(user__email="eva@example.com", role="owner")
    _, link = send_invitation(owner.user, "Eva@Example.com", "accountant")
    visitor = Client()

    anonymous = visitor.get(link)
    visitor.force_login(elsewhere.user)
    confirm = visitor.get(link)
    nothing_yet = Membership.objects.filter(user=elsewhere.user).count()
    accepted = visitor.post(link)

    assert anonymous.status_code == 200
    assert f'href="/login/?next={quote(link)}"' in html(anonymous)
    assert "Log in to accept the invitation" in html(anonymous)
    assert confirm.status_code == 200
    assert "Join " + owner.account.name in html(confirm)
    assert nothing_yet == 1
    assert accepted.status_code == 302
    assert accepted["Location"] == "/"
    assert Membership.objects.get(user=elsewhere.user, account=owner.account).role == "accountant"
    # The new account is now the current one: /account/ shows it.
    assert owner.account.name in html(visitor.get(reverse("accounts:company")))


def test_existing_user_logs_in_through_the_login_page_and_returns_to_the_link(
    owner, send_invitation
):
    UserFactory(email="eva@example.com")
    _, link = send_invitation(owner.user, "eva@example.com")
    visitor = Client()

    response = visitor.post(
        "/login/", {"username": "eva@example.com", "password": PASSWORD, "next": link}
    )

    assert response.status_code == 302
    assert response["Location"] == link


def test_signed_in_user_with_another_email_is_told_to_log_out(client_for, owner, send_invitation):
    _, link = send_invitation(owner.user, "invitee@example.com")
    stranger = client_for(UserFactory(email="other@example.com"))

    shown = stranger.get(link)
    posted = stranger.post(link)

    assert shown.status_code == 403
    assert "log out and open the link from the e-mail again" in html(shown)
    assert posted.status_code == 403
    assert Invitation.objects.get().accepted_at is None
    assert Membership.objects.filter(account=owner.account).count() == 1


def test_expired_invitation_link_changes_nothing(owner, send_invitation):
    _, link = send_invitation(owner.user, "slow@example.com")
    visitor = Client()

    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        shown = visitor.get(link)
        posted = visitor.post(link, signup_data())

    assert shown.status_code == 410
    assert "This invitation has expired" in html(shown)
    assert posted.status_code == 410
    assert not User.objects.filter(email="slow@example.com").exists()
    assert Invitation.objects.get().accepted_at is None


def test_invitation_link_still_works_just_before_it_expires(owner, send_invitation):
    _, link = send_invitation(owner.user, "just@example.com")

    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        response = Client().post(link, signup_data())

    assert response.status_code == 302
    assert User.objects.filter(email="just@example.com").exists()


def test_invitation_link_cannot_be_used_twice(owner, send_invitation):
    _, link = send_invitation(owner.user, "twice@example.com")
    first = Client()
    first.post(link, signup_data())
    second = Client()

    shown = second.get(link)
    posted = second.post(link, signup_data(first_name="Mallory"))

    assert shown.status_code == 410
    assert "This invitation has already been used" in html(shown)
    assert posted.status_code == 410
    assert User.objects.get(email="twice@example.com").first_name == "Nina"
    assert Membership.objects.filter(account=owner.account).count() == 2


def test_unknown_invitation_link_is_not_found(client):
    response = client.get(reverse("accounts:invitation_accept", kwargs={"token": "nonsense"}))

    assert response.status_code == 404
    assert "This invitation link is not valid" in html(response)


# --- Roles ----------------------------------------------------------------


def role_change(client, membership: Membership, role: str):
    return client.post(
        reverse("accounts:member_role", args=[membership.pk]), {"role": role}, follow=True
    )


def test_owner_changes_a_members_role(client_for, owner, member_of):
    member = member_of(owner.account, "accountant")

    response = role_change(client_for(owner.user), member, "billing")

    assert Membership.objects.get(pk=member.pk).role == "billing"
    assert "is now: Billing" in html(response)


def test_last_owner_cannot_be_demoted(client_for, owner):
    response = role_change(client_for(owner.user), owner, "admin")

    assert Membership.objects.get(pk=owner.pk).role == "owner"
    assert "is the last owner of the account and must stay an owner" in html(response)


def test_an_owner_can_step_down_while_another_owner_remains(client_for, owner, member_of):
    member_of(owner.account, "owner")

    role_change(client_for(owner.user), owner, "admin")

    assert Membership.objects.get(pk=owner.pk).role == "admin"


def test_admin_cannot_change_an_owners_role_or_make_anyone_an_owner(client_for, owner, member_of):
    admin = member_of(owner.account, "admin")
    billing = member_of(owner.account, "billing")
    client = client_for(admin.user)

    demote = role_change(client, owner, "billing")
    promote = role_change(client, billing, "owner")
    promote_self = role_change(client, admin, "owner")

    assert "Only an owner can change the role of an owner." in html(demote)
    assert "Only an owner can make someone an owner." in html(promote)
    assert "Only an owner can make someone an owner." in html(promote_self)
    roles = dict(Membership.objects.values_list("pk", "role"))
    assert roles == {owner.pk: "owner", admin.pk: "admin", billing.pk: "billing"}


def test_admin_manages_members_who_are_not_owners(client_for, owner, member_of):
    admin = member_of(owner.account, "admin")
    billing = member_of(owner.account, "billing")

    role_change(client_for(admin.user), billing, "technical")

    assert Membership.objects.get(pk=billing.pk).role == "technical"


def test_admin_does_not_get_the_owner_role_offered(client_for, owner, member_of):
    admin = member_of(owner.account, "admin")
    member_of(owner.account, "billing")

    page = html(client_for(admin.user).get(MEMBERS))

    assert 'value="owner"' not in page
    # An owner's row has no role form and no remove button for an admin.
    assert reverse("accounts:member_role", args=[owner.pk]) not in page
    assert reverse("accounts:member_remove", args=[owner.pk]) not in page


# --- Removing and leaving ----------------------------------------------------------------


def test_owner_removes_a_member_after_confirming(client_for, owner, member_of):
    member = member_of(owner.account, "technical", email="tom@example.com")
    client = client_for(owner.user)
    url = reverse("accounts:member_remove", args=[member.pk])

    confirm = client.get(url)
    still_there = Membership.objects.filter(pk=member.pk).exists()
    removed = client.post(url, follow=True)

    assert confirm.status_code == 200
    assert "Remove the member" in html(confirm)
    assert still_there
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert "has been removed from the account" in html(removed)


def test_last_owner_cannot_be_removed(client_for, owner, member_of):
    admin = member_of(owner.account, "admin")
    client = client_for(admin.user)

    response = client.post(reverse("accounts:member_remove", args=[owner.pk]), follow=True)

    assert "Only an owner can remove an owner." in html(response)
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_last_owner_cannot_leave(client_for, owner, member_of):
    member_of(owner.account, "admin")
    client = client_for(owner.user)

    response = client.post(reverse("accounts:member_remove", args=[owner.pk]), follow=True)

    assert "You are the last owner of this account, so you cannot leave it." in html(response)
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_last_owner_cannot_be_removed_by_the_service_either(owner):
    with pytest.raises(LastOwnerError):
        member_services.member_remove(
            account=owner.account, actor=owner.user, membership_id=owner.pk
        )
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_admin_cannot_remove_an_owner_even_with_other_owners(client_for, owner, member_of):
    member_of(owner.account, "owner")
    admin = member_of(owner.account, "admin")

    response = client_for(admin.user).post(
        reverse("accounts:member_remove", args=[owner.pk]), follow=True
    )

    assert "Only an owner can remove an owner." in html(response)
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_any_member_can_leave_the_account(client_for, owner, member_of):
    accountant = member_of(owner.account, "accountant")
    client = client_for(accountant.user)
    url = reverse("accounts:member_remove", args=[accountant.pk])

    confirm = client.get(url)
    response = client.post(url, follow=True)

    assert confirm.status_code == 200
    assert "Leave the account" in html(confirm)
    assert not Membership.objects.filter(pk=accountant.pk).exists()
    assert f"You have left the account “{owner.account.name}”." in html(response)
    assert client.get(MEMBERS).status_code == 302  # no account left: back to the overview


def test_billing_member_cannot_remove_someone_else(client_for, owner, member_of):
    billing = member_of(owner.account, "billing")
    technical = member_of(owner.account, "technical")

    response = client_for(billing.user).post(reverse("accounts:member_remove", args=[technical.pk]))

    assert response.status_code == 403
    assert Membership.objects.filter(pk=technical.pk).exists()


def test_role_change_and_revoke_are_post_only(client_for, owner, member_of, send_invitation):
    member = member_of(owner.account, "billing")
    send_invitation(owner.user, "x@example.com")
    client = client_for(owner.user)

    assert client.get(reverse("accounts:member_role", args=[member.pk])).status_code == 405
    invitation = Invitation.objects.get()
    assert (
        client.get(reverse("accounts:invitation_revoke", args=[invitation.pk])).status_code == 405
    )
    assert Invitation.objects.get().revoked_at is None


# --- Concurrency ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_at_once_leave_exactly_one_owner(monkeypatch):
    first = MembershipFactory(role="owner")
    second = MembershipFactory(account=first.account, role="owner")
    account = first.account

    # Widen the window between "count the owners" and "delete": without the
    # account lock both removals would see two owners and both succeed.
    count = member_services._owner_count

    def slow_count(locked_account):
        result = count(locked_account)
        time.sleep(0.3)
        return result

    monkeypatch.setattr(member_services, "_owner_count", slow_count)
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def remove(actor, target):
        try:
            start.wait()
            member_services.member_remove(account=account, actor=actor, membership_id=target.pk)
            outcomes.append("removed")
        except (LastOwnerError, MemberActionNotAllowed, MemberNotFound) as error:
            outcomes.append(type(error).__name__)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=remove, args=(first.user, second)),
        threading.Thread(target=remove, args=(second.user, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # The second removal finds its actor gone (removed by the first) or the target the
    # last owner; either way it changes nothing.
    assert len(outcomes) == 2
    assert outcomes.count("removed") == 1
    assert Membership.objects.filter(account=account, role="owner").count() == 1
