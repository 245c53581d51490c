"""Project-wide periodic tasks."""

from celery import shared_task
from django.core.mail import EmailMultiAlternatives

from billing_site import heartbeat


@shared_task(acks_late=True, ignore_result=True)
def record_beat_tick() -> None:
    """Beat sends this every BEAT_HEARTBEAT_SECONDS; a worker records the time it ran."""
    heartbeat.record_tick()


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=8,
)
def send_email(*, to: list[str], subject: str, body: str, html: str = "") -> None:
    """Send one rendered e-mail; SMTP trouble is retried with backoff."""
    message = EmailMultiAlternatives(subject=subject, body=body, to=to)
    if html:
        message.attach_alternative(html, "text/html")
    message.send()
