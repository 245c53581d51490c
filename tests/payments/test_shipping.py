"""Shipping goods: preparing a shipment, marking it shipped, the portal pages, the A5 note."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from datetime import timedelta

import pytest
import time_machine
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from payments.exceptions import InvalidTransition
from payments.models import Shipment, State, Transaction
from payments.services import shipping
from payments.services import transactions as tx_services
from payments.services.transactions import Actor
from tests.factories import RegistrationFactory, UserFactory
from tests.payments.conftest import card

pytestmark = pytest.mark.django_db

ADDRESS = {
    "recipient_name": "Jana Nováková",
    "street": "Dlouhá 12",
    "city": "Praha",
    "postal_code": "110 00",
    "country": "CZ",
    "phone": "+420 601 123 456",
    "items": "2 x banner print 200 x 100 cm\nRoll-up stand",
}


def prepare(tx: Transaction, **changes) -> Shipment:
    return shipping.shipment_create(
        transaction_id=tx.pk, actor=Actor.task("test"), **{**ADDRESS, **changes}
    )


def ship(tx: Transaction, *, user=None, tracking_number: str = "JJD0001") -> Shipment:
    return shipping.shipment_mark_shipped(
        transaction_id=tx.pk,
        carrier="DHL",
        tracking_number=tracking_number,
        actor=Actor(user=user) if user else Actor.task("test"),
    )


def url(name: str, tx: Transaction) -> str:
    return reverse(f"payments:{name}", kwargs={"transaction_id": tx.public_id})


# --- Services --------------------------------------------------------------------------------


def test_shipment_for_an_authorized_goods_payment_waits_to_be_shipped(authorized_tx):
    tx = authorized_tx()

    shipment = prepare(tx, items="  Roll-up stand  \n\n 2 x banner \n")

    assert shipment.status == Shipment.Status.AWAITING
    assert shipment.items == "Roll-up stand\n2 x banner"
    event = tx.events.last()
    assert (event.action, event.old_state, event.new_state) == (
        "shipment_created",
        State.AUTHORIZED,
        State.AUTHORIZED,
    )
    assert "Jana Nováková" in event.message


@pytest.mark.parametrize("state", ["created", "voided", "captured", "expired"])
def test_shipment_is_refused_unless_the_payment_is_authorized(new_tx, state):
    tx = new_tx()
    if state != "created":
        tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card())
        {
            "voided": tx_services.transaction_void,
            "captured": tx_services.transaction_capture,
            "expired": tx_services.transaction_expire,
        }[state](transaction_id=tx.pk)
    events = tx.events.count()

    with pytest.raises(InvalidTransition, match=f"this payment is {state}"):
        prepare(tx)

    assert not Shipment.objects.exists()
    assert tx.events.count() == events


def test_shipment_is_refused_for_a_payment_that_is_not_for_goods(new_tx):
    tx = new_tx(purpose="topup")
    tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card())

    with pytest.raises(InvalidTransition, match="Only a payment for goods"):
        prepare(tx)

    assert not Shipment.objects.exists()


def test_a_payment_has_one_shipment(authorized_tx):
    tx = authorized_tx()
    prepare(tx)

    with pytest.raises(InvalidTransition, match="already has a shipment"):
        prepare(tx, recipient_name="Someone Else")

    assert Shipment.objects.get().recipient_name == "Jana Nováková"


def test_marking_shipped_records_who_when_and_the_tracking_number(authorized_tx):
    tx = authorized_tx()
    prepare(tx)
    clerk = UserFactory(first_name="Petr", last_name="Sklad")

    shipment = ship(tx, user=clerk, tracking_number="  JJD0001 ")

    assert shipment.status == Shipment.Status.SHIPPED
    assert (shipment.carrier, shipment.tracking_number) == ("DHL", "JJD0001")
    assert shipment.shipped_by == clerk
    assert timezone.now() - shipment.shipped_at < timedelta(seconds=5)
    event = tx.events.last()
    assert (event.action, event.author, event.message) == (
        "shipped",
        clerk,
        "Shipped with DHL, tracking number JJD0001.",
    )
    # Shipping moves no money.
    assert Transaction.objects.get(pk=tx.pk).state == State.AUTHORIZED


def test_goods_are_not_shipped_once_the_authorization_window_has_passed(authorized_tx):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        tx = authorized_tx()
        prepare(tx)

    # The expiry task has not run yet: the transaction still says authorized.
    with (
        time_machine.travel(start + timedelta(days=7, minutes=1), tick=False),
        pytest.raises(InvalidTransition, match="this payment is expired"),
    ):
        ship(tx)

    shipment = Shipment.objects.get()
    assert (shipment.status, shipment.tracking_number, shipment.shipped_at) == (
        Shipment.Status.AWAITING,
        "",
        None,
    )


def test_goods_are_not_shipped_after_the_authorization_was_voided(authorized_tx):
    tx = authorized_tx()
    prepare(tx)
    tx_services.transaction_void(transaction_id=tx.pk)

    with pytest.raises(InvalidTransition, match="this payment is voided"):
        ship(tx)

    assert Shipment.objects.get().status == Shipment.Status.AWAITING


def test_a_shipment_is_marked_shipped_once(authorized_tx):
    tx = authorized_tx()
    prepare(tx)
    ship(tx)

    with pytest.raises(InvalidTransition, match="already shipped"):
        ship(tx, tracking_number="OTHER")

    assert Shipment.objects.get().tracking_number == "JJD0001"


def test_a_tracking_number_belongs_to_one_shipment_per_carrier(authorized_tx):
    first, second = authorized_tx(), authorized_tx()
    prepare(first)
    prepare(second)
    ship(first, tracking_number="JJD0001")
    events = second.events.count()

    with pytest.raises(shipping.TrackingNumberTaken) as refused:
        ship(second, tracking_number="JJD0001")

    assert refused.value.extra == {"field": "tracking_number"}
    unchanged = Shipment.objects.get(transaction=second)
    assert (unchanged.status, unchanged.tracking_number) == (Shipment.Status.AWAITING, "")
    assert second.events.count() == events


# --- Portal ----------------------------------------------------------------------------------


@pytest.fixture
def owner(payer, member_of):
    return member_of(payer, "owner").user


def test_merchant_prepares_and_ships_in_the_portal(client_for, owner, authorized_tx):
    tx = authorized_tx()
    client = client_for(owner)

    page = client.get(url("shipment_create", tx))
    assert page.status_code == 200
    assert 'value="ES" selected' in page.content.decode()  # the platform's country

    response = client.post(url("shipment_create", tx), ADDRESS)
    assert response.status_code == 302
    assert response["Location"] == url("shipment_ship", tx)

    page = client.get(url("shipment_ship", tx))
    content = page.content.decode()
    assert "Jana Nováková" in content
    assert "Czechia" in content
    assert url("dispatch_note", tx) in content

    response = client.post(
        url("shipment_ship", tx), {"carrier": "DHL", "tracking_number": "JJD0001"}, follow=True
    )
    assert "will be captured when the courier confirms delivery" in response.content.decode()
    shipment = Shipment.objects.get(transaction=tx)
    assert (shipment.status, shipment.shipped_by) == (Shipment.Status.SHIPPED, owner)


def test_shipment_form_names_the_missing_fields(client_for, owner, authorized_tx):
    tx = authorized_tx()

    response = client_for(owner).post(
        url("shipment_create", tx), {**ADDRESS, "recipient_name": "", "items": "  \n "}
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_recipient_name_error"' in content
    assert 'aria-describedby="id_recipient_name_error"' in content
    assert 'id="id_items_error"' in content
    assert not Shipment.objects.exists()


def test_a_refused_shipment_is_shown_and_changes_nothing(client_for, owner, new_tx):
    tx = new_tx()  # created, never authorized
    client = client_for(owner)

    refusal = (
        "A shipment can be prepared only while the payment is authorized; this payment is created."
    )
    page = client.get(url("shipment_create", tx))
    assert refusal in page.content.decode()
    assert "<form" not in page.content.decode().split('id="content"')[1]

    response = client.post(url("shipment_create", tx), ADDRESS)
    assert response.status_code == 200
    assert refusal in response.content.decode()
    assert not Shipment.objects.exists()


def test_tracking_number_taken_is_shown_on_its_field(client_for, owner, authorized_tx):
    first, second = authorized_tx(), authorized_tx()
    prepare(first)
    prepare(second)
    ship(first, tracking_number="JJD0001")

    response = client_for(owner).post(
        url("shipment_ship", second), {"carrier": "DHL", "tracking_number": "JJD0001"}
    )

    content = response.content.decode()
    assert 'id="id_tracking_number_error"' in content
    assert "Another shipment already has the tracking number JJD0001 with DHL." in content
    assert Shipment.objects.get(transaction=second).status == Shipment.Status.AWAITING


@pytest.mark.parametrize("role", ["accountant", "technical"])
def test_members_who_cannot_move_money_cannot_ship(
    client_for, member_of, payer, role, authorized_tx
):
    tx = authorized_tx()
    prepare(tx)
    client = client_for(member_of(payer, role).user)

    assert client.get(url("shipment_ship", tx)).status_code == 403
    assert (
        client.post(
            url("shipment_ship", tx), {"carrier": "DHL", "tracking_number": "X1"}
        ).status_code
        == 403
    )
    assert client.post(url("shipment_create", tx), ADDRESS).status_code == 403
    assert client.get(url("dispatch_note", tx)).status_code == 403
    assert Shipment.objects.get().status == Shipment.Status.AWAITING


def test_another_accounts_payment_is_not_found(client_for, member_of, authorized_tx):
    tx = authorized_tx()
    prepare(tx)
    stranger = client_for(member_of(RegistrationFactory().account, "owner").user)

    for name in ("shipment_create", "shipment_ship", "dispatch_note"):
        assert stranger.get(url(name, tx)).status_code == 404, name
    assert (
        stranger.post(
            url("shipment_ship", tx), {"carrier": "DHL", "tracking_number": "X1"}
        ).status_code
        == 404
    )
    assert Shipment.objects.get().status == Shipment.Status.AWAITING


# --- The panel on the transaction's page -----------------------------------------------------


def _panel(tx: Transaction, *, can_move_money: bool) -> str:
    request = RequestFactory().get("/")
    return render_to_string(
        "payments/shipping/_panel.html",
        {
            "transaction": Transaction.objects.get(pk=tx.pk),
            "portal": {"can": {"move_money": can_move_money}},
        },
        request=request,
    )


def test_panel_offers_to_prepare_a_shipment_when_there_is_none(authorized_tx):
    tx = authorized_tx()

    html = _panel(tx, can_move_money=True)

    assert "Prepare the shipment" in html
    assert url("shipment_create", tx) in html


def test_panel_shows_the_shipment_and_hides_buttons_from_viewers(authorized_tx):
    tx = authorized_tx()
    prepare(tx)
    ship(tx)

    html = _panel(tx, can_move_money=False)

    for shown in ("Jana Nováková", "JJD0001", "Shipped"):
        assert shown in html
    assert url("dispatch_note", tx) not in html
    assert url("dispatch_note", tx) in _panel(tx, can_move_money=True)


def test_panel_is_empty_for_a_payment_that_is_not_for_goods(new_tx):
    assert _panel(new_tx(purpose="topup"), can_move_money=True).strip() == ""


# --- Dispatch note ---------------------------------------------------------------------------


def _media_boxes(pdf: bytes) -> list[tuple[float, ...]]:
    """Every /MediaBox in the PDF, also inside compressed object streams."""
    chunks = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            chunks.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue
    return [
        tuple(float(number) for number in box.split())
        for chunk in chunks
        for box in re.findall(rb"/MediaBox\s*\[\s*([-\d.\s]+?)\s*\]", chunk)
    ]


def test_dispatch_note_is_an_a5_pdf_addressed_to_the_recipient(client_for, owner, authorized_tx):
    tx = authorized_tx()
    prepare(tx)
    ship(tx, tracking_number="JJD000390007812345")

    response = client_for(owner).get(url("dispatch_note", tx))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f"dispatch-note-{tx.short_id}.pdf" in response["Content-Disposition"]
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    boxes = _media_boxes(pdf)
    assert boxes, "no page size found"
    for x0, y0, x1, y1 in boxes:
        assert abs((x1 - x0) - 419.53) < 1, boxes
        assert abs((y1 - y0) - 595.28) < 1, boxes
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed to read the PDF's text")
    text = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    for expected in ("Jana Nováková", "Dlouhá 12", "110 00 Praha", "JJD000390007812345"):
        assert expected in text
    assert tx.platform.legal_name in text
    assert tx.short_id in text


def test_dispatch_note_needs_a_shipment(client_for, owner, authorized_tx):
    assert client_for(owner).get(url("dispatch_note", authorized_tx())).status_code == 404
