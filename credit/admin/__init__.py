"""The staff interface for credit, by topic: the ledger and wallets, top-ups, bank statements."""

from credit.admin import ledger, statements, topups  # noqa: F401 - registers the admins
