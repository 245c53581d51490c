"""Payments URLs: shipping (see payments/urls.py)."""

urlpatterns: list = []
