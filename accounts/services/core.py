"""Creating the basic records: accounts, platform registrations, memberships."""

from __future__ import annotations

from django.db import connection, transaction

from accounts.models import Account, Membership, Platform, Registration, User

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
    street: str = "",
    city: str = "",
    postal_code: str = "",
    vat_id: str = "",
    company_id: str = "",
    platforms: list[Platform] | tuple[Platform, ...] = (),
) -> Account:
    """Create a billed account with its own variable symbol, registered on ``platforms``.

    Identifiers must already be normalised (see accounts.validators); forms do that.
    """
    account = Account.objects.create(
        name=name,
        email=email,
        country=country.upper(),
        kind=kind,
        language=language,
        street=street,
        city=city,
        postal_code=postal_code,
        vat_id=vat_id,
        company_id=company_id,
        variable_symbol=variable_symbol_next(),
    )
    for platform in platforms:
        registration_create(account=account, platform=platform)
    return account


def registration_create(*, account: Account, platform: Platform) -> Registration:
    """Register ``account`` on ``platform``; registering twice returns the first one."""
    registration, _created = Registration.objects.get_or_create(account=account, platform=platform)
    return registration


@transaction.atomic
def membership_create(*, user: User, account: Account, role: str) -> Membership:
    return Membership.objects.create(user=user, account=account, role=role)
