"""Payments in the portal (namespace `payments`, mounted at /payments/)."""

from django.urls import path

from payments.views import hosted

app_name = "payments"

urlpatterns = [
    path("pay/<uuid:transaction_id>/", hosted.pay, name="pay"),
    path(
        "pay/<uuid:transaction_id>/challenge/", hosted.sandbox_challenge, name="sandbox_challenge"
    ),
]
