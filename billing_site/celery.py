"""The Celery app. Configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.dev")

app = Celery("billing_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _worker_requires_services(**_kwargs: object) -> None:
    """A worker with no database or broker stops with one line instead of retrying."""
    from billing_site.startup import require_services

    require_services()


@beat_init.connect
def _beat_starts(sender: object, **_kwargs: object) -> None:
    """Beat checks its services, then ticks at once so /healthz need not wait an interval."""
    from billing_site.startup import require_services

    require_services()
    app.send_task("billing_site.tasks.record_beat_tick")
