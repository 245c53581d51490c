"""Stripe (PaymentIntents with manual capture). Being written (issue #4)."""

from __future__ import annotations

from decimal import Decimal

from payments.gateways.base import GatewayError, GatewayResponse, PaymentGateway
from payments.models import Transaction


class StripeGateway(PaymentGateway):
    name = "stripe"

    def _unavailable(self) -> GatewayResponse:
        raise GatewayError("the Stripe gateway is not implemented yet")

    def authorize(self, transaction: Transaction, **kwargs: object) -> GatewayResponse:  # type: ignore[override]
        return self._unavailable()

    def capture(self, transaction: Transaction, *, amount: Decimal, idempotency_key: str):
        return self._unavailable()

    def void(self, transaction: Transaction, *, idempotency_key: str) -> GatewayResponse:
        return self._unavailable()

    def refund(self, transaction: Transaction, *, amount: Decimal, idempotency_key: str):
        return self._unavailable()

    def retrieve(self, transaction: Transaction) -> GatewayResponse:
        return self._unavailable()
