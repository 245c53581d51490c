"""CSV exports of a wallet's history and of the accounting view of a period.

Streamed: the view hands one of these generators to a StreamingHttpResponse, and
rows are read from the database 2,000 at a time (``QuerySet.iterator``), so a
wallet with a million entries never sits in memory as a whole file. Lines are sent
in blocks of about 64 KB rather than one by one (each piece a WSGI server sends is a
write on the socket and, in HTTP/1.1, a chunk of its own).

Meant for Excel and accounting imports: UTF-8 with a byte order mark (so Excel
reads the accents), one header row, amounts with a dot decimal and no thousands
separator, the currency in its own column, times in the platform's time zone.
Text a customer or an integration supplied (descriptions, shop names) may begin
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, which a spreadsheet
would take as a formula (OWASP "CSV injection"): such cells get a leading ``'``.
Amounts are numbers we format ourselves and keep their minus sign.

PostgreSQL hands over each row with its cells already as they appear in the file
(the time in the platform's zone, amounts with two decimals, type labels, the
apostrophe before formulas: see the expressions below, twins of ``spreadsheet_safe``
and of the page's formatting); Python only quotes and joins them with csv.writer. A
million rows would otherwise cost a million model instances, datetimes and Decimals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice

from django.db.models import Case, F, Func, TextField, Value, When
from django.db.models.functions import Cast, Coalesce
from django.utils import translation
from django.utils.translation import gettext as _

from credit.models import Wallet
from credit.selectors import (
    ZERO,
    AccountingSummary,
    HistoryFilters,
    accounting_entries,
    export_rows,
    history_transfers,
    kind_labels,
    platform_zone,
)

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The size of the pieces of the response: big enough that sending is cheap, small
# enough that the first bytes leave at once.
BLOCK_SIZE = 64 * 1024
# Rows handed to csv.writer at once.
BATCH = 1000


def spreadsheet_safe(text: str) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if text.startswith(FORMULA_STARTS):
        return f"'{text}"
    return text


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


# --- The cells, computed by PostgreSQL -------------------------------------------------------


class _LocalTime(Func):
    """A timestamp as 'YYYY-MM-DD HH:MM:SS' in a time zone (strftime of the local time)."""

    arg_joiner = " AT TIME ZONE "
    template = "to_char(%(expressions)s, 'YYYY-MM-DD HH24:MI:SS')"
    output_field = TextField()

    def __init__(self, expression: str, zone: str) -> None:
        super().__init__(F(expression), Value(zone))


class _SpreadsheetSafe(Func):
    """spreadsheet_safe() of a text column, NULL as an empty cell."""

    output_field = TextField()

    def __init__(self, expression: str) -> None:
        super().__init__(F(expression))

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        column, params = compiler.compile(self.source_expressions[0])
        starts = ", ".join(["%s"] * len(FORMULA_STARTS))
        text = f"COALESCE({column}, '')"
        sql = f"(CASE WHEN left({text}, 1) IN ({starts}) THEN '''' || {text} ELSE {text} END)"
        return sql, (*params, *FORMULA_STARTS, *params, *params)


def _amount_text(expression: str, *, empty: str = "") -> Coalesce:
    """A money column (two decimal places) as text, '12.30' or '-5.00'; NULL as ``empty``."""
    return Coalesce(
        Cast(F(expression), output_field=TextField()), Value(empty), output_field=TextField()
    )


def _kind_label(expression: str) -> Case:
    """The type's label in the active language, made spreadsheet-safe like any text."""
    return Case(
        *(
            When(**{expression: kind}, then=Value(spreadsheet_safe(label)))
            for kind, label in kind_labels().items()
        ),
        default=_SpreadsheetSafe(expression),
        output_field=TextField(),
    )


# --- Writing -----------------------------------------------------------------------------------


def _blocks(head: list[list[str]], rows: Iterable[tuple], tail: list[list[str]]) -> Iterator[str]:
    """The file in pieces of about BLOCK_SIZE characters: a BOM, ``head``, ``rows``, ``tail``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerows(head)
    rows = iter(rows)
    while batch := list(islice(rows, BATCH)):
        writer.writerows(batch)
        if buffer.tell() >= BLOCK_SIZE:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    writer.writerows(tail)
    yield buffer.getvalue()


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
    """The history with the page's filters, newest first, in blocks of lines."""
    return _in_current_language(_history_lines(wallet, filters))


def _history_lines(wallet: Wallet, filters: HistoryFilters) -> Iterator[str]:
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
    # The wallet's entry of each transfer: the signed change and the balance after it.
    rows = (
        history_transfers(wallet=wallet, filters=filters)
        .order_by("-created_at", "-id")
        .values_list(
            _LocalTime("created_at", zone),
            _kind_label("kind"),
            _SpreadsheetSafe("memo"),
            _SpreadsheetSafe("shop__name"),
            "currency",
            _amount_text("change"),
            _amount_text("balance_after"),
            "id",
        )
    )
    yield from _blocks([header], export_rows(rows), [])


def accounting_csv_lines(*, wallet: Wallet, summary: AccountingSummary) -> Iterator[str]:
    """The period: opening balance, every movement with the running balance, totals,
    closing balance."""
    return _in_current_language(_accounting_lines(wallet, summary))


def _accounting_lines(wallet: Wallet, summary: AccountingSummary) -> Iterator[str]:
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
    opening = [
        period.first_day.isoformat(),
        _("Opening balance"),
        "",
        "",
        currency,
        "",
        _amount(summary.opening.amount),
        "",
    ]
    # Oldest first, each with the running balance right after it.
    rows = (
        accounting_entries(wallet=wallet, period=period)
        .order_by("created_at", "id")
        .values_list(
            _LocalTime("created_at", zone),
            _kind_label("transfer__kind"),
            _SpreadsheetSafe("transfer__memo"),
            _SpreadsheetSafe("transfer__shop__name"),
            Value(currency, output_field=TextField()),
            _amount_text("amount"),
            _amount_text("balance_after", empty=_amount(ZERO)),
            "transfer_id",
        )
    )
    last = period.last_day.isoformat()
    totals = [
        [last, label, "", "", currency, _amount(amount), _amount(balance), ""]
        for label, amount, balance in (
            (_("Total credits"), summary.credits.amount, None),
            (_("Total debits"), -summary.debits.amount, None),
            (_("Closing balance"), None, summary.closing.amount),
        )
    ]
    yield from _blocks([header, opening], export_rows(rows), totals)
