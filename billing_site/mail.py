"""E-mails: rendered in the recipient's language, sent by a worker after commit.

Templates live in templates/emails/<name>_subject.txt, <name>_body.txt and,
optionally, <name>_body.html. Rendering happens in the caller (it has the
objects); the Celery task only carries strings, as tasks take JSON primitives.

One e-mail is one task (send_email). A service that writes many at once (a bank
statement credits thousands of top-ups) queues them as one task per transaction
(send_emails, through emails_send_on_commit): one message on the broker instead of
thousands, and the worker retries from the first e-mail it could not send, so none
goes out twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import translation


def render_email(template: str, context: dict, language: str) -> dict[str, str]:
    context = {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **context}
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = render_to_string(f"emails/{template}_subject.txt", context)
        body = render_to_string(f"emails/{template}_body.txt", context)
        try:
            html = render_to_string(f"emails/{template}_body.html", context)
        except TemplateDoesNotExist:
            html = ""
    return {"subject": " ".join(subject.split()), "body": body, "html": html}


def email_send_on_commit(*, to: list[str], template: str, context: dict, language: str) -> None:
    """Render now, queue the sending once the surrounding transaction commits."""
    from billing_site.tasks import send_email

    message = render_email(template, context, language)
    transaction.on_commit(lambda: send_email.delay(to=to, **message))


@dataclass(frozen=True)
class Email:
    """One e-mail to render: its recipients, template name, context and language."""

    to: list[str]
    template: str
    context: dict
    language: str

    def render(self) -> dict[str, object]:
        """The task's message: recipients, subject, text and HTML bodies."""
        return {"to": self.to, **render_email(self.template, self.context, self.language)}


def emails_send_on_commit(emails: list[Email]) -> None:
    """Render each now, queue them all as one task once the surrounding transaction
    commits (nothing when it rolls back), to be sent in the order given."""
    from billing_site.tasks import send_emails

    if not emails:
        return
    messages = [email.render() for email in emails]
    transaction.on_commit(lambda: send_emails.delay(messages=messages))
