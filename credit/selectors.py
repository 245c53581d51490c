"""Reads of credit for the portal: a wallet at a glance, spend per day, the history of
credit operations and the accounting view of a period.

Every read here costs a fixed number of queries, whatever the size of the
wallet's history:

- the history reads transfers through the index ``transfer_wallet_time``
  (wallet, -created_at, -id) and pages with a keyset ("older than this row")
  rather than OFFSET, so page 500 of 200,000 rows starts where page 499 ended
  instead of reading and discarding 25,000 rows, and nothing COUNTs the history;
- the accounting view reads the wallet's entries through ``entry_account_time``
  (ledger_account, created_at, id): the opening balance is the ``balance_after``
  of the last entry before the period (one index probe, no SUM over history),
  the totals are one aggregate over the period only, the movements a keyset page;
- the wallet page's chart is one GROUP BY over the last 90 days.

Days are calendar days in the platform's time zone: a wallet lives on one
platform, and its customers, prices and documents are that platform's.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import F, FilteredRelation, Q, QuerySet
from django.utils import timezone
from djmoney.money import Money, get_current_locale
from djmoney.settings import MONEY_FORMAT

from accounts.models import Platform, Shop
from credit.models import Entry, Transfer, Wallet
from credit.services.ledger import average_daily_spend
from credit.services.spend import SPEND_KINDS, spend_days_sum_up

ZERO = Decimal("0.00")
HISTORY_PAGE_SIZE = 50
ACCOUNTING_PAGE_SIZE = 100
CHART_DAYS = 90


# --- Amounts as text ------------------------------------------------------------------------


class _Money(Money):
    """Money that writes itself exactly as djmoney does (babel's currency format in the
    active language), without running babel's number formatting for every amount.

    A page of history shows a hundred amounts and the wallet page several hundred;
    babel spends tens of microseconds on each. The layout of a language and currency
    (symbol, signs, separators) is read from babel once and checked against babel on
    sample amounts; where it does not reproduce babel exactly (other digit counts or
    grouping rules), babel formats as before.
    """

    def __str__(self) -> str:
        amount = self.amount
        if (
            not self.format_options
            and not MONEY_FORMAT
            and amount.is_finite()
            and not (amount.is_zero() and amount.is_signed())
        ):
            write = _amount_writer(get_current_locale(), self.currency.code)
            if write is not None:
                return write(amount)
        return super().__str__()


_SAMPLE_AMOUNTS = tuple(
    Decimal(text)
    for text in (
        "0.01",
        "0.5",
        "7",
        "12.34",
        "999.99",
        "1000",
        "1234.5",
        "9999.99",
        "10000",
        "12345.67",
        "123456.78",
        "1234567.89",
        "1000000000",
    )
)
_LAYOUT = re.compile(r"1(?P<group>\D*)234(?P=group)567(?P<point>\D+)89")


@functools.lru_cache(maxsize=256)
def _amount_writer(locale: str, currency: str) -> Callable[[Decimal], str] | None:
    """A quick writer of ``currency`` amounts in ``locale``, or None to leave it to babel."""
    from babel.numbers import format_currency

    def babel(amount: Decimal) -> str:
        return format_currency(amount, currency, locale=locale)

    try:
        positive, negative = babel(Decimal("1234567.89")), babel(Decimal("-1234567.89"))
    except Exception:  # an unknown locale or currency: babel's own error, later
        return None
    found = _LAYOUT.search(positive), _LAYOUT.search(negative)
    if found[0] is None or found[1] is None or found[0].groups() != found[1].groups():
        return None
    group, point = found[0].groups()
    plus = positive[: found[0].start()], positive[found[0].end() :]
    minus = negative[: found[1].start()], negative[found[1].end() :]

    def write(amount: Decimal) -> str:
        digits = f"{abs(amount):,.2f}"
        if group != "," or point != ".":
            digits = digits.replace(",", "\0").replace(".", point).replace("\0", group)
        prefix, suffix = minus if amount < 0 else plus
        return f"{prefix}{digits}{suffix}"

    for amount in (ZERO, *_SAMPLE_AMOUNTS, *(-amount for amount in _SAMPLE_AMOUNTS)):
        if write(amount) != babel(amount):
            return None
    return write


# --- Finding the wallet -------------------------------------------------------------------


def wallet_platform(*, account_id: int, platform_code: str) -> Platform | None:
    """The platform with this code, if the account is registered on it (else None: a 404)."""
    return Platform.objects.filter(code=platform_code, registrations__account_id=account_id).first()


def platform_zone(platform: Platform) -> ZoneInfo:
    tz = platform.time_zone
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(str(tz))


def _day_start(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def platform_today(platform: Platform) -> dt.date:
    return timezone.now().astimezone(platform_zone(platform)).date()


def shops_of_wallet(*, wallet: Wallet) -> QuerySet[Shop]:
    """The shops of the wallet's account on the wallet's platform (they share its credit)."""
    return Shop.objects.filter(
        registration__account_id=wallet.account_id, registration__platform_id=wallet.platform_id
    ).order_by("name", "id")


# --- A wallet at a glance ---------------------------------------------------------------


def days_of_credit_left(*, balance: Decimal, average_daily_spend: Decimal) -> int | None:
    """Whole days the balance lasts at the average daily spend; None when nothing is spent."""
    if average_daily_spend <= 0:
        return None
    if balance <= 0:
        return 0
    return int((balance / average_daily_spend).to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class LowBalance:
    """A wallet below the customer's low-balance limit (the portal's banner)."""

    platform: Platform
    balance: Money
    limit: Money


@dataclass(frozen=True)
class WalletOverview:
    wallet: Wallet
    platform: Platform
    balance: Money
    # Balance plus the overdraft staff granted; None when there is no overdraft.
    available: Money | None
    average_daily_spend: Money
    days_left: int | None
    low_balance_limit: Money | None  # None: warnings are off
    is_below_low_balance_limit: bool
    # Automatic recharge charges the card below this (N days of the average spend).
    recharge_threshold: Money
    recharge_amount: Money | None

    @property
    def low_balance(self) -> LowBalance | None:
        if not self.is_below_low_balance_limit or self.low_balance_limit is None:
            return None
        return LowBalance(self.platform, self.balance, self.low_balance_limit)


def wallet_overview(*, wallet: Wallet) -> WalletOverview:
    """Balance, days of credit left and the low-balance state (one query: the spend)."""
    platform = wallet.platform
    average = average_daily_spend(wallet=wallet, days=platform.spend_average_days)
    return WalletOverview(
        wallet=wallet,
        platform=platform,
        balance=wallet.balance_money,
        available=wallet.available if wallet.overdraft_limit > 0 else None,
        average_daily_spend=wallet.money(average),
        days_left=days_of_credit_left(balance=wallet.balance, average_daily_spend=average),
        low_balance_limit=wallet.money(wallet.low_balance_limit)
        if wallet.low_balance_limit > 0
        else None,
        is_below_low_balance_limit=wallet.is_below_low_balance_limit,
        recharge_threshold=wallet.money(average * platform.recharge_threshold_days),
        recharge_amount=wallet.money(wallet.auto_recharge_amount)
        if wallet.auto_recharge_amount
        else None,
    )


def low_balances(*, account_id: int) -> list[LowBalance]:
    """The account's wallets whose balance is below the customer's limit (one query).

    The same test as Wallet.is_below_low_balance_limit, in SQL; for the banner on
    the portal's home page.
    """
    wallets = (
        Wallet.objects.filter(
            account_id=account_id, low_balance_limit__gt=0, balance__lt=F("low_balance_limit")
        )
        .select_related("platform")
        .order_by("platform__name", "id")
    )
    return [
        LowBalance(wallet.platform, wallet.balance_money, wallet.money(wallet.low_balance_limit))
        for wallet in wallets
    ]


# --- Spend per day, by shop (the wallet page's chart) -------------------------------------


@dataclass(frozen=True)
class SpendSeries:
    key: str  # "shop-<id>", "no-shop" or "other"
    name: str
    total: Decimal


@dataclass
class DailySpend:
    """Net spend (payments less refunds) per day and shop, oldest day first."""

    currency: str
    days: list[dt.date]
    series: list[SpendSeries]
    # (day, series key) -> amount; days and series with nothing spent are absent.
    amounts: dict[tuple[dt.date, str], Decimal] = field(default_factory=dict)
    # Each day's total over the series, when known (spend_per_day adds them up once: the
    # page, its chart and its summary ask for them several times per day).
    day_totals: dict[dt.date, Decimal] = field(default_factory=dict)

    def amount(self, day: dt.date, key: str) -> Decimal:
        return self.amounts.get((day, key), ZERO)

    def day_total(self, day: dt.date) -> Decimal:
        if self.day_totals:
            return self.day_totals.get(day, ZERO)
        return sum((self.amount(day, s.key) for s in self.series), ZERO)

    @property
    def total(self) -> Decimal:
        return sum((s.total for s in self.series), ZERO)

    @property
    def days_with_spend(self) -> list[dt.date]:
        return [day for day in self.days if self.day_total(day) != 0]

    def money(self, amount: Decimal) -> Money:
        return _Money(amount, self.currency)

    def money_text(self) -> Callable[[Decimal], str]:
        """A writer of this chart's amounts, the same text as ``str(self.money(amount))``,
        with the language's layout looked up once (a chart writes hundreds of amounts)."""
        write = None if MONEY_FORMAT else _amount_writer(get_current_locale(), self.currency)

        def text(amount: Decimal) -> str:
            if (
                write is not None
                and amount.is_finite()
                and not (amount.is_zero() and amount.is_signed())
            ):
                return write(amount)
            return str(self.money(amount))

        return text


