"""Gateways by name. A platform chooses its card gateway (Platform.card_gateway)."""

from __future__ import annotations

from functools import cache

from payments.gateways.base import (
    CardDetails,
    GatewayError,
    GatewayResponse,
    PaymentGateway,
)

__all__ = ["CardDetails", "GatewayError", "GatewayResponse", "PaymentGateway", "gateway_for"]


@cache
def _gateways() -> dict[str, PaymentGateway]:
    from payments.gateways.bank_transfer import BankTransferGateway
    from payments.gateways.sandbox import SandboxGateway
    from payments.gateways.stripe_gateway import StripeGateway

    return {
        gateway.name: gateway
        for gateway in (SandboxGateway(), StripeGateway(), BankTransferGateway())
    }


def gateway_for(name: str) -> PaymentGateway:
    try:
        return _gateways()[name]
    except KeyError:
        raise ValueError(f"unknown payment gateway {name!r}") from None
