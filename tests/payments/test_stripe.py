"""The Stripe gateway, offline: the real `stripe` library talks HTTP to a local stub of Stripe.

Operations go through the transaction services, as in production; the stub
records what Stripe would have received (parameters, idempotency keys).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from moneyed import Money

from payments.gateways import gateway_for
from payments.gateways.stripe_gateway import from_minor_units, to_minor_units
from payments.models import SavedCard, State, Transaction, TransactionEvent
from payments.services import transactions as tx_services
from payments.services.checkout import checkout_return, transaction_checkout_start
from tests.payments.stripe_stub import (
    AUTHENTICATION_REQUIRED,
    DECLINE,
    DECLINE_AFTER_SAVE,
    SUCCESS,
    StripeStub,
    stripe_stub_fixture,  # noqa: F401 (the `stripe_stub` fixture)
)

pytestmark = pytest.mark.django_db

RETURN_URL = "http://testserver/payments/return/"


@pytest.fixture
def stripe_tx(new_tx, stripe_stub):
    def make(amount="100.00", purpose="goods"):
        return new_tx(amount, gateway="stripe", purpose=purpose)

    return make


def pay_by_checkout(
    stub: StripeStub, tx: Transaction, *, save_card: bool = False, card: str = SUCCESS, **kw
) -> Transaction:
    """The customer opens Stripe's page, pays with ``card`` and comes back."""
    tx = transaction_checkout_start(
        transaction_id=tx.pk,
        save_card=save_card,
        success_url=RETURN_URL,
        cancel_url=RETURN_URL + "?cancelled=1",
        actor=tx_services.SYSTEM,
    )
    assert tx.state == State.ACTION_REQUIRED
    stub.pay_checkout(tx.gateway_reference, card, **kw)
    return checkout_return(transaction_id=tx.pk, actor=tx_services.SYSTEM)


@pytest.fixture
def saved_card(stripe_stub, stripe_tx):
    """saved_card(card) -> a card saved by paying a first payment on Stripe's page."""

    def make(card: str = SUCCESS) -> SavedCard:
        first = pay_by_checkout(stripe_stub, stripe_tx("1.00"), save_card=True, card=card)
        assert first.state == State.AUTHORIZED
        return first.saved_card

    return make


@pytest.fixture
def authorized(stripe_stub, stripe_tx, saved_card):
    """authorized(amount) -> a transaction authorized off-session on a saved card."""

    def make(amount: str = "100.00") -> Transaction:
        card = saved_card()
        tx = stripe_tx(amount)
        return tx_services.transaction_authorize(
            transaction_id=tx.pk, payment_method=card.token, off_session=True
        )

    return make


def intent_of(stub: StripeStub, tx: Transaction) -> dict:
    reference = tx.gateway_reference
    if reference.startswith("cs_"):
        reference = stub.sessions[reference]["payment_intent"]
    return stub.intents[reference]


# --- Amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.34", "EUR", 1234),
        ("1500.00", "CZK", 150000),
        ("990", "HUF", 99000),
        ("500", "JPY", 500),
        ("0.01", "EUR", 1),
    ],
)
def test_amounts_go_to_stripe_in_minor_units_and_come_back_exactly(amount, currency, minor):
    assert to_minor_units(Decimal(amount), currency) == minor
    assert from_minor_units(minor, currency) == Decimal(amount)


def test_an_amount_finer_than_the_currency_is_refused():
    with pytest.raises(ValueError, match="more decimals"):
        to_minor_units(Decimal("1.005"), "EUR")


# --- Authorize, capture, void, refund ----------------------------------------------------


def test_an_off_session_charge_on_a_saved_card_authorizes_with_manual_capture(
    stripe_stub, stripe_tx, saved_card
):
    card = saved_card()
    tx = stripe_tx("100.00")

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card.token, off_session=True
    )

    assert tx.state == State.AUTHORIZED
    assert (tx.card_brand, tx.card_last4) == ("visa", "4242")
    assert tx.saved_card == card
    assert tx.gateway_reference.startswith("pi_")
    sent = stripe_stub.posts("/v1/payment_intents")[-1]
    assert sent.params["amount"] == "10000"
    assert sent.params["currency"] == "eur"
    assert sent.params["capture_method"] == "manual"
    assert sent.params["confirm"] == "true"
    assert sent.params["off_session"] == "true"
    assert sent.params["customer"] == card.gateway_customer
    assert sent.params["payment_method"] == card.token
    assert sent.params["metadata"] == {"transaction": str(tx.public_id)}
    assert stripe_stub.intents[tx.gateway_reference]["status"] == "requires_capture"


