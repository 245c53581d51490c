"""Which account and which pending top-up an incoming payment belongs to.

A payment is matched automatically only when both agree: its variable symbol is
the variable symbol of an account registered on the statement's platform, and
that account's wallet on the platform has a pending bank-transfer top-up of
exactly the amount paid (the oldest one, when there are several). Anything else
waits for staff in the review queue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import VARIABLE_SYMBOL_MAX, Account, Platform
from credit.models import StatementLine, TopUp

# "VS:123", "VS 123", "VS=123", "/VS/123", "/VS123/SS456/KS0308" (Czech bank style).
_EXPLICIT = re.compile(r"(?<![A-Za-z0-9])VS\s*[:/=.]?\s*(\d{1,10})(?!\d)", re.IGNORECASE)
# A reference that is nothing but a number of one to ten digits.
_BARE = re.compile(r"^\s*(\d{1,10})\s*$")


def _normalised(digits: str) -> str:
    value = int(digits)
    return str(value) if 1 <= value <= VARIABLE_SYMBOL_MAX else ""


def variable_symbol_from(texts: Iterable[str | None]) -> str:
    """The variable symbol in a payment's references, in the order given.

    An explicit "VS" anywhere wins; otherwise the first reference that is a bare
    number of one to ten digits. Leading zeros are dropped ("0000123" is 123).
    """
    candidates = [text for text in texts if text]
    for text in candidates:
        found = _EXPLICIT.search(text)
        if found and _normalised(found.group(1)):
            return _normalised(found.group(1))
    for text in candidates:
        found = _BARE.match(text)
        if found and _normalised(found.group(1)):
            return _normalised(found.group(1))
    return ""


def variable_symbol_clean(value: str) -> str:
    """A variable symbol typed by a person or a CSV column: digits only, or ""."""
    found = _BARE.match(value or "")
    return _normalised(found.group(1)) if found else ""


def accounts_on_platform(*, platform: Platform) -> QuerySet[Account]:
    return Account.objects.filter(registrations__platform=platform)


def account_for_variable_symbol(*, platform: Platform, variable_symbol: str) -> Account | None:
    """The account registered on the platform with this variable symbol."""
    if not variable_symbol:
        return None
    return (
        accounts_on_platform(platform=platform).filter(variable_symbol=int(variable_symbol)).first()
    )


def pending_topups(*, platform: Platform, account: Account, amount: Decimal) -> QuerySet[TopUp]:
    """The account's bank-transfer top-ups on the platform still waiting for exactly ``amount``,
    not yet reserved by another statement line, oldest first."""
    return (
        TopUp.objects.filter(
            method=TopUp.Method.TRANSFER,
            state=TopUp.State.PENDING,
            wallet__platform=platform,
            wallet__account=account,
            amount=amount,
            currency=str(platform.currency),
        )
        .exclude(pk__in=StatementLine.objects.filter(topup__isnull=False).values("topup_id"))
        .order_by("created_at", "pk")
    )


def topup_match(*, platform: Platform, variable_symbol: str, amount: Decimal) -> TopUp | None:
    """The pending top-up an incoming payment pays for, locked; None when there is none.

    The caller holds the transaction; the row lock keeps a concurrent review
    from assigning the same top-up to another line (the one-to-one link from
    the statement line backs it).
    """
    account = account_for_variable_symbol(platform=platform, variable_symbol=variable_symbol)
    if account is None:
        return None
    return (
        pending_topups(platform=platform, account=account, amount=amount)
        .select_for_update(of=("self",))
        .first()
    )
