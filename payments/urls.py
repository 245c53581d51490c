"""Payments in the portal (namespace `payments`, mounted at /payments/).

Areas: the payment pages customers see (here), gateway callbacks
(urls_gateways.py), the merchant interface (urls_merchant.py) and shipping
(urls_shipping.py).
"""

from django.urls import include, path

from payments.views import hosted

app_name = "payments"

urlpatterns = [
    path("pay/<uuid:transaction_id>/", hosted.pay, name="pay"),
    path(
        "pay/<uuid:transaction_id>/challenge/", hosted.sandbox_challenge, name="sandbox_challenge"
    ),
    path("", include("payments.urls_gateways")),
    path("", include("payments.urls_merchant")),
    path("", include("payments.urls_shipping")),
]