# More shops than this are drawn as one "other shops" series, so colours stay distinct.
MAX_SERIES = 7


# Closed days summed up (through the last day summed up), the other days from the entries.
_SPEND_CELLS = """
WITH cells AS (
    SELECT day, shop_id, amount FROM credit_spendday
    WHERE wallet_id = %(wallet)s AND day >= %(first_day)s AND day <= %(summed_through)s
    UNION ALL
    -- Each open-day entry's transfer by its primary key (OFFSET 0 keeps the planner from
    -- turning this into a join that may scan every transfer: it cannot tell that this
    -- wallet's entries since a recent time are few when the whole ledger's are many).
    SELECT (e.created_at AT TIME ZONE %(zone)s)::date, t.shop_id, -SUM(e.amount)
    FROM credit_entry e
    CROSS JOIN LATERAL (
        SELECT kind, shop_id FROM credit_transfer WHERE id = e.transfer_id OFFSET 0
    ) AS t
    WHERE e.ledger_account_id = %(account)s AND t.kind = ANY(%(kinds)s)
      AND e.created_at >= %(open_from)s
    GROUP BY 1, 2
)
SELECT cells.day, cells.shop_id, accounts_shop.name, cells.amount
FROM cells LEFT JOIN accounts_shop ON accounts_shop.id = cells.shop_id
"""


