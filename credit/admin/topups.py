"""The staff interface for top-ups: the list, a read-only page with the proof of payment,
and the review of bank transfers.

Top-ups are never edited here. Money moves only through the two review actions,
which call the same services as everything else, with the staff user:
- "Approve transfer" → credit.services.topups.topup_transfer_approve (settles the
  payment; the wallet is credited once by credit.handlers);
- "Reject" → credit.services.topups.topup_transfer_reject (a note is required).
Both ask for confirmation on an intermediate page and write the audit log.

Permissions (standard codenames; staff groups in billing_site/staff.py):
``credit.view_topup`` to look and download proofs; ``credit.change_topup`` to review.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from credit.exceptions import CreditError
from credit.models import TopUp
from credit.services.topups import topup_transfer_approve, topup_transfer_reject
from credit.views.topups import proof_response

REVIEW_PERMISSION = "credit.change_topup"


class RejectForm(forms.Form):
    note = forms.CharField(
        label=_("Why is the transfer rejected?"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Shown to the customer on the top-up's page and kept in the audit log."),
        error_messages={"required": _("Write why the transfer is rejected.")},
    )

    def clean_note(self) -> str:
        note = " ".join(self.cleaned_data["note"].split())
        if not note:
            raise forms.ValidationError(gettext("Write why the transfer is rejected."))
        return note


@admin.register(TopUp)
class TopUpAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "account",
        "platform",
        "amount_display",
        "method",
        "state",
        "proof_status",
        "proof_link",
        "reviewed_by",
    ]
    list_display_links = ["id", "created_at"]
    list_filter = ["method", "state", "proof_status", "wallet__platform"]
    search_fields = ["=id", "wallet__account__name", "=wallet__account__variable_symbol"]
    search_help_text = _("Top-up number, account name or variable symbol.")
    list_select_related = ["wallet__account", "wallet__platform", "reviewed_by"]
    date_hierarchy = "created_at"
    actions = ["approve_transfer", "reject_transfer"]
    change_form_template = "credit/topups/admin_change_form.html"
    fieldsets = (
        (None, {"fields": ("account", "platform", "amount_display", "method", "state")}),
        (_("Payment"), {"fields": ("payment_link", "transfer", "paid_at")}),
        (
            _("Proof of payment and review"),
            {"fields": ("proof_link", "proof_status", "reviewed_by", "reviewed_at", "review_note")},
        ),
        (_("Started"), {"fields": ("created_at", "created_by", "terms_accepted_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [field for _name, options in self.fieldsets for field in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers start top-ups in the portal

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # read-only page; the review actions are the only changes

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    # --- Columns and fields ------------------------------------------------------------

    @admin.display(description=_("account"), ordering="wallet__account__name")
    def account(self, topup: TopUp) -> str:
        account = topup.wallet.account
        return f"{account.name} (VS {account.variable_symbol})"

    @admin.display(description=_("platform"), ordering="wallet__platform__name")
    def platform(self, topup: TopUp) -> str:
        return topup.wallet.platform.name

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, topup: TopUp) -> str:
        return str(topup.amount_money)

    @admin.display(description=_("proof of payment"))
    def proof_link(self, topup: TopUp) -> str:
        if not topup.proof:
            return "—"
        url = reverse("admin:credit_topup_proof", args=[topup.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Download"))

    @admin.display(description=_("payment"))
    def payment_link(self, topup: TopUp) -> str:
        if topup.payment_id is None:
            return "—"
        url = reverse("admin:payments_transaction_change", args=[topup.payment_id])
        return format_html('<a href="{}">{}</a>', url, str(topup.payment))

    # --- Pages -------------------------------------------------------------------------

    def get_urls(self) -> list:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/proof/", view(self.proof_view), name=f"{info}_proof"),
            path("<int:object_id>/approve/", view(self.approve_view), name=f"{info}_approve"),
            path("<int:object_id>/reject/", view(self.reject_view), name=f"{info}_reject"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        topup = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_review": topup is not None
            and self.has_review_permission(request)
            and topup.method == TopUp.Method.TRANSFER
            and topup.state == TopUp.State.PENDING,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def proof_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The proof, served through this check (the media directory is never public)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return proof_response(get_object_or_404(TopUp, pk=object_id))

    def approve_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_review_permission(request):
            raise PermissionDenied
        queryset = TopUp.objects.filter(pk=object_id)
        get_object_or_404(queryset)
        return self._approve(request, queryset, action=None) or HttpResponseRedirect(
            reverse("admin:credit_topup_change", args=[object_id])
        )

    def reject_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_review_permission(request):
            raise PermissionDenied
        queryset = TopUp.objects.filter(pk=object_id)
        get_object_or_404(queryset)
        return self._reject(request, queryset, action=None) or HttpResponseRedirect(
            reverse("admin:credit_topup_change", args=[object_id])
        )

    # --- Review actions ----------------------------------------------------------------

    @admin.action(description=_("Approve transfer"), permissions=["review"])
    def approve_transfer(
        self, request: HttpRequest, queryset: QuerySet[TopUp]
    ) -> TemplateResponse | None:
        return self._approve(request, queryset, action="approve_transfer")

    @admin.action(description=_("Reject"), permissions=["review"])
    def reject_transfer(
        self, request: HttpRequest, queryset: QuerySet[TopUp]
    ) -> TemplateResponse | None:
        return self._reject(request, queryset, action="reject_transfer")

    def _rows(self, queryset: QuerySet[TopUp]) -> list[TopUp]:
        return list(
            queryset.select_related("wallet__account", "wallet__platform", "payment").order_by("pk")
        )

    def _page(
        self, request: HttpRequest, template: str, topups: list[TopUp], action: str | None, **extra
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "topups": topups,
                "action": action,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                **extra,
            },
        )

    def _report(self, request: HttpRequest, topup: TopUp, text: str, succeeded: bool) -> None:
        self.message_user(
            request,
            f"#{topup.pk} {topup.wallet.account.name} {topup.amount_money}: {text}",
            messages.SUCCESS if succeeded else messages.ERROR,
        )

    def _approve(
        self, request: HttpRequest, queryset: QuerySet[TopUp], *, action: str | None
    ) -> TemplateResponse | None:
        """First show the transfers to approve; on confirmation approve each one."""
        topups = self._rows(queryset)
        if request.method != "POST" or request.POST.get("confirm") != "yes":
            return self._page(
                request,
                "credit/topups/admin_approve.html",
                topups,
                action,
                title=gettext("Approve transfer"),
            )
        for topup in topups:
            was_paid = topup.state == TopUp.State.PAID
            try:
                after = topup_transfer_approve(topup_id=topup.pk, staff=request.user)
            except CreditError as error:
                self._report(request, topup, error.message, False)
                continue
            approved_now = (
                not was_paid
                and after.proof_status == TopUp.Proof.APPROVED
                and after.reviewed_by_id == request.user.pk
            )
            if was_paid:
                self._report(request, topup, gettext("already credited; nothing done."), False)
            elif approved_now:
                self._report(request, topup, gettext("approved; the wallet is credited."), True)
            else:
                self._report(
                    request,
                    topup,
                    gettext("already settled by another approval or a bank statement."),
                    False,
                )
        return None

    def _reject(
        self, request: HttpRequest, queryset: QuerySet[TopUp], *, action: str | None
    ) -> TemplateResponse | None:
        """A page asking for the reason; with it, reject each selected transfer."""
        topups = self._rows(queryset)
        confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
        form = RejectForm(request.POST if confirmed else None)
        if not confirmed or not form.is_valid():
            return self._page(
                request,
                "credit/topups/admin_reject.html",
                topups,
                action,
                title=gettext("Reject transfer"),
                form=form,
            )
        for topup in topups:
            try:
                topup_transfer_reject(
                    topup_id=topup.pk, staff=request.user, note=form.cleaned_data["note"]
                )
            except CreditError as error:
                self._report(request, topup, error.message, False)
            else:
                self._report(request, topup, gettext("rejected; nothing was credited."), True)
        return None
