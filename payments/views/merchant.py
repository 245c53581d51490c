"""The merchant interface: transaction search, detail with the message log, the money
actions (capture, void, refund, each confirmed first), notes, monthly statements.

Viewing needs VIEW_MONEY; acting needs MOVE_MONEY. Transactions are looked up by
their public id *within* ``request.account``: another account's is a 404. The
actions call payments.services.transactions, which check the state again under
a row lock; a refusal becomes a message or a field error and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from accounts.permissions import Capability
from accounts.portal import member_required
from payments.exceptions import InvalidAmount, PaymentError
from payments.forms_merchant import (
    CaptureForm,
    MoneyActionForm,
    NoteForm,
    RefundForm,
    TransactionSearchForm,
)
from payments.models import Operation, State, Transaction
from payments.selectors import (
    statement_for_month,
    statement_months,
    statement_platform,
    transaction_allowed_actions,
    transaction_for_account,
    transaction_log,
    transaction_search,
)
from payments.services.transactions import (
    Actor,
    transaction_capture,
    transaction_note_add,
    transaction_refund,
    transaction_void,
)
from payments.statements import statement_csv_lines, statement_filename, statement_pdf

PAGE_SIZE = 25
SHIPPING_PANEL = "payments/shipping/_panel.html"


# --- Search ------------------------------------------------------------------------------


@member_required(Capability.VIEW_MONEY)
def transactions(request: HttpRequest) -> HttpResponse:
    criteria = request.GET.copy()
    criteria.pop("page", None)
    form = TransactionSearchForm(criteria or None, account_id=request.account.pk)
    page = page_range = None
    # Invalid criteria are shown with their errors and nothing is searched.
    if not form.is_bound or form.is_valid():
        filters = form.filters() if form.is_bound else None
        found = transaction_search(account_id=request.account.pk, filters=filters)
        paginator = Paginator(found, PAGE_SIZE)
        page = paginator.get_page(request.GET.get("page"))
        page_range = list(paginator.get_elided_page_range(page.number, on_each_side=2))
    return render(
        request,
        "payments/merchant/transactions.html",
        {"form": form, "page": page, "page_range": page_range, "filtering": form.is_filtering},
    )


# --- Detail ------------------------------------------------------------------------------


def _transaction(request: HttpRequest, transaction_id: UUID) -> Transaction:
    tx = transaction_for_account(account_id=request.account.pk, public_id=transaction_id)
    if tx is None:
        raise Http404("No such payment in this account")
    return tx


def _shipping_panel() -> str | None:
    """The shipping panel's template, when the shipping part is installed."""
    try:
        select_template([SHIPPING_PANEL])
    except TemplateDoesNotExist:
        return None
    return SHIPPING_PANEL


@never_cache
@member_required(Capability.VIEW_MONEY)
def transaction_detail(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)
    return render(
        request,
        "payments/merchant/transaction_detail.html",
        {
            "transaction": tx,
            "log": transaction_log(transaction=tx),
            "actions": transaction_allowed_actions(tx),
            "note_form": NoteForm(auto_id="note_%s"),
            "shipping_panel": _shipping_panel() if tx.purpose == "goods" else None,
        },
    )


def _to_detail(tx: Transaction) -> HttpResponseRedirect:
    return redirect("payments:transaction_detail", transaction_id=tx.public_id)


def _refused(request: HttpRequest, tx: Transaction, operation: str) -> HttpResponseRedirect:
    """The state does not allow ``operation``: say why, change nothing."""
    if tx.pending_operation:
        messages.error(
            request,
            _(
                "Another operation (%(operation)s) on this payment is being processed. "
                "Try again in a moment."
            )
            % {"operation": tx.get_pending_operation_display()},
        )
    else:
        words = {
            Operation.CAPTURE: _("captured"),
            Operation.VOID: _("voided"),
            Operation.REFUND: _("refunded"),
        }
        messages.error(
            request,
            _("This payment is %(state)s, so it cannot be %(operation)s.")
            % {"state": tx.get_state_display().lower(), "operation": words[operation]},
        )
    return _to_detail(tx)


def _report(
    request: HttpRequest,
    after: Transaction,
    *,
    succeeded: bool,
    success: str,
) -> HttpResponseRedirect:
    """Tell the person what the gateway said."""
    if succeeded:
        messages.success(request, success)
    elif after.pending_operation:
        messages.warning(
            request,
            _(
                "The gateway did not answer. We will check the outcome with the gateway "
                "automatically and record it in the message log; the operation is not repeated."
            ),
        )
    else:
        messages.error(
            request,
            _("The gateway refused: %(reason)s")
            % {"reason": after.failure_message or _("no reason given")},
        )
    return _to_detail(after)