def test_capture_in_full(stripe_stub, authorized):
    tx = authorized("100.00")

    tx = tx_services.transaction_capture(transaction_id=tx.pk)

    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("100.00", "EUR")
    intent = stripe_stub.intents[tx.gateway_reference]
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 10000)
    assert stripe_stub.posts("/capture")[-1].params["amount_to_capture"] == "10000"


def test_partial_capture_collects_part_and_releases_the_rest(stripe_stub, authorized):
    tx = authorized("100.00")

    tx = tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("60.50", "EUR"))

    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("60.50", "EUR")
    assert stripe_stub.posts("/capture")[-1].params["amount_to_capture"] == "6050"
    assert stripe_stub.intents[tx.gateway_reference]["amount_received"] == 6050


def test_void_cancels_the_payment_intent(stripe_stub, authorized):
    tx = authorized()

    tx = tx_services.transaction_void(transaction_id=tx.pk)

    assert tx.state == State.VOIDED
    assert stripe_stub.intents[tx.gateway_reference]["status"] == "canceled"


def test_partial_then_full_refund(stripe_stub, authorized):
    tx = authorized("100.00")
    tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("80.00", "EUR"))

    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("25.00", "EUR"))
    assert tx.state == State.PARTIALLY_REFUNDED
    assert tx.refunded_amount == Money("25.00", "EUR")

    tx = tx_services.transaction_refund(transaction_id=tx.pk)
    assert tx.state == State.REFUNDED
    assert tx.refunded_amount == Money("80.00", "EUR")
    assert [r["amount"] for r in stripe_stub.refunds.values()] == [2500, 5500]
    charge = stripe_stub.charges[stripe_stub.intents[tx.gateway_reference]["latest_charge"]]
    assert charge["amount_refunded"] == 8000


def test_a_purchase_captures_at_once(stripe_stub, stripe_tx, saved_card):
    card = saved_card()
    tx = stripe_tx("30.00", purpose="topup")

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card.token, off_session=True, capture=True
    )

    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("30.00", "EUR")
    assert stripe_stub.posts("/v1/payment_intents")[-1].params["capture_method"] == "automatic"


def test_capture_after_stripe_let_the_authorization_lapse_expires_it(stripe_stub, authorized):
    tx = authorized()
    stripe_stub.intents[tx.gateway_reference]["status"] = "canceled"  # Stripe's 7 days passed

    tx = tx_services.transaction_capture(transaction_id=tx.pk)

    assert tx.state == State.EXPIRED
    assert tx.failure_code == "charge_expired_for_capture"


# --- Off-session failures ----------------------------------------------------------------


def test_authentication_required_off_session_fails_the_payment(stripe_stub, stripe_tx, saved_card):
    card = saved_card(AUTHENTICATION_REQUIRED)
    tx = stripe_tx()

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card.token, off_session=True
    )

    assert tx.state == State.FAILED
    assert tx.failure_code == "authentication_required"
    assert "requires authentication" in tx.failure_message
    assert tx.gateway_reference.startswith("pi_")
    assert tx.events.last().action == "authorize_failed"


def test_a_declined_off_session_charge_fails_with_the_decline_code(stripe_tx, saved_card):
    card = saved_card(DECLINE_AFTER_SAVE)
    tx = stripe_tx()

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card.token, off_session=True
    )

    assert tx.state == State.FAILED
    assert tx.failure_code == "generic_decline"
    assert tx.failure_message == "Your card was declined."


def test_a_card_that_is_not_saved_is_refused_without_asking_stripe(stripe_stub, stripe_tx):
    tx = stripe_tx()

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method="pm_unknown", off_session=True
    )

    assert tx.state == State.FAILED
    assert tx.failure_code == "invalid_payment_method"
    assert stripe_stub.posts() == []


# --- Idempotency -------------------------------------------------------------------------


def test_every_request_that_changes_something_carries_a_key_derived_from_the_transaction(
    stripe_stub, authorized
):
    tx = authorized("100.00")
    tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("70.00", "EUR"))
    tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("20.00", "EUR"))
    tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("50.00", "EUR"))

    keys = [r.idempotency_key for r in stripe_stub.posts() if f"-{tx.pk}-" in r.idempotency_key]

    assert keys == [
        f"billing-tx-{tx.pk}-authorize-1",
        f"billing-tx-{tx.pk}-capture",
        f"billing-tx-{tx.pk}-refund-1",
        f"billing-tx-{tx.pk}-refund-2",
    ]
    assert all(r.idempotency_key.startswith("billing-tx-") for r in stripe_stub.posts())


