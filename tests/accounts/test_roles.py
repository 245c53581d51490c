"""Each role sees and does what the issue says it may, and gets 403 for the rest.

The expectations are written from the roles' meaning, independently of
accounts.permissions: owner and admin manage everything; billing pays, sees
money and keeps billing details; accountant reads and exports, changes
nothing; technical does orders, services and shops, no money.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.permissions import ROLE_CAPABILITIES, Capability

pytestmark = pytest.mark.django_db

OWNER, ADMIN, BILLING, ACCOUNTANT, TECHNICAL = (
    "owner",
    "admin",
    "billing",
    "accountant",
    "technical",
)
EVERYONE = {OWNER, ADMIN, BILLING, ACCOUNTANT, TECHNICAL}

# (url name, roles that get the page) for GET; everyone else gets 403.
PAGES = [
    ("home", EVERYONE),
    ("accounts:company", EVERYONE),
    ("accounts:company_edit", {OWNER, ADMIN, BILLING}),
    ("accounts:members", EVERYONE),
    ("accounts:shops", EVERYONE),
    ("accounts:shop_create", {OWNER, ADMIN, TECHNICAL}),
    ("accounts:billing_profiles", {OWNER, ADMIN, BILLING, ACCOUNTANT}),
    ("accounts:billing_profile_create", {OWNER, ADMIN, BILLING}),
    ("accounts:platforms", EVERYONE),
]

# (url name, roles allowed to POST): refused roles get 403 and nothing changes.
ACTIONS = [
    ("accounts:member_invite", {OWNER, ADMIN}),
    ("accounts:company_edit", {OWNER, ADMIN, BILLING}),
    ("accounts:shop_create", {OWNER, ADMIN, TECHNICAL}),
    ("accounts:billing_profile_create", {OWNER, ADMIN, BILLING}),
    ("accounts:platforms", {OWNER, ADMIN}),
]


@pytest.mark.parametrize("role", sorted(EVERYONE))
@pytest.mark.parametrize(("name", "allowed"), PAGES, ids=[name for name, _ in PAGES])
def test_pages_by_role(client, account, member_of, role, name, allowed):
    client.force_login(member_of(account, role).user)

    response = client.get(reverse(name))

    assert response.status_code == (200 if role in allowed else 403)


REFUSED = [(name, role) for name, allowed in ACTIONS for role in sorted(EVERYONE - allowed)]


@pytest.mark.parametrize(("name", "role"), REFUSED, ids=[f"{n}-{r}" for n, r in REFUSED])
def test_actions_refused_by_role_get_403(client, account, member_of, name, role):
    client.force_login(member_of(account, role).user)

    response = client.post(reverse(name), {"email": "x@example.com", "role": "billing"})

    assert response.status_code == 403
    assert "Your role does not allow this" in response.content.decode()


def test_the_capability_table_matches_the_roles_meaning():
    """Spot checks of the table itself against the issue's words."""
    assert Capability.MOVE_MONEY not in ROLE_CAPABILITIES[Membership.Role.TECHNICAL]
    assert Capability.VIEW_MONEY not in ROLE_CAPABILITIES[Membership.Role.TECHNICAL]
    accountant = ROLE_CAPABILITIES[Membership.Role.ACCOUNTANT]
    assert {Capability.VIEW_DOCUMENTS, Capability.EXPORT} <= accountant
    assert not {c for c in accountant if c.name.startswith(("MANAGE_", "CHANGE_", "MOVE_"))}
    assert Capability.MOVE_MONEY in ROLE_CAPABILITIES[Membership.Role.BILLING]
    assert Capability.MANAGE_MEMBERS not in ROLE_CAPABILITIES[Membership.Role.BILLING]
