"""Stripe webhooks: signed with the real scheme, processed once, settled from Stripe's API.

Payloads are made by the Stripe stub from its objects (a snapshot at the time of
the event) and signed with the test secret: ``t=<timestamp>,v1=<HMAC-SHA256 of
"<timestamp>.<payload>">``.
"""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client
from django.urls import reverse
from moneyed import Money

from payments.models import SavedCard, State, Transaction, TransactionEvent, WebhookEvent
from payments.services import transactions as tx_services
from payments.services.checkout import checkout_return, transaction_checkout_start
from tests.payments.stripe_stub import (
    DECLINE,
    SUCCESS,
    TEST_WEBHOOK_SECRET,
    StripeStub,
    stripe_stub_fixture,  # noqa: F401 (the `stripe_stub` fixture)
)

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "/payments/webhooks/stripe/"


@pytest.fixture
def client():
    """Stripe sends no CSRF token: the endpoint must not need one."""
    return Client(enforce_csrf_checks=True)


def deliver(client, event: dict, *, secret: str = TEST_WEBHOOK_SECRET, age: int = 0):
    payload = json.dumps(event)
    header = StripeStub.sign(payload, secret, timestamp=int(time.time()) - age)
    return client.post(
        WEBHOOK_URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


@pytest.fixture
def on_stripes_page(stripe_stub, new_tx):
    """on_stripes_page(save_card=False) -> a transaction whose customer is on Checkout."""

    def make(amount: str = "100.00", save_card: bool = False) -> Transaction:
        tx = new_tx(amount, gateway="stripe")
        return transaction_checkout_start(
            transaction_id=tx.pk,
            save_card=save_card,
            success_url="http://testserver/back/",
            cancel_url="http://testserver/back/?cancelled=1",
            actor=tx_services.SYSTEM,
        )

    return make


def paid(stub: StripeStub, tx: Transaction, card: str = SUCCESS) -> str:
    """The customer pays on Stripe's page; returns the PaymentIntent id."""
    return stub.pay_checkout(tx.gateway_reference, card)["id"]


def snapshot(tx: Transaction) -> tuple:
    tx = Transaction.objects.get(pk=tx.pk)
    return (
        tx.state,
        tx.captured_amount,
        tx.refunded_amount,
        tx.pending_operation,
        tx.events.count(),
    )


def test_the_endpoint_is_at_its_documented_address():
    assert reverse("payments:stripe_webhook") == WEBHOOK_URL


def test_checkout_completed_settles_the_payment_and_the_customers_return_is_a_no_op(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    paid(stripe_stub, tx)

    response = deliver(
        client, stripe_stub.event("checkout.session.completed", tx.gateway_reference)
    )

    assert response.status_code == 200
    assert response.content == b"processed"
    tx.refresh_from_db()
    assert tx.state == State.AUTHORIZED
    assert tx.card_last4 == "4242"
    before = snapshot(tx)
    assert checkout_return(transaction_id=tx.pk, actor=tx_services.SYSTEM).state == State.AUTHORIZED
    assert snapshot(tx) == before


def test_the_customers_return_first_then_the_webhook_changes_only_the_log(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    paid(stripe_stub, tx)
    tx = checkout_return(transaction_id=tx.pk, actor=tx_services.SYSTEM)
    assert tx.state == State.AUTHORIZED
    actions = list(tx.events.values_list("action", flat=True))

    deliver(client, stripe_stub.event("checkout.session.completed", tx.gateway_reference))

    tx.refresh_from_db()
    assert tx.state == State.AUTHORIZED
    assert list(tx.events.values_list("action", flat=True)) == [
        *actions,
        "checkout.session.completed",
    ]
    assert tx.events.last().kind == TransactionEvent.Kind.GATEWAY


def test_the_same_event_delivered_five_times_changes_state_once(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx)
    event = stripe_stub.event("payment_intent.amount_capturable_updated", intent)

    answers = [deliver(client, event)]
    asked = len(stripe_stub.requests)
    answers += [deliver(client, event) for _ in range(4)]

    assert [a.status_code for a in answers] == [200] * 5
    assert [a.content for a in answers] == [b"processed"] + [b"already processed"] * 4
    tx.refresh_from_db()
    assert tx.state == State.AUTHORIZED
    assert WebhookEvent.objects.filter(event_id=event["id"]).count() == 1
    assert tx.events.filter(kind=TransactionEvent.Kind.GATEWAY).count() == 1
    assert tx.events.filter(new_state=State.AUTHORIZED).count() == 1
    assert len(stripe_stub.requests) == asked  # the duplicates did not even ask Stripe


def test_a_bad_signature_is_refused_and_changes_nothing(client, stripe_stub, on_stripes_page):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx)
    event = stripe_stub.event("payment_intent.amount_capturable_updated", intent)
    before = snapshot(tx)

    wrong_secret = deliver(client, event, secret="whsec_someone_else")
    no_header = client.post(WEBHOOK_URL, json.dumps(event), content_type="application/json")
    payload = json.dumps(event)
    tampered = client.post(
        WEBHOOK_URL,
        payload.replace("requires_capture", "succeeded"),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=StripeStub.sign(payload),
    )

    assert [r.status_code for r in (wrong_secret, no_header, tampered)] == [400, 400, 400]
    assert snapshot(tx) == before
    assert not WebhookEvent.objects.exists()


def test_a_signature_six_minutes_old_is_refused(client, stripe_stub, on_stripes_page):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx)
    event = stripe_stub.event("payment_intent.amount_capturable_updated", intent)
    before = snapshot(tx)

    stale = deliver(client, event, age=6 * 60)

    assert stale.status_code == 400
    assert snapshot(tx) == before
    assert not WebhookEvent.objects.exists()
    # The same event, freshly signed, is accepted: only the age was wrong.
    assert deliver(client, event, age=4 * 60).status_code == 200


def test_events_out_of_order_end_in_the_right_state(client, stripe_stub, on_stripes_page):
    tx = on_stripes_page("100.00")
    intent = paid(stripe_stub, tx)
    authorized = stripe_stub.event("payment_intent.amount_capturable_updated", intent)
    stripe_stub.capture_in_dashboard(intent, 8000)
    captured = stripe_stub.event("payment_intent.succeeded", intent)

    deliver(client, captured)
    deliver(client, authorized)

    tx.refresh_from_db()
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("80.00", "EUR")
    assert tx.events.filter(kind=TransactionEvent.Kind.GATEWAY).count() == 2


def test_a_late_authorization_event_does_not_undo_a_capture(client, stripe_stub, on_stripes_page):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx)
    late = stripe_stub.event("payment_intent.amount_capturable_updated", intent)
    tx = checkout_return(transaction_id=tx.pk, actor=tx_services.SYSTEM)
    tx = tx_services.transaction_capture(transaction_id=tx.pk)

    deliver(client, late)

    tx.refresh_from_db()
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("100.00", "EUR")


