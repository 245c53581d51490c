"""The staff interface for payments.

Money and state are read-only here: they move only through the actions below,
which call the same services as the portal (payments.services.transactions)
with the staff user as the actor, so every change lands in the message log with
who did it. The log itself can be read, never edited or deleted; staff add notes
to it with the form on a transaction's page.

Permissions (standard Django codenames, granted per staff group in
billing_site/staff.py):
- ``payments.view_transaction``: see transactions and their message log;
- ``payments.add_transactionevent``: add a staff note to the message log;
- ``payments.change_transaction``: capture, void and refund (the money actions).
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from payments.exceptions import PaymentError
from payments.forms_merchant import NoteForm
from payments.models import (
    DeliveryNotification,
    SavedCard,
    Shipment,
    State,
    Transaction,
    TransactionEvent,
    WebhookEvent,
)
from payments.selectors import event_action_label, event_actor_label
from payments.services.transactions import (
    Actor,
    transaction_capture,
    transaction_note_add,
    transaction_refund,
    transaction_void,
)

MOVE_MONEY_PERMISSION = "payments.change_transaction"
ADD_NOTE_PERMISSION = "payments.add_transactionevent"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records kept for reference: staff can look, never add, change or delete."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# --- The message log -----------------------------------------------------------------------


class TransactionEventInline(admin.TabularInline):
    """The message log on a transaction's page, oldest first, read-only."""

    model = TransactionEvent
    fields = ["created_at", "what", "state_change", "money", "gateway_code", "message", "who"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["created_at", "id"]
    verbose_name = _("log entry")
    verbose_name_plural = _("message log")

    def get_queryset(self, request: HttpRequest) -> QuerySet[TransactionEvent]:
        return super().get_queryset(request).select_related("author", "transaction")

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Whoever may see the transaction may read its log.
        return request.user.has_perm("payments.view_transaction") or super().has_view_permission(
            request, obj
        )

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description=_("what"))
    def what(self, event: TransactionEvent) -> str:
        return event_action_label(event)

    @admin.display(description=_("state"))
    def state_change(self, event: TransactionEvent) -> str:
        if event.old_state and event.new_state and event.old_state != event.new_state:
            return f"{event.get_old_state_display()} → {event.get_new_state_display()}"
        return event.get_new_state_display() or event.get_old_state_display()

    @admin.display(description=_("amount"))
    def money(self, event: TransactionEvent) -> str:
        if event.amount is None:
            return ""
        return str(Money(event.amount, event.transaction.currency))

    @admin.display(description=_("who"))
    def who(self, event: TransactionEvent) -> str:
        return event_actor_label(event)


@admin.register(TransactionEvent)
class TransactionEventAdmin(ReadOnlyAdmin):
    """Every log entry, for looking across transactions (notes by a person, a task's work)."""

    list_display = ["created_at", "transaction_link", "kind", "what", "amount", "who"]
    list_filter = ["kind", "new_state"]
    search_fields = ["=transaction__public_id", "message", "author__email", "system_actor"]
    list_select_related = ["transaction", "author"]
    date_hierarchy = "created_at"
    fields = [
        "transaction",
        "created_at",
        "kind",
        "action",
        "old_state",
        "new_state",
        "amount",
        "gateway_code",
        "message",
        "author",
        "system_actor",
    ]
    readonly_fields = fields

    @admin.display(description=_("transaction"), ordering="transaction__created_at")
    def transaction_link(self, event: TransactionEvent) -> str:
        url = reverse("admin:payments_transaction_change", args=[event.transaction_id])
        return format_html('<a href="{}">{}</a>', url, event.transaction.short_id)

    @admin.display(description=_("what"))
    def what(self, event: TransactionEvent) -> str:
        return event_action_label(event)

    @admin.display(description=_("who"))
    def who(self, event: TransactionEvent) -> str:
        return event_actor_label(event)


