"""Every write to accounts: users, accounts, memberships."""

from __future__ import annotations

from django.db import connection, transaction

from accounts.models import Account, Membership, Platform, User

VARIABLE_SYMBOL_SEQUENCE = "accounts_variable_symbol_seq"


def variable_symbol_next() -> int:
    """A new variable symbol from a database sequence: unique even under concurrency."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(%s)", [VARIABLE_SYMBOL_SEQUENCE])
        return int(cursor.fetchone()[0])


@transaction.atomic
def account_create(
    *,
    name: str,
    email: str,
    country: str,
    kind: str = Account.Kind.COMPANY,
    language: str = "en",
) -> Account:
    """Create a billed account with its own variable symbol."""
    return Account.objects.create(
        name=name,
        email=email,
        country=country.upper(),
        kind=kind,
        language=language,
        variable_symbol=variable_symbol_next(),
    )


@transaction.atomic
def membership_create(*, user: User, account: Account, role: str) -> Membership:
    return Membership.objects.create(user=user, account=account, role=role)


def platform_create(
    *,
    code: str,
    name: str,
    legal_name: str,
    country: str,
    currency: str,
    default_language: str = "en",
    time_zone: str = "UTC",
) -> Platform:
    return Platform.objects.create(
        code=code,
        name=name,
        legal_name=legal_name,
        country=country.upper(),
        currency=currency,
        default_language=default_language,
        time_zone=time_zone,
    )
