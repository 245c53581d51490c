"""CSV exports of a wallet's history and of the accounting view of a period.

Streamed: the view hands one of these generators to a StreamingHttpResponse. The
rows are written by PostgreSQL itself (``COPY (<the SELECT>) TO STDOUT WITH CSV``,
credit.selectors.export_csv) and passed on as they arrive, in blocks of about 64 KB
(each piece a WSGI server sends is a write on the socket and, in HTTP/1.1, a chunk
of its own), so a wallet with a million entries never sits in memory as a whole file.

Meant for Excel and accounting imports: UTF-8 with a byte order mark (so Excel
reads the accents), one header row, amounts with a dot decimal and no thousands
separator, the currency in its own column, times in the platform's time zone, lines
ending with a line feed. Text a customer or an integration supplied (descriptions,
shop names) may begin with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return,
which a spreadsheet would take as a formula (OWASP "CSV injection"): such cells get a
leading ``'``. Amounts are numbers we format ourselves and keep their minus sign.

Each cell is computed in the SELECT (the time in the platform's zone, amounts with
two decimals, type labels, the apostrophe before formulas: see the expressions
below, twins of ``spreadsheet_safe`` and of the page's formatting). An empty cell is
NULL, which PostgreSQL's CSV writes as nothing, like csv.writer does for the header
and the totals written here. A million rows would otherwise cost a million model
instances, datetimes and Decimals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal

from django.db.models import Case, F, Func, QuerySet, TextField, Value, When
from django.db.models.functions import Cast, Coalesce
from django.utils import translation
from django.utils.translation import gettext as _

from credit.models import Wallet
from credit.selectors import (
    ZERO,
    AccountingSummary,
    HistoryFilters,
    accounting_entries,
    export_csv,
    history_transfers,
    kind_labels,
    platform_zone,
)

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The size of the pieces of the response: big enough that sending is cheap, small
# enough that the first bytes leave at once.
BLOCK_SIZE = 64 * 1024


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
    """spreadsheet_safe() of a text column; NULL (an empty cell) for NULL or ''."""

    output_field = TextField()

    def __init__(self, expression: str) -> None:
        super().__init__(F(expression))

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        column, params = compiler.compile(self.source_expressions[0])
        starts = ", ".join(["%s"] * len(FORMULA_STARTS))
        text = f"NULLIF({column}, '')"
        sql = f"(CASE WHEN left({text}, 1) IN ({starts}) THEN '''' || {text} ELSE {text} END)"
        return sql, (*params, *FORMULA_STARTS, *params, *params)


def _amount_text(expression: str, *, empty: str | None = None) -> Cast | Coalesce:
    """A money column (two decimal places) as text, '12.30' or '-5.00'; NULL as ``empty``
    (an empty cell by default)."""
    text = Cast(F(expression), output_field=TextField())
    if empty is None:
        return text
    return Coalesce(text, Value(empty), output_field=TextField())


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


def _csv_text(lines: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def _blocks(head: list[list[str]], rows: QuerySet, tail: list[list[str]]) -> Iterator[bytes]:
    """The file in pieces of about BLOCK_SIZE bytes: a BOM, ``head``, ``rows`` (written
    by PostgreSQL), ``tail``."""
    block = bytearray((BOM + _csv_text(head)).encode())
    for data in export_csv(rows):
        block += data
        if len(block) >= BLOCK_SIZE:
            yield bytes(block)
            block.clear()
    block += _csv_text(tail).encode()
    if block:
        yield bytes(block)


def _in_current_language(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Run ``lines`` in the request's language: the response is iterated after the
    view has returned, when the request's language may no longer be active."""
    language = translation.get_language()

    def run() -> Iterator[bytes]:
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


def history_csv_lines(*, wallet: Wallet, filters: HistoryFilters) -> Iterator[bytes]:
    """The history with the page's filters, newest first, in blocks of lines."""
    return _in_current_language(_history_lines(wallet, filters))


def _history_lines(wallet: Wallet, filters: HistoryFilters) -> Iterator[bytes]:
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
    yield from _blocks([header], rows, [])


def accounting_csv_lines(*, wallet: Wallet, summary: AccountingSummary) -> Iterator[bytes]:
    """The period: opening balance, every movement with the running balance, totals,
    closing balance."""
    return _in_current_language(_accounting_lines(wallet, summary))


def _accounting_lines(wallet: Wallet, summary: AccountingSummary) -> Iterator[bytes]:
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
    yield from _blocks([header, opening], rows, totals)
