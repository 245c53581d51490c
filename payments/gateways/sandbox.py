"""The sandbox gateway: offline, deterministic, modelled on Stripe's published test cards.

The hosted card page (payments.views.hosted) hands the card number to `tokenize`,
which returns a token carrying only the outcome, brand, last four digits and
expiry: the number itself is never stored or logged. The sandbox keeps its own
records of charges (SandboxCharge), as a real gateway would on its side, so
that reconciliation can ask it what really happened.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.urls import reverse

from payments.gateways.base import CardDetails, GatewayResponse, PaymentGateway
from payments.models import SandboxCharge, Transaction

# Outcome of each test card, as on https://docs.stripe.com/testing.
SUCCESS = "success"
DECLINED = "card_declined"
INSUFFICIENT_FUNDS = "insufficient_funds"
EXPIRED_CARD = "expired_card"
INCORRECT_CVC = "incorrect_cvc"
THREE_D_SECURE = "three_d_secure"  # challenge on-session, none needed off-session once saved
ALWAYS_AUTHENTICATE = "always_authenticate"  # challenge every time; off-session fails
DECLINE_AFTER_SAVE = "decline_after_save"  # saving works, every later charge is declined

TEST_CARDS: dict[str, str] = {
    "4242424242424242": SUCCESS,
    "4000056655665556": SUCCESS,  # Visa debit
    "5555555555554444": SUCCESS,
    "2223003122003222": SUCCESS,  # Mastercard 2-series
    "5200828282828210": SUCCESS,  # Mastercard debit
    "6759649826438453": SUCCESS,  # Maestro
    "378282246310005": SUCCESS,  # American Express
    "371449635398431": SUCCESS,  # American Express
    "6011111111111117": SUCCESS,  # Discover
    "4000000000000002": DECLINED,
    "4000000000009995": INSUFFICIENT_FUNDS,
    "4000000000000069": EXPIRED_CARD,
    "4000000000000127": INCORRECT_CVC,
    "4000002500003155": THREE_D_SECURE,
    "4000002760003184": ALWAYS_AUTHENTICATE,
    "4000000000000341": DECLINE_AFTER_SAVE,
}

MESSAGES = {
    DECLINED: "Your card was declined.",
    INSUFFICIENT_FUNDS: "Your card has insufficient funds.",
    EXPIRED_CARD: "Your card has expired.",
    INCORRECT_CVC: "Your card's security code is incorrect.",
    "authentication_required": "Your card needs authentication, which is not possible now.",
    "authentication_failed": "The card could not be authenticated.",
}


class CardInputError(ValueError):
    """What the customer typed is not a usable card; ``field`` names the input."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def card_brand(number: str) -> str:
    """The brand from the number's first digits (IIN ranges)."""
    digits = re.sub(r"\D", "", number)
    two, four = int(digits[:2] or 0), int(digits[:4] or 0)
    if digits.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3] or 0) <= 649:
        return "discover"
    if two in (36, 38) or 300 <= int(digits[:3] or 0) <= 305:
        return "diners"
    if 3528 <= four <= 3589:
        return "jcb"
    if digits.startswith("62"):
        return "unionpay"
    if two == 50 or 56 <= two <= 69:
        return "maestro"
    return ""


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, digit in enumerate(reversed(digits)):
        value = int(digit)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


@dataclass(frozen=True)
class SandboxCard:
    outcome: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


def tokenize(*, number: str, exp_month: int, exp_year: int, cvc: str, today: date) -> str:
    """Check a typed test card and return a one-time token (`pm_sb_...`) for it."""
    digits = re.sub(r"[\s-]", "", number)
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_valid(digits):
        raise CardInputError("number", "incorrect_number", "Your card number is incorrect.")
    if digits not in TEST_CARDS:
        raise CardInputError(
            "number",
            "not_a_test_card",
            "This is the sandbox: use one of the test card numbers, never a real card.",
        )
    if not 1 <= exp_month <= 12 or (exp_year, exp_month) < (today.year, today.month):
        raise CardInputError("expiry", "invalid_expiry", "Your card's expiry date is in the past.")
    brand = card_brand(digits)
    if not re.fullmatch(r"\d{4}" if brand == "amex" else r"\d{3}", cvc or ""):
        raise CardInputError("cvc", "invalid_cvc", "Your card's security code is incomplete.")
    outcome = TEST_CARDS[digits]
    expiry = f"{exp_month:02d}{exp_year % 100:02d}"
    return f"pm_sb_{outcome}_{brand}_{digits[-4:]}_{expiry}_{secrets.token_hex(6)}"


