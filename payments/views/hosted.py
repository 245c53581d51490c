"""The payment pages a customer sees: the sandbox's hosted card page and its
3-D Secure challenge; for Stripe, a short page before Stripe's own Checkout
page (whether to save the card) and the page the customer returns to."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from accounts.permissions import Capability
from accounts.portal import member_required
from payments.exceptions import PaymentError
from payments.forms import SandboxCardForm
from payments.gateways import sandbox
from payments.models import PENDING_STATES, Gateway, State, Transaction
from payments.services.checkout import checkout_return, transaction_checkout_start
from payments.services.transactions import (
    Actor,
    transaction_action_complete,
    transaction_authorize,
)


def _transaction(request: HttpRequest, transaction_id) -> Transaction:  # type: ignore[no-untyped-def]
    return get_object_or_404(
        Transaction.objects.select_related("platform"),
        public_id=transaction_id,
        account=request.account,
    )


def _back(request: HttpRequest, tx: Transaction) -> HttpResponseRedirect:
    if tx.return_url and url_has_allowed_host_and_scheme(
        tx.return_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(tx.return_url)
    return redirect("home")


@never_cache
@member_required(Capability.MOVE_MONEY)
def pay(request: HttpRequest, transaction_id) -> HttpResponse:  # type: ignore[no-untyped-def]
    tx = _transaction(request, transaction_id)
    if tx.gateway == Gateway.STRIPE and tx.state in PENDING_STATES:
        return _stripe_pay(request, tx)
    if tx.state == State.ACTION_REQUIRED:
        return redirect("payments:sandbox_challenge", transaction_id=tx.public_id)
    if tx.state != State.CREATED:
        messages.info(
            request,
            _("This payment is already %(state)s.") % {"state": tx.get_state_display().lower()},
        )
        return _back(request, tx)
    if tx.gateway != Gateway.SANDBOX:
        # Card payments on other gateways use the gateway's own hosted page.
        return redirect("home")
    form = SandboxCardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        month, year = form.cleaned_data["expiry"]
        number = form.cleaned_data["number"]
        brand = sandbox.card_brand(number)
        if brand and not tx.platform.accepts_card_brand(brand):
            form.add_error(
                "number",
                _("%(platform)s does not accept %(brand)s cards. Please use another card.")
                % {"platform": tx.platform.name, "brand": dict(_brand_names())[brand]},
            )
        else:
            try:
                token = sandbox.tokenize(
                    number=number,
                    exp_month=month,
                    exp_year=year,
                    cvc=form.cleaned_data["cvc"],
                    today=timezone.localdate(),
                )
            except sandbox.CardInputError as error:
                form.add_error(error.field if error.field != "expiry" else "expiry", str(error))
            else:
                try:
                    tx = transaction_authorize(
                        transaction_id=tx.pk,
                        payment_method=token,
                        brand=brand,
                        save_card=form.cleaned_data["save_card"],
                        actor=Actor(user=request.user),
                    )
                except PaymentError as error:
                    form.add_error(None, error.message)
                else:
                    if tx.state == State.ACTION_REQUIRED:
                        return redirect("payments:sandbox_challenge", transaction_id=tx.public_id)
                    if tx.state in (State.AUTHORIZED, State.CAPTURED):
                        messages.success(request, _("Thank you, your payment was accepted."))
                        return _back(request, tx)
                    form.add_error(None, tx.failure_message or _("The payment was declined."))
    return render(
        request,
        "payments/pay.html",
        {
            "transaction": tx,
            "form": form,
            "accepted_brands": [
                label
                for value, label in _brand_names()
                if value in tx.platform.accepted_card_brands
            ],
            "test_cards": sandbox.TEST_CARDS,
        },
    )


def _brand_names() -> list[tuple[str, str]]:
    from accounts.models import CardBrand

    return list(CardBrand.choices)


@never_cache
@member_required(Capability.MOVE_MONEY)
def sandbox_challenge(request: HttpRequest, transaction_id) -> HttpResponse:  # type: ignore[no-untyped-def]
    """The card issuer's 3-D Secure page, as the sandbox plays it."""
    tx = _transaction(request, transaction_id)
    if tx.state != State.ACTION_REQUIRED or tx.gateway != Gateway.SANDBOX:
        return redirect("payments:pay", transaction_id=tx.public_id)
    if request.method == "POST":
        succeeded = request.POST.get("outcome") == "complete"
        try:
            tx = transaction_action_complete(
                transaction_id=tx.pk, succeeded=succeeded, actor=Actor(user=request.user)
            )
        except PaymentError as error:
            messages.error(request, error.message)
            return redirect("payments:pay", transaction_id=tx.public_id)
        if tx.state in (State.AUTHORIZED, State.CAPTURED):
            messages.success(request, _("Thank you, your payment was accepted."))
            return _back(request, tx)
        messages.error(request, tx.failure_message or _("The card could not be authenticated."))
        return redirect("payments:pay", transaction_id=tx.public_id)
    return render(request, "payments/sandbox_challenge.html", {"transaction": tx})