def _money_action(
    request: HttpRequest,
    tx: Transaction,
    *,
    operation: str,
    allowed: bool,
    form_class: type[MoneyActionForm],
    maximum_of: Callable[[Transaction], object],
    act: Callable[[Transaction, MoneyActionForm], Transaction],
    succeeded: Callable[[Transaction, Transaction], bool],
    success: Callable[[Transaction, MoneyActionForm], str],
) -> HttpResponse:
    """Capture or refund: amount (GET), then confirmation (POST), then do it (POST + confirmed)."""
    if not allowed:
        return _refused(request, tx, operation)
    maximum = maximum_of(tx)
    if request.method == "POST":
        form = form_class(request.POST, maximum=maximum)
        if form.is_valid():
            if not form.cleaned_data["confirmed"]:
                return render(
                    request,
                    "payments/merchant/transaction_confirm.html",
                    {
                        "transaction": tx,
                        "operation": operation,
                        "form": form,
                        "money": form.money,
                        # Capture: what is released; refund: what stays refundable.
                        "remaining": maximum - form.money,
                    },
                )
            try:
                after = act(tx, form)
            except InvalidAmount as error:
                form.add_error(error.extra.get("field", "amount"), error.message)
            except PaymentError as error:
                messages.error(request, error.message)
                return _to_detail(tx)
            else:
                return _report(
                    request,
                    after,
                    succeeded=succeeded(tx, after),
                    success=success(after, form),
                )
    else:
        form = form_class(initial={"amount": maximum.amount}, maximum=maximum)
    return render(
        request,
        "payments/merchant/transaction_amount.html",
        {"transaction": tx, "operation": operation, "form": form, "maximum": maximum},
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def transaction_capture_view(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)

    def success(after: Transaction, form: MoneyActionForm) -> str:
        released = after.amount - after.captured_amount
        if released.amount > 0:
            return _("%(captured)s captured; the remaining %(released)s was released.") % {
                "captured": after.captured_amount,
                "released": released,
            }
        return _("%(captured)s captured.") % {"captured": after.captured_amount}

    return _money_action(
        request,
        tx,
        operation=Operation.CAPTURE,
        allowed=transaction_allowed_actions(tx).capture,
        form_class=CaptureForm,
        maximum_of=lambda t: t.amount,
        act=lambda t, form: transaction_capture(
            transaction_id=t.pk, amount=form.money, actor=Actor(user=request.user)
        ),
        succeeded=lambda before, after: after.state == State.CAPTURED,
        success=success,
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def transaction_refund_view(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)
    return _money_action(
        request,
        tx,
        operation=Operation.REFUND,
        allowed=transaction_allowed_actions(tx).refund,
        form_class=RefundForm,
        maximum_of=lambda t: t.refundable_amount,
        act=lambda t, form: transaction_refund(
            transaction_id=t.pk, amount=form.money, actor=Actor(user=request.user)
        ),
        succeeded=lambda before, after: after.refunded_amount > before.refunded_amount,
        success=lambda after, form: (
            _("%(amount)s refunded to the customer's card.") % {"amount": form.money}
        ),
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def transaction_void_view(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)
    if not transaction_allowed_actions(tx).void:
        return _refused(request, tx, Operation.VOID)
    if request.method == "POST":
        try:
            after = transaction_void(transaction_id=tx.pk, actor=Actor(user=request.user))
        except PaymentError as error:
            messages.error(request, error.message)
            return _to_detail(tx)
        return _report(
            request,
            after,
            succeeded=after.state == State.VOIDED,
            success=_("The authorization of %(amount)s was voided; the money is released.")
            % {"amount": after.amount},
        )
    return render(
        request,
        "payments/merchant/transaction_confirm.html",
        {"transaction": tx, "operation": Operation.VOID, "money": tx.amount},
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def transaction_note_view(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)
    form = NoteForm(request.POST or None, auto_id="note_%s")
    if request.method == "POST" and form.is_valid():
        try:
            transaction_note_add(
                transaction_id=tx.pk, author=request.user, text=form.cleaned_data["text"]
            )
        except PaymentError as error:
            form.add_error("text", error.message)
        else:
            messages.success(request, _("Your note was added to the message log."))
            return redirect(f"{_to_detail(tx).url}#log")
    return render(
        request, "payments/merchant/transaction_note.html", {"transaction": tx, "form": form}
    )


# --- Statements --------------------------------------------------------------------------


@member_required(Capability.VIEW_MONEY)
def statements(request: HttpRequest) -> HttpResponse:
    months = statement_months(account_id=request.account.pk)
    platforms: dict[int, dict] = {}
    for month in months:
        platforms.setdefault(month.platform.pk, {"platform": month.platform, "months": []})
        platforms[month.platform.pk]["months"].append(month)
    return render(
        request, "payments/merchant/statements.html", {"platforms": list(platforms.values())}
    )


def _statement(request: HttpRequest, year: int, month: int):  # type: ignore[no-untyped-def]
    code = request.GET.get("platform", "")
    platform = statement_platform(account_id=request.account.pk, code=code) if code else None
    if platform is None or not 1 <= month <= 12 or not 2000 <= year <= 9999:
        raise Http404("No such statement")
    return statement_for_month(account=request.account, platform=platform, year=year, month=month)


@member_required(Capability.VIEW_MONEY)
def statement_csv(request: HttpRequest, year: int, month: int) -> StreamingHttpResponse:
    statement = _statement(request, year, month)
    response = StreamingHttpResponse(
        statement_csv_lines(statement), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=statement_filename(statement, "csv")
    )
    response["Cache-Control"] = "private, no-store"
    return response


@member_required(Capability.VIEW_MONEY)
def statement_pdf_view(request: HttpRequest, year: int, month: int) -> HttpResponse:
    statement = _statement(request, year, month)
    response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=False, filename=statement_filename(statement, "pdf")
    )
    response["Cache-Control"] = "private, no-store"
    return response
