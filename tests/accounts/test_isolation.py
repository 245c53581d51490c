"""Tenant isolation: no URL that takes an object id shows or touches another account's object.

The walk covers every URL pattern in the project (portal and API alike), so a URL added
later is checked automatically. A new kind of object id fails the test until this file
learns how to make such an object for another account: that is deliberate.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import Account, Invitation, Membership, Shop, User
from accounts.selectors import CURRENT_ACCOUNT_SESSION_KEY
from tests.factories import (
    BillingProfileFactory,
    MembershipFactory,
    RegistrationFactory,
    ShopFactory,
)

pytestmark = pytest.mark.django_db


def _other_session_key(other: Account) -> str:
    """A live session of a member of the other account."""
    other_client = Client()
    other_client.force_login(MembershipFactory(account=other).user)
    return other_client.session.session_key


def _open_invitation(other: Account) -> int:
    return Invitation.objects.create(
        account=other,
        email="someone@example.com",
        role=Membership.Role.BILLING,
        token_hash=hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
        expires_at=timezone.now() + timedelta(days=7),
    ).pk


def _other_transaction(other: Account):
    from djmoney.money import Money

    from payments.services.transactions import transaction_create

    registration = RegistrationFactory(account=other)
    platform = registration.platform
    return transaction_create(
        account=other, platform=platform, amount=Money("10.00", platform.currency), purpose="other"
    ).public_id


def _other_topup(other: Account) -> int:
    from djmoney.money import Money

    from credit.services.ledger import wallet_for
    from credit.services.topups import topup_transfer_start

    platform = RegistrationFactory(account=other).platform
    return topup_transfer_start(
        wallet=wallet_for(account=other, platform=platform),
        amount=Money(platform.topup_minimum, platform.currency),
        terms_accepted=True,
        created_by=None,
    ).pk


# How to make, for each kind of object id a URL can take, one that belongs to another account.
OBJECT_IN_OTHER_ACCOUNT: dict[str, Callable[[Account], object]] = {
    "membership_id": lambda other: MembershipFactory(account=other).pk,
    "invitation_id": _open_invitation,
    "shop_id": lambda other: ShopFactory(registration=RegistrationFactory(account=other)).pk,
    "billing_profile_id": lambda other: BillingProfileFactory(account=other).pk,
    "registration_id": lambda other: RegistrationFactory(account=other).pk,
    "session_key": _other_session_key,
    "transaction_id": _other_transaction,
    "topup_id": _other_topup,
}

# URL arguments that are not object ids: capability links whose secret is the
# authorisation (the e-mailed token), checked by their own tests; and the period of a
# monthly statement (`year`, `month`), which is always the current account's; and a
# platform's code (`platform_code`): credit pages look the wallet up for the current
# account on that platform, so it names no object of another account.
NOT_OBJECT_IDS = {"token", "uidb64", "year", "month", "platform_code"}

# The staff interface is not account-scoped; staff permissions guard it.
STAFF_NAMESPACES = {"admin"}


@dataclass(frozen=True)
class Route:
    name: str  # namespaced, e.g. "accounts:shop_edit"
    kwargs: tuple[str, ...]


def walk(patterns: list, namespace: str = "", kwargs: tuple[str, ...] = ()) -> Iterator[Route]:
    for entry in patterns:
        found = tuple(getattr(entry.pattern, "converters", {}) or ()) or tuple(
            entry.pattern.regex.groupindex
        )
        if isinstance(entry, URLResolver):
            inner = (
                f"{namespace}:{entry.namespace}"
                if namespace and entry.namespace
                else (entry.namespace or namespace)
            )
            yield from walk(entry.url_patterns, inner, kwargs + found)
        elif isinstance(entry, URLPattern) and entry.name:
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            yield Route(name, kwargs + found)


def object_routes() -> list[Route]:
    routes = []
    for route in walk(get_resolver().url_patterns):
        if route.name.split(":")[0] in STAFF_NAMESPACES or not route.kwargs:
            continue
        if set(route.kwargs) <= NOT_OBJECT_IDS:
            continue
        routes.append(route)
    return routes


@pytest.fixture
def intruder() -> tuple[User, Account, Account]:
    """An owner of account A who is also an owner of B, currently acting for A."""
    mine = MembershipFactory()
    other_account = MembershipFactory(user=mine.user).account
    return mine.user, mine.account, other_account


def test_the_walk_finds_the_portals_object_urls():
    names = {route.name for route in object_routes()}

    # If these vanish the walk is broken, not the portal safe.
    assert {"accounts:shop_edit", "accounts:member_remove", "me:session_end"} <= names


def test_every_object_url_is_covered_by_the_isolation_walk():
    unknown = {
        f"{route.name} ({argument})"
        for route in object_routes()
        for argument in route.kwargs
        if argument not in OBJECT_IN_OTHER_ACCOUNT and argument not in NOT_OBJECT_IDS
    }

    assert unknown == set(), (
        "New kinds of object id in URLs; teach OBJECT_IN_OTHER_ACCOUNT how to make one "
        f"in another account: {sorted(unknown)}"
    )


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_accounts_object_is_not_found_at_any_url(client, intruder, method):
    user, mine, other = intruder
    client.force_login(user)
    session = client.session
    session[CURRENT_ACCOUNT_SESSION_KEY] = mine.pk
    session.save()
    theirs = {name: make(other) for name, make in OBJECT_IN_OTHER_ACCOUNT.items()}
    before = snapshot(other)

    leaks = []
    for route in object_routes():
        kwargs = {name: theirs.get(name, "x") for name in route.kwargs}
        url = reverse(route.name, kwargs=kwargs)
        response = getattr(client, method)(url)
        if response.status_code != 404:
            leaks.append(f"{method.upper()} {url} ({route.name}) -> {response.status_code}")

    assert leaks == []
    assert snapshot(other) == before, "a refused request changed the other account"


def snapshot(account: Account) -> dict[str, list]:
    """Everything of ``account`` a portal URL could change, in comparable form."""
    from qsessions.models import Session

    return {
        "account": list(Account.objects.filter(pk=account.pk).values()),
        "memberships": list(account.memberships.order_by("pk").values()),
        "invitations": list(account.invitations.order_by("pk").values()),
        "registrations": list(account.registrations.order_by("pk").values()),
        "shops": list(Shop.objects.filter(registration__account=account).order_by("pk").values()),
        "billing_profiles": list(account.billing_profiles.order_by("pk").values()),
        "sessions": sorted(
            Session.objects.filter(user__memberships__account=account).values_list(
                "session_key", flat=True
            )
        ),
    }
