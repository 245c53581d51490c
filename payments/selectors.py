"""Reads of payments: transaction search, one transaction with its log, monthly statements.

Every read is scoped to one account (``account_id``), so the queries start from
the indexes that lead with the account: (account, -created_at) and
(account, state, -created_at); an exact gateway reference can also use
(gateway, gateway_reference). Issue #6's benchmark reuses ``transaction_search``, which
writes its SQL itself (see TransactionSearch).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection, models
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from djmoney.money import Money  # formats like the model fields (e.g. "€100.00")

from accounts.models import Account, Platform, Registration, Shop
from payments.models import Gateway, State, Transaction, TransactionEvent

# --- Search ----------------------------------------------------------------------------


class ReferenceMatch:
    EXACT = "exact"
    PREFIX = "prefix"


@dataclass(frozen=True)
class TransactionFilters:
    """What a transaction search asks for; every criterion given must hold (AND).

    Dates are calendar days in the active time zone (``created_to`` included).
    Amounts compare the payment's amount in its own currency.
    """

    created_from: dt.date | None = None
    created_to: dt.date | None = None
    state: str = ""
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    purpose: str = ""
    card_brand: str = ""
    card_last4: str = ""
    reference: str = ""
    reference_match: str = ReferenceMatch.EXACT
    shop_id: int | None = None
    platform_id: int | None = None


def _day_start(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


# The columns a page of search results reads (templates/payments/merchant/transactions.html):
# the payment's own, and the platform's and shop's names. Reading another field of a row
# costs a query per row (a deferred field), which tests/payments/test_search.py would notice.
_LIST_FIELDS = {
    Transaction: (
        "id",
        "public_id",
        "account",
        "platform",
        "shop",
        "created_at",
        "description",
        "purpose",
        "gateway",
        "state",
        "card_brand",
        "card_last4",
        "amount",
        "amount_currency",
        "captured_amount",
        "captured_amount_currency",
        "refunded_amount",
        "refunded_amount_currency",
    ),
    Platform: ("id", "name", "code", "currency"),
    Shop: ("id", "name"),
}


@functools.cache
def _columns(model: type[models.Model], alias: str) -> tuple[tuple[str, ...], str]:
    """(attnames, SQL select list) of a model's list fields, in the model's field order
    (Model.from_db reads values in that order)."""
    wanted = _LIST_FIELDS[model]
    fields = [field for field in model._meta.concrete_fields if field.name in wanted]
    missing = set(wanted) - {field.name for field in fields}
    if missing:
        raise LookupError(f"{model.__name__} has no fields {sorted(missing)}")
    select = ", ".join(f'{alias}."{field.column}"' for field in fields)
    return tuple(field.attname for field in fields), select


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class TransactionSearch:
    """An account's transactions matching a search, newest first; lazy.

    Written as SQL rather than with the ORM: the merchant's list is read on every search,
    and building and compiling two querysets, then instantiating the rows through the
    deferred-field machinery, cost several times what the database spends (issue #6's
    transaction_search benchmark). The statements are fixed for each combination of
    criteria: ``count()`` is one COUNT over the matching rows, a slice one page with the
    platform and shop joined; each row is a Transaction (made with Model.from_db, only the
    list's fields loaded) with its platform and shop, so templates read it as before.
    Django's Paginator takes it as it takes a QuerySet.
    """

    ordered = True
    model = Transaction

    def __init__(self, where: list[str], params: list[object]) -> None:
        self._where = " AND ".join(where)
        self._params = params
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            with connection.cursor() as cursor:
                # Only our own conditions with %s placeholders; values are parameters.
                cursor.execute(
                    f"SELECT COUNT(*) FROM payments_transaction t WHERE {self._where}",  # noqa: S608
                    self._params,
                )
                self._count = cursor.fetchone()[0]
        return self._count

    def __len__(self) -> int:
        return self.count()

    def page_sql(self, *, limit: int | None, offset: int = 0) -> tuple[str, list[object]]:
        _fields, transaction_columns = _columns(Transaction, "t")
        _fields, platform_columns = _columns(Platform, "p")
        _fields, shop_columns = _columns(Shop, "s")
        sql = (
            f"SELECT {transaction_columns}, {platform_columns}, {shop_columns} "  # noqa: S608
            "FROM payments_transaction t "
            "JOIN accounts_platform p ON p.id = t.platform_id "
            "LEFT JOIN accounts_shop s ON s.id = t.shop_id "
            f"WHERE {self._where} ORDER BY t.created_at DESC, t.id DESC"
        )
        params = list(self._params)
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        if offset:
            sql += " OFFSET %s"
            params.append(offset)
        return sql, params

    def _rows(self, *, limit: int | None, offset: int = 0) -> list[Transaction]:
        sql, params = self.page_sql(limit=limit, offset=offset)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        transaction_fields, _sql = _columns(Transaction, "t")
        platform_fields, _sql = _columns(Platform, "p")
        shop_fields, _sql = _columns(Shop, "s")
        set_platform = Transaction._meta.get_field("platform").set_cached_value
        set_shop = Transaction._meta.get_field("shop").set_cached_value
        db = connection.alias
        platforms: dict[int, Platform] = {}
        shops: dict[int, Shop] = {}
        found = []
        platform_start = len(transaction_fields)
        platform_end = platform_start + len(platform_fields)
        for row in rows:
            transaction = Transaction.from_db(db, transaction_fields, row[:platform_start])
            platform_id = row[platform_start]
            if platform_id not in platforms:
                platforms[platform_id] = Platform.from_db(
                    db, platform_fields, row[platform_start:platform_end]
                )
            set_platform(transaction, platforms[platform_id])
            shop_id = row[platform_end]
            if shop_id is not None and shop_id not in shops:
                shops[shop_id] = Shop.from_db(db, shop_fields, row[platform_end:])
            set_shop(transaction, shops.get(shop_id) if shop_id is not None else None)
            found.append(transaction)
        return found

    def __getitem__(self, index: slice) -> list[Transaction]:
        if not isinstance(index, slice) or index.step is not None:
            raise TypeError("a transaction search is read by slices, e.g. [0:25]")
        start, stop = index.start or 0, index.stop
        if start < 0 or (stop is not None and stop < 0):
            raise ValueError("negative indexes are not supported")
        if stop is not None and stop <= start:
            return []
        return self._rows(limit=None if stop is None else stop - start, offset=start)

    def __iter__(self) -> Iterator[Transaction]:
        return iter(self._rows(limit=None))


def transaction_search(
    *, account_id: int, filters: TransactionFilters | None = None
) -> TransactionSearch:
    """The account's transactions matching ``filters``, newest first.

    Lazy: slice it (or hand it to a Paginator) to read a page. Platform and shop
    come in the same query, so rendering a page costs no further queries.
    """
    filters = filters or TransactionFilters()
    where = ["t.account_id = %s"]
    params: list[object] = [account_id]

    def match(condition: str, *values: object) -> None:
        where.append(condition)
        params.extend(values)

    tz = timezone.get_current_timezone()
    if filters.created_from:
        match("t.created_at >= %s", _day_start(filters.created_from, tz))
    if filters.created_to:
        match("t.created_at < %s", _day_start(filters.created_to + dt.timedelta(days=1), tz))
    if filters.state:
        match("t.state = %s", filters.state)
    if filters.amount_min is not None:
        match("t.amount >= %s", filters.amount_min)
    if filters.amount_max is not None:
        match("t.amount <= %s", filters.amount_max)
    if filters.purpose:
        match("t.purpose = %s", filters.purpose)
    if filters.card_brand:
        match("t.card_brand = %s", filters.card_brand)
    if filters.card_last4:
        match("t.card_last4 = %s", filters.card_last4)
    if filters.reference:
        reference = filters.reference.strip()
        if filters.reference_match == ReferenceMatch.PREFIX:
            # LIKE 'abc%': a btree range scan under the database's C collation.
            match("t.gateway_reference LIKE %s", _like_prefix(reference))
        else:
            # Naming every gateway lets PostgreSQL use the (gateway, gateway_reference)
            # index even when the search does not say which gateway it was.
            gateways = list(Gateway.values)
            match(
                f"t.gateway IN ({', '.join(['%s'] * len(gateways))}) AND t.gateway_reference = %s",
                *gateways,
                reference,
            )
    if filters.shop_id is not None:
        match("t.shop_id = %s", filters.shop_id)
    if filters.platform_id is not None:
        match("t.platform_id = %s", filters.platform_id)
    return TransactionSearch(where, params)


def shops_for_search(*, account_id: int) -> QuerySet[Shop]:
    return (
        Shop.objects.filter(registration__account_id=account_id)
        .select_related("registration__platform")
        .order_by("name", "id")
    )


def platforms_for_account(*, account_id: int) -> QuerySet[Platform]:
    return Platform.objects.filter(registrations__account_id=account_id).order_by("name")


# --- One transaction and its message log ------------------------------------------------


def transaction_for_account(*, account_id: int, public_id: object) -> Transaction | None:
    return (
        Transaction.objects.select_related("platform", "shop", "account")
        .filter(account_id=account_id, public_id=public_id)
        .first()
    )


def _operation_words() -> dict[str, tuple[str, str]]:
    """operation -> (noun for "... requested", past participle for the outcome)."""
    return {
        "authorize": (_("Authorization"), _("Authorized")),
        "purchase": (_("Payment"), _("Paid")),
        "capture": (_("Capture"), _("Captured")),
        "void": (_("Void"), _("Voided")),
        "refund": (_("Refund"), _("Refunded")),
        "expire": (_("Expiry"), _("Expired")),
        "complete_action": (_("Card authentication"), _("Card authenticated")),
        "transfer": (_("Bank transfer"), _("Bank transfer received")),
        "reconcile": (_("Check with the gateway"), _("Checked with the gateway")),
    }


def event_action_label(event: TransactionEvent) -> str:
    """What a log entry did, in words ("Capture requested", "Refunded", "Note")."""
    action = event.action
    if event.kind == TransactionEvent.Kind.NOTE or action == "note":
        return _("Note")
    if action == "created":
        return _("Payment created")
    if action == "failed":
        return _("Payment failed")
    words = _operation_words()
    if action in words:
        return words[action][1]
    for suffix, template in (
        ("_requested", _("%(operation)s requested")),
        ("_failed", _("%(operation)s refused")),
        ("_unknown", _("%(operation)s: no answer from the gateway")),
        ("_not_done", _("%(operation)s did not happen")),
    ):
        if action.endswith(suffix):
            operation = action.removesuffix(suffix)
            if operation in words:
                return template % {"operation": words[operation][0]}
    # Actions added later (shipping, ...) read well enough from their code.
    return (action or event.get_kind_display()).replace("_", " ").capitalize()


def event_actor_label(event: TransactionEvent) -> str:
    """Who acted: the person, or the task in words."""
    if event.author_id:
        name = str(event.author)
        return (
            pgettext("log author", "%(name)s (staff)") % {"name": name}
            if event.author.is_staff
            else name
        )
    tasks = {
        "expire-authorizations": _("Automatic expiry (task)"),
        "reconcile-payments": _("Payment reconciliation (task)"),
        "system": _("System"),
        "": _("System"),
    }
    return tasks.get(event.system_actor, _("%(task)s (task)") % {"task": event.system_actor})


def transaction_log(*, transaction: Transaction) -> list[TransactionEvent]:
    """The message log, oldest first; each entry carries ``label`` (what, in words),
    ``who`` (person or task) and ``money`` (its amount in the payment's currency)."""
    events = list(
        TransactionEvent.objects.filter(transaction_id=transaction.pk)
        .select_related("author")
        .order_by("created_at", "id")
    )
    for event in events:
        event.label = event_action_label(event)  # type: ignore[attr-defined]
        event.who = event_actor_label(event)  # type: ignore[attr-defined]
        event.money = (  # type: ignore[attr-defined]
            None if event.amount is None else Money(event.amount, transaction.currency)
        )
    return events


@dataclass(frozen=True)
class AllowedActions:
    capture: bool = False
    void: bool = False
    refund: bool = False

    @property
    def any(self) -> bool:
        return self.capture or self.void or self.refund


def transaction_allowed_actions(transaction: Transaction) -> AllowedActions:
    """The money operations the state allows now (the services check again, under lock)."""
    if transaction.pending_operation:
        return AllowedActions()
    state = transaction.state
    return AllowedActions(
        capture=state == State.AUTHORIZED,
        void=state in (State.AUTHORIZED, State.ACTION_REQUIRED),
        refund=state in (State.CAPTURED, State.PARTIALLY_REFUNDED)
        and transaction.refundable_amount.amount > 0,
    )


# --- Monthly statements -------------------------------------------------------------------


@dataclass(frozen=True)
class StatementMonth:
    platform: Platform
    year: int
    month: int
    count: int

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)


def statement_months(*, account_id: int) -> list[StatementMonth]:
    """Per platform of the account, the months (in the platform's time zone) with
    transactions, newest first."""
    months: list[StatementMonth] = []
    for platform in platforms_with_transactions(account_id=account_id):
        rows = (
            Transaction.objects.filter(account_id=account_id, platform=platform)
            .annotate(month=TruncMonth("created_at", tzinfo=_zone(platform)))
            .values("month")
            .annotate(count=Count("id"))
            .order_by("-month")
        )
        months += [
            StatementMonth(platform, row["month"].year, row["month"].month, row["count"])
            for row in rows
        ]
    return months


def platforms_with_transactions(*, account_id: int) -> QuerySet[Platform]:
    return Platform.objects.filter(
        Exists(Transaction.objects.filter(platform=OuterRef("pk"), account_id=account_id))
    ).order_by("name")


def statement_platform(*, account_id: int, code: str) -> Platform | None:
    """The platform of a statement, if the account is registered or has payments there."""
    return (
        Platform.objects.filter(code=code)
        .filter(
            Exists(Registration.objects.filter(platform=OuterRef("pk"), account_id=account_id))
            | Exists(Transaction.objects.filter(platform=OuterRef("pk"), account_id=account_id))
        )
        .first()
    )


def _zone(platform: Platform) -> ZoneInfo:
    tz = platform.time_zone
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(str(tz))


@dataclass(frozen=True)
class StateTotal:
    state: str
    label: str
    count: int
    amount: Money


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    count: int
    captured: Money
    refunded: Money

    @property
    def net(self) -> Money:
        return self.captured - self.refunded


@dataclass(frozen=True)
class Statement:
    """One account's transactions on one platform in one calendar month."""

    account: Account
    platform: Platform
    year: int
    month: int
    time_zone: ZoneInfo
    starts_at: dt.datetime
    ends_at: dt.datetime  # exclusive
    by_state: tuple[StateTotal, ...] | list[StateTotal] = ()
    by_currency: tuple[CurrencyTotal, ...] | list[CurrencyTotal] = ()

    @property
    def first_day(self) -> dt.date:
        return self.starts_at.date()

    @property
    def last_day(self) -> dt.date:
        return (self.ends_at - dt.timedelta(days=1)).date()

    @property
    def count(self) -> int:
        return sum(total.count for total in self.by_state)

    def transactions(self) -> QuerySet[Transaction]:
        """Oldest first; iterate with ``.iterator()`` for a large month."""
        return (
            Transaction.objects.filter(
                account_id=self.account.pk,
                platform_id=self.platform.pk,
                created_at__gte=self.starts_at,
                created_at__lt=self.ends_at,
            )
            .select_related("shop")
            .order_by("created_at", "id")
        )

    def rows(self) -> Iterator[Transaction]:
        return self.transactions().iterator(chunk_size=2000)


def statement_for_month(
    *, account: Account, platform: Platform, year: int, month: int
) -> Statement:
    """The statement with its totals (the rows are read when iterated)."""
    if not 1 <= month <= 12 or not 2000 <= year <= 9999:
        raise ValueError("month out of range")
    tz = _zone(platform)
    starts_at = dt.datetime(year, month, 1, tzinfo=tz)
    ends_at = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    rows = Statement(account, platform, year, month, tz, starts_at, ends_at).transactions()
    by_state, by_currency = _statement_totals(rows)
    return Statement(account, platform, year, month, tz, starts_at, ends_at, by_state, by_currency)


def _statement_totals(
    transactions: QuerySet[Transaction],
) -> tuple[list[StateTotal], list[CurrencyTotal]]:
    """Count and amount per state; captured and refunded sums per currency (one query)."""
    grouped = (
        transactions.order_by()
        .values("state", "amount_currency")
        .annotate(
            count=Count("id"),
            amount=Sum("amount"),
            captured=Sum("captured_amount"),
            refunded=Sum("refunded_amount"),
        )
    )
    labels = dict(State.choices)
    order = {state: index for index, state in enumerate(State.values)}
    by_state: list[StateTotal] = []
    sums: dict[str, dict] = {}
    for row in sorted(grouped, key=lambda r: (order.get(r["state"], 99), r["amount_currency"])):
        currency = row["amount_currency"]
        by_state.append(
            StateTotal(
                state=row["state"],
                label=str(labels.get(row["state"], row["state"])),
                count=row["count"],
                amount=Money(row["amount"], currency),
            )
        )
        total = sums.setdefault(
            currency, {"count": 0, "captured": Decimal(0), "refunded": Decimal(0)}
        )
        total["count"] += row["count"]
        total["captured"] += row["captured"]
        total["refunded"] += row["refunded"]
    by_currency = [
        CurrencyTotal(
            currency=currency,
            count=total["count"],
            captured=Money(total["captured"], currency),
            refunded=Money(total["refunded"], currency),
        )
        for currency, total in sorted(sums.items())
    ]
    return by_state, by_currency
