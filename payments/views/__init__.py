"""Portal views of payments: hosted card page, merchant interface, webhooks."""
