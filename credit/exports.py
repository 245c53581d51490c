"""CSV exports of a wallet's history and of the accounting view of a period.

Streamed: the view hands one of these generators to a StreamingHttpResponse, and
rows are read from the database 2,000 at a time (``QuerySet.iterator``), so a
wallet with a million entries never sits in memory as a whole file.

Meant for Excel and accounting imports: UTF-8 with a byte order mark (so Excel
reads the accents), one header row, amounts with a dot decimal and no thousands
separator, the currency in its own column, times in the platform's time zone.
Text a customer or an integration supplied (descriptions, shop names) may begin
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, which a spreadsheet
would take as a formula (OWASP "CSV injection"): such cells get a leading ``'``.
Amounts are numbers we format ourselves and keep their minus sign.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal

from django.utils import translation
from django.utils.translation import gettext as _

from credit.models import Wallet
from credit.selectors import (
    AccountingSummary,
    HistoryFilters,
    accounting_rows,
    history_rows,
    platform_zone,
)

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def spreadsheet_safe(text: str) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if text.startswith(FORMULA_STARTS):
        return f"'{text}"
    return text


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


class _Echo:
    """A file-like object whose write() hands the line back (csv.writer → generator)."""

    def write(self, value: str) -> str:
        return value


def _in_current_language(lines: Iterator[str]) -> Iterator[str]:
    """Run ``lines`` in the request's language: the response is iterated after the
    view has returned, when the request's language may no longer be active."""
    language = translation.get_language()

    def run() -> Iterator[str]:
        with translation.override(language):
            yield from lines

    return run()


def history_filename(wallet: Wallet) -> str:
    return f"credit-history-{wallet.platform.code}.csv"


def accounting_filename(wallet: Wallet, summary: AccountingSummary) -> str:
    period = summary.period
    return (
        f"credit-accounting-{wallet.platform.code}-"
        f"{period.first_day.isoformat()}-{period.last_day.isoformat()}.csv"
    )


def history_csv_lines(*, wallet: Wallet, filters: HistoryFilters) -> Iterator[str]:
    """The history with the page's filters, newest first, line by line."""
    return _in_current_language(_history_lines(wallet, filters))


def _history_lines(wallet: Wallet, filters: HistoryFilters) -> Iterator[str]:
    writer = csv.writer(_Echo())
    zone = str(platform_zone(wallet.platform))
    header = [
        _("Time (%(zone)s)") % {"zone": zone},
        _("Type"),
        _("Description"),
        _("Shop"),
        _("Currency"),
        _("Amount"),
        _("Balance after"),
        _("Reference"),
    ]
    yield BOM + writer.writerow(header)
    for row in history_rows(wallet=wallet, filters=filters):
        yield writer.writerow(
            [
                row.created_at.strftime(TIME_FORMAT),
                spreadsheet_safe(row.kind_label),
                spreadsheet_safe(row.description),
                spreadsheet_safe(row.shop_name),
                row.change.currency.code,
                _amount(row.change.amount),
                _amount(row.balance_after.amount if row.balance_after is not None else None),
                str(row.transfer.pk),
            ]
        )


def accounting_csv_lines(*, wallet: Wallet, summary: AccountingSummary) -> Iterator[str]:
    """The period: opening balance, every movement with the running balance, totals,
    closing balance."""
    return _in_current_language(_accounting_lines(wallet, summary))


def _accounting_lines(wallet: Wallet, summary: AccountingSummary) -> Iterator[str]:
    writer = csv.writer(_Echo())
    period = summary.period
    currency = wallet.currency
    zone = str(period.time_zone)
    header = [
        _("Time (%(zone)s)") % {"zone": zone},
        _("Type"),
        _("Description"),
        _("Shop"),
        _("Currency"),
        _("Amount"),
        _("Balance"),
        _("Reference"),
    ]
    yield BOM + writer.writerow(header)
    yield writer.writerow(
        [
            period.first_day.isoformat(),
            _("Opening balance"),
            "",
            "",
            currency,
            "",
            _amount(summary.opening.amount),
            "",
        ]
    )
    for row in accounting_rows(wallet=wallet, period=period):
        yield writer.writerow(
            [
                row.created_at.strftime(TIME_FORMAT),
                spreadsheet_safe(row.kind_label),
                spreadsheet_safe(row.description),
                spreadsheet_safe(row.shop_name),
                currency,
                _amount(row.change.amount),
                _amount(row.balance.amount),
                str(row.entry.transfer_id),
            ]
        )
    last = period.last_day.isoformat()
    for label, amount, balance in (
        (_("Total credits"), summary.credits.amount, None),
        (_("Total debits"), -summary.debits.amount, None),
        (_("Closing balance"), None, summary.closing.amount),
    ):
        yield writer.writerow(
            [last, label, "", "", currency, _amount(amount), _amount(balance), ""]
        )
