"""Demo data for `make run`: idempotent, built through the real services."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts import services as account_services
from accounts.models import Account, Membership, Platform, User


@dataclass(frozen=True)
class DemoLogin:
    label: str
    email: str
    password: str
    where: str


STAFF_LOGIN = DemoLogin("Staff (superuser)", "admin@example.com", "admin-demo-2026", "/admin/")
CUSTOMER_LOGIN = DemoLogin("Customer", "customer@example.com", "customer-demo-2026", "/")


def _user(login: DemoLogin, **fields: object) -> User:
    user = User.objects.filter(email=login.email).first()
    if user is None:
        user = User.objects.create_user(login.email, login.password, **fields)
    else:
        for name, value in fields.items():
            setattr(user, name, value)
    # Always the printed password, so the logins `make run` shows work.
    user.set_password(login.password)
    user.save()
    return user


@transaction.atomic
def load() -> list[DemoLogin]:
    if not Platform.objects.filter(code="webhost-cz").exists():
        account_services.platform_create(
            code="webhost-cz",
            name="WebHost CZ",
            legal_name="WebHost s.r.o.",
            country="CZ",
            currency="CZK",
            default_language="cs",
            time_zone="Europe/Prague",
        )

    _user(STAFF_LOGIN, first_name="Petra", last_name="Admin", is_staff=True, is_superuser=True)
    customer = _user(CUSTOMER_LOGIN, first_name="Jana", last_name="Nováková", language="en")
    if not Membership.objects.filter(user=customer).exists():
        account = account_services.account_create(
            name="Acme Web s.r.o.",
            email="billing@acme.example",
            country="CZ",
            kind=Account.Kind.COMPANY,
            language="cs",
        )
        account_services.membership_create(
            user=customer, account=account, role=Membership.Role.OWNER
        )
    return [STAFF_LOGIN, CUSTOMER_LOGIN]
