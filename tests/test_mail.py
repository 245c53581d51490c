"""E-mails queued many at a time: one task per transaction, sent in order, none twice."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import transaction

from billing_site import tasks
from billing_site.mail import Email, emails_send_on_commit

pytestmark = pytest.mark.django_db


def _emails(count: int) -> list[Email]:
    return [
        Email(
            to=[f"customer{number}@example.com"],
            template="credit_topup_credited",
            context={
                "account_name": f"Customer {number}",
                "platform_name": "Hosting",
                "amount": "10.00 EUR",
                "balance": f"{number}0.00 EUR",
                "method": "transfer",
                "topup_url": "https://billing.example.com/top-ups/1/",
            },
            language="en",
        )
        for number in range(1, count + 1)
    ]


def test_emails_of_a_transaction_are_one_task_sent_in_order_after_the_commit(
    django_capture_on_commit_callbacks, monkeypatch
):
    queued: list[list[dict]] = []
    real_delay = tasks.send_emails.delay
    monkeypatch.setattr(
        tasks.send_emails,
        "delay",
        lambda *, messages: queued.append(messages) or real_delay(messages=messages),
    )
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emails_send_on_commit(_emails(3))
        assert mail.outbox == []  # nothing before the commit

    assert len(queued) == 1
    assert [message.to for message in mail.outbox] == [
        ["customer1@example.com"],
        ["customer2@example.com"],
        ["customer3@example.com"],
    ]
    assert "Customer 2" in mail.outbox[1].body
    assert "20.00 EUR" in mail.outbox[1].body


def test_emails_of_a_rolled_back_transaction_are_not_sent(django_capture_on_commit_callbacks):
    def queue_then_fail() -> None:
        with transaction.atomic():
            emails_send_on_commit(_emails(2))
            raise RuntimeError("rolled back")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        queue_then_fail()
    assert mail.outbox == []


def test_smtp_trouble_retries_from_the_unsent_email_so_none_goes_twice(monkeypatch):
    real_send = EmailMultiAlternatives.send
    failures = {"left": 1}

    def flaky_send(message, *args, **kwargs):  # type: ignore[no-untyped-def]
        if message.to == ["customer2@example.com"] and failures["left"]:
            failures["left"] -= 1
            raise ConnectionRefusedError("SMTP server down")
        return real_send(message, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", flaky_send)
    messages = [email.render() for email in _emails(3)]
    result = tasks.send_emails.apply(kwargs={"messages": messages}, throw=False)

    assert result.successful()
    assert failures["left"] == 0
    assert [message.to for message in mail.outbox] == [
        ["customer1@example.com"],
        ["customer2@example.com"],
        ["customer3@example.com"],
    ]


def test_emails_that_never_go_out_fail_the_task_after_its_retries(monkeypatch):
    def down(message, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("SMTP server down")

    monkeypatch.setattr(EmailMultiAlternatives, "send", down)
    # The last attempt: its failure is the task's.
    result = tasks.send_emails.apply(
        kwargs={"messages": [{"to": ["a@example.com"], "subject": "s", "body": "b"}]},
        retries=tasks.SEND_EMAILS_MAX_RETRIES,
        throw=False,
    )
    assert result.failed()
    assert isinstance(result.result, ConnectionRefusedError)
    assert mail.outbox == []
