"""Project-wide periodic tasks."""

from celery import shared_task

from billing_site import heartbeat


@shared_task(acks_late=True, ignore_result=True)
def record_beat_tick() -> None:
    """Beat sends this every BEAT_HEARTBEAT_SECONDS; a worker records the time it ran."""
    heartbeat.record_tick()
