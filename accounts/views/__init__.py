"""Portal views by topic: the account's pages and the signed-in user's own pages (me)."""
