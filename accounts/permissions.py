"""What each membership role may do in the portal (and, later, the API).

Views declare the capability they need; a member whose role lacks it gets 403.
The table is the single source of truth: tests check it against the roles'
meaning in the issue (owner, admin, billing, accountant, technical), not
against itself.
"""

from __future__ import annotations

from enum import StrEnum

from accounts.models import Membership


class Capability(StrEnum):
    VIEW_ACCOUNT = "view_account"
    CHANGE_ACCOUNT = "change_account"  # company details: name, address, VAT ID
    VIEW_MEMBERS = "view_members"
    MANAGE_MEMBERS = "manage_members"  # invite, change roles, remove
    VIEW_SHOPS = "view_shops"
    MANAGE_SHOPS = "manage_shops"
    VIEW_BILLING_PROFILES = "view_billing_profiles"
    MANAGE_BILLING_PROFILES = "manage_billing_profiles"
    MANAGE_PLATFORMS = "manage_platforms"  # register the account on another platform
    VIEW_MONEY = "view_money"  # balances, payments, statements
    MOVE_MONEY = "move_money"  # top up, pay, refund, wallet settings
    VIEW_DOCUMENTS = "view_documents"  # invoices and other accounting documents
    EXPORT = "export"  # CSV exports
    VIEW_ORDERS = "view_orders"
    MANAGE_ORDERS = "manage_orders"  # orders and services


Role = Membership.Role

_EVERYTHING = frozenset(Capability)

ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.OWNER: _EVERYTHING,
    # Everything an owner can do except acting on owners (see services.members).
    Role.ADMIN: _EVERYTHING,
    # Pays and sees money; keeps the billing details right; no team or technical work.
    Role.BILLING: frozenset(
        {
            Capability.VIEW_ACCOUNT,
            Capability.CHANGE_ACCOUNT,
            Capability.VIEW_MEMBERS,
            Capability.VIEW_SHOPS,
            Capability.VIEW_BILLING_PROFILES,
            Capability.MANAGE_BILLING_PROFILES,
            Capability.VIEW_MONEY,
            Capability.MOVE_MONEY,
            Capability.VIEW_DOCUMENTS,
            Capability.EXPORT,
            Capability.VIEW_ORDERS,
        }
    ),
    # Reads documents and exports; changes nothing.
    Role.ACCOUNTANT: frozenset(
        {
            Capability.VIEW_ACCOUNT,
            Capability.VIEW_MEMBERS,
            Capability.VIEW_SHOPS,
            Capability.VIEW_BILLING_PROFILES,
            Capability.VIEW_MONEY,
            Capability.VIEW_DOCUMENTS,
            Capability.EXPORT,
            Capability.VIEW_ORDERS,
        }
    ),
    # Orders, services and shops; no money.
    Role.TECHNICAL: frozenset(
        {
            Capability.VIEW_ACCOUNT,
            Capability.VIEW_MEMBERS,
            Capability.VIEW_SHOPS,
            Capability.MANAGE_SHOPS,
            Capability.VIEW_ORDERS,
            Capability.MANAGE_ORDERS,
        }
    ),
}


def role_can(role: str, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES.get(role, frozenset())


def member_assignable_roles(*, actor_role: str) -> list[tuple[str, str]]:
    """The roles ``actor_role`` may hand out, as choices."""
    if actor_role == Role.OWNER:
        return list(Role.choices)
    return [(value, label) for value, label in Role.choices if value != Role.OWNER]


def member_can_manage(*, actor_role: str, target_role: str) -> bool:
    """May ``actor_role`` change the role of, or remove, a member with ``target_role``?"""
    if not role_can(actor_role, Capability.MANAGE_MEMBERS):
        return False
    return target_role != Role.OWNER or actor_role == Role.OWNER
