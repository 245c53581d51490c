"""Forms by topic; common.py holds the identifier checks the portal and admin share."""
