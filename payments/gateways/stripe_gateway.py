"""Stripe: PaymentIntents with manual capture, Checkout for the card page, saved cards.

Card data never reaches our server: a customer pays on Stripe's hosted Checkout
page (``checkout_session_create``), and later charges without them use a saved
PaymentMethod on a Stripe Customer (``authorize`` with ``off_session``).

What Stripe calls things, and what they are for us:

    PaymentIntent requires_capture   → authorized
    PaymentIntent succeeded          → captured (amount_received; refunds on its latest charge)
    PaymentIntent canceled           → voided
    PaymentIntent requires_action    → requires_action (the customer must authenticate)
    requires_payment_method          → failed (its last_payment_error), else pending
    Checkout Session open / expired  → requires_action (customer on the page) / failed

A transaction paid through Checkout keeps the Session id (``cs_...``) as its
gateway reference; its PaymentIntent is looked up through the Session, since
Stripe creates it only when the customer pays. Off-session charges keep the
PaymentIntent id (``pi_...``).

Every POST carries the idempotency key the service derived from our transaction
id (GETs are idempotent by nature), so the library's own retries and any replay
can never charge twice. Amounts are sent in the currency's minor units, computed
with Decimal, never floats. A network error, timeout, 5xx or rate limit raises
GatewayError (the outcome is unknown: the services leave the operation pending
for reconciliation); a card refusal or a request Stripe rejects is a "failed"
GatewayResponse carrying Stripe's decline code or error code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.urls import reverse
from moneyed import get_currency

from payments.gateways.base import CardDetails, GatewayError, GatewayResponse, PaymentGateway
from payments.models import Gateway, SavedCard, Transaction

# How long one request to Stripe may take, and how often the library retries a
# network error or 5xx with the same idempotency key. Settings may override them.
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_NETWORK_RETRIES = 2

# Stripe's exceptions to ISO 4217 minor units (https://docs.stripe.com/currencies):
# these zero-decimal ISO currencies are sent as if they had two decimals.
STRIPE_MINOR_UNIT_OVERRIDES = {"ISK": 100, "UGX": 100}

# Our card brands → Checkout's `brands_blocked` values (the card networks it can block).
CHECKOUT_BLOCKABLE_BRANDS = {
    "american_express": ("amex",),
    "discover_global_network": ("discover", "diners"),
    "mastercard": ("mastercard", "maestro"),
    "visa": ("visa",),
}

# Stripe's card brand names → ours (accounts.models.CardBrand); others are kept blank.
BRANDS = {
    "visa": "visa",
    "mastercard": "mastercard",
    "amex": "amex",
    "american_express": "amex",
    "discover": "discover",
    "diners": "diners",
    "jcb": "jcb",
    "unionpay": "unionpay",
    "maestro": "maestro",
}

# Languages Stripe's Checkout page speaks, of those the portal offers.
CHECKOUT_LOCALES = {"bg", "cs", "en", "es", "ro", "sk"}

INTENT_EXPAND = ["payment_method", "latest_charge"]
SESSION_EXPAND = ["payment_intent", "payment_intent.payment_method", "payment_intent.latest_charge"]


# --- Amounts -------------------------------------------------------------------------------


def minor_unit_scale(currency: str) -> int:
    """How many minor units make one unit of ``currency`` at Stripe (EUR, CZK, HUF: 100)."""
    code = currency.upper()
    return STRIPE_MINOR_UNIT_OVERRIDES.get(code) or get_currency(code).sub_unit


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``Decimal("12.34")`` EUR → 1234. Refuses an amount finer than the currency's unit."""
    value = Decimal(amount) * minor_unit_scale(currency)
    if value != value.to_integral_value():
        raise ValueError(f"{amount} {currency} has more decimals than the currency allows")
    return int(value)


def from_minor_units(value: int, currency: str) -> Decimal:
    """1234 EUR cents → ``Decimal("12.34")``."""
    scale = minor_unit_scale(currency)
    exponent = len(str(scale)) - 1
    return (Decimal(int(value)) / scale).quantize(Decimal(1).scaleb(-exponent))


