"""Every write to payments: transactions (state machine, gateway calls), notes,
saved cards, shipments, webhooks. See transactions.py for the locking pattern."""