def spend_per_day(
    *, wallet: Wallet, days: int = CHART_DAYS, no_shop: str = "", other: str = ""
) -> DailySpend:
    """The last ``days`` days (today included) of spending by shop: closed days summed up
    once (credit.services.spend, which this first brings up to date: one query on most
    views), the open ones from the wallet's entries (by the time of the wallet's entry),
    in one query.

    ``no_shop`` and ``other`` are the names shown for spending without a shop and for
    the shops beyond the seventh; the caller passes them translated.
    """
    tz = platform_zone(wallet.platform)
    today = timezone.now().astimezone(tz).date()
    first_day = today - dt.timedelta(days=days - 1)
    summed_through = spend_days_sum_up(wallet=wallet, zone=tz, first_day=first_day)
    open_from = first_day if summed_through is None else summed_through + dt.timedelta(days=1)
    with connection.cursor() as cursor:
        cursor.execute(
            _SPEND_CELLS,
            {
                "wallet": wallet.pk,
                "account": wallet.ledger_account_id,
                "zone": str(tz),
                "first_day": first_day,
                "summed_through": summed_through,
                "open_from": _day_start(open_from, tz),
                "kinds": [str(kind) for kind in SPEND_KINDS],
            },
        )
        found = cursor.fetchall()
    per_shop: dict[int | None, Decimal] = {}
    names: dict[int | None, str] = {}
    cells: list[tuple[dt.date, int | None, Decimal]] = []
    for day, shop_id, shop_name, spent in found:
        names[shop_id] = shop_name or no_shop
        per_shop[shop_id] = per_shop.get(shop_id, ZERO) + spent
        cells.append((day, shop_id, spent))

    # The biggest spenders first (drawn at the bottom), spending without a shop last.
    ranked = sorted(
        (shop_id for shop_id in per_shop if shop_id is not None),
        key=lambda shop_id: (-per_shop[shop_id], names[shop_id].lower(), shop_id),
    )
    kept = ranked[:MAX_SERIES] if len(ranked) <= MAX_SERIES else ranked[: MAX_SERIES - 1]
    key_of: dict[int | None, str] = {shop_id: f"shop-{shop_id}" for shop_id in kept}
    series = [SpendSeries(key_of[s], names[s], per_shop[s]) for s in kept]
    others = [shop_id for shop_id in ranked if shop_id not in key_of]
    if others:
        for shop_id in others:
            key_of[shop_id] = "other"
        series.append(SpendSeries("other", other, sum((per_shop[s] for s in others), ZERO)))
    if None in per_shop:
        key_of[None] = "no-shop"
        series.append(SpendSeries("no-shop", no_shop, per_shop[None]))

    amounts: dict[tuple[dt.date, str], Decimal] = {}
    day_totals: dict[dt.date, Decimal] = {}
    for day, shop_id, spent in cells:
        cell = (day, key_of[shop_id])
        amounts[cell] = amounts.get(cell, ZERO) + spent
        day_totals[day] = day_totals.get(day, ZERO) + spent
    return DailySpend(
        currency=wallet.currency,
        days=[first_day + dt.timedelta(days=n) for n in range(days)],
        series=series,
        amounts=amounts,
        day_totals=day_totals,
    )


