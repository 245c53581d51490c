"""Domain errors of payments; ``code`` is stable for the API."""

from __future__ import annotations

from billing_site.exceptions import ApplicationError


class PaymentError(ApplicationError):
    code = "payment_error"


class InvalidTransition(PaymentError):
    """The transaction's state does not allow the operation (void a captured payment...)."""

    code = "invalid_transition"


class OperationInProgress(PaymentError):
    """Another operation on the same transaction is being processed right now."""

    code = "operation_in_progress"


class InvalidAmount(PaymentError):
    """Zero, negative, too precise, over the limit, or in the wrong currency."""

    code = "invalid_amount"


class PaymentDeclined(PaymentError):
    """The gateway refused (the transaction carries the reason)."""

    code = "payment_declined"


class CardBrandNotAccepted(PaymentError):
    code = "card_brand_not_accepted"


class TrackingNumberTaken(PaymentError):
    """Another shipment already has this carrier and tracking number."""

    code = "tracking_number_taken"


class NotificationRejected(PaymentError):
    """A delivery notification that is not signed right, too old, or malformed (HTTP 400)."""

    code = "notification_rejected"
