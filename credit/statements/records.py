"""What a parsed bank statement holds, whatever its format, and the checks shared by formats."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.utils.translation import gettext as _

from credit.exceptions import StatementError

# Field sizes of credit.models.StatementLine: longer texts are cut, never refused.
REFERENCE_MAX = 120
COUNTERPARTY_MAX = 200
COUNTERPARTY_ACCOUNT_MAX = 60
MESSAGE_MAX = 300


@dataclass(frozen=True)
class CreditLine:
    """One incoming payment booked on the platform's bank account."""

    bank_reference: str
    booked_on: date
    amount: Decimal
    currency: str
    # Digits without leading zeros ("" when the payment carries none).
    variable_symbol: str
    counterparty: str = ""
    counterparty_account: str = ""
    message: str = ""
    # Where the line came from, for error messages: "Entry 3", "Row 7".
    position: str = ""


@dataclass(frozen=True)
class ParsedStatement:
    format: str  # a credit.models.BankStatement.Format value
    statement_id: str
    file_sha256: str
    iban: str
    # The account's currency as the file states it ("" when it does not).
    currency: str
    period_from: date | None
    period_to: date | None
    lines: tuple[CreditLine, ...]
    # Debits, pending and reversed bookings: read, and left alone.
    ignored: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def normalise_iban(value: str) -> str:
    return re.sub(r"\s+", "", value or "").upper()


def clip(value: str | None, limit: int) -> str:
    """Whitespace collapsed, cut to ``limit`` characters."""
    return " ".join((value or "").split())[:limit]


_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def amount_parse(text: str | None, *, where: str) -> Decimal:
    """A positive amount with a decimal point and at most two decimals."""
    raw = (text or "").strip()
    if not _AMOUNT.match(raw):
        raise StatementError(
            _(
                "%(where)s: the amount “%(amount)s” is not a positive number with a decimal "
                "point and at most two decimal places."
            )
            % {"where": where, "amount": raw[:40]}
        )
    value = Decimal(raw)  # the pattern admits only what Decimal reads
    if value <= 0:
        raise StatementError(_("%(where)s: the amount must be more than zero.") % {"where": where})
    return value.quantize(Decimal("0.01"))


_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def date_parse(text: str | None, *, where: str, what: str) -> date:
    """An ISO date (YYYY-MM-DD); a date-time's date part is taken."""
    raw = (text or "").strip()
    found = _DATE.match(raw)
    try:
        if found is None:
            raise ValueError(raw)
        return date.fromisoformat(found.group(1))
    except ValueError:
        raise StatementError(
            _("%(where)s: the %(what)s “%(value)s” is not a date in the form YYYY-MM-DD.")
            % {"where": where, "what": what, "value": raw[:40]}
        ) from None


class ReferenceMaker:
    """The bank's reference of a booking, or, when the bank gives none, a digest of it.

    Identical bookings in one statement (the same payer paying the same amount
    twice on one day) get distinct digests by counting occurrences, so the
    second is not mistaken for the first; the count is the same when the same
    statement is read again, so a re-import still finds both.
    """

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._given: dict[str, str] = {}

    def reference(self, given: str, *, where: str, content: tuple[object, ...]) -> str:
        given = (given or "").strip()
        if given:
            if len(given) > REFERENCE_MAX:
                raise StatementError(
                    _("%(where)s: the bank reference is longer than %(limit)d characters.")
                    % {"where": where, "limit": REFERENCE_MAX}
                )
            if given in self._given:
                raise StatementError(
                    _("%(where)s repeats the bank reference %(reference)s of %(first)s.")
                    % {"where": where, "reference": given, "first": self._given[given]}
                )
            self._given[given] = where
            return given
        canonical = "\x1f".join(str(part) for part in content)
        self._seen[canonical] += 1
        canonical = f"{canonical}\x1e{self._seen[canonical]}"
        return "digest:" + hashlib.sha256(canonical.encode()).hexdigest()[:48]


def statement_check(statement: ParsedStatement, *, iban: str, currency: str, name: str) -> None:
    """Refuse a statement of another bank account or in another currency than the platform's."""
    if statement.iban and normalise_iban(statement.iban) != normalise_iban(iban):
        raise StatementError(
            _(
                "The statement is for the account %(statement_iban)s, not for %(platform)s's "
                "account %(platform_iban)s."
            )
            % {
                "statement_iban": statement.iban,
                "platform": name,
                "platform_iban": normalise_iban(iban),
            }
        )
    if statement.currency and statement.currency != currency:
        raise StatementError(
            _("The statement is in %(currency)s; %(platform)s keeps its credit in %(expected)s.")
            % {"currency": statement.currency, "platform": name, "expected": currency}
        )
    for line in statement.lines:
        if line.currency != currency:
            raise StatementError(
                _("%(where)s is in %(currency)s; %(platform)s keeps its credit in %(expected)s.")
                % {
                    "where": line.position,
                    "currency": line.currency,
                    "platform": name,
                    "expected": currency,
                }
            )