# --- Keyset pages ------------------------------------------------------------------------


class BadCursor(ValueError):
    """A page link that was not made by us (or has been cut short)."""


@dataclass(frozen=True)
class Cursor:
    """A position in a list ordered by (created_at, id): the row a page starts after."""

    created_at: dt.datetime
    id: int

    _EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    _FORMAT = re.compile(r"^([0-9]{1,18})-([0-9]{1,18})$")

    @classmethod
    def of(cls, row: Transfer | Entry) -> Cursor:
        return cls(row.created_at, row.pk)

    def encode(self) -> str:
        """Microseconds since 1970 and the id: exact, short, and safe in a URL."""
        return f"{(self.created_at - self._EPOCH) // dt.timedelta(microseconds=1)}-{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = cls._FORMAT.match(text or "")
        if match is None:
            raise BadCursor(text)
        try:
            at = cls._EPOCH + dt.timedelta(microseconds=int(match[1]))
        except OverflowError:
            raise BadCursor(text) from None
        return cls(at, int(match[2]))


Row = TypeVar("Row")


@dataclass
class KeysetPage(Generic[Row]):
    rows: list[Row]
    # Links to the neighbouring pages in display order (None: there is none).
    after: Cursor | None
    before: Cursor | None

    @property
    def is_first(self) -> bool:
        return self.before is None

    @property
    def has_other_pages(self) -> bool:
        return self.after is not None or self.before is not None


def _beyond(queryset: QuerySet, cursor: Cursor, *, descending: bool) -> QuerySet:
    """Rows after ``cursor`` in (created_at, id) order, descending or ascending.

    The redundant ``created_at <= c`` (or ``>=``) is the index condition: it lets
    PostgreSQL start the index scan at the cursor. The OR alone would only be a
    filter, and the scan would read every newer row first.
    """
    if descending:
        return queryset.filter(
            Q(created_at__lte=cursor.created_at),
            Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id),
        )
    return queryset.filter(
        Q(created_at__gte=cursor.created_at),
        Q(created_at__gt=cursor.created_at) | Q(id__gt=cursor.id),
    )


def _order(*, descending: bool) -> tuple[str, str]:
    return ("-created_at", "-id") if descending else ("created_at", "id")


def keyset_page(
    queryset: QuerySet,
    *,
    descending: bool,
    size: int,
    after: Cursor | None = None,
    before: Cursor | None = None,
) -> KeysetPage:
    """One page of ``queryset`` in (created_at, id) order: one query, LIMIT size + 1.

    ``after`` gives the page following a row (the "next" link), ``before`` the
    page preceding one (the "previous" link, read in reverse order and turned
    round). Without either, the first page.
    """
    if before is not None:
        found = list(
            _beyond(queryset, before, descending=not descending).order_by(
                *_order(descending=not descending)
            )[: size + 1]
        )
        more_before = len(found) > size
        rows = found[:size][::-1]
        return KeysetPage(
            rows=rows,
            after=Cursor.of(rows[-1]) if rows else before,
            before=Cursor.of(rows[0]) if rows and more_before else None,
        )
    scope = queryset if after is None else _beyond(queryset, after, descending=descending)
    found = list(scope.order_by(*_order(descending=descending))[: size + 1])
    rows = found[:size]
    return KeysetPage(
        rows=rows,
        after=Cursor.of(rows[-1]) if len(found) > size else None,
        # A page reached by a "next" link has rows before it: the one it came from.
        before=(Cursor.of(rows[0]) if rows else after) if after is not None else None,
    )


# --- History of credit operations ---------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilters:
    """What the history shows; every criterion given must hold. Days are the platform's."""

    kind: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    shop_id: int | None = None


