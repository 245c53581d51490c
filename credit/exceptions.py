"""Domain errors of credit; ``code`` is stable for the API."""

from __future__ import annotations

from billing_site.exceptions import ApplicationError


class CreditError(ApplicationError):
    code = "credit_error"


class InsufficientCredit(CreditError):
    """The debit is larger than the balance plus the overdraft limit: nothing was written."""

    code = "insufficient_credit"


class WrongCurrency(CreditError):
    code = "wrong_currency"


class IdempotencyConflict(CreditError):
    """The idempotency key was used before for a different movement."""

    code = "idempotency_conflict"


class RefundTooLarge(CreditError):
    code = "refund_too_large"


class TopUpError(CreditError):
    code = "topup_error"


class StatementError(CreditError):
    """A bank statement that cannot be imported (malformed, foreign, wrong currency)."""

    code = "statement_error"
