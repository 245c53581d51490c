"""Payments URLs: gateways (see payments/urls.py): Stripe's return page and webhook."""

from django.urls import path

from payments.views import hosted, webhooks

urlpatterns = [
    path("pay/<uuid:transaction_id>/stripe/return/", hosted.stripe_return, name="stripe_return"),
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
]