def test_a_request_repeated_with_the_same_key_does_not_refund_twice(stripe_stub, authorized):
    tx = tx_services.transaction_capture(transaction_id=authorized("100.00").pk)
    gateway = gateway_for("stripe")

    first = gateway.refund(tx, amount=Decimal("10.00"), idempotency_key="billing-tx-test-refund")
    again = gateway.refund(tx, amount=Decimal("10.00"), idempotency_key="billing-tx-test-refund")

    assert first == again
    assert len(stripe_stub.refunds) == 1
    assert [r.replayed for r in stripe_stub.posts("/v1/refunds")] == [False, True]


def test_a_lost_answer_is_retried_with_the_same_key_and_charges_once(stripe_stub, authorized):
    tx = tx_services.transaction_capture(transaction_id=authorized("100.00").pk)
    # Stripe refunds, but the answer never arrives; the library asks again with the same key.
    stripe_stub.fail("timeout_after", times=1, path="/v1/refunds")

    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("40.00", "EUR"))

    assert tx.state == State.PARTIALLY_REFUNDED
    assert tx.refunded_amount == Money("40.00", "EUR")
    attempts = stripe_stub.posts("/v1/refunds")
    assert len(attempts) == 2
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert len(stripe_stub.refunds) == 1


# --- Unknown outcomes and reconciliation -------------------------------------------------


def test_a_500_leaves_the_capture_pending_and_reconciliation_finds_it_never_happened(
    stripe_stub, authorized
):
    tx = authorized("100.00")
    stripe_stub.fail("500", times=None, path="/capture")

    tx = tx_services.transaction_capture(transaction_id=tx.pk)

    assert (tx.state, tx.pending_operation) == (State.AUTHORIZED, "capture")
    assert tx.events.last().action == "capture_unknown"
    stripe_stub.recover()

    tx = tx_services.transaction_reconcile(transaction_id=tx.pk)

    assert (tx.state, tx.pending_operation) == (State.AUTHORIZED, "")
    assert tx.events.last().action == "capture_not_done"
    assert stripe_stub.intents[tx.gateway_reference]["status"] == "requires_capture"
    # It is not repeated by reconciliation, but may be asked for again.
    assert tx_services.transaction_capture(transaction_id=tx.pk).state == State.CAPTURED


def test_a_timeout_after_stripe_captured_is_settled_by_reconciliation(stripe_stub, authorized):
    tx = authorized("100.00")
    stripe_stub.fail("timeout_after", times=None, path="/capture")

    tx = tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("45.00", "EUR"))

    assert (tx.state, tx.pending_operation) == (State.AUTHORIZED, "capture")
    stripe_stub.recover()

    tx = tx_services.transaction_reconcile(transaction_id=tx.pk)

    assert (tx.state, tx.pending_operation) == (State.CAPTURED, "")
    assert tx.captured_amount == Money("45.00", "EUR")
    assert tx.events.last().gateway_code == "reconciled"
    assert len(stripe_stub.posts("/capture")) == 2  # the library's one retry, same key


def test_a_refund_whose_answer_was_lost_is_settled_by_reconciliation(stripe_stub, authorized):
    tx = tx_services.transaction_capture(transaction_id=authorized("100.00").pk)
    stripe_stub.fail("timeout_after", times=None, path="/v1/refunds")

    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("30.00", "EUR"))
    assert (tx.state, tx.pending_operation) == (State.CAPTURED, "refund")
    stripe_stub.recover()

    tx = tx_services.transaction_reconcile(transaction_id=tx.pk)

    assert tx.state == State.PARTIALLY_REFUNDED
    assert tx.refunded_amount == Money("30.00", "EUR")
    assert len(stripe_stub.refunds) == 1


def test_an_off_session_charge_whose_answer_was_lost_is_found_by_its_metadata(
    stripe_stub, stripe_tx, saved_card
):
    card = saved_card()
    tx = stripe_tx("20.00")
    stripe_stub.fail("timeout_after", times=None, path="/v1/payment_intents")

    tx = tx_services.transaction_authorize(
        transaction_id=tx.pk, payment_method=card.token, off_session=True
    )
    assert (tx.state, tx.pending_operation, tx.gateway_reference) == (
        State.CREATED,
        "authorize",
        "",
    )
    stripe_stub.recover()

    tx = tx_services.transaction_reconcile(transaction_id=tx.pk)

    assert tx.state == State.AUTHORIZED
    assert tx.gateway_reference.startswith("pi_")
    assert len([i for i in stripe_stub.intents.values() if i["amount"] == 2000]) == 1


