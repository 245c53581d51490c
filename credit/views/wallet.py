"""The customer's wallet pages: every wallet at a glance, one wallet (balance, days of
credit left, spend chart), its history, the accounting view of a period, CSV exports
of both, and the wallet's settings.

A wallet is found by its platform's code *within* ``request.account``: a platform
the account is not registered on is a 404, whoever else has a wallet there. The
wallet itself is created on first visit (credit.services.ledger.wallet_for).

Seeing needs VIEW_MONEY, exports EXPORT, settings MOVE_MONEY. Every page reads
through credit.selectors at a fixed number of queries (see that module).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import conditional_escape
from django.utils.http import content_disposition_header
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from accounts.models import Platform
from accounts.permissions import Capability
from accounts.portal import member_required
from accounts.selectors import registrations_for_account
from credit import selectors
from credit.charts import (
    day_labels,
    series_colours,
    spend_chart_svg,
    spend_summary,
    spend_table_rows,
)
from credit.exceptions import CreditError
from credit.exports import (
    accounting_csv_lines,
    accounting_filename,
    history_csv_lines,
    history_filename,
)
from credit.forms_wallet import AccountingPeriodForm, HistoryFilterForm, WalletSettingsForm
from credit.models import Wallet
from credit.services import ledger
from credit.services.wallets import wallet_settings_update


def _wallet_on(request: HttpRequest, platform: Platform) -> Wallet:
    wallet = ledger.wallet_for(account=request.account, platform=platform)
    # Already loaded: spare the pages a query for each.
    wallet.platform = platform
    wallet.account = request.account
    return wallet


def _wallet(request: HttpRequest, platform_code: str) -> Wallet:
    platform = selectors.wallet_platform(account_id=request.account.pk, platform_code=platform_code)
    if platform is None:
        raise Http404("The account is not registered on this platform")
    return _wallet_on(request, platform)


# --- Wallets and one wallet ----------------------------------------------------------------


@never_cache
@member_required(Capability.VIEW_MONEY)
def wallets(request: HttpRequest) -> HttpResponse:
    registrations = registrations_for_account(account_id=request.account.pk)
    overviews = [
        selectors.wallet_overview(wallet=_wallet_on(request, registration.platform))
        for registration in registrations
    ]
    return render(request, "credit/wallet/wallets.html", {"overviews": overviews})


@never_cache
@member_required(Capability.VIEW_MONEY)
def wallet(request: HttpRequest, platform_code: str) -> HttpResponse:
    found = _wallet(request, platform_code)
    spend = selectors.spend_per_day(
        wallet=found, no_shop=_("Without a shop"), other=_("Other shops")
    )
    names = {series.key: series.name for series in spend.series}
    summary = spend_summary(spend)
    labels = day_labels(spend)
    chart = (
        spend_chart_svg(
            spend,
            title=_("Spend per day by shop, last %(count)d days") % {"count": len(spend.days)},
            summary=summary,
            names=names,
            labels=labels,
        )
        if spend.days_with_spend
        else None
    )
    colours = series_colours(spend)
    overview = selectors.wallet_overview(wallet=found)
    return render(
        request,
        "credit/wallet/wallet.html",
        {
            "wallet": found,
            "overview": overview,
            "low_balances": [overview.low_balance] if overview.low_balance else [],
            "spend": spend,
            "chart": chart,
            "chart_summary": summary,
            "legend": [
                (series, colours[series.key], spend.money(series.total)) for series in spend.series
            ],
            "table_rows": spend_table_rows(spend, labels) if chart else "",
            "active": "overview",
        },
    )


# --- Rows of operations (history and accounting) --------------------------------------------

_ROW = (
    "\n        <tr>\n"
    '          <td class="text-nowrap small">{date}</td>\n'
    '          <td class="small">{kind}</td>\n'
    '          <td class="small">{description}</td>\n'
    '          <td class="small">{shop}</td>\n'
    '          <td class="text-end text-nowrap {credit_class}">{sign}{change}</td>\n'
    '          <td class="text-end text-nowrap">{balance}</td>\n'
    "        </tr>\n        "
)


def _rows_html(rows, *, balance) -> SafeString:  # type: ignore[no-untyped-def]
    """The table rows of a page of operations, written once in Python: the template
    would resolve, filter and escape six cells per row (most of the page's time).
    The same HTML as the loop it replaces; dates are already in the platform's zone.
    ``balance`` gives a row's balance cell (text, escaped here)."""
    escape = conditional_escape
    parts = []
    for row in rows:
        credit = row.is_credit
        parts.append(
            _ROW.format(
                date=escape(date_format(row.created_at, "SHORT_DATETIME_FORMAT")),
                kind=escape(row.kind_label),
                description=escape(Truncator(row.description or "—").chars(80)),
                shop=escape(row.shop_name or "—"),
                credit_class="text-success" if credit else "",
                sign="+" if credit else "",
                change=escape(str(row.change)),
                balance=escape(balance(row)),
            )
        )
    return mark_safe("".join(parts))  # noqa: S308 - every cell is escaped above


def _history_balance(row: selectors.HistoryRow) -> str:
    return str(row.balance_after) if row.balance_after else "—"


def _accounting_balance(row: selectors.AccountingRow) -> str:
    return str(row.balance)


# --- History ---------------------------------------------------------------------------------


@never_cache
@member_required(Capability.VIEW_MONEY)
def history(request: HttpRequest, platform_code: str) -> HttpResponse:
    found = _wallet(request, platform_code)
    form = HistoryFilterForm(request.GET or None, wallet=found)
    page = None
    # Invalid criteria are shown with their errors and nothing is listed.
    if not form.is_bound or form.is_valid():
        data = form.cleaned_data if form.is_bound else {}
        page = selectors.history_page(
            wallet=found, filters=form.filters(), after=data.get("after"), before=data.get("before")
        )
    return render(
        request,
        "credit/wallet/history.html",
        {
            "wallet": found,
            "form": form,
            "page": page,
            "rows": _rows_html(page.rows, balance=_history_balance) if page else "",
            "filtering": form.is_filtering,
            "active": "history",
        },
        status=200 if page is not None else 400,
    )


def _csv(lines, filename: str) -> StreamingHttpResponse:  # type: ignore[no-untyped-def]
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=filename
    )
    return response


