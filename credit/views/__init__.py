"""Portal views of credit: wallets, history, accounting, top-ups, settings."""
