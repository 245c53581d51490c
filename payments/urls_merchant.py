"""Payments URLs: the merchant interface (see payments/urls.py).

Transaction search and detail, the money actions on one transaction (each a
confirmation page on GET, done on POST), notes, and monthly statements per
platform (``?platform=<code>``).
"""

from django.urls import path

from payments.views import merchant

urlpatterns = [
    path("transactions/", merchant.transactions, name="transactions"),
    path(
        "transactions/<uuid:transaction_id>/",
        merchant.transaction_detail,
        name="transaction_detail",
    ),
    path(
        "transactions/<uuid:transaction_id>/capture/",
        merchant.transaction_capture_view,
        name="transaction_capture",
    ),
    path(
        "transactions/<uuid:transaction_id>/void/",
        merchant.transaction_void_view,
        name="transaction_void",
    ),
    path(
        "transactions/<uuid:transaction_id>/refund/",
        merchant.transaction_refund_view,
        name="transaction_refund",
    ),
    path(
        "transactions/<uuid:transaction_id>/note/",
        merchant.transaction_note_view,
        name="transaction_note",
    ),
    path("statements/", merchant.statements, name="statements"),
    path(
        "statements/<int:year>/<int:month>.csv",
        merchant.statement_csv,
        name="statement_csv",
    ),
    path(
        "statements/<int:year>/<int:month>.pdf",
        merchant.statement_pdf_view,
        name="statement_pdf",
    ),
]
