"""The small interface every card or transfer gateway implements.

Services call a gateway *outside* any database lock (see payments.services):
record the intent, commit, call, settle. A gateway therefore never touches our
Transaction rows; it answers with a GatewayResponse, or raises GatewayError
when the outcome is unknown (timeout, connection refused, 5xx), in which case
the operation stays pending and the reconciliation task asks the gateway later.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from payments.models import Transaction

Status = Literal[
    "requires_action",  # the customer must finish something (3-D Secure)
    "authorized",
    "captured",
    "voided",
    "refunded",
    "failed",  # refused: nothing happened at the gateway
    "pending",  # the gateway has it but not finished (a bank transfer)
]


@dataclass(frozen=True)
class CardDetails:
    """What we may keep about a card: never its number."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    # A reusable payment method for off-session charges, when the customer saved the card.
    token: str = ""
    customer: str = ""


@dataclass(frozen=True)
class GatewayResponse:
    status: Status
    reference: str = ""
    code: str = ""  # the gateway's response code: approved, card_declined, ...
    message: str = ""
    # For captures and refunds: how much the gateway says moved.
    amount: Decimal | None = None
    # After a refund: how much has been refunded in total, as the gateway counts it.
    refunded_total: Decimal | None = None
    card: CardDetails | None = None
    next_action_url: str = ""
    # Settled already at the gateway (for reconciliation): authorized, captured ... amounts.
    captured_total: Decimal | None = None


class GatewayError(Exception):
    """The gateway could not be asked, or did not answer: the outcome is unknown."""


class PaymentGateway(ABC):
    name: str

    @abstractmethod
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
        """Block (or, with capture, charge) the transaction's amount on a card."""

    @abstractmethod
    def capture(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        """Collect ``amount`` (at most the authorized amount); the rest is released."""

    @abstractmethod
    def void(self, transaction: Transaction, *, idempotency_key: str) -> GatewayResponse:
        """Release an authorization that was not captured."""

    @abstractmethod
    def refund(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        """Return ``amount`` of the captured money to the card."""

    @abstractmethod
    def retrieve(self, transaction: Transaction) -> GatewayResponse:
        """The gateway's current view of the payment, to reconcile an unknown outcome."""
