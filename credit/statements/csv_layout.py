"""Our CSV layout of incoming payments (described for banks and staff in docs/bank-statements.md).

UTF-8 (a byte-order mark is allowed), comma-separated, a header line naming at
least the columns of ``COLUMNS`` in any order (other columns are ignored), ISO
dates, amounts with a decimal point and at most two decimals. Every row is an
incoming payment: a zero or negative amount is an error, as is any other bad
cell; the error names the row, counting the header as row 1.

The statement's identifier is the digest of the file, so the same file imported
twice is recognised; rows are recognised by their bank reference either way.
"""

from __future__ import annotations

import csv
import io
import re

from django.utils.translation import gettext as _

from credit.exceptions import StatementError
from credit.statements.matching import variable_symbol_clean, variable_symbol_from
from credit.statements.records import (
    COUNTERPARTY_ACCOUNT_MAX,
    COUNTERPARTY_MAX,
    MESSAGE_MAX,
    CreditLine,
    ParsedStatement,
    ReferenceMaker,
    amount_parse,
    clip,
    date_parse,
)

COLUMNS = (
    "booked_on",
    "amount",
    "currency",
    "variable_symbol",
    "bank_reference",
    "counterparty",
    "counterparty_account",
    "message",
)
HEADER = ",".join(COLUMNS)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_VARIABLE_SYMBOL = re.compile(r"^\d{1,10}$")


def parse(data: bytes, *, file_sha256: str) -> ParsedStatement:
    """Read our CSV layout; StatementError names what is wrong and on which row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise StatementError(
            _(
                "The file is neither a camt.053 XML statement nor UTF-8 text (undecodable byte "
                "at position %(position)d)."
            )
            % {"position": error.start}
        ) from None
    if "\x00" in text:
        raise StatementError(_("The file is neither a camt.053 XML statement nor a CSV file."))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise StatementError(
            _("Row %(row)d: the CSV cannot be read (%(error)s).")
            % {"row": reader.line_num, "error": error}
        ) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise StatementError(
            _("The file is empty; a CSV statement starts with the header line %(header)s.")
            % {"header": HEADER}
        )
    header = [cell.strip().lower() for cell in rows[0]]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise StatementError(
            _(
                "The file is neither a camt.053 XML statement nor a CSV in our layout: the header "
                "line lacks the column(s) %(missing)s. It must name %(header)s."
            )
            % {"missing": ", ".join(missing), "header": HEADER}
        )
    repeated = sorted({column for column in header if column and header.count(column) > 1})
    if repeated:
        raise StatementError(
            _("The header line names the column(s) %(columns)s more than once.")
            % {"columns": ", ".join(repeated)}
        )
    position = {column: header.index(column) for column in COLUMNS}

    references = ReferenceMaker()
    lines = []
    for row_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are allowed (a trailing newline, a spreadsheet's gap)
        where = _("Row %(row)d") % {"row": row_number}
        if len(row) != len(header):
            raise StatementError(
                _("%(where)s has %(cells)d cells; the header has %(columns)d.")
                % {"where": where, "cells": len(row), "columns": len(header)}
            )
        cell = {column: row[index].strip() for column, index in position.items()}
        lines.append(_line(cell, where=where, references=references))

    return ParsedStatement(
        format="csv",
        statement_id=f"csv:{file_sha256}",
        file_sha256=file_sha256,
        iban="",
        currency="",  # no account currency in the file: each row's is checked
        period_from=min((line.booked_on for line in lines), default=None),
        period_to=max((line.booked_on for line in lines), default=None),
        lines=tuple(lines),
    )


def _line(cell: dict[str, str], *, where: str, references: ReferenceMaker) -> CreditLine:
    booked_on = date_parse(cell["booked_on"], where=where, what=_("date booked_on"))
    amount = amount_parse(cell["amount"], where=where)
    currency = cell["currency"].upper()
    if not _CURRENCY.match(currency):
        raise StatementError(
            _("%(where)s: the currency “%(value)s” is not a three-letter ISO code.")
            % {"where": where, "value": cell["currency"][:20]}
        )
    symbol = cell["variable_symbol"]
    if symbol and not _VARIABLE_SYMBOL.match(symbol):
        raise StatementError(
            _("%(where)s: the variable symbol “%(value)s” is not one to ten digits.")
            % {"where": where, "value": symbol[:20]}
        )
    # No variable_symbol column value: a "VS:123" in the message still counts.
    variable_symbol = variable_symbol_clean(symbol) or variable_symbol_from(
        [_explicit_only(cell["message"])]
    )
    counterparty = clip(cell["counterparty"], COUNTERPARTY_MAX)
    counterparty_account = clip(cell["counterparty_account"], COUNTERPARTY_ACCOUNT_MAX)
    message = clip(cell["message"], MESSAGE_MAX)
    return CreditLine(
        bank_reference=references.reference(
            cell["bank_reference"],
            where=where,
            content=(
                booked_on,
                amount,
                currency,
                symbol,
                counterparty,
                counterparty_account,
                message,
            ),
        ),
        booked_on=booked_on,
        amount=amount,
        currency=currency,
        variable_symbol=variable_symbol,
        counterparty=counterparty,
        counterparty_account=counterparty_account,
        message=message,
        position=where,
    )


def _explicit_only(message: str) -> str:
    """A free-text message counts only with an explicit "VS": a bare number in it (an
    invoice number, a year) is not taken for a variable symbol."""
    return message if re.search(r"VS", message, re.IGNORECASE) else ""
