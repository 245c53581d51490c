"""Payments URLs: merchant (see payments/urls.py)."""

urlpatterns: list = []
