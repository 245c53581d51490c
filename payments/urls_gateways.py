"""Payments URLs: gateways (see payments/urls.py)."""

urlpatterns: list = []