def _with_wallet_leg(queryset: QuerySet[Transfer], wallet: Wallet) -> QuerySet[Transfer]:
    """Each transfer with its entry on the wallet: the signed change and the balance after.

    One LEFT JOIN on the entry's transfer index (no query per row).
    """
    return queryset.annotate(
        wallet_leg=FilteredRelation(
            "entries", condition=Q(entries__ledger_account_id=wallet.ledger_account_id)
        ),
        change=F("wallet_leg__amount"),
        balance_after=F("wallet_leg__balance_after"),
    ).select_related("shop")


def history_transfers(*, wallet: Wallet, filters: HistoryFilters) -> QuerySet[Transfer]:
    """The wallet's transfers matching ``filters`` (unordered: pages and exports order)."""
    tz = platform_zone(wallet.platform)
    queryset = Transfer.objects.filter(wallet=wallet)
    if filters.kind:
        queryset = queryset.filter(kind=filters.kind)
    if filters.date_from:
        queryset = queryset.filter(created_at__gte=_day_start(filters.date_from, tz))
    if filters.date_to:
        next_day = filters.date_to + dt.timedelta(days=1)
        queryset = queryset.filter(created_at__lt=_day_start(next_day, tz))
    if filters.shop_id is not None:
        queryset = queryset.filter(shop_id=filters.shop_id)
    return _with_wallet_leg(queryset, wallet)


@dataclass(frozen=True)
class HistoryRow:
    transfer: Transfer
    created_at: dt.datetime  # in the platform's time zone
    kind_label: str
    description: str
    shop_name: str
    change: Money  # signed: + credit added, - credit used
    balance_after: Money | None

    @property
    def is_credit(self) -> bool:
        return self.change.amount > 0


def kind_labels() -> dict[str, str]:
    """Each transfer kind's label in the active language.

    Once per page or export: ``get_kind_display()`` translates every choice on each call.
    """
    return {value: str(label) for value, label in Transfer.Kind.choices}


def _history_row(transfer: Transfer, tz: ZoneInfo, labels: dict[str, str]) -> HistoryRow:
    currency = transfer.currency
    return HistoryRow(
        transfer=transfer,
        created_at=transfer.created_at.astimezone(tz),
        kind_label=labels.get(transfer.kind, transfer.kind),
        description=transfer.memo,
        shop_name=transfer.shop.name if transfer.shop_id else "",
        change=_Money(transfer.change, currency),
        balance_after=_Money(transfer.balance_after, currency)
        if transfer.balance_after is not None
        else None,
    )


def history_page(
    *,
    wallet: Wallet,
    filters: HistoryFilters,
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = HISTORY_PAGE_SIZE,
) -> KeysetPage[HistoryRow]:
    """One page of the history, newest first: one query whatever the page."""
    page = keyset_page(
        history_transfers(wallet=wallet, filters=filters),
        descending=True,
        size=size,
        after=after,
        before=before,
    )
    tz = platform_zone(wallet.platform)
    labels = kind_labels()
    page.rows = [_history_row(transfer, tz, labels) for transfer in page.rows]
    return page


# --- Rows for the CSV exports -------------------------------------------------------------


def export_csv(rows: QuerySet) -> Iterator[memoryview]:
    """``rows`` (a values_list) as CSV lines written by PostgreSQL: ``COPY (<its SELECT>)
    TO STDOUT WITH (FORMAT csv)``, read piece by piece as the server sends it (for the
    CSV exports, credit.exports).

    One statement, so one snapshot, and nothing of the result is held here: PostgreSQL
    sends lines as it finds them and the caller passes them on. Parameters are bound
    on the client (COPY takes none). If the caller stops early (the client went away),
    leaving the ``with`` cancels the statement and the connection stays usable.
    PostgreSQL's CSV: a NULL is an empty cell, an empty string ``""``, a cell with a
    comma, quote or line break is quoted; lines end with a line feed.
    """
    sql, params = rows.query.sql_with_params()
    statement = f"COPY ({connection.ops.compose_sql(sql, params)}) TO STDOUT WITH (FORMAT csv)"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        yield from copy


# --- Accounting view of a period ---------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Calendar days ``first_day`` to ``last_day`` (both included) in a time zone."""

    first_day: dt.date
    last_day: dt.date
    time_zone: ZoneInfo

    @property
    def starts_at(self) -> dt.datetime:
        return _day_start(self.first_day, self.time_zone)

    @property
    def ends_at(self) -> dt.datetime:
        """Exclusive: the start of the day after the last."""
        return _day_start(self.last_day + dt.timedelta(days=1), self.time_zone)


