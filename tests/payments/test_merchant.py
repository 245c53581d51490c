"""The merchant's transaction page: details, message log, and the money actions
(capture, partial capture, void, refund, partial refund, notes), each confirmed
first, refused when the state or the amount does not allow it, by role."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from djmoney.money import Money

from payments.gateways import GatewayError
from payments.gateways.sandbox import SandboxGateway
from payments.models import State, Transaction, TransactionEvent
from payments.services import transactions as tx_services
from tests.payments.conftest import card

pytestmark = pytest.mark.django_db

MASTERCARD = "5555555555554444"


@pytest.fixture
def merchant(payer, member_of, client_for):
    """merchant(role="owner") -> a client signed in as a member of the paying account."""

    def sign_in(role="owner", **user_fields):
        membership = member_of(payer, role, **user_fields)
        client = client_for(membership.user)
        client.user = membership.user
        return client

    return sign_in


def detail_url(tx: Transaction) -> str:
    return reverse("payments:transaction_detail", kwargs={"transaction_id": tx.public_id})


def action_url(tx: Transaction, action: str) -> str:
    return reverse(f"payments:transaction_{action}", kwargs={"transaction_id": tx.public_id})


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def fresh(tx: Transaction) -> Transaction:
    return Transaction.objects.get(pk=tx.pk)


def event_count(tx: Transaction) -> int:
    return TransactionEvent.objects.filter(transaction=tx).count()


def captured_tx(authorized_tx, amount="100.00") -> Transaction:
    tx = authorized_tx(amount)
    return tx_services.transaction_capture(transaction_id=tx.pk)


# --- Detail ------------------------------------------------------------------------------


def test_detail_shows_amounts_card_reference_and_the_message_log(merchant, authorized_tx):
    tx = authorized_tx("100.00", number=MASTERCARD)
    tx = tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("60.00", "EUR"))

    page = merchant().get(detail_url(tx)).content.decode()

    assert "€100.00" in page  # authorized
    assert "€60.00" in page  # captured and refundable
    assert "Mastercard" in page
    assert "4444" in page
    assert tx.gateway_reference in page
    assert "Goods sale" in page
    # The log, in order, with the state change, the gateway's code and who acted.
    log = page[page.index('id="log"') :]
    assert log.index("Payment created") < log.index("Authorized") < log.index("Captured")
    assert "Capture requested" in log
    assert "Authorized &rarr; Captured" in log
    assert "approved" in log
    assert "System" in log


def test_detail_of_another_accounts_payment_is_not_found(merchant, platform):
    from tests.factories import RegistrationFactory

    other = RegistrationFactory(platform=platform).account
    theirs = tx_services.transaction_create(
        account=other, platform=platform, amount=Money("5.00", "EUR"), purpose="other"
    )

    assert merchant().get(detail_url(theirs)).status_code == 404


def test_detail_offers_only_what_the_state_allows(merchant, authorized_tx, new_tx):
    client = merchant()
    authorized = authorized_tx()
    captured = captured_tx(authorized_tx)
    created = new_tx()

    page = client.get(detail_url(authorized)).content.decode()
    assert action_url(authorized, "capture") in page
    assert action_url(authorized, "void") in page
    assert action_url(authorized, "refund") not in page

    page = client.get(detail_url(captured)).content.decode()
    assert action_url(captured, "refund") in page
    assert action_url(captured, "capture") not in page
    assert action_url(captured, "void") not in page

    page = client.get(detail_url(created)).content.decode()
    assert "No money operation is possible on a payment that is created" in page


def test_shipping_panel_is_included_for_goods_when_it_exists(merchant, new_tx, monkeypatch):
    from payments.views import merchant as views

    goods, topup = new_tx(purpose="goods"), new_tx(purpose="topup")
    client = merchant()
    # The panel's template (written by the shipping part) may be missing: the page still works.
    monkeypatch.setattr(views, "SHIPPING_PANEL", "payments/shipping/_does_not_exist.html")
    assert client.get(detail_url(goods)).status_code == 200

    monkeypatch.setattr(views, "SHIPPING_PANEL", "payments/merchant/_nav.html")
    assert "Monthly statements" in client.get(detail_url(goods)).content.decode()
    assert "Monthly statements" not in client.get(detail_url(topup)).content.decode()


# --- Capture -----------------------------------------------------------------------------


def test_capture_asks_for_confirmation_showing_the_amount_before_anything_happens(
    merchant, authorized_tx
):
    tx = authorized_tx("100.00")
    client = merchant()

    form = client.get(action_url(tx, "capture"))
    assert form.status_code == 200
    assert 'value="100.00"' in form.content.decode()

    confirm = client.post(action_url(tx, "capture"), {"amount": "100.00"})
    page = confirm.content.decode()
    assert "€100.00 will be captured from the card." in page
    assert 'name="confirmed" value="1"' in page
    assert fresh(tx).state == State.AUTHORIZED


def test_capture_full_amount(merchant, authorized_tx):
    tx = authorized_tx("100.00")
    client = merchant()

    response = client.post(
        action_url(tx, "capture"), {"amount": "100.00", "confirmed": "1"}, follow=True
    )

    assert response.redirect_chain[-1][0] == detail_url(tx)
    assert "€100.00 captured." in messages_of(response)
    tx = fresh(tx)
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == Money("100.00", "EUR")
    assert tx.events.get(action="capture").author == client.user


def test_partial_capture_collects_part_and_says_the_rest_is_released(merchant, authorized_tx):
    tx = authorized_tx("100.00")
    client = merchant()

    confirm = client.post(action_url(tx, "capture"), {"amount": "60,00"})
    assert "The remaining €40.00 of the authorization will be released" in (
        confirm.content.decode()
    )
    response = client.post(
        action_url(tx, "capture"), {"amount": "60.00", "confirmed": "1"}, follow=True
    )

    assert "€60.00 captured; the remaining €40.00 was released." in messages_of(response)
    tx = fresh(tx)
    assert (tx.state, tx.captured_amount) == (State.CAPTURED, Money("60.00", "EUR"))


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("100.01", "You can capture at most €100.00, the authorized amount."),
        ("0", "The amount must be more than zero."),
        ("ten", "Enter the amount as a number, e.g. 49.90."),
        ("10.001", "The amount can have at most two decimal places."),
    ],
)
def test_capture_refuses_a_bad_amount_next_to_the_field_and_changes_nothing(
    merchant, authorized_tx, amount, error
):
    tx = authorized_tx("100.00")
    events = event_count(tx)

    response = merchant().post(action_url(tx, "capture"), {"amount": amount, "confirmed": "1"})

    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == [error]
    assert 'aria-describedby="id_amount_helptext id_amount_error"' in response.content.decode()
    tx = fresh(tx)
    assert (tx.state, tx.captured_amount.amount) == (State.AUTHORIZED, Decimal("0"))
    assert event_count(tx) == events


def test_capture_of_a_voided_payment_is_refused_with_a_message(merchant, authorized_tx):
    tx = tx_services.transaction_void(transaction_id=authorized_tx().pk)
    events = event_count(tx)

    response = merchant().post(
        action_url(tx, "capture"), {"amount": "100.00", "confirmed": "1"}, follow=True
    )

    assert response.redirect_chain[-1][0] == detail_url(tx)
    assert "This payment is voided, so it cannot be captured." in messages_of(response)
    assert fresh(tx).state == State.VOIDED
    assert event_count(tx) == events


def test_a_gateway_without_answer_leaves_the_capture_pending_and_blocks_a_second_one(
    merchant, authorized_tx, monkeypatch
):
    tx = authorized_tx("100.00")
    client = merchant()

    def no_answer(self, transaction, *, amount, idempotency_key):
        raise GatewayError("timeout")

    monkeypatch.setattr(SandboxGateway, "capture", no_answer)
    response = client.post(
        action_url(tx, "capture"), {"amount": "100.00", "confirmed": "1"}, follow=True
    )
    assert any("The gateway did not answer" in text for text in messages_of(response))
    assert fresh(tx).pending_operation == "capture"

    again = client.post(action_url(tx, "void"), follow=True)
    assert any("is being processed" in text for text in messages_of(again))
    assert fresh(tx).state == State.AUTHORIZED


# --- Void --------------------------------------------------------------------------------


def test_void_asks_for_confirmation_then_releases_the_authorization(merchant, authorized_tx):
    tx = authorized_tx("100.00")
    client = merchant()

    confirm = client.get(action_url(tx, "void")).content.decode()
    assert "The authorization of €100.00 will be voided." in confirm
    assert fresh(tx).state == State.AUTHORIZED

    response = client.post(action_url(tx, "void"), follow=True)

    assert "The authorization of €100.00 was voided; the money is released." in messages_of(
        response
    )
    assert fresh(tx).state == State.VOIDED
    assert fresh(tx).events.get(action="void").author == client.user


def test_void_of_a_captured_payment_is_refused(merchant, authorized_tx):
    tx = captured_tx(authorized_tx)

    response = merchant().post(action_url(tx, "void"), follow=True)

    assert "This payment is captured, so it cannot be voided." in messages_of(response)
    assert fresh(tx).state == State.CAPTURED


# --- Refund ------------------------------------------------------------------------------


def test_full_refund(merchant, authorized_tx):
    tx = captured_tx(authorized_tx, "45.50")
    client = merchant()

    confirm = client.post(action_url(tx, "refund"), {"amount": "45.50"}).content.decode()
    assert "€45.50 will be refunded to the customer's card." in confirm
    assert "This refunds everything that was captured." in confirm
    response = client.post(
        action_url(tx, "refund"), {"amount": "45.50", "confirmed": "1"}, follow=True
    )

    assert "€45.50 refunded to the customer's card." in messages_of(response)
    tx = fresh(tx)
    assert (tx.state, tx.refunded_amount) == (State.REFUNDED, Money("45.50", "EUR"))


def test_partial_refunds_up_to_what_is_left(merchant, authorized_tx):
    tx = captured_tx(authorized_tx, "100.00")
    client = merchant()

    client.post(action_url(tx, "refund"), {"amount": "30.00", "confirmed": "1"})
    assert fresh(tx).state == State.PARTIALLY_REFUNDED

    too_much = client.post(action_url(tx, "refund"), {"amount": "70.01", "confirmed": "1"})
    assert too_much.context["form"].errors["amount"] == [
        "You can refund at most €70.00, what is left of the captured amount."
    ]
    assert fresh(tx).refunded_amount == Money("30.00", "EUR")

    form = client.get(action_url(tx, "refund")).content.decode()
    assert 'value="70.00"' in form
    client.post(action_url(tx, "refund"), {"amount": "70.00", "confirmed": "1"})
    tx = fresh(tx)
    assert (tx.state, tx.refunded_amount) == (State.REFUNDED, Money("100.00", "EUR"))


def test_refund_of_a_payment_not_captured_is_refused(merchant, authorized_tx):
    tx = authorized_tx()
    events = event_count(tx)

    response = merchant().post(
        action_url(tx, "refund"), {"amount": "1.00", "confirmed": "1"}, follow=True
    )

    assert "This payment is authorized, so it cannot be refunded." in messages_of(response)
    assert fresh(tx).refunded_amount.amount == 0
    assert event_count(tx) == events


# --- Notes -------------------------------------------------------------------------------


def test_a_note_appears_in_the_log_with_its_author_and_time(merchant, authorized_tx):
    tx = authorized_tx()
    client = merchant(first_name="Jana", last_name="Nováková")

    response = client.post(
        action_url(tx, "note"), {"text": "Customer will pick up on Friday."}, follow=True
    )

    assert response.redirect_chain[-1][0] == detail_url(tx) + "#log"
    note = tx.events.get(kind=TransactionEvent.Kind.NOTE)
    assert note.author == client.user
    page = response.content.decode()
    assert "Customer will pick up on Friday." in page
    assert "Jana Nováková" in page
    assert f'datetime="{note.created_at.isoformat()}"' in page


def test_an_empty_note_is_refused_next_to_the_field(merchant, authorized_tx):
    tx = authorized_tx()

    response = merchant().post(action_url(tx, "note"), {"text": "   "})

    assert response.status_code == 200
    assert response.context["form"].errors["text"] == ["Write the note first."]
    assert not tx.events.filter(kind=TransactionEvent.Kind.NOTE).exists()


# --- Roles -------------------------------------------------------------------------------


def test_accountant_sees_payments_but_cannot_move_money(merchant, authorized_tx):
    tx = authorized_tx()
    client = merchant("accountant")

    assert client.get(reverse("payments:transactions")).status_code == 200
    page = client.get(detail_url(tx)).content.decode()
    assert "Your role can see payments but not capture, void or refund them." in page
    assert action_url(tx, "note") not in page
    for action in ("capture", "void", "refund", "note"):
        assert client.get(action_url(tx, action)).status_code == 403
        assert (
            client.post(action_url(tx, action), {"amount": "1", "confirmed": "1"}).status_code
            == 403
        )
    assert fresh(tx).state == State.AUTHORIZED
    assert not tx.events.filter(kind=TransactionEvent.Kind.NOTE).exists()


def test_technical_member_cannot_see_payments(merchant, authorized_tx):
    tx = authorized_tx()
    client = merchant("technical")

    assert client.get(reverse("payments:transactions")).status_code == 403
    assert client.get(detail_url(tx)).status_code == 403
    assert client.get(reverse("payments:statements")).status_code == 403


def test_billing_member_can_capture(merchant, authorized_tx):
    tx = authorized_tx()

    merchant("billing").post(action_url(tx, "capture"), {"amount": "100.00", "confirmed": "1"})

    assert fresh(tx).state == State.CAPTURED


def test_the_whole_portal_flow_authorize_partial_capture_refund_void_note(
    merchant, new_tx, payer, platform
):
    """Seed 004 end to end with the sandbox, through the portal pages."""
    client = merchant()
    first = new_tx("80.00")
    tx_services.transaction_authorize(transaction_id=first.pk, payment_method=card())
    second = new_tx("30.00")
    tx_services.transaction_authorize(transaction_id=second.pk, payment_method=card())

    client.post(action_url(first, "capture"), {"amount": "60.00", "confirmed": "1"})
    client.post(action_url(first, "refund"), {"amount": "10.00", "confirmed": "1"})
    client.post(action_url(second, "void"))
    client.post(action_url(first, "note"), {"text": "Partly shipped."})

    first, second = fresh(first), fresh(second)
    assert (first.state, first.captured_amount, first.refunded_amount) == (
        State.PARTIALLY_REFUNDED,
        Money("60.00", "EUR"),
        Money("10.00", "EUR"),
    )
    assert second.state == State.VOIDED
    log = client.get(detail_url(first)).content.decode()
    for words in ("Captured", "Refunded", "Partly refunded", "Partly shipped."):
        assert words in log
