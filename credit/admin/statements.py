"""The staff interface for bank statements: importing them, and the review queue.

- Bank statements: read-only list; "Import a statement…" uploads a camt.053 or CSV
  file for a platform (credit.services.statements.statement_import) and shows what
  was credited, what waits for review and what was skipped, or why the file was refused.
- Statement lines: the review queue, showing payments waiting for review unless
  another status is chosen. "Assign to account…" credits a payment to an account
  (a pending top-up of the same amount, or a new top-up); "Reject…" records why a
  payment is not credit. Both record the reviewer and write the audit log; money
  moves only through the services.

Permissions: ``credit.view_bankstatement`` / ``credit.view_statementline`` to look;
``credit.add_bankstatement`` to import; ``credit.change_statementline`` to review.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Count, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Cast, NullIf
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from accounts.models import Account, Platform
from credit.exceptions import CreditError, StatementError
from credit.models import BankStatement, StatementLine, TopUp
from credit.services.statements import (
    statement_import,
    statement_line_assign,
    statement_line_reject,
)
from credit.statements import MAX_FILE_BYTES
from credit.statements.matching import (
    account_for_variable_symbol,
    accounts_on_platform,
    pending_topups,
    variable_symbol_clean,
)

IMPORT_PERMISSION = "credit.add_bankstatement"
REVIEW_PERMISSION = "credit.change_statementline"
Status = StatementLine.Status
NEW_TOPUP = "new"


def _money(line: StatementLine) -> Money:
    return Money(line.amount, line.currency)


# --- Bank statements ----------------------------------------------------------------------


class ImportForm(forms.Form):
    platform = forms.ModelChoiceField(
        label=_("Platform"),
        queryset=Platform.objects.order_by("name"),
        help_text=_("The statement must be of this platform's bank account, in its currency."),
        error_messages={"required": _("Choose the platform whose bank account this is.")},
    )
    file = forms.FileField(
        label=_("Statement file"),
        help_text=_("ISO 20022 camt.053 XML, or CSV in the layout of docs/bank-statements.md."),
        error_messages={
            "required": _("Choose the statement file."),
            "empty": _("The file is empty."),
        },
    )

    def clean_file(self):  # type: ignore[no-untyped-def]
        file = self.cleaned_data["file"]
        if file.size > MAX_FILE_BYTES:
            raise forms.ValidationError(
                gettext("The file is larger than %(limit)d MB; split the statement.")
                % {"limit": MAX_FILE_BYTES // (1024 * 1024)}
            )
        return file


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    fields = [
        "line_link",
        "booked_on",
        "amount_display",
        "variable_symbol",
        "counterparty",
        "message",
        "status",
    ]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["booked_on", "pk"]

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("credit.view_bankstatement") or super().has_view_permission(
            request, obj
        )

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description=_("bank reference"))
    def line_link(self, line: StatementLine) -> str:
        url = reverse("admin:credit_statementline_change", args=[line.pk])
        return format_html('<a href="{}">{}</a>', url, line.bank_reference)

    @admin.display(description=_("amount"))
    def amount_display(self, line: StatementLine) -> str:
        return str(_money(line))


@admin.register(BankStatement)
class BankStatementAdmin(admin.ModelAdmin):
    list_display = [
        "statement_id",
        "platform",
        "period",
        "payments",
        "credited",
        "waiting",
        "imported_at",
    ]
    list_filter = ["platform", "format"]
    search_fields = ["=statement_id", "=file_sha256"]
    date_hierarchy = "imported_at"
    list_select_related = ["platform", "imported_by"]
    change_list_template = "admin/credit/bankstatement_change_list.html"
    inlines = [StatementLineInline]
    fields = [
        "statement_id",
        "platform",
        "format",
        "iban",
        "currency",
        "period_from",
        "period_to",
        "file_sha256",
        "imported_by",
        "imported_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BankStatement]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                payment_count=Count("lines"),
                credited_count=Count(
                    "lines", filter=Q(lines__status__in=[Status.MATCHED, Status.ASSIGNED])
                ),
                waiting_count=Count("lines", filter=Q(lines__status=Status.UNMATCHED)),
            )
        )

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # statements come in through the import page

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(IMPORT_PERMISSION)

    @admin.display(description=_("period"))
    def period(self, statement: BankStatement) -> str:
        if statement.period_from is None:
            return "-"
        if statement.period_from == statement.period_to:
            return str(statement.period_from)
        return f"{statement.period_from} \N{EN DASH} {statement.period_to}"

    @admin.display(description=_("payments"), ordering="payment_count")
    def payments(self, statement: BankStatement) -> int:
        return statement.payment_count

    @admin.display(description=_("credited"), ordering="credited_count")
    def credited(self, statement: BankStatement) -> int:
        return statement.credited_count

    @admin.display(description=_("waiting for review"), ordering="waiting_count")
    def waiting(self, statement: BankStatement) -> str:
        if not statement.waiting_count:
            return "0"
        url = reverse("admin:credit_statementline_changelist") + (
            f"?statement={statement.pk}&status={Status.UNMATCHED}"
        )
        return format_html('<a href="{}">{}</a>', url, statement.waiting_count)

    def get_urls(self) -> list:
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="credit_bankstatement_import",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):  # type: ignore[no-untyped-def]
        extra_context = {
            **(extra_context or {}),
            "can_import": self.has_import_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a statement for a platform; on success, to the statement's page with the
        summary; on a refused file, the form again with the reason."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    result = statement_import(
                        platform=form.cleaned_data["platform"],
                        file=upload,
                        filename=upload.name,
                        staff=request.user,
                    )
                except StatementError as error:
                    form.add_error(
                        "file",
                        gettext("Nothing was imported: %(reason)s") % {"reason": error.message},
                    )
                else:
                    level = messages.WARNING if result.already_imported else messages.SUCCESS
                    self.message_user(request, result.summary, level)
                    return HttpResponseRedirect(
                        reverse("admin:credit_bankstatement_change", args=[result.statement.pk])
                    )
        else:
            form = ImportForm()
        return TemplateResponse(
            request,
            "admin/credit/bankstatement_import.html",
            {
                **self.admin_site.each_context(request),
                "title": gettext("Import a bank statement"),
                "opts": self.opts,
                "form": form,
            },
        )


# --- The review queue ---------------------------------------------------------------------


class ReviewStatusFilter(admin.SimpleListFilter):
    """Status, showing the payments waiting for review unless another choice is made."""

    title = _("status")
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [*Status.choices, (self.ALL, _("All"))]

    def value(self) -> str:
        return super().value() or Status.UNMATCHED

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == self.ALL:
            return queryset
        return queryset.filter(status=self.value())

    def choices(self, changelist):  # type: ignore[no-untyped-def]
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }


class AssignForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none(), widget=forms.HiddenInput)
    choice = forms.ChoiceField(
        label=_("How to credit it"),
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose a pending top-up, or to credit a new top-up.")},
    )
    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=_("Optional: why this payment belongs to this account."),
    )

    def __init__(self, *args, line: StatementLine, account: Account, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts_on_platform(platform=line.platform)
        self.fields["account"].initial = account.pk
        self.topups = list(
            pending_topups(platform=line.platform, account=account, amount=line.amount)
        )
        choices = [
            (
                str(topup.pk),
                gettext("The pending top-up of %(amount)s requested on %(date)s")
                % {
                    "amount": topup.amount_money,
                    "date": topup.created_at.date().isoformat(),
                },
            )
            for topup in self.topups
        ]
        choices.append(
            (
                NEW_TOPUP,
                gettext("Credit %(amount)s as a new bank-transfer top-up")
                % {"amount": _money(line)},
            )
        )
        self.fields["choice"].choices = choices
        if len(choices) == 1 or self.topups:
            self.fields["choice"].initial = choices[0][0]

    def topup_id(self) -> int | None:
        choice = self.cleaned_data["choice"]
        return None if choice == NEW_TOPUP else int(choice)


class RejectForm(forms.Form):
    note = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Required: e.g. “returned to the sender”, “not a payment for credit”."),
        error_messages={"required": _("Say why the payment is rejected.")},
    )


@admin.register(StatementLine)
class StatementLineAdmin(admin.ModelAdmin):
    list_display = [
        "booked_on",
        "amount_display",
        "symbol_and_account",
        "counterparty",
        "message",
        "status",
        "review_links",
    ]
    list_filter = [ReviewStatusFilter, "platform", "booked_on"]
    list_display_links = ["booked_on"]
    date_hierarchy = "booked_on"
    search_fields = ["=variable_symbol", "counterparty", "=bank_reference", "message"]
    search_help_text = _("Variable symbol, sender, bank reference or message.")
    list_select_related = ["platform", "topup__wallet__account"]
    list_per_page = 50
    actions = ["assign_action", "reject_action"]
    change_form_template = "admin/credit/statementline_change_form.html"
    fields = [
        "statement",
        "platform",
        "status",
        "booked_on",
        "amount_display",
        "variable_symbol",
        "account_hint",
        "counterparty",
        "counterparty_account",
        "message",
        "bank_reference",
        "topup_link",
        "reviewed_by",
        "reviewed_at",
        "review_note",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # read-only page; reviewed through the pages below

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, line: StatementLine) -> str:
        return str(_money(line))

    def get_queryset(self, request: HttpRequest) -> QuerySet[StatementLine]:
        # The account a variable symbol names on the line's platform, for the "account"
        # column, in the same query as the page of lines.
        symbol = Cast(NullIf(OuterRef("variable_symbol"), Value("")), BigIntegerField())
        known = Account.objects.filter(
            variable_symbol=symbol, registrations__platform=OuterRef("platform")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                hint_account_id=Subquery(known.values("pk")[:1]),
                hint_account_name=Subquery(known.values("name")[:1]),
            )
        )

    @admin.display(description=_("account"))
    def account_hint(self, line: StatementLine) -> str:
        """The account credited, or for a waiting payment the one its variable symbol names."""
        if line.topup_id is not None:
            account_id, name = line.topup.wallet.account_id, line.topup.wallet.account.name
        elif getattr(line, "hint_account_id", None):
            account_id, name = line.hint_account_id, line.hint_account_name
        else:
            return gettext("unknown variable symbol") if line.variable_symbol else "-"
        url = reverse("admin:accounts_account_change", args=[account_id])
        return format_html('<a href="{}">{}</a>', url, name)

    @admin.display(description=_("VS / account"), ordering="variable_symbol")
    def symbol_and_account(self, line: StatementLine) -> str:
        return format_html(
            "{}<br><small>{}</small>", line.variable_symbol or "-", self.account_hint(line)
        )

    @admin.display(description=_("top-up"))
    def topup_link(self, line: StatementLine) -> str:
        if line.topup_id is None:
            return "-"
        return f"#{line.topup_id} {line.topup}"

    @admin.display(description=_("review"))
    def review_links(self, line: StatementLine) -> str:
        if line.status != Status.UNMATCHED:
            return ""
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:credit_statementline_assign", args=[line.pk]),
            gettext("Assign…"),
            reverse("admin:credit_statementline_reject", args=[line.pk]),
            gettext("Reject…"),
        )

    def get_urls(self) -> list:
        return [
            path(
                "<int:object_id>/assign/",
                self.admin_site.admin_view(self.assign_view),
                name="credit_statementline_assign",
            ),
            path(
                "<int:object_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name="credit_statementline_reject",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_review": self.has_review_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _line(self, request: HttpRequest, object_id: int) -> StatementLine:
        if not self.has_review_permission(request) or not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(StatementLine.objects.select_related("platform"), pk=object_id)

    def _context(self, request: HttpRequest, line: StatementLine, **extra: object) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "line": line,
            "original": line,
            "amount": _money(line),
            "queue_url": reverse("admin:credit_statementline_changelist"),
            **extra,
        }

    def _not_waiting(self, request: HttpRequest, line: StatementLine) -> HttpResponse:
        self.message_user(
            request,
            gettext("This payment is no longer waiting for review (it is %(status)s).")
            % {"status": line.get_status_display().lower()},
            messages.WARNING,
        )
        return HttpResponseRedirect(reverse("admin:credit_statementline_change", args=[line.pk]))

    def assign_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Step 1: find the account (variable symbol or name). Step 2: choose a pending
        top-up of the same amount or a new top-up, and confirm: the wallet is credited."""
        line = self._line(request, object_id)
        if line.status != Status.UNMATCHED:
            return self._not_waiting(request, line)
        candidates = accounts_on_platform(platform=line.platform)
        account = None
        account_id = request.POST.get("account") or request.GET.get("account")
        if account_id and str(account_id).isdigit():
            account = candidates.filter(pk=int(account_id)).first()
        query = request.GET.get("q", "").strip()
        suggested = account_for_variable_symbol(
            platform=line.platform, variable_symbol=line.variable_symbol
        )
        found: list[Account] = []
        if query:
            symbol = variable_symbol_clean(query)
            matches = (
                candidates.filter(variable_symbol=int(symbol))
                if symbol
                else candidates.filter(name__icontains=query)
            )
            found = list(matches.order_by("name")[:25])
        if account is None:
            return TemplateResponse(
                request,
                "admin/credit/statementline_assign.html",
                self._context(
                    request,
                    line,
                    title=gettext("Assign a payment to an account"),
                    query=query,
                    found=found,
                    searched=bool(query),
                    suggested=suggested,
                ),
            )

        form = AssignForm(request.POST or None, line=line, account=account)
        if request.method == "POST" and form.is_valid():
            try:
                assigned = statement_line_assign(
                    line_id=line.pk,
                    account=form.cleaned_data["account"],
                    staff=request.user,
                    topup_id=form.topup_id(),
                    note=form.cleaned_data["note"],
                )
            except CreditError as error:
                field = error.extra.get("field")
                form.add_error(field if field in form.fields else None, error.message)
            else:
                credited = assigned.topup is not None and assigned.topup.state == TopUp.State.PAID
                text = (
                    gettext("%(amount)s was assigned to %(account)s and credited to its wallet.")
                    if credited
                    else gettext(
                        "%(amount)s was assigned to %(account)s; crediting its wallet is "
                        "still being processed."
                    )
                )
                self.message_user(
                    request,
                    text % {"amount": _money(assigned), "account": account.name},
                    messages.SUCCESS if credited else messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:credit_statementline_changelist"))
        return TemplateResponse(
            request,
            "admin/credit/statementline_assign.html",
            self._context(
                request,
                line,
                title=gettext("Assign a payment to %(account)s") % {"account": account.name},
                account=account,
                form=form,
            ),
        )

    def reject_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        line = self._line(request, object_id)
        if line.status != Status.UNMATCHED:
            return self._not_waiting(request, line)
        return self._reject(request, [line], action=None)

    def _reject(
        self, request: HttpRequest, lines: list[StatementLine], *, action: str | None
    ) -> HttpResponse | None:
        """The reject page for one or several waiting payments; on a valid POST, reject each."""
        confirmed = request.POST.get("confirm") == "yes"
        form = RejectForm(request.POST if confirmed else None)
        if confirmed and form.is_valid():
            rejected = 0
            for line in lines:
                try:
                    statement_line_reject(
                        line_id=line.pk, staff=request.user, note=form.cleaned_data["note"]
                    )
                except CreditError as error:
                    self.message_user(
                        request, f"{line.bank_reference}: {error.message}", messages.ERROR
                    )
                else:
                    rejected += 1
            if rejected:
                self.message_user(
                    request,
                    gettext("Rejected %(count)d payment(s); no credit was moved.")
                    % {"count": rejected},
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:credit_statementline_changelist"))
        return TemplateResponse(
            request,
            "admin/credit/statementline_reject.html",
            self._context(
                request,
                lines[0],
                title=gettext("Reject payments waiting for review"),
                lines=lines,
                form=form,
                action=action,
                action_checkbox_name=admin.helpers.ACTION_CHECKBOX_NAME,
            ),
        )

    @admin.action(description=_("Assign to account…"), permissions=["review"])
    def assign_action(self, request: HttpRequest, queryset: QuerySet[StatementLine]):  # type: ignore[no-untyped-def]
        lines = list(queryset.filter(status=Status.UNMATCHED)[:2])
        if len(lines) != 1:
            self.message_user(
                request,
                gettext("Select exactly one payment waiting for review to assign it."),
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(
            reverse("admin:credit_statementline_assign", args=[lines[0].pk])
        )

    @admin.action(description=_("Reject…"), permissions=["review"])
    def reject_action(self, request: HttpRequest, queryset: QuerySet[StatementLine]):  # type: ignore[no-untyped-def]
        lines = list(queryset.filter(status=Status.UNMATCHED).order_by("booked_on", "pk"))
        if not lines:
            self.message_user(
                request,
                gettext("None of the selected payments is waiting for review."),
                messages.WARNING,
            )
            return None
        return self._reject(request, lines, action="reject_action")