def test_a_capture_and_refund_made_in_stripes_dashboard_are_recorded(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page("100.00")
    intent = paid(stripe_stub, tx)
    checkout_return(transaction_id=tx.pk, actor=tx_services.SYSTEM)
    stripe_stub.capture_in_dashboard(intent)
    refund = stripe_stub.refund_in_dashboard(intent, 3000)

    deliver(client, stripe_stub.event("charge.refunded", refund["charge"]))

    tx.refresh_from_db()
    assert tx.state == State.PARTIALLY_REFUNDED
    assert tx.captured_amount == Money("100.00", "EUR")
    assert tx.refunded_amount == Money("30.00", "EUR")


def test_an_authorization_released_in_stripes_dashboard_voids_the_payment(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx)
    checkout_return(transaction_id=tx.pk, actor=tx_services.SYSTEM)
    stripe_stub.intents[intent]["status"] = "canceled"

    deliver(client, stripe_stub.event("payment_intent.canceled", intent))

    tx.refresh_from_db()
    assert tx.state == State.VOIDED


def test_a_decline_while_the_customer_is_on_stripes_page_changes_nothing_but_the_log(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx, card=DECLINE)

    response = deliver(client, stripe_stub.event("payment_intent.payment_failed", intent))

    assert response.status_code == 200
    tx.refresh_from_db()
    assert tx.state == State.ACTION_REQUIRED
    entry = tx.events.last()
    assert (entry.kind, entry.action, entry.gateway_code) == (
        TransactionEvent.Kind.GATEWAY,
        "payment_intent.payment_failed",
        "generic_decline",
    )


def test_the_webhook_saves_the_card_the_customer_chose_to_keep(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page(save_card=True)
    intent = paid(stripe_stub, tx)

    deliver(client, stripe_stub.event("payment_intent.amount_capturable_updated", intent))

    card = SavedCard.objects.get(account=tx.account)
    assert card.token == stripe_stub.intents[intent]["payment_method"]
    assert card.gateway_customer == stripe_stub.intents[intent]["customer"]
    assert Transaction.objects.get(pk=tx.pk).saved_card == card


def test_an_event_about_no_payment_of_ours_is_acknowledged_and_ignored(client, stripe_stub):
    customer, _card = stripe_stub.saved_card()
    intent = stripe_stub._create_intent(
        {"amount": "500", "currency": "eur", "customer": customer, "metadata": {}}
    )

    response = deliver(client, stripe_stub.event("payment_intent.succeeded", intent["id"]))

    assert response.status_code == 200
    assert response.content == b"ignored"
    assert not TransactionEvent.objects.exists()


def test_an_event_type_we_do_not_handle_is_stored_and_acknowledged(client, stripe_stub):
    event = {"id": "evt_other", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}

    response = deliver(client, event)

    assert response.content == b"ignored"
    assert WebhookEvent.objects.get(event_id="evt_other").processed_at is not None


def test_when_stripe_cannot_be_asked_the_event_is_retried_on_its_next_delivery(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    intent = paid(stripe_stub, tx)
    event = stripe_stub.event("payment_intent.amount_capturable_updated", intent)
    stripe_stub.fail("500", times=None)

    first = deliver(client, event)

    assert first.status_code == 503
    stored = WebhookEvent.objects.get(event_id=event["id"])
    assert stored.processed_at is None
    assert "GatewayError" in stored.error
    assert Transaction.objects.get(pk=tx.pk).state == State.ACTION_REQUIRED
    stripe_stub.recover()

    second = deliver(client, event)

    assert second.content == b"processed"
    assert Transaction.objects.get(pk=tx.pk).state == State.AUTHORIZED


def test_only_post_is_accepted(client, stripe_stub):
    assert client.get(WEBHOOK_URL).status_code == 405


def test_a_payment_page_that_expired_lets_the_customer_start_again(
    client, stripe_stub, on_stripes_page
):
    tx = on_stripes_page()
    stripe_stub.expire_checkout(tx.gateway_reference)
    event = stripe_stub.event("checkout.session.expired", tx.gateway_reference)

    deliver(client, event)

    tx.refresh_from_db()
    assert tx.state == State.CREATED
    assert tx.failure_code == "checkout_expired"