# --- Stripe ----------------------------------------------------------------------------------


class StripeCheckoutForm(forms.Form):
    """The one choice made here before Stripe's page: the card itself is typed at Stripe."""

    save_card = forms.BooleanField(
        label=gettext_lazy("Save this card for later payments"),
        help_text=gettext_lazy(
            "Stripe keeps the card; we keep only its brand and last four digits, "
            "and charge it only for payments you set up (such as automatic top-ups)."
        ),
        required=False,
    )


PAID_STATES = (State.AUTHORIZED, State.CAPTURED, State.PARTIALLY_REFUNDED, State.REFUNDED)


def _stripe_pay(request: HttpRequest, tx: Transaction) -> HttpResponse:
    # Bound on every POST: an unticked box sends nothing, and that is a valid answer.
    form = StripeCheckoutForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        back_here = request.build_absolute_uri(
            reverse("payments:stripe_return", kwargs={"transaction_id": tx.public_id})
        )
        try:
            tx = transaction_checkout_start(
                transaction_id=tx.pk,
                save_card=form.cleaned_data["save_card"],
                success_url=back_here,
                cancel_url=f"{back_here}?cancelled=1",
                actor=Actor(user=request.user),
            )
        except PaymentError as error:
            form.add_error(None, error.message)
        else:
            if tx.state == State.ACTION_REQUIRED and tx.next_action_url:
                return redirect(tx.next_action_url)
            if tx.state in PAID_STATES:
                messages.success(request, _("Thank you, your payment was accepted."))
                return _back(request, tx)
            form.add_error(
                None,
                tx.failure_message
                or _(
                    "Stripe's payment page could not be opened just now. Nothing was charged; "
                    "please try again in a few minutes."
                ),
            )
    return render(
        request,
        "payments/stripe_checkout.html",
        {
            "transaction": tx,
            "form": form,
            "started": tx.state == State.ACTION_REQUIRED,
            "accepted_brands": [
                label
                for value, label in _brand_names()
                if value in tx.platform.accepted_card_brands
            ],
        },
    )


@never_cache
@member_required(Capability.MOVE_MONEY)
def stripe_return(request: HttpRequest, transaction_id) -> HttpResponse:  # type: ignore[no-untyped-def]
    """Where Stripe's Checkout page sends the customer back, paid or not.

    Settles the payment from what Stripe holds now (a webhook may have done it
    already); reading the outcome from Stripe is what changes anything, so a
    forged or repeated visit does no harm.
    """
    tx = _transaction(request, transaction_id)
    if tx.gateway != Gateway.STRIPE:
        raise Http404
    if request.GET.get("cancelled"):
        messages.info(
            request,
            _("You left the Stripe payment page. Nothing was charged; you can pay when ready."),
        )
        return redirect("payments:pay", transaction_id=tx.public_id)
    tx = checkout_return(transaction_id=tx.pk, actor=Actor(user=request.user))
    if tx.state in PAID_STATES:
        messages.success(request, _("Thank you, your payment was accepted."))
        return _back(request, tx)
    if tx.state == State.CREATED and not tx.pending_operation:
        messages.warning(
            request,
            tx.failure_message or _("The payment was not completed. Nothing was charged."),
        )
        return redirect("payments:pay", transaction_id=tx.public_id)
    if tx.state in (State.FAILED, State.VOIDED, State.EXPIRED):
        messages.error(
            request,
            _("This payment is %(state)s.") % {"state": tx.get_state_display().lower()},
        )
        return _back(request, tx)
    # Still being confirmed (a webhook is settling it, or Stripe did not answer yet).
    return render(request, "payments/stripe_return.html", {"transaction": tx})
