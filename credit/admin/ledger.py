"""The staff interface for the ledger: wallets, transfers, ledger accounts, lots, recharges.

Everything here is read-only. Money moves only through the two wallet pages
below, which call the ledger's services with the staff user:
- "Adjust credit…" → credit.services.ledger.wallet_adjust (a reason is required;
  the service writes the audit log);
- "Set overdraft…" → credit.services.ledger.overdraft_set.

Permissions (standard codenames; staff groups in billing_site/staff.py):
``credit.view_*`` to look; ``credit.change_wallet`` to adjust credit and set overdrafts.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from credit.exceptions import CreditError, InsufficientCredit
from credit.models import (
    Allocation,
    AutoRecharge,
    Entry,
    LedgerAccount,
    Lot,
    Transfer,
    Wallet,
)
from credit.services.ledger import overdraft_set, wallet_adjust

MOVE_CREDIT_PERMISSION = "credit.change_wallet"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger records: staff can look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _money(amount: Decimal | None, currency: str) -> str:
    return "-" if amount is None else str(Money(amount, currency))


# --- Wallets ----------------------------------------------------------------------------


class AdjustForm(forms.Form):
    direction = forms.ChoiceField(
        label=_("What to do"),
        choices=[
            ("credit", _("Add credit to the wallet")),
            ("debit", _("Take credit away from the wallet")),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose whether to add or take away credit.")},
    )
    amount = forms.DecimalField(
        label=_("Amount"),
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        error_messages={
            "required": _("Enter the amount, e.g. 50.00."),
            "invalid": _("Enter the amount as a number, e.g. 50.00."),
            "min_value": _("The amount must be more than zero."),
        },
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=250,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_(
            "Required. It is kept in the audit log with your name, and the customer sees it "
            "in the wallet's history."
        ),
        error_messages={"required": _("Give the reason for the adjustment.")},
    )
    # Makes a double submission of the same form move money once (the ledger's idempotency).
    key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, currency: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = gettext("Amount in %(currency)s") % {"currency": currency}

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        if not re.fullmatch(r"[0-9a-f]{32}", key):
            raise forms.ValidationError(gettext("The form is damaged; open it again."))
        return key


class OverdraftForm(forms.Form):
    limit = forms.DecimalField(
        label=_("Overdraft limit"),
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=2,
        help_text=_(
            "How far below zero the balance may go. 0 withdraws the overdraft; it cannot be "
            "less than what is already overdrawn."
        ),
        error_messages={
            "required": _("Enter the limit, e.g. 100.00 (0 for none)."),
            "invalid": _("Enter the limit as a number, e.g. 100.00."),
            "min_value": _("The limit cannot be negative."),
        },
    )

    def __init__(self, *args, currency: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["limit"].label = gettext("Overdraft limit in %(currency)s") % {
            "currency": currency
        }


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = [
        "account_display",
        "platform",
        "balance_display",
        "overdraft_display",
        "pay_from_credit",
        "auto_recharge_column",
        "low_balance_column",
    ]
    list_filter = ["platform", "pay_from_credit", "auto_recharge_enabled", "low_balance_warned"]
    search_fields = ["account__name", "=account__variable_symbol"]
    search_help_text = _("Account name or variable symbol.")
    list_select_related = ["account", "platform"]
    show_full_result_count = False
    actions = ["adjust_action", "overdraft_action"]
    change_form_template = "admin/credit/wallet_change_form.html"
    fields = [
        "account",
        "variable_symbol",
        "platform",
        "balance_display",
        "overdraft_display",
        "available_display",
        "history",
        "pay_from_credit",
        "low_balance_display",
        "low_balance_warned",
        "auto_recharge_enabled",
        "auto_recharge_display",
        "auto_recharge_card",
        "created_at",
    ]
    readonly_fields = fields

    def has_move_credit_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MOVE_CREDIT_PERMISSION)

    @admin.display(description=_("variable symbol"), ordering="account__variable_symbol")
    def variable_symbol(self, wallet: Wallet) -> int:
        return wallet.account.variable_symbol

    @admin.display(description=_("auto-recharge"), boolean=True, ordering="auto_recharge_enabled")
    def auto_recharge_column(self, wallet: Wallet) -> bool:
        return wallet.auto_recharge_enabled

    @admin.display(description=_("low balance"), boolean=True, ordering="low_balance_warned")
    def low_balance_column(self, wallet: Wallet) -> bool:
        """Warned that the balance fell below the customer's limit (and not risen since)."""
        return wallet.low_balance_warned

    @admin.display(description=_("account"), ordering="account__name")
    def account_display(self, wallet: Wallet) -> str:
        return format_html(
            "{}<br><small>VS {}</small>", wallet.account.name, wallet.account.variable_symbol
        )

    @admin.display(description=_("balance"), ordering="balance")
    def balance_display(self, wallet: Wallet) -> str:
        return _money(wallet.balance, wallet.currency)

    @admin.display(description=_("overdraft limit"), ordering="overdraft_limit")
    def overdraft_display(self, wallet: Wallet) -> str:
        return _money(wallet.overdraft_limit, wallet.currency)

    @admin.display(description=_("available"))
    def available_display(self, wallet: Wallet) -> str:
        return str(wallet.available)

    @admin.display(description=_("low-balance limit"))
    def low_balance_display(self, wallet: Wallet) -> str:
        return _money(wallet.low_balance_limit, wallet.currency)

    @admin.display(description=_("recharge amount"))
    def auto_recharge_display(self, wallet: Wallet) -> str:
        return _money(wallet.auto_recharge_amount, wallet.currency)

    @admin.display(description=_("history"))
    def history(self, wallet: Wallet) -> str:
        url = reverse("admin:credit_transfer_changelist") + f"?wallet={wallet.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("All transfers of this wallet"))

    # --- Pages that move money --------------------------------------------------------

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name=f"{info[0]}_{info[1]}_adjust",
            ),
            path(
                "<int:object_id>/overdraft/",
                self.admin_site.admin_view(self.overdraft_view),
                name=f"{info[0]}_{info[1]}_overdraft",
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
        extra_context = {
            **(extra_context or {}),
            "can_move_credit": self.has_move_credit_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _wallet(self, request: HttpRequest, object_id: int) -> Wallet:
        if not self.has_move_credit_permission(request) or not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Wallet.objects.select_related("account", "platform"), pk=object_id)

    def _page(
        self, request: HttpRequest, wallet: Wallet, *, template: str, title: str, form: forms.Form
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.opts,
                "wallet": wallet,
                "overdraft": wallet.money(wallet.overdraft_limit),
                "original": wallet,
                "form": form,
            },
        )

    def adjust_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Credit or debit a wallet with a reason (wallet_adjust), then back to the wallet."""
        wallet = self._wallet(request, object_id)
        if request.method == "POST":
            form = AdjustForm(request.POST, currency=wallet.currency)
            if form.is_valid():
                data = form.cleaned_data
                try:
                    wallet_adjust(
                        wallet=wallet,
                        amount=Money(data["amount"], wallet.currency),
                        reason=data["reason"],
                        staff=request.user,
                        idempotency_key=f"admin-adjust-{wallet.pk}-{data['key']}",
                        direction=data["direction"],
                    )
                except CreditError as error:
                    field = error.extra.get("field")
                    if isinstance(error, InsufficientCredit):
                        field = "amount"
                    form.add_error(field if field in form.fields else None, error.message)
                else:
                    wallet.refresh_from_db()
                    text = (
                        gettext("%(amount)s added. The balance of %(account)s is now %(balance)s.")
                        if data["direction"] == "credit"
                        else gettext(
                            "%(amount)s taken away. The balance of %(account)s is now %(balance)s."
                        )
                    )
                    values = {
                        "amount": wallet.money(data["amount"]),
                        "account": wallet.account,
                        "balance": wallet.balance_money,
                    }
                    self.message_user(request, text % values, messages.SUCCESS)
                    return HttpResponseRedirect(
                        reverse("admin:credit_wallet_change", args=[wallet.pk])
                    )
        else:
            form = AdjustForm(
                initial={"key": uuid.uuid4().hex, "direction": "credit"}, currency=wallet.currency
            )
        return self._page(
            request,
            wallet,
            template="admin/credit/wallet_adjust.html",
            title=gettext("Adjust the credit of %(wallet)s") % {"wallet": wallet},
            form=form,
        )

    def overdraft_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Grant, change or withdraw a wallet's overdraft (overdraft_set)."""
        wallet = self._wallet(request, object_id)
        if request.method == "POST":
            form = OverdraftForm(request.POST, currency=wallet.currency)
            if form.is_valid():
                try:
                    changed = overdraft_set(
                        wallet=wallet,
                        limit=Money(form.cleaned_data["limit"], wallet.currency),
                        staff=request.user,
                    )
                except CreditError as error:
                    form.add_error("limit", error.message)
                else:
                    self.message_user(
                        request,
                        gettext("The overdraft limit of %(account)s is now %(limit)s.")
                        % {
                            "account": wallet.account,
                            "limit": changed.money(changed.overdraft_limit),
                        },
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        reverse("admin:credit_wallet_change", args=[wallet.pk])
                    )
        else:
            form = OverdraftForm(
                initial={"limit": wallet.overdraft_limit}, currency=wallet.currency
            )
        return self._page(
            request,
            wallet,
            template="admin/credit/wallet_overdraft.html",
            title=gettext("Set the overdraft of %(wallet)s") % {"wallet": wallet},
            form=form,
        )

    def _one_wallet(self, request: HttpRequest, queryset: QuerySet[Wallet], url_name: str):  # type: ignore[no-untyped-def]
        wallets = list(queryset[:2])
        if len(wallets) != 1:
            self.message_user(
                request, gettext("Select exactly one wallet for this action."), messages.WARNING
            )
            return None
        return HttpResponseRedirect(reverse(url_name, args=[wallets[0].pk]))

    @admin.action(description=_("Adjust credit…"), permissions=["move_credit"])
    def adjust_action(self, request: HttpRequest, queryset: QuerySet[Wallet]):  # type: ignore[no-untyped-def]
        return self._one_wallet(request, queryset, "admin:credit_wallet_adjust")

    @admin.action(description=_("Set overdraft…"), permissions=["move_credit"])
    def overdraft_action(self, request: HttpRequest, queryset: QuerySet[Wallet]):  # type: ignore[no-untyped-def]
        return self._one_wallet(request, queryset, "admin:credit_wallet_overdraft")