def _back_with_errors(name: str, wallet: Wallet, request: HttpRequest) -> HttpResponseRedirect:
    """Invalid criteria for an export: back to the page, which shows what is wrong."""
    url = reverse(name, kwargs={"platform_code": wallet.platform.code})
    return redirect(f"{url}?{request.GET.urlencode()}")


@never_cache
@member_required(Capability.EXPORT)
def history_csv(request: HttpRequest, platform_code: str) -> HttpResponse:
    found = _wallet(request, platform_code)
    form = HistoryFilterForm(request.GET or None, wallet=found)
    if form.is_bound and not form.is_valid():
        return _back_with_errors("credit:history", found, request)
    return _csv(history_csv_lines(wallet=found, filters=form.filters()), history_filename(found))


# --- Accounting ------------------------------------------------------------------------------


def _period_form(request: HttpRequest, wallet: Wallet) -> AccountingPeriodForm:
    default = selectors.current_month(wallet.platform)
    return AccountingPeriodForm(
        request.GET or None, default=default, initial={"from": default[0], "to": default[1]}
    )


@never_cache
@member_required(Capability.VIEW_MONEY)
def accounting(request: HttpRequest, platform_code: str) -> HttpResponse:
    found = _wallet(request, platform_code)
    form = _period_form(request, found)
    summary = page = None
    if not form.is_bound or form.is_valid():
        first_day, last_day = form.period
        summary = selectors.accounting_summary(wallet=found, first_day=first_day, last_day=last_day)
        data = form.cleaned_data if form.is_bound else {}
        page = selectors.accounting_page(
            wallet=found,
            period=summary.period,
            after=data.get("after"),
            before=data.get("before"),
        )
    return render(
        request,
        "credit/wallet/accounting.html",
        {
            "wallet": found,
            "form": form,
            "summary": summary,
            "page": page,
            "rows": _rows_html(page.rows, balance=_accounting_balance) if page else "",
            "active": "accounting",
        },
        status=200 if page is not None else 400,
    )


@never_cache
@member_required(Capability.EXPORT)
def accounting_csv(request: HttpRequest, platform_code: str) -> HttpResponse:
    found = _wallet(request, platform_code)
    form = _period_form(request, found)
    if form.is_bound and not form.is_valid():
        return _back_with_errors("credit:accounting", found, request)
    first_day, last_day = form.period
    summary = selectors.accounting_summary(wallet=found, first_day=first_day, last_day=last_day)
    return _csv(
        accounting_csv_lines(wallet=found, summary=summary), accounting_filename(found, summary)
    )


# --- Settings --------------------------------------------------------------------------------


@never_cache
@member_required(Capability.MOVE_MONEY)
def wallet_settings(request: HttpRequest, platform_code: str) -> HttpResponse:
    found = _wallet(request, platform_code)
    if request.method == "POST":
        form = WalletSettingsForm(request.POST, wallet=found)
        if form.is_valid():
            try:
                wallet_settings_update(wallet=found, **form.service_arguments())
            except CreditError as error:
                field = error.extra.get("field")
                form.add_error(field if field in form.fields else None, error.message)
            else:
                messages.success(request, _("The credit settings have been saved."))
                return redirect("credit:wallet", platform_code=found.platform.code)
    else:
        form = WalletSettingsForm(initial=WalletSettingsForm.initial_for(found), wallet=found)
    return render(
        request,
        "credit/wallet/settings.html",
        {
            "wallet": found,
            "form": form,
            "overview": selectors.wallet_overview(wallet=found),
            "active": "settings",
        },
    )
