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
    _send(to=to, subject=subject, body=body, html=html)


# Retries of send_emails: SMTP trouble waits 1, 2, 4 ... seconds, at most 10 minutes.
SEND_EMAILS_MAX_RETRIES = 8


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=SEND_EMAILS_MAX_RETRIES)
def send_emails(self, *, messages: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Send rendered e-mails in order (each a dict of send_email's arguments). When one
    cannot be sent (SMTP trouble), the task is retried with backoff from that one on:
    those already sent are not sent again."""
    for position, message in enumerate(messages):
        try:
            _send(**message)
        except OSError as error:
            raise self.retry(
                kwargs={"messages": messages[position:]},
                exc=error,
                countdown=min(600, 2**self.request.retries),
            ) from error


def _send(*, to: list[str], subject: str, body: str, html: str = "") -> None:
    message = EmailMultiAlternatives(subject=subject, body=body, to=to)
    if html:
        message.attach_alternative(html, "text/html")
    message.send()
