"""Every write to credit: the ledger (ledger.py), top-ups (topups.py), bank
statements (statements.py), wallet settings and automatic recharge (wallets.py)."""