def test_stripe_unreachable_leaves_the_operation_pending(stripe_stub, authorized):
    tx = authorized()
    stripe_stub.fail("timeout", times=None)

    tx = tx_services.transaction_void(transaction_id=tx.pk)
    assert (tx.state, tx.pending_operation) == (State.AUTHORIZED, "void")

    tx = tx_services.transaction_reconcile(transaction_id=tx.pk)
    assert tx.pending_operation == "void"
    assert tx.events.last().action == "reconcile_unknown"


def test_without_a_secret_key_nothing_is_sent_and_the_operation_waits(
    stripe_stub, authorized, settings
):
    tx = authorized()
    settings.STRIPE_SECRET_KEY = ""
    sent = len(stripe_stub.requests)

    tx = tx_services.transaction_void(transaction_id=tx.pk)

    assert tx.pending_operation == "void"
    assert len(stripe_stub.requests) == sent


# --- Checkout -----------------------------------------------------------------------------


@pytest.fixture
def customer_client(payer, member_of, client_for):
    return client_for(member_of(payer, "owner").user)


def test_the_pay_page_asks_about_saving_the_card_then_sends_the_customer_to_stripe(
    stripe_stub, stripe_tx, customer_client
):
    tx = stripe_tx("100.00")
    url = reverse("payments:pay", kwargs={"transaction_id": tx.public_id})

    page = customer_client.get(url)
    assert page.status_code == 200
    assert "Save this card for later payments" in page.content.decode()

    response = customer_client.post(url, {"save_card": "on"})

    tx.refresh_from_db()
    assert tx.state == State.ACTION_REQUIRED
    session = stripe_stub.sessions[tx.gateway_reference]
    assert response.status_code == 302
    assert response["Location"] == session["url"]
    sent = stripe_stub.posts("/v1/checkout/sessions")[-1]
    assert sent.idempotency_key == f"billing-tx-{tx.pk}-checkout-1"
    assert sent.params["mode"] == "payment"
    assert sent.params["payment_intent_data"]["capture_method"] == "manual"
    assert sent.params["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert sent.params["payment_intent_data"]["metadata"] == {"transaction": str(tx.public_id)}
    assert sent.params["metadata"] == {"transaction": str(tx.public_id)}
    assert sent.params["line_items"][0]["price_data"]["unit_amount"] == "10000"
    assert sent.params["success_url"] == (
        f"http://testserver/payments/pay/{tx.public_id}/stripe/return/"
    )
    assert sent.params["cancel_url"].endswith("/stripe/return/?cancelled=1")
    # The platform takes Visa, Mastercard and Maestro: Stripe's page refuses the others.
    restrictions = sent.params["payment_method_options"]["card"]["restrictions"]
    assert restrictions["brands_blocked"] == ["american_express", "discover_global_network"]


def test_returning_from_stripe_settles_the_payment_and_saves_the_card(
    stripe_stub, stripe_tx, customer_client
):
    tx = stripe_tx("100.00")
    customer_client.post(
        reverse("payments:pay", kwargs={"transaction_id": tx.public_id}), {"save_card": "on"}
    )
    tx.refresh_from_db()
    stripe_stub.pay_checkout(tx.gateway_reference, SUCCESS, brand="mastercard", last4="4444")

    response = customer_client.get(
        reverse("payments:stripe_return", kwargs={"transaction_id": tx.public_id}), follow=True
    )

    tx.refresh_from_db()
    assert tx.state == State.AUTHORIZED
    assert (tx.card_brand, tx.card_last4) == ("mastercard", "4444")
    assert "Thank you, your payment was accepted." in response.content.decode()
    card = SavedCard.objects.get(account=tx.account)
    assert card.gateway_customer.startswith("cus_")
    assert card.token == intent_of(stripe_stub, tx)["payment_method"]
    assert (card.brand, card.last4) == ("mastercard", "4444")
    assert tx.saved_card == card
    # Coming back again (reload) changes nothing.
    events = tx.events.count()
    customer_client.get(reverse("payments:stripe_return", kwargs={"transaction_id": tx.public_id}))
    assert tx.events.count() == events


def test_a_top_up_paid_on_stripe_is_captured_at_once(stripe_stub, new_tx, platform, payer):
    tx = tx_services.transaction_create(
        account=payer,
        platform=platform,
        amount=Money("50.00", "EUR"),
        purpose="topup",
        gateway="stripe",
        auto_capture=True,
    )

    tx = pay_by_checkout(stripe_stub, tx)

    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("50.00", "EUR")
    sent = stripe_stub.posts("/v1/checkout/sessions")[-1]
    assert sent.params["payment_intent_data"]["capture_method"] == "automatic"
    assert "setup_future_usage" not in sent.params["payment_intent_data"]
    assert not SavedCard.objects.exists()


def test_a_checkout_payment_can_be_captured_and_refunded_later(stripe_stub, stripe_tx):
    tx = pay_by_checkout(stripe_stub, stripe_tx("100.00"))

    tx = tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("70.00", "EUR"))
    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("70.00", "EUR"))

    assert tx.state == State.REFUNDED
    assert intent_of(stripe_stub, tx)["amount_received"] == 7000