# --- Transfers and their entries ---------------------------------------------------------


class EntryInline(ReadOnlyInline):
    model = Entry
    fields = ["ledger_account", "amount_display", "balance_after_display", "created_at"]
    readonly_fields = fields
    verbose_name_plural = _("entries (legs of the transfer)")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        return super().get_queryset(request).select_related("ledger_account").order_by("pk")

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("credit.view_transfer") or super().has_view_permission(
            request, obj
        )

    @admin.display(description=_("amount"))
    def amount_display(self, entry: Entry) -> str:
        return _money(entry.amount, entry.currency)

    @admin.display(description=_("balance after"))
    def balance_after_display(self, entry: Entry) -> str:
        return "" if entry.balance_after is None else _money(entry.balance_after, entry.currency)


class AllocationInline(ReadOnlyInline):
    model = Allocation
    fk_name = "transfer"
    fields = ["debit", "lot", "amount", "created_at"]
    readonly_fields = fields
    verbose_name_plural = _("allocations to lots (first in, first out)")

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("credit.view_transfer") or super().has_view_permission(
            request, obj
        )


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "amount_display",
        "wallet",
        "shop",
        "memo",
        "created_by",
    ]
    list_filter = ["kind", "wallet__platform", "currency"]
    date_hierarchy = "created_at"
    search_fields = [
        "=idempotency_key",
        "memo",
        "wallet__account__name",
        "=wallet__account__variable_symbol",
    ]
    search_help_text = _("Idempotency key, description, account name or variable symbol.")
    list_select_related = ["wallet__account", "wallet__platform", "shop", "created_by"]
    show_full_result_count = False
    inlines = [EntryInline, AllocationInline]
    fields = [
        "kind",
        "amount_display",
        "wallet",
        "shop",
        "memo",
        "payment",
        "refund_of",
        "reverses",
        "pays_for_display",
        "idempotency_key",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, transfer: Transfer) -> str:
        return _money(transfer.amount, transfer.currency)

    @admin.display(description=_("pays for"))
    def pays_for_display(self, transfer: Transfer) -> str:
        if transfer.pays_for_type_id is None:
            return "-"
        return f"{transfer.pays_for_type} #{transfer.pays_for_id}"


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "platform", "currency", "balance_display"]
    list_filter = ["kind", "platform", "currency"]
    search_fields = ["name"]
    list_select_related = ["platform"]
    fields = ["name", "kind", "platform", "currency", "balance_display", "created_at"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerAccount]:
        # A correlated subquery: summed only for the rows shown, not for every account.
        total = (
            Entry.objects.filter(ledger_account=OuterRef("pk"))
            .order_by()
            .values("ledger_account")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                entries_total=Coalesce(
                    Subquery(total, output_field=DecimalField(max_digits=14, decimal_places=2)),
                    Decimal(0),
                    output_field=DecimalField(max_digits=14, decimal_places=2),
                )
            )
        )

    @admin.display(description=_("balance (sum of entries)"))
    def balance_display(self, account: LedgerAccount) -> str:
        return _money(account.entries_total, account.currency)


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "wallet", "source", "amount_display", "remaining_display"]
    list_filter = ["source", "wallet__platform"]
    search_fields = ["wallet__account__name", "=wallet__account__variable_symbol"]
    list_select_related = ["wallet__account", "wallet__platform"]
    fields = ["wallet", "transfer", "source", "amount_display", "remaining_display", "created_at"]
    readonly_fields = fields

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, lot: Lot) -> str:
        return _money(lot.amount, lot.wallet.currency)

    @admin.display(description=_("remaining"), ordering="remaining")
    def remaining_display(self, lot: Lot) -> str:
        return _money(lot.remaining, lot.wallet.currency)


@admin.register(AutoRecharge)
class AutoRechargeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "wallet", "amount_display", "state", "finished_at"]
    list_filter = ["state", "wallet__platform"]
    search_fields = ["wallet__account__name", "=wallet__account__variable_symbol"]
    list_select_related = ["wallet__account", "wallet__platform"]
    date_hierarchy = "created_at"
    fields = [
        "wallet",
        "amount_display",
        "state",
        "balance_at_trigger",
        "threshold",
        "trigger",
        "payment",
        "failure_message",
        "created_at",
        "finished_at",
    ]
    readonly_fields = fields

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, recharge: AutoRecharge) -> str:
        return _money(recharge.amount, recharge.currency)