def current_month(platform: Platform) -> tuple[dt.date, dt.date]:
    """The first and last day of this month on the platform (the default period)."""
    today = platform_today(platform)
    first = today.replace(day=1)
    next_month = (first + dt.timedelta(days=32)).replace(day=1)
    return first, next_month - dt.timedelta(days=1)


@dataclass(frozen=True)
class AccountingSummary:
    period: Period
    opening: Money
    credits: Money  # added in the period (positive)
    debits: Money  # taken in the period (positive)
    closing: Money
    movements: int


@dataclass(frozen=True)
class AccountingRow:
    entry: Entry
    created_at: dt.datetime  # in the platform's time zone
    kind_label: str
    description: str
    shop_name: str
    change: Money
    balance: Money  # running balance: the wallet's balance right after this movement

    @property
    def is_credit(self) -> bool:
        return self.change.amount > 0


def _period_entries(*, wallet: Wallet, period: Period) -> QuerySet[Entry]:
    return Entry.objects.filter(
        ledger_account_id=wallet.ledger_account_id,
        created_at__gte=period.starts_at,
        created_at__lt=period.ends_at,
    )


def _wallet_at(wallet: Wallet, moment: dt.datetime) -> tuple[Decimal, Decimal, int]:
    """The wallet just before ``moment``: (balance, all it was credited, entries so far),
    read from its last entry before then (one probe of (ledger_account, created_at, id))."""
    found = (
        Entry.objects.filter(ledger_account_id=wallet.ledger_account_id, created_at__lt=moment)
        .order_by("-created_at", "-id")
        .values_list("balance_after", "credited_after", "movement_number")
        .first()
    )
    return found or (ZERO, ZERO, 0)


def accounting_summary(
    *, wallet: Wallet, first_day: dt.date, last_day: dt.date
) -> AccountingSummary:
    """Opening balance, credits, debits and closing balance of a period: two queries,
    whatever the number of entries.

    A wallet entry carries the wallet's running totals right after it (balance, all
    ever credited, its number), and entries are in time order as they are in balance
    order (credit.models.Entry). So the wallet at the period's start and at its end are
    its last entries before each; credits are the difference of the credited totals,
    movements that of the numbers, debits what the balance did not keep.
    """
    period = Period(first_day, last_day, platform_zone(wallet.platform))
    opening, credited_before, number_before = _wallet_at(wallet, period.starts_at)
    closing, credited_by_end, number_by_end = _wallet_at(wallet, period.ends_at)
    credits = credited_by_end - credited_before
    debits = credits - (closing - opening)
    currency = wallet.currency
    return AccountingSummary(
        period=period,
        opening=_Money(opening, currency),
        credits=_Money(credits, currency),
        debits=_Money(debits, currency),
        closing=_Money(closing, currency),
        movements=number_by_end - number_before,
    )


def _accounting_row(entry: Entry, tz: ZoneInfo, labels: dict[str, str]) -> AccountingRow:
    transfer = entry.transfer
    return AccountingRow(
        entry=entry,
        created_at=entry.created_at.astimezone(tz),
        kind_label=labels.get(transfer.kind, transfer.kind),
        description=transfer.memo,
        shop_name=transfer.shop.name if transfer.shop_id else "",
        change=_Money(entry.amount, entry.currency),
        balance=_Money(entry.balance_after or ZERO, entry.currency),
    )


def _accounting_entries(*, wallet: Wallet, period: Period) -> QuerySet[Entry]:
    return _period_entries(wallet=wallet, period=period).select_related("transfer__shop")


def accounting_page(
    *,
    wallet: Wallet,
    period: Period,
    after: Cursor | None = None,
    before: Cursor | None = None,
    size: int = ACCOUNTING_PAGE_SIZE,
) -> KeysetPage[AccountingRow]:
    """One page of the period's movements, oldest first, with the running balance."""
    page = keyset_page(
        _accounting_entries(wallet=wallet, period=period),
        descending=False,
        size=size,
        after=after,
        before=before,
    )
    labels = kind_labels()
    page.rows = [_accounting_row(entry, period.time_zone, labels) for entry in page.rows]
    return page


def accounting_entries(*, wallet: Wallet, period: Period) -> QuerySet[Entry]:
    """The wallet's entries in the period (unordered: pages and exports order)."""
    return _period_entries(wallet=wallet, period=period)