def test_a_card_declined_on_stripes_page_keeps_the_customer_there(stripe_stub, stripe_tx):
    tx = pay_by_checkout(stripe_stub, stripe_tx(), card=DECLINE)

    assert tx.state == State.ACTION_REQUIRED
    assert stripe_stub.sessions[tx.gateway_reference]["status"] == "open"


def test_leaving_stripes_page_and_starting_again_closes_the_first_page(
    stripe_stub, stripe_tx, customer_client
):
    tx = stripe_tx()
    pay_url = reverse("payments:pay", kwargs={"transaction_id": tx.public_id})
    customer_client.post(pay_url, {})
    first = Transaction.objects.get(pk=tx.pk).gateway_reference

    back = customer_client.get(
        reverse("payments:stripe_return", kwargs={"transaction_id": tx.public_id}) + "?cancelled=1",
        follow=True,
    )
    assert "Nothing was charged" in back.content.decode()
    print(back.content.decode()[-6000:])
    assert "already opened" in back.content.decode()
    customer_client.post(pay_url, {"save_card": "on"})

    tx.refresh_from_db()
    assert tx.state == State.ACTION_REQUIRED
    assert tx.gateway_reference != first
    assert stripe_stub.sessions[first]["status"] == "expired"
    assert stripe_stub.sessions[tx.gateway_reference]["status"] == "open"
    with pytest.raises(AssertionError, match="expired"):
        stripe_stub.pay_checkout(first)


def test_stripe_unreachable_when_opening_the_page_shows_a_clear_message(
    stripe_stub, stripe_tx, customer_client
):
    tx = stripe_tx()
    stripe_stub.fail("500", times=None)

    response = customer_client.post(
        reverse("payments:pay", kwargs={"transaction_id": tx.public_id}), {}
    )

    assert response.status_code == 200
    assert "could not be opened just now" in response.content.decode()
    tx.refresh_from_db()
    assert (tx.state, tx.pending_operation) == (State.CREATED, "authorize")
    stripe_stub.recover()
    # Reconciliation finds that no page was opened; the customer can try again.
    tx = tx_services.transaction_reconcile(transaction_id=tx.pk)
    assert (tx.state, tx.pending_operation) == (State.CREATED, "")


def test_the_sandbox_pay_page_is_unchanged(new_tx, customer_client):
    tx = new_tx()

    page = customer_client.get(reverse("payments:pay", kwargs={"transaction_id": tx.public_id}))

    assert "Card number" in page.content.decode()


def test_another_accounts_stripe_return_is_not_found(stripe_tx, client_for, member_of):
    from tests.factories import MembershipFactory

    tx = stripe_tx()
    stranger = client_for(MembershipFactory().user)

    response = stranger.get(
        reverse("payments:stripe_return", kwargs={"transaction_id": tx.public_id})
    )

    assert response.status_code == 404
    assert TransactionEvent.objects.filter(transaction=tx).count() == 1


def test_returning_while_stripe_does_not_answer_shows_that_the_payment_is_being_confirmed(
    stripe_stub, stripe_tx, customer_client
):
    tx = stripe_tx("100.00")
    customer_client.post(reverse("payments:pay", kwargs={"transaction_id": tx.public_id}), {})
    tx.refresh_from_db()
    stripe_stub.pay_checkout(tx.gateway_reference)
    back = reverse("payments:stripe_return", kwargs={"transaction_id": tx.public_id})
    stripe_stub.fail("timeout", times=None)

    page = customer_client.get(back)

    assert page.status_code == 200
    assert "Confirming your payment" in page.content.decode()
    tx.refresh_from_db()
    assert (tx.state, tx.pending_operation) == (State.ACTION_REQUIRED, "complete_action")
    stripe_stub.recover()
    # The reconciliation task finds it paid; the customer's next look says so.
    tx_services.transaction_reconcile(transaction_id=tx.pk)
    assert customer_client.get(back).status_code == 302
    assert Transaction.objects.get(pk=tx.pk).state == State.AUTHORIZED
