"""Bank transfer: no card and no remote API. The customer sends money with the
account's variable symbol; the payment settles when staff confirm it or a bank
statement import matches it (payments.services.transaction_transfer_received).
Refunds of transfers are paid back by staff from the bank and recorded here.
"""

from __future__ import annotations

from decimal import Decimal

from payments.gateways.base import GatewayResponse, PaymentGateway
from payments.models import Transaction


class BankTransferGateway(PaymentGateway):
    name = "bank_transfer"

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
        return GatewayResponse(
            "pending", code="awaiting_transfer", message="Waiting for the bank transfer."
        )

    def capture(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        # Called when the money has arrived: nothing to ask anyone.
        return GatewayResponse(
            "captured", code="transfer_received", message="Transfer received", amount=amount
        )

    def void(self, transaction: Transaction, *, idempotency_key: str) -> GatewayResponse:
        return GatewayResponse("voided", code="cancelled", message="Transfer no longer expected")

    def refund(
        self, transaction: Transaction, *, amount: Decimal, idempotency_key: str
    ) -> GatewayResponse:
        return GatewayResponse(
            "refunded",
            code="refunded_by_transfer",
            message="Paid back by bank transfer",
            amount=amount,
            refunded_total=transaction.refunded_amount.amount + amount,
        )

    def retrieve(self, transaction: Transaction) -> GatewayResponse:
        # Our own records are the truth for transfers.
        return GatewayResponse(
            "pending", code="awaiting_transfer", message="Waiting for the bank transfer."
        )
