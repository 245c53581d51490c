"""A merchant's day with the sandbox, through the portal only: pay, capture part, refund part,
write a note, void another payment; every step visible in the message log."""

from __future__ import annotations

import pytest
from django.urls import reverse
from djmoney.money import Money

from payments.models import SandboxCharge, State, Transaction
from payments.services.transactions import transaction_create

pytestmark = pytest.mark.django_db


def goods(account, platform, amount: str) -> Transaction:
    return transaction_create(
        account=account,
        platform=platform,
        amount=Money(amount, platform.currency),
        purpose="goods",
        description="Order 7: poster",
    )


def pay_with_card(client, tx: Transaction, number: str = "4242 4242 4242 4242") -> None:
    response = client.post(
        reverse("payments:pay", kwargs={"transaction_id": tx.public_id}),
        {"number": number, "expiry": "12/39", "cvc": "123", "name": "Jana Nováková"},
    )
    assert response.status_code == 302, response.content.decode()[:1500]


def act(client, tx: Transaction, action: str, **data) -> str:
    url = reverse(f"payments:transaction_{action}", kwargs={"transaction_id": tx.public_id})
    response = client.post(url, data, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_authorize_partial_capture_partial_refund_note_and_void_in_the_portal(
    client, platform, payer, member_of
):
    owner = member_of(payer, "owner").user
    client.force_login(owner)
    first = goods(payer, platform, "120.00")
    second = goods(payer, platform, "35.00")

    pay_with_card(client, first)
    pay_with_card(client, second, "5555 5555 5555 4444")
    assert Transaction.objects.get(pk=first.pk).state == State.AUTHORIZED

    act(client, first, "capture", amount="80.00", confirmed="on")
    act(client, first, "refund", amount="30.00", confirmed="on")
    act(client, first, "note", text="Customer kept one poster, returned the rest.")
    act(client, second, "void")

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.captured_amount, first.refunded_amount) == (
        State.PARTIALLY_REFUNDED,
        Money("80.00", "EUR"),
        Money("30.00", "EUR"),
    )
    assert second.state == State.VOIDED
    charge = SandboxCharge.objects.get(reference=first.gateway_reference)
    assert (charge.captured, charge.refunded) == (80, 30)
    detail = client.get(
        reverse("payments:transaction_detail", kwargs={"transaction_id": first.public_id})
    ).content.decode()
    assert "Customer kept one poster, returned the rest." in detail
    assert "€80.00" in detail
    actions = list(first.events.values_list("action", flat=True))
    assert actions == [
        "created",
        "purchase_requested" if first.auto_capture else "authorize_requested",
        "authorize",
        "capture_requested",
        "capture",
        "refund_requested",
        "refund",
        "note",
    ]
    assert first.events.get(action="note").author == owner
