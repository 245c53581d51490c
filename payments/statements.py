"""Monthly statements of transactions (seed 004 "extrase") as CSV and PDF.

The CSV is meant for Excel and accounting imports: UTF-8 with a byte order mark
(so Excel reads the accents), one header row, one row per transaction, amounts
with a dot and no thousands separator. Text a customer or gateway supplied
(description, shop name, reference) may begin with ``=``, ``+``, ``-`` or ``@``,
which a spreadsheet would run as a formula: such cells get a leading ``'``.

The PDF is rendered by WeasyPrint from templates/payments/statement_pdf.html
with the system's fonts: the platform is the issuer, the account the recipient.
Times are in the platform's time zone, as is the month itself.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from accounts.models import CardBrand
from payments.models import Gateway, Purpose, State, Transaction
from payments.selectors import Statement

BOM = "\ufeff"
# What a spreadsheet takes as the start of a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """Text that would start a formula gets a leading apostrophe; numbers pass as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


class _Echo:
    """A file-like object whose write() hands the line back (csv.writer → generator)."""

    def write(self, value: str) -> str:
        return value


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


def statement_filename(statement: Statement, extension: str) -> str:
    return (
        f"statement-{statement.platform.code}-{statement.year:04d}-{statement.month:02d}"
        f".{extension}"
    )


def statement_csv_header() -> list[str]:
    return [
        _("Created"),
        _("Transaction ID"),
        _("Description"),
        _("Purpose"),
        _("Shop"),
        _("Card brand"),
        _("Card last four digits"),
        _("Gateway"),
        _("Gateway reference"),
        _("State"),
        _("Currency"),
        _("Amount"),
        _("Captured"),
        _("Refunded"),
        _("Failure reason"),
    ]


def statement_csv_lines(statement: Statement) -> Iterator[str]:
    """The CSV, line by line, for a StreamingHttpResponse.

    Labels are translated now, in the request's language: the generator runs
    after the view has returned.
    """
    header = statement_csv_header()
    labels = {
        "state": {value: str(label) for value, label in State.choices},
        "purpose": {value: str(label) for value, label in Purpose.choices},
        "gateway": {value: str(label) for value, label in Gateway.choices},
        "brand": {value: str(label) for value, label in CardBrand.choices},
    }
    return _lines(header, statement.rows(), statement, labels)


def _lines(
    header: list[str],
    transactions: Iterable[Transaction],
    statement: Statement,
    labels: dict[str, dict[str, str]],
) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow([spreadsheet_safe(cell) for cell in header])
    for tx in transactions:
        created = tx.created_at.astimezone(statement.time_zone)
        cells: list[object] = [
            created.strftime("%Y-%m-%d %H:%M:%S"),
            str(tx.public_id),
            tx.description,
            labels["purpose"].get(tx.purpose, tx.purpose),
            tx.shop.name if tx.shop_id else "",
            labels["brand"].get(tx.card_brand, tx.card_brand),
            tx.card_last4,
            labels["gateway"].get(tx.gateway, tx.gateway),
            tx.gateway_reference,
            labels["state"].get(tx.state, tx.state),
            tx.currency,
            _amount(tx.amount.amount),
            _amount(tx.captured_amount.amount),
            _amount(tx.refunded_amount.amount),
            tx.failure_message,
        ]
        yield writer.writerow([spreadsheet_safe(cell) for cell in cells])


def statement_pdf(statement: Statement) -> bytes:
    """The statement as an A4 PDF."""
    import weasyprint

    html = render_to_string(
        "payments/statement_pdf.html",
        {
            "statement": statement,
            "transactions": list(statement.transactions()),
            "issuer": statement.platform,
            "recipient": statement.account,
        },
    )
    return weasyprint.HTML(string=html).write_pdf()
