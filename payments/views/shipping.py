"""Shipping in the merchant portal (prepare, mark shipped, dispatch note) and the
courier's delivery notification endpoint (docs/delivery-notifications.md)."""

from __future__ import annotations

from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.permissions import Capability
from accounts.portal import member_required
from payments.exceptions import PaymentError
from payments.forms_shipping import ShipForm, ShipmentForm
from payments.models import Shipment, Transaction
from payments.services import shipping as services
from payments.services.transactions import Actor


def _transaction(request: HttpRequest, transaction_id: UUID) -> Transaction:
    return get_object_or_404(
        Transaction.objects.select_related("platform"),
        public_id=transaction_id,
        account=request.account,
    )


def _shipment(tx: Transaction) -> Shipment | None:
    return getattr(tx, "shipment", None)


def _after_shipping_url(tx: Transaction) -> str:
    """The transaction's page in the merchant interface (it shows the shipping panel)."""
    return reverse("payments:transaction_detail", kwargs={"transaction_id": tx.public_id})


def _form_error(form: forms.Form, error: PaymentError) -> None:
    field = error.extra.get("field")
    form.add_error(field if field in form.fields else None, error.message)


@never_cache
@member_required(Capability.MOVE_MONEY)
def shipment_create(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if _shipment(tx) is not None:
        return redirect("payments:shipment_ship", transaction_id=tx.public_id)
    form = ShipmentForm(request.POST or None, initial={"country": str(tx.platform.country)})
    if request.method == "POST" and form.is_valid():
        try:
            services.shipment_create(
                transaction_id=tx.pk, actor=Actor(user=request.user), **form.cleaned_data
            )
        except PaymentError as error:
            _form_error(form, error)
        else:
            messages.success(
                request,
                _("The shipment has been prepared. Print the dispatch note, then mark it shipped."),
            )
            return redirect("payments:shipment_ship", transaction_id=tx.public_id)
    return render(
        request,
        "payments/shipping/create.html",
        {
            "transaction": tx,
            "form": form,
            "refusal": services.shipment_refusal(tx=tx),
            "back_url": _after_shipping_url(tx),
        },
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def shipment_ship(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    """The shipment: its dispatch note, and marking it shipped (the form is the confirmation)."""
    tx = _transaction(request, transaction_id)
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    shipment = _shipment(tx)
    if shipment is None:
        return redirect("payments:shipment_create", transaction_id=tx.public_id)
    form = ShipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.shipment_mark_shipped(
                transaction_id=tx.pk, actor=Actor(user=request.user), **form.cleaned_data
            )
        except PaymentError as error:
            _form_error(form, error)
        else:
            messages.success(
                request,
                _(
                    "Marked as shipped. %(amount)s will be captured when the courier "
                    "confirms delivery."
                )
                % {"amount": tx.amount},
            )
            return redirect(_after_shipping_url(tx))
    return render(
        request,
        "payments/shipping/ship.html",
        {
            "transaction": tx,
            "shipment": shipment,
            "form": form,
            "back_url": _after_shipping_url(tx),
        },
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def dispatch_note(request: HttpRequest, transaction_id: UUID) -> HttpResponse:
    tx = _transaction(request, transaction_id)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    shipment = _shipment(tx)
    if shipment is None:
        raise Http404("This payment has no shipment")
    pdf = services.dispatch_note_pdf(shipment=shipment)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="dispatch-note-{tx.short_id}.pdf"'
    return response


@csrf_exempt
@require_POST
def delivery_notify(request: HttpRequest) -> JsonResponse:
    """A courier's signed delivery confirmation (machine to machine; no session, no CSRF).

    400: bad or missing signature, stale timestamp, malformed body (nothing stored);
    404: unknown tracking number (stored); 200: delivered (the capture's result is in
    the body) or already processed.
    """
    # Answers and log lines do not follow the caller's Accept-Language.
    with translation.override(settings.LANGUAGE_CODE):
        try:
            outcome = services.delivery_notification_receive(
                body=request.body,
                timestamp=request.headers.get("X-Delivery-Timestamp", ""),
                signature=request.headers.get("X-Delivery-Signature", ""),
            )
        except services.NotificationRejected as error:
            return JsonResponse(
                {"status": "rejected", "error": error.code, "detail": error.message}, status=400
            )
        body: dict[str, str] = {"status": outcome.status}
        if outcome.capture:
            body["capture"] = outcome.capture
            body["detail"] = outcome.detail
        if outcome.transaction is not None and outcome.capture == "captured":
            body["amount"] = str(outcome.transaction.captured_amount.amount)
            body["currency"] = outcome.transaction.currency
        status = 404 if outcome.status == "unknown tracking number" else 200
        return JsonResponse(body, status=status)