def parse_token(token: str) -> SandboxCard:
    match = re.fullmatch(r"pm_sb_([a-z_]+)_([a-z]+)_(\d{4})_(\d{2})(\d{2})_[0-9a-f]{12}", token)
    if not match:
        raise ValueError("not a sandbox payment method")
    outcome, brand, last4, month, year = match.groups()
    return SandboxCard(outcome, brand, last4, int(month), 2000 + int(year))


class SandboxGateway(PaymentGateway):
    name = "sandbox"

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _idempotent(key: str, make: callable) -> GatewayResponse:  # type: ignore[valid-type]
        """Same key, same answer: like Stripe, a repeated request returns the first result."""
        from payments.models import SandboxRequest

        earlier = SandboxRequest.objects.filter(key=key).first()
        if earlier is not None:
            return _response_from_json(earlier.response)
        response = make()
        try:
            with transaction.atomic():
                SandboxRequest.objects.create(key=key, response=_response_to_json(response))
        except IntegrityError:
            earlier = SandboxRequest.objects.get(key=key)
            return _response_from_json(earlier.response)
        return response

    @staticmethod
    def _charge(transaction_: Transaction) -> SandboxCharge | None:
        if not transaction_.gateway_reference:
            return None
        return SandboxCharge.objects.filter(reference=transaction_.gateway_reference).first()

    # --- the interface ----------------------------------------------------------------

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
        def attempt() -> GatewayResponse:
            try:
                card = parse_token(payment_method)
            except ValueError:
                return GatewayResponse(
                    "failed",
                    code="invalid_payment_method",
                    message="The payment method is not valid.",
                )
            details = CardDetails(
                card.brand,
                card.last4,
                card.exp_month,
                card.exp_year,
                token=payment_method if save_card else "",
            )
            outcome = card.outcome
            if off_session and outcome == DECLINE_AFTER_SAVE:
                outcome = DECLINED
            elif outcome == DECLINE_AFTER_SAVE:
                outcome = SUCCESS if save_card else DECLINED
            if outcome in (DECLINED, INSUFFICIENT_FUNDS, EXPIRED_CARD, INCORRECT_CVC):
                return GatewayResponse(
                    "failed", code=outcome, message=MESSAGES[outcome], card=details
                )
            needs_challenge = outcome == ALWAYS_AUTHENTICATE or (
                outcome == THREE_D_SECURE and not off_session
            )
            if needs_challenge and off_session:
                return GatewayResponse(
                    "failed",
                    code="authentication_required",
                    message=MESSAGES["authentication_required"],
                    card=details,
                )
            charge = SandboxCharge.objects.create(
                reference=f"sb_ch_{secrets.token_hex(10)}",
                amount=transaction.amount.amount,
                currency=transaction.currency,
                status="requires_action"
                if needs_challenge
                else ("captured" if capture else "authorized"),
                captured=transaction.amount.amount if capture and not needs_challenge else 0,
                capture_on_authentication=capture,
                brand=card.brand,
                last4=card.last4,
                card_token=payment_method if save_card else "",
                exp_month=card.exp_month,
                exp_year=card.exp_year,
            )
            if needs_challenge:
                return GatewayResponse(
                    "requires_action",
                    reference=charge.reference,
                    code="authentication_required",
                    message="The card asks the customer to authenticate the payment.",
                    card=details,
                    next_action_url=reverse(
                        "payments:sandbox_challenge",
                        kwargs={"transaction_id": transaction.public_id},
                    ),
                )
            return GatewayResponse(
                charge.status,
                reference=charge.reference,
                code="approved",
                message="Approved",
                card=details,
                amount=charge.captured or None,
            )

        return self._idempotent(idempotency_key, attempt)

    def complete_action(
        self, transaction: Transaction, *, succeeded: bool, idempotency_key: str
    ) -> GatewayResponse:
        """The customer finished (or failed) the 3-D Secure challenge on the sandbox page."""

        def attempt() -> GatewayResponse:
            charge = self._charge(transaction)
            if charge is None or charge.status != "requires_action":
                return GatewayResponse(
                    "failed",
                    code="no_action_pending",
                    message="Nothing is waiting for authentication.",
                )
            if not succeeded:
                charge.status = "failed"
                charge.save(update_fields=["status"])
                return GatewayResponse(
                    "failed",
                    reference=charge.reference,
                    code="authentication_failed",
                    message=MESSAGES["authentication_failed"],
                )
            charge.status = "captured" if charge.capture_on_authentication else "authorized"
            charge.captured = charge.amount if charge.capture_on_authentication else 0
            charge.save(update_fields=["status", "captured"])
            card = CardDetails(
                charge.brand,
                charge.last4,
                charge.exp_month,
                charge.exp_year,
                token=charge.card_token,
            )
            return GatewayResponse(
                charge.status,
                reference=charge.reference,
                code="approved",
                message="Authenticated and approved",
                amount=charge.captured or None,
                card=card,
            )

        return self._idempotent(idempotency_key, attempt)

    def capture(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        def attempt() -> GatewayResponse:
            charge = self._charge(transaction)
            if charge is None or charge.status != "authorized":
                return GatewayResponse(
                    "failed",
                    code="charge_not_capturable",
                    message="This payment cannot be captured.",
                )
            if amount > charge.amount:
                return GatewayResponse(
                    "failed",
                    code="amount_too_large",
                    message="The capture exceeds the authorized amount.",
                )
            charge.status, charge.captured = "captured", amount
            charge.save(update_fields=["status", "captured"])
            return GatewayResponse(
                "captured",
                reference=charge.reference,
                code="approved",
                message="Captured",
                amount=amount,
            )

        return self._idempotent(idempotency_key, attempt)

    def void(self, transaction: Transaction, *, idempotency_key: str) -> GatewayResponse:
        def attempt() -> GatewayResponse:
            charge = self._charge(transaction)
            if charge is None or charge.status not in ("authorized", "requires_action"):
                return GatewayResponse(
                    "failed", code="charge_not_voidable", message="This payment cannot be voided."
                )
            charge.status = "voided"
            charge.save(update_fields=["status"])
            return GatewayResponse(
                "voided",
                reference=charge.reference,
                code="approved",
                message="Authorization released",
            )

        return self._idempotent(idempotency_key, attempt)

    def refund(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        def attempt() -> GatewayResponse:
            charge = self._charge(transaction)
            if charge is None or charge.status not in ("captured", "refunded"):
                return GatewayResponse(
                    "failed",
                    code="charge_not_refundable",
                    message="This payment cannot be refunded.",
                )
            if charge.refunded + amount > charge.captured:
                return GatewayResponse(
                    "failed",
                    code="amount_too_large",
                    message="The refund exceeds what was captured.",
                )
            charge.refunded += amount
            charge.status = "refunded" if charge.refunded == charge.captured else "captured"
            charge.save(update_fields=["refunded", "status"])
            return GatewayResponse(
                "refunded",
                reference=charge.reference,
                code="approved",
                message="Refunded",
                amount=amount,
                refunded_total=charge.refunded,
            )

        return self._idempotent(idempotency_key, attempt)

    def retrieve(self, transaction: Transaction) -> GatewayResponse:
        charge = self._charge(transaction)
        if charge is None:
            return GatewayResponse(
                "failed",
                code="no_such_payment",
                message="The gateway has no record of this payment.",
            )
        status = {"refunded": "captured"}.get(charge.status, charge.status)
        return GatewayResponse(
            status,
            reference=charge.reference,
            code="retrieved",
            message=charge.status,
            captured_total=charge.captured,
            refunded_total=charge.refunded,
        )


def _response_to_json(response: GatewayResponse) -> dict:
    from dataclasses import asdict

    data = asdict(response)
    for key in ("amount", "refunded_total", "captured_total"):
        if data[key] is not None:
            data[key] = str(data[key])
    return data


def _response_from_json(data: dict) -> GatewayResponse:
    data = dict(data)
    for key in ("amount", "refunded_total", "captured_total"):
        if data.get(key) is not None:
            data[key] = Decimal(data[key])
    if data.get("card"):
        data["card"] = CardDetails(**data["card"])
    return GatewayResponse(**data)