# --- The client ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _client(api_key: str, api_base: str, timeout: float, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base or stripe.DEFAULT_API_BASE},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def stripe_client() -> stripe.StripeClient:
    """The client for the configured account; refuses to run without a secret key."""
    if not settings.STRIPE_SECRET_KEY:
        raise GatewayError("Stripe is not configured (STRIPE_SECRET_KEY is empty)")
    return _client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        float(getattr(settings, "STRIPE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)),
        int(getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", DEFAULT_NETWORK_RETRIES)),
    )


class _Refused(Exception):
    """Stripe answered and refused: a card error (402) or a request it rejects (400/404)."""

    def __init__(self, error: stripe.StripeError) -> None:
        body = error.json_body if isinstance(error.json_body, dict) else {}
        self.details: dict[str, Any] = body.get("error") or {}
        self.code = self.details.get("decline_code") or error.code or "declined"
        self.message = error.user_message or ""
        super().__init__(self.message)


def _ask(call: Callable[[stripe.StripeClient], Any]) -> dict[str, Any]:
    """Run one API call; the answer as plain dicts. Unknown outcomes raise GatewayError."""
    try:
        return call(stripe_client()).to_dict()
    except (stripe.CardError, stripe.InvalidRequestError) as error:
        raise _Refused(error) from error
    except stripe.StripeError as error:
        # Connection errors, timeouts, 5xx, rate limits, authentication: Stripe may or may
        # not have acted. The operation stays pending and reconciliation asks later.
        raise GatewayError(f"Stripe: {type(error).__name__}: {error.user_message}") from error


def _options(idempotency_key: str) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key}


# --- Reading Stripe's objects -------------------------------------------------------------


def _card(intent: dict[str, Any]) -> CardDetails | None:
    method = intent.get("payment_method")
    if not isinstance(method, dict) or not method.get("card"):
        return None
    card = method["card"]
    customer = intent.get("customer") or method.get("customer") or ""
    # Reusable when the customer asked to save it (setup_future_usage) or when it is
    # already a saved card on the customer charged (an off-session charge).
    reusable = bool(intent.get("setup_future_usage")) or bool(
        intent.get("customer") and method.get("customer") == intent.get("customer")
    )
    return CardDetails(
        brand=BRANDS.get(card.get("brand", ""), ""),
        last4=card.get("last4", ""),
        exp_month=int(card.get("exp_month") or 1),
        exp_year=int(card.get("exp_year") or 2000),
        token=method["id"] if reusable else "",
        customer=customer if reusable else "",
    )


def _refunded_total(intent: dict[str, Any], currency: str) -> Decimal | None:
    charge = intent.get("latest_charge")
    if not isinstance(charge, dict):
        return None if charge else Decimal(0)
    return from_minor_units(charge.get("amount_refunded", 0), currency)


def _from_intent(intent: dict[str, Any], *, code: str = "") -> GatewayResponse:
    """Our reading of a PaymentIntent's current state (see the module's table)."""
    currency = intent["currency"]
    status = intent["status"]
    common = {"reference": intent["id"], "card": _card(intent), "message": f"Stripe: {status}"}
    if status == "requires_capture":
        return GatewayResponse("authorized", code=code or "approved", **common)
    if status == "succeeded":
        received = from_minor_units(intent.get("amount_received", 0), currency)
        return GatewayResponse(
            "captured",
            code=code or "approved",
            amount=received,
            captured_total=received,
            refunded_total=_refunded_total(intent, currency),
            **common,
        )
    if status == "canceled":
        return GatewayResponse("voided", code=code or "canceled", **common)
    if status == "requires_action":
        next_action = intent.get("next_action") or {}
        redirect = next_action.get("redirect_to_url") or {}
        return GatewayResponse(
            "requires_action",
            code="authentication_required",
            next_action_url=redirect.get("url", ""),
            **common,
        )
    error = intent.get("last_payment_error")
    if status == "requires_payment_method" and error:
        return GatewayResponse(
            "failed",
            reference=intent["id"],
            card=_card(intent),
            code=error.get("decline_code") or error.get("code") or "declined",
            message=error.get("message", ""),
        )
    # requires_payment_method without an attempt, requires_confirmation, processing.
    return GatewayResponse("pending", code=status, **common)


def _from_session(session: dict[str, Any]) -> GatewayResponse:
    status = session.get("status")
    intent = session.get("payment_intent")
    if status == "complete" and isinstance(intent, dict):
        return _from_intent(intent)
    if status == "open":
        # The customer is (or may still be) on Stripe's page, perhaps after a decline.
        return GatewayResponse(
            "requires_action",
            reference=session["id"],
            code="checkout_open",
            message="The customer has not finished paying on the Stripe page.",
            next_action_url=session.get("url") or "",
        )
    return GatewayResponse(
        "failed",
        reference=session["id"],
        code="checkout_expired",
        message="The Stripe payment page expired without a payment.",
    )


def _refused(refusal: _Refused) -> GatewayResponse:
    details = refusal.details
    intent = details.get("payment_intent") if isinstance(details, dict) else None
    method = details.get("payment_method")
    card = _card({"payment_method": method}) if isinstance(method, dict) else None
    return GatewayResponse(
        "failed",
        reference=intent.get("id", "") if isinstance(intent, dict) else "",
        code=refusal.code,
        message=refusal.message,
        card=card,
    )


def _is_session(reference: str) -> bool:
    return reference.startswith("cs_")


def checkout_brands_blocked(accepted: list[str]) -> list[str]:
    """The card networks Checkout must refuse for a platform accepting ``accepted``."""
    return [
        network
        for network, ours in CHECKOUT_BLOCKABLE_BRANDS.items()
        if not any(brand in accepted for brand in ours)
    ]


class StripeGateway(PaymentGateway):
    name = Gateway.STRIPE.value

    # --- finding the PaymentIntent ---------------------------------------------------------

    def _session(self, session_id: str) -> dict[str, Any]:
        return _ask(
            lambda client: client.v1.checkout.sessions.retrieve(
                session_id, params={"expand": SESSION_EXPAND}
            )
        )

    def _intent(self, intent_id: str) -> dict[str, Any]:
        return _ask(
            lambda client: client.v1.payment_intents.retrieve(
                intent_id, params={"expand": INTENT_EXPAND}
            )
        )

    def _intent_status(self, intent_id: str) -> dict[str, Any] | None:
        """The PaymentIntent after Stripe refused an operation on it (None if it is unknown)."""
        try:
            return self._intent(intent_id)
        except _Refused:
            return None

    def _intent_by_metadata(self, transaction: Transaction) -> dict[str, Any] | None:
        """The newest PaymentIntent made for ``transaction`` (its id was never learnt)."""
        query = f"metadata['transaction']:'{transaction.public_id}'"
        found = _ask(
            lambda client: client.v1.payment_intents.search(
                params={"query": query, "expand": [f"data.{field}" for field in INTENT_EXPAND]}
            )
        )
        intents = sorted(found.get("data", []), key=lambda intent: intent.get("created", 0))
        return intents[-1] if intents else None

    def _intent_id(self, transaction: Transaction) -> str:
        reference = transaction.gateway_reference
        if _is_session(reference):
            try:
                intent = self._session(reference).get("payment_intent")
            except _Refused:
                return ""
            return intent.get("id", "") if isinstance(intent, dict) else (intent or "")
        return reference

    def transaction_public_id(self, intent_id: str) -> str:
        """Which of our transactions a PaymentIntent was made for (its metadata), or ""."""
        intent = self._intent_status(intent_id)
        return (intent or {}).get("metadata", {}).get("transaction", "")

    @staticmethod
    def _no_payment() -> GatewayResponse:
        return GatewayResponse(
            "failed", code="no_such_payment", message="Stripe has no payment for this transaction."
        )

    # --- the interface -----------------------------------------------------------------------

    def authorize(
        self,
        transaction: Transaction,
        *,
        payment_method: str,
        capture: bool,
        save_card: bool,
        off_session: bool,
        idempotency_key: str,
    ) -> GatewayResponse:
        """Create and confirm a PaymentIntent with a PaymentMethod in one request.

        Off-session (the customer is not there): ``payment_method`` is a saved card's
        token, charged on its Stripe Customer; a card that asks for authentication
        fails with ``authentication_required``. On-session (a PaymentMethod made by
        Stripe's own card form) a 3-D Secure redirect comes back as requires_action.
        """
        params: dict[str, Any] = {
            "amount": to_minor_units(transaction.amount.amount, transaction.currency),
            "currency": transaction.currency.lower(),
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "confirm": True,
            "capture_method": "automatic" if capture else "manual",
            "metadata": {"transaction": str(transaction.public_id)},
            "expand": INTENT_EXPAND,
        }
        if transaction.description:
            params["description"] = transaction.description
        if off_session:
            saved = SavedCard.objects.filter(
                gateway=self.name, token=payment_method, removed_at__isnull=True
            ).first()
            if saved is None or not saved.gateway_customer:
                return GatewayResponse(
                    "failed",
                    code="invalid_payment_method",
                    message="This saved card is not available any more.",
                )
            params["customer"] = saved.gateway_customer
            params["off_session"] = True
        else:
            params["return_url"] = settings.SITE_URL.rstrip("/") + reverse(
                "payments:stripe_return", kwargs={"transaction_id": transaction.public_id}
            )
        try:
            intent = _ask(
                lambda client: client.v1.payment_intents.create(
                    params=params,  # type: ignore[arg-type]
                    options=_options(idempotency_key),
                )
            )
        except _Refused as refusal:
            return _refused(refusal)
        return _from_intent(intent)

    def checkout_session_create(
        self,
        transaction: Transaction,
        *,
        save_card: bool,
        customer: str,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        locale: str,
        idempotency_key: str,
    ) -> GatewayResponse:
        """A Stripe Checkout page for ``transaction``: requires_action with its URL."""
        currency = transaction.currency
        intent_data: dict[str, Any] = {
            "capture_method": "automatic" if transaction.auto_capture else "manual",
            "metadata": {"transaction": str(transaction.public_id)},
        }
        if transaction.description:
            intent_data["description"] = transaction.description
        params: dict[str, Any] = {
            "mode": "payment",
            "payment_method_types": ["card"],
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": to_minor_units(transaction.amount.amount, currency),
                        "product_data": {
                            "name": transaction.description
                            or f"{transaction.platform.name} {transaction.short_id}"
                        },
                    },
                }
            ],
            "payment_intent_data": intent_data,
            "metadata": {"transaction": str(transaction.public_id)},
            "client_reference_id": str(transaction.public_id),
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
            "locale": locale if locale in CHECKOUT_LOCALES else "auto",
        }
        blocked = checkout_brands_blocked(list(transaction.platform.accepted_card_brands))
        if blocked:
            restrictions = {"restrictions": {"brands_blocked": blocked}}
            params["payment_method_options"] = {"card": restrictions}
        if save_card:
            intent_data["setup_future_usage"] = "off_session"
            if customer:
                params["customer"] = customer
            else:
                params["customer_creation"] = "always"
        try:
            session = _ask(
                lambda client: client.v1.checkout.sessions.create(
                    params=params,  # type: ignore[arg-type]
                    options=_options(idempotency_key),
                )
            )
        except _Refused as refusal:
            return _refused(refusal)
        return GatewayResponse(
            "requires_action",
            reference=session["id"],
            code="checkout_session",
            message="Waiting for the customer on the Stripe payment page.",
            next_action_url=session.get("url") or "",
        )

    def complete_action(
        self, transaction: Transaction, *, succeeded: bool, idempotency_key: str
    ) -> GatewayResponse:
        """The customer came back from Stripe (or gave up): report what Stripe now holds.

        Giving up on an open Checkout page expires it first, so that it can no
        longer be paid while the customer starts again.
        """
        reference = transaction.gateway_reference
        if not reference:
            return self._no_payment()
        if not succeeded and _is_session(reference):
            try:
                session = self._session(reference)
            except _Refused as refusal:
                return _refused(refusal)
            if session.get("status") != "open":
                return _from_session(session)
            try:
                session = _ask(
                    lambda client: client.v1.checkout.sessions.expire(
                        reference, options=_options(idempotency_key)
                    )
                )
            except _Refused:
                # Completed meanwhile (paid in another tab): what happened is what counts.
                return self.retrieve(transaction)
            return GatewayResponse(
                "failed",
                reference=reference,
                code="checkout_canceled",
                message="The customer left the Stripe payment page.",
            )
        if not succeeded:
            intent = self._intent_status(reference)
            if intent is not None and intent["status"] == "requires_action":
                try:
                    _ask(
                        lambda client: client.v1.payment_intents.cancel(
                            reference, options=_options(idempotency_key)
                        )
                    )
                except _Refused:
                    return self.retrieve(transaction)
                return GatewayResponse(
                    "failed",
                    reference=reference,
                    code="authentication_failed",
                    message="The card could not be authenticated.",
                )
        return self.retrieve(transaction)

    def capture(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        intent_id = self._intent_id(transaction)
        if not intent_id:
            return self._no_payment()
        try:
            intent = _ask(
                lambda client: client.v1.payment_intents.capture(
                    intent_id,
                    params={
                        "amount_to_capture": to_minor_units(amount, transaction.currency),
                        "expand": INTENT_EXPAND,
                    },
                    options=_options(idempotency_key),
                )
            )
        except _Refused as refusal:
            current = self._intent_status(intent_id)
            if current is not None and current["status"] == "canceled":
                # Stripe let the authorization lapse (7 days) or it was released there.
                return GatewayResponse(
                    "failed",
                    reference=intent_id,
                    code="charge_expired_for_capture",
                    message=refusal.message,
                )
            return _refused(refusal)
        return _from_intent(intent)

    def void(self, transaction: Transaction, *, idempotency_key: str) -> GatewayResponse:
        reference = transaction.gateway_reference
        if _is_session(reference):
            try:
                session = self._session(reference)
            except _Refused as refusal:
                return _refused(refusal)
            if session.get("status") == "open":
                try:
                    _ask(
                        lambda client: client.v1.checkout.sessions.expire(
                            reference, options=_options(idempotency_key)
                        )
                    )
                except _Refused as refusal:
                    return _refused(refusal)
                return GatewayResponse(
                    "voided", reference=reference, code="checkout_expired", message="expired"
                )
            intent = session.get("payment_intent")
            intent_id = intent.get("id", "") if isinstance(intent, dict) else ""
        else:
            intent_id = reference
        if not intent_id:
            return self._no_payment()
        try:
            intent = _ask(
                lambda client: client.v1.payment_intents.cancel(
                    intent_id, params={"expand": INTENT_EXPAND}, options=_options(idempotency_key)
                )
            )
        except _Refused as refusal:
            current = self._intent_status(intent_id)
            if current is not None and current["status"] == "canceled":
                return _from_intent(current)
            return _refused(refusal)
        return _from_intent(intent)

    def refund(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        intent_id = self._intent_id(transaction)
        if not intent_id:
            return self._no_payment()
        try:
            refund = _ask(
                lambda client: client.v1.refunds.create(
                    params={
                        "payment_intent": intent_id,
                        "amount": to_minor_units(amount, transaction.currency),
                        "metadata": {"transaction": str(transaction.public_id)},
                    },
                    options=_options(idempotency_key),
                )
            )
        except _Refused as refusal:
            return _refused(refusal)
        if refund.get("status") in ("failed", "canceled"):
            return GatewayResponse(
                "failed",
                reference=intent_id,
                code=refund.get("failure_reason") or "refund_failed",
                message="Stripe could not refund the card.",
            )
        try:
            refunded_total = _refunded_total(self._intent(intent_id), transaction.currency)
        except GatewayError:
            refunded_total = None  # the services add the amount to what they knew
        return GatewayResponse(
            "refunded",
            reference=intent_id,
            code="approved",
            message=refund["id"],
            amount=from_minor_units(refund["amount"], transaction.currency),
            refunded_total=refunded_total,
        )

    def retrieve(self, transaction: Transaction) -> GatewayResponse:
        reference = transaction.gateway_reference
        try:
            if _is_session(reference):
                return _from_session(self._session(reference))
            if reference:
                return _from_intent(self._intent(reference))
            intent = self._intent_by_metadata(transaction)
        except _Refused as refusal:
            return _refused(refusal)
        return self._no_payment() if intent is None else _from_intent(intent)
