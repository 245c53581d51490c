"""Staff groups and what each may do in the admin, declared once.

`staff_groups_sync` runs after every `migrate` and makes the groups hold exactly
these permissions (plus nothing else), so a permission added here reaches the
database with the next deployment. Patterns are `app_label.codename`, where the
codename may end in `*` (e.g. `accounts.view_*`). Later apps add their lines.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

SUPPORT = "Support"
FINANCE = "Finance"
ADMINISTRATOR = "Administrator"

STAFF_GROUPS: dict[str, list[str]] = {
    # Helps customers: sees accounts and their people, fixes contact details,
    # resends invitations; touches no money and no platform settings.
    SUPPORT: [
        "accounts.view_*",
        "accounts.change_account",
        "accounts.change_billingprofile",
        "accounts.change_shop",
        "accounts.add_invitation",
        "accounts.change_invitation",
        "auditlog.view_logentry",
        "qsessions.view_session",
        "qsessions.delete_session",
        "axes.view_*",
        "axes.delete_accessattempt",
        "payments.view_transaction",
        "payments.view_transactionevent",
        "payments.add_transactionevent",
        "payments.view_shipment",
        "payments.view_savedcard",
        "payments.view_deliverynotification",
        "credit.view_wallet",
        "credit.view_transfer",
        "credit.view_topup",
        "credit.view_statementline",
    ],
    # Money and documents: sees accounts, corrects billing details.
    FINANCE: [
        "accounts.view_*",
        "accounts.change_account",
        "accounts.change_billingprofile",
        "auditlog.view_logentry",
        "payments.view_*",
        "payments.add_transactionevent",
        "payments.change_transaction",
        "credit.view_*",
        "credit.change_wallet",
        "credit.change_topup",
        "credit.add_bankstatement",
        "credit.change_statementline",
    ],
    # Runs the platform: everything in our apps, staff users, schedules, devices.
    ADMINISTRATOR: [
        "accounts.*",
        "payments.*",
        "credit.*",
        "orders.*",
        "invoicing.*",
        "auth.*",
        "auditlog.view_logentry",
        "django_celery_beat.*",
        "otp_totp.*",
        "otp_static.*",
        "qsessions.*",
        "axes.*",
    ],
}


def permission_matches(pattern: str, app_label: str, codename: str) -> bool:
    pattern_app, _, pattern_codename = pattern.partition(".")
    return pattern_app == app_label and fnmatchcase(codename, pattern_codename)


def staff_groups_sync(**_kwargs: object) -> None:
    """Create the staff groups and set their permissions to exactly STAFF_GROUPS."""
    from django.contrib.auth.models import Group, Permission

    permissions = list(Permission.objects.select_related("content_type"))
    for name, patterns in STAFF_GROUPS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = [
            permission
            for permission in permissions
            if any(
                permission_matches(pattern, permission.content_type.app_label, permission.codename)
                for pattern in patterns
            )
        ]
        group.permissions.set(wanted)
