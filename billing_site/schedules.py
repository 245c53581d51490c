"""Every Celery beat schedule, in one place.

Settings load this into CELERY_BEAT_SCHEDULE; django-celery-beat's
DatabaseScheduler copies the entries into its tables at start-up, where staff
see them (and can pause or re-time them) in the admin. Tasks are named by
string so that this module imports nothing from the apps.
"""

from __future__ import annotations

from datetime import timedelta


def beat_schedule(*, heartbeat_seconds: float) -> dict[str, dict]:
    return {
        "payments-expire-authorizations": {
            "task": "payments.tasks.expire_authorizations",
            "schedule": timedelta(minutes=15),
        },
        "payments-reconcile": {
            "task": "payments.tasks.reconcile_transactions",
            "schedule": timedelta(minutes=5),
        },
        "payments-capture-delivered-shipments": {
            "task": "payments.tasks.capture_delivered_shipments",
            "schedule": timedelta(minutes=5),
        },
        "credit-allocate-pending-lots": {
            "task": "credit.tasks.allocate_pending_lots",
            "schedule": timedelta(minutes=1),
        },
        "credit-verify-ledger": {
            "task": "credit.tasks.verify_ledger",
            "schedule": timedelta(hours=6),
        },
        "record-beat-heartbeat": {
            "task": "billing_site.tasks.record_beat_tick",
            "schedule": timedelta(seconds=heartbeat_seconds),
            "options": {"expires": heartbeat_seconds},
        },
    }
