"""Payments URLs: shipping (see payments/urls.py).

Merchant portal pages for a transaction's shipment, and the courier's delivery
notification endpoint (docs/delivery-notifications.md).
"""

from django.urls import path

from payments.views import shipping

urlpatterns = [
    path(
        "transactions/<uuid:transaction_id>/shipment/new/",
        shipping.shipment_create,
        name="shipment_create",
    ),
    path(
        "transactions/<uuid:transaction_id>/shipment/",
        shipping.shipment_ship,
        name="shipment_ship",
    ),
    path(
        "transactions/<uuid:transaction_id>/dispatch-note.pdf",
        shipping.dispatch_note,
        name="dispatch_note",
    ),
    path("delivery/notify/", shipping.delivery_notify, name="delivery_notify"),
]