# --- Transactions ------------------------------------------------------------------------


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "created_at",
        "account",
        "platform",
        "state",
        "amount",
        "captured_amount",
        "refunded_amount",
        "purpose",
        "card",
        "gateway_reference",
    ]
    list_filter = ["state", "purpose", "gateway", "card_brand", "platform"]
    date_hierarchy = "created_at"
    # A full transaction id is matched exactly (see get_search_results); the short id a
    # customer quotes ("3F2A1B9C") by its beginning.
    search_fields = [
        "public_id__istartswith",
        "^gateway_reference",
        "=card_last4",
        "account__name",
        "=account__variable_symbol",
    ]
    search_help_text = _(
        "Transaction ID (or its first characters), gateway reference, card's last four "
        "digits, account name or variable symbol."
    )
    list_select_related = ["account", "platform", "shop"]
    show_full_result_count = False
    inlines = [TransactionEventInline]
    actions = ["capture_full", "void", "refund_full"]
    change_form_template = "payments/merchant/admin_transaction_change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "public_id",
                    "account",
                    "platform",
                    "shop",
                    "purpose",
                    "description",
                    "state",
                )
            },
        ),
        (
            _("Money"),
            {"fields": ("amount", "captured_amount", "refunded_amount", "refundable")},
        ),
        (
            _("Card and gateway"),
            {"fields": ("gateway", "gateway_reference", "card_brand", "card_last4", "saved_card")},
        ),
        (
            _("Processing"),
            {
                "fields": (
                    "pending_operation",
                    "pending_amount",
                    "pending_since",
                    "failure_code",
                    "failure_message",
                    "auto_capture",
                )
            },
        ),
        (
            _("Dates"),
            {
                "fields": (
                    "created_at",
                    "created_by",
                    "authorized_at",
                    "authorization_expires_at",
                    "captured_at",
                    "closed_at",
                    "updated_at",
                )
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [field for _name, options in self.fieldsets for field in options["fields"]]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Transaction], search_term: str
    ) -> tuple[QuerySet[Transaction], bool]:
        try:
            public_id = UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        # A whole transaction id: one index lookup instead of a text search.
        return queryset.filter(public_id=public_id), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # payments are created by the portal, orders and top-ups

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # read-only page; money moves only through the actions

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_move_money_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MOVE_MONEY_PERMISSION)

    @admin.display(description=_("ID"), ordering="public_id")
    def short_id(self, tx: Transaction) -> str:
        return tx.short_id

    @admin.display(description=_("card"))
    def card(self, tx: Transaction) -> str:
        return f"{tx.get_card_brand_display()} ···· {tx.card_last4}" if tx.card_last4 else "—"

    @admin.display(description=_("can still be refunded"))
    def refundable(self, tx: Transaction) -> str:
        return str(tx.refundable_amount)

    # --- Staff notes ------------------------------------------------------------------

    def get_urls(self) -> list:
        return [
            path(
                "<int:object_id>/note/",
                self.admin_site.admin_view(self.note_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_note",
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
        extra_context = extra_context or {}
        if request.user.has_perm(ADD_NOTE_PERMISSION):
            extra_context["note_form"] = NoteForm(auto_id="note_%s")
        return super().change_view(request, object_id, form_url, extra_context)

    def note_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Add a staff note (POST only), then back to the transaction's page."""
        if not request.user.has_perm(ADD_NOTE_PERMISSION) or not self.has_view_permission(request):
            raise PermissionDenied
        tx = get_object_or_404(Transaction, pk=object_id)
        change_url = reverse("admin:payments_transaction_change", args=[tx.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        form = NoteForm(request.POST)
        if form.is_valid():
            try:
                transaction_note_add(
                    transaction_id=tx.pk, author=request.user, text=form.cleaned_data["text"]
                )
            except PaymentError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, gettext("The note was added."), messages.SUCCESS)
        else:
            self.message_user(
                request,
                gettext("The note was not added: %(errors)s")
                % {"errors": " ".join(form.errors.get("text", []))},
                messages.ERROR,
            )
        return HttpResponseRedirect(change_url)

    # --- Money actions ----------------------------------------------------------------

    def _confirm_or_run(
        self,
        request: HttpRequest,
        queryset: QuerySet[Transaction],
        *,
        action: str,
        title: str,
        explanation: str,
        run: Callable[[Transaction], tuple[bool, str]],
    ) -> TemplateResponse | None:
        """First show what will happen to each selected transaction; on confirmation run
        the service per row and report each row's outcome as a message."""
        transactions = list(queryset.select_related("account", "platform").order_by("pk"))
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(
                request,
                "payments/merchant/admin_action_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": title,
                    "explanation": explanation,
                    "transactions": transactions,
                    "action": action,
                    "opts": self.opts,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        for tx in transactions:
            try:
                succeeded, text = run(tx)
            except PaymentError as error:
                succeeded, text = False, error.message
            self.message_user(
                request,
                f"{tx.short_id} ({tx.account.name}): {text}",
                messages.SUCCESS if succeeded else messages.ERROR,
            )
        return None

    @staticmethod
    def _outcome(after: Transaction, succeeded: bool, success: str) -> tuple[bool, str]:
        if succeeded:
            return True, success
        if after.pending_operation:
            return False, gettext(
                "the gateway did not answer; the outcome will be checked with the gateway."
            )
        return False, gettext("the gateway refused: %(reason)s") % {
            "reason": after.failure_message or after.failure_code or "?"
        }

    @admin.action(description=_("Capture the full authorized amount"), permissions=["move_money"])
    def capture_full(
        self, request: HttpRequest, queryset: QuerySet[Transaction]
    ) -> TemplateResponse | None:
        actor = Actor(user=request.user)

        def run(tx: Transaction) -> tuple[bool, str]:
            after = transaction_capture(transaction_id=tx.pk, actor=actor)
            return self._outcome(
                after,
                after.state == State.CAPTURED,
                gettext("%(amount)s captured.") % {"amount": after.captured_amount},
            )

        return self._confirm_or_run(
            request,
            queryset,
            action="capture_full",
            title=gettext("Capture the full authorized amount"),
            explanation=gettext(
                "The whole authorized amount of each payment below is collected from the "
                "card. Payments that are not authorized are refused and stay as they are."
            ),
            run=run,
        )

    @admin.action(description=_("Void the authorization"), permissions=["move_money"])
    def void(
        self, request: HttpRequest, queryset: QuerySet[Transaction]
    ) -> TemplateResponse | None:
        actor = Actor(user=request.user)

        def run(tx: Transaction) -> tuple[bool, str]:
            after = transaction_void(transaction_id=tx.pk, actor=actor)
            return self._outcome(
                after,
                after.state == State.VOIDED,
                gettext("authorization of %(amount)s voided.") % {"amount": after.amount},
            )

        return self._confirm_or_run(
            request,
            queryset,
            action="void",
            title=gettext("Void the authorization"),
            explanation=gettext(
                "The authorization of each payment below is released; they can no longer be "
                "captured. Payments that are not authorized are refused and stay as they are."
            ),
            run=run,
        )

    @admin.action(description=_("Refund everything still refundable"), permissions=["move_money"])
    def refund_full(
        self, request: HttpRequest, queryset: QuerySet[Transaction]
    ) -> TemplateResponse | None:
        actor = Actor(user=request.user)

        def run(tx: Transaction) -> tuple[bool, str]:
            before = tx.refunded_amount
            after = transaction_refund(transaction_id=tx.pk, actor=actor)
            return self._outcome(
                after,
                after.refunded_amount > before,
                gettext("%(amount)s refunded.") % {"amount": after.refunded_amount - before},
            )

        return self._confirm_or_run(
            request,
            queryset,
            action="refund_full",
            title=gettext("Refund everything still refundable"),
            explanation=gettext(
                "What is left of the captured amount of each payment below is returned to "
                "the card. Payments with nothing captured are refused and stay as they are."
            ),
            run=run,
        )


# --- Read-only records -------------------------------------------------------------------


@admin.register(SavedCard)
class SavedCardAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "account", "platform", "gateway", "created_at", "removed_at"]
    list_filter = ["gateway", "brand", "platform"]
    search_fields = ["account__name", "=account__variable_symbol", "=last4"]
    list_select_related = ["account", "platform"]
    # The gateway token is a credential for charging the card: never shown.
    exclude = ["token"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "gateway", "event_type", "event_id", "processed_at", "failed"]
    list_filter = ["gateway", "event_type"]
    search_fields = ["=event_id", "event_type"]
    date_hierarchy = "received_at"

    @admin.display(description=_("error"), boolean=True)
    def failed(self, event: WebhookEvent) -> bool:
        return bool(event.error)


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyAdmin):
    list_display = [
        "transaction",
        "recipient_name",
        "city",
        "country",
        "carrier",
        "tracking_number",
        "status",
        "shipped_at",
        "delivered_at",
    ]
    list_filter = ["status", "carrier", "country"]
    search_fields = ["=transaction__public_id", "tracking_number", "recipient_name"]
    list_select_related = ["transaction"]


@admin.register(DeliveryNotification)
class DeliveryNotificationAdmin(ReadOnlyAdmin):
    list_display = ["notification_id", "shipment", "received_at", "outcome"]
    search_fields = ["=notification_id"]
    list_select_related = ["shipment__transaction"]
