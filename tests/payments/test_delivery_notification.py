"""The courier's signed delivery notification: delivered goods are captured, once."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings as settings_module
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from payments.models import (
    DeliveryNotification,
    SandboxCharge,
    Shipment,
    State,
    Transaction,
    TransactionEvent,
)
from payments.services import shipping
from payments.services import transactions as tx_services
from payments.services.transactions import Actor
from payments.tasks import expire_authorizations

SECRET = "courier-shared-secret-for-tests"
URL = "/payments/delivery/notify/"


@pytest.fixture(autouse=True)
def delivery_secret(settings):
    settings.DELIVERY_WEBHOOK_SECRET = SECRET


def notify(
    client: Client,
    payload: dict,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
    body: bytes | None = None,
):
    """POST a notification signed as the courier does (docs/delivery-notifications.md)."""
    raw = body if body is not None else json.dumps(payload).encode()
    stamp = str(int(timezone.now().timestamp()) if timestamp is None else timestamp)
    if signature is None:
        signature = hmac.new(
            secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
    headers = {"HTTP_X_DELIVERY_TIMESTAMP": stamp}
    if signature:
        headers["HTTP_X_DELIVERY_SIGNATURE"] = signature
    return client.post(URL, data=raw, content_type="application/json", **headers)


def delivered(notification_id: str = "ntf-1", tracking_number: str = "JJD0001", **extra) -> dict:
    return {
        "notification_id": notification_id,
        "tracking_number": tracking_number,
        "carrier": "DHL",
        "delivered_at": "2026-03-02T14:05:00+01:00",
        **extra,
    }


@pytest.fixture
def shipped_tx(authorized_tx):
    """shipped_tx(amount, tracking_number) -> an authorized goods payment whose parcel left."""

    def make(amount: str = "100.00", tracking_number: str = "JJD0001") -> Transaction:
        tx = authorized_tx(amount)
        shipping.shipment_create(
            transaction_id=tx.pk,
            recipient_name="Jana Nováková",
            street="Dlouhá 12",
            city="Praha",
            postal_code="110 00",
            country="CZ",
            items="Roll-up stand",
            actor=Actor.task("test"),
        )
        shipping.shipment_mark_shipped(
            transaction_id=tx.pk,
            carrier="DHL",
            tracking_number=tracking_number,
            actor=Actor.task("test"),
        )
        return Transaction.objects.get(pk=tx.pk)

    return make


def state_of(tx: Transaction) -> tuple:
    """Everything a notification could change, in comparable form."""
    fresh = Transaction.objects.get(pk=tx.pk)
    shipment = Shipment.objects.get(transaction=tx)
    return (
        fresh.state,
        fresh.captured_amount,
        shipment.status,
        shipment.delivered_at,
        TransactionEvent.objects.filter(transaction=tx).count(),
        DeliveryNotification.objects.count(),
        SandboxCharge.objects.get(reference=fresh.gateway_reference).status,
    )


# --- The whole flow --------------------------------------------------------------------------


@pytest.mark.django_db
def test_delivery_confirmation_captures_the_authorized_amount(
    client, client_for, member_of, payer, authorized_tx
):
    tx = authorized_tx("149.90")
    clerk = member_of(payer, "billing").user
    merchant = client_for(clerk)
    create = reverse("payments:shipment_create", kwargs={"transaction_id": tx.public_id})
    ship = reverse("payments:shipment_ship", kwargs={"transaction_id": tx.public_id})
    merchant.post(
        create,
        {
            "recipient_name": "Jana Nováková",
            "street": "Dlouhá 12",
            "city": "Praha",
            "postal_code": "110 00",
            "country": "CZ",
            "items": "Roll-up stand",
        },
    )
    merchant.post(ship, {"carrier": "DHL", "tracking_number": "JJD0001"})
    merchant.logout()

    response = notify(Client(), delivered())

    assert response.status_code == 200
    assert response.json() == {
        "status": "delivered",
        "capture": "captured",
        "detail": "€149.90",
        "amount": "149.90",
        "currency": "EUR",
    }
    tx.refresh_from_db()
    assert tx.state == State.CAPTURED
    assert tx.captured_amount == tx.amount == Money("149.90", "EUR")
    assert SandboxCharge.objects.get(reference=tx.gateway_reference).captured == Decimal("149.90")
    shipment = Shipment.objects.get(transaction=tx)
    assert shipment.status == Shipment.Status.DELIVERED
    assert shipment.delivered_at == datetime.fromisoformat("2026-03-02T14:05:00+01:00")
    log = [
        (event.action, event.old_state, event.new_state, event.actor_label)
        for event in tx.events.all()
    ]
    assert log == [
        ("created", "", "created", "system"),
        ("authorize_requested", "created", "", "system"),
        ("authorize", "created", "authorized", "system"),
        ("shipment_created", "authorized", "authorized", str(clerk)),
        ("shipped", "authorized", "authorized", str(clerk)),
        ("delivered", "authorized", "authorized", "delivery-confirmation"),
        ("capture_requested", "authorized", "", "delivery-confirmation"),
        ("capture", "authorized", "captured", "delivery-confirmation"),
    ]
    assert tx.events.get(action="delivered").message == (
        "DHL confirmed delivery of JJD0001 (notification ntf-1)."
    )
    notification = DeliveryNotification.objects.get()
    assert notification.shipment == shipment
    assert notification.payload == delivered()
    assert notification.outcome == "delivered; capture captured: €149.90"


@pytest.mark.django_db
def test_replayed_notification_changes_nothing(client, shipped_tx):
    tx = shipped_tx()
    assert notify(client, delivered()).status_code == 200
    after_first = state_of(tx)

    for _ in range(4):
        response = notify(client, delivered())
        assert response.status_code == 200
        assert response.json() == {"status": "already processed"}

    assert state_of(tx) == after_first
    assert tx.events.filter(action="capture").count() == 1
    assert DeliveryNotification.objects.count() == 1


@pytest.mark.django_db
def test_a_second_notification_for_a_delivered_parcel_captures_nothing_more(client, shipped_tx):
    tx = shipped_tx()
    notify(client, delivered("ntf-1"))
    before = state_of(tx)

    response = notify(client, delivered("ntf-2"))

    assert response.status_code == 200
    assert response.json() == {"status": "already delivered"}
    state = state_of(tx)
    assert state[:5] == before[:5]
    assert state[5] == before[5] + 1  # the second notification is on record
    assert DeliveryNotification.objects.get(notification_id="ntf-2").outcome == (
        "already delivered"
    )


# --- Refused notifications -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"secret": "not-the-shared-secret"}, id="wrong secret"),
        pytest.param({"signature": ""}, id="no signature"),
        pytest.param({"signature": "zz" * 32}, id="garbage signature"),
        pytest.param({"signature": "sent-for-another-body"}, id="signed another body"),
    ],
)
def test_badly_signed_notification_is_refused_and_stores_nothing(client, shipped_tx, tamper):
    tx = shipped_tx()
    before = state_of(tx)
    if tamper.get("signature") == "sent-for-another-body":
        stamp = str(int(timezone.now().timestamp()))
        other = json.dumps(delivered(tracking_number="SOMETHING-ELSE")).encode()
        tamper = {
            "timestamp": int(stamp),
            "signature": hmac.new(
                SECRET.encode(), stamp.encode() + b"." + other, hashlib.sha256
            ).hexdigest(),
        }

    response = notify(client, delivered(), **tamper)

    assert response.status_code == 400
    assert response.json()["status"] == "rejected"
    assert "X-Delivery-Signature" in response.json()["detail"]
    assert state_of(tx) == before
    assert not DeliveryNotification.objects.exists()


@pytest.mark.django_db
def test_notification_without_a_timestamp_is_refused(client, shipped_tx):
    tx = shipped_tx()
    before = state_of(tx)
    body = json.dumps(delivered()).encode()

    response = client.post(
        URL, data=body, content_type="application/json", HTTP_X_DELIVERY_SIGNATURE="00"
    )

    assert response.status_code == 400
    assert "X-Delivery-Timestamp" in response.json()["detail"]
    assert state_of(tx) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-301, False), (-290, True), (290, True), (301, False)],
)
def test_timestamps_more_than_five_minutes_away_are_refused(client, shipped_tx, offset, accepted):
    tx = shipped_tx()
    before = state_of(tx)
    now = int(timezone.now().timestamp())

    response = notify(client, delivered(), timestamp=now + offset)

    if accepted:
        assert response.status_code == 200
        assert Transaction.objects.get(pk=tx.pk).state == State.CAPTURED
    else:
        assert response.status_code == 400
        assert "five minutes" in response.json()["detail"]
        assert state_of(tx) == before
        assert not DeliveryNotification.objects.exists()


@pytest.mark.django_db
def test_a_captured_request_cannot_be_replayed_later(client, shipped_tx):
    """The same signed bytes, sent again ten minutes later, are stale."""
    tx = shipped_tx()
    start = timezone.now()
    body = json.dumps(delivered()).encode()
    stamp = str(int(start.timestamp()))
    signature = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    before = state_of(tx)

    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        response = notify(client, {}, body=body, timestamp=int(stamp), signature=signature)

    assert response.status_code == 400
    assert state_of(tx) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"not json", id="not json"),
        pytest.param(b"[1, 2]", id="not an object"),
        pytest.param(
            json.dumps({"tracking_number": "JJD0001", "carrier": "DHL"}).encode(), id="fields"
        ),
        pytest.param(json.dumps(delivered(delivered_at="yesterday")).encode(), id="date"),
        pytest.param(
            json.dumps(delivered(delivered_at="2026-03-02T14:05:00")).encode(), id="naive date"
        ),
    ],
)
def test_a_signed_but_malformed_notification_is_refused(client, shipped_tx, payload):
    tx = shipped_tx()
    before = state_of(tx)

    response = notify(client, {}, body=payload)

    assert response.status_code == 400
    assert state_of(tx) == before
    assert not DeliveryNotification.objects.exists()


@pytest.mark.django_db
def test_unknown_tracking_number_is_404_and_kept_on_record(client, shipped_tx):
    tx = shipped_tx()
    before = state_of(tx)

    response = notify(client, delivered(tracking_number="NOPE-404"))

    assert response.status_code == 404
    assert response.json() == {"status": "unknown tracking number"}
    notification = DeliveryNotification.objects.get()
    assert notification.shipment is None
    assert notification.outcome == "unknown tracking number NOPE-404 (DHL)"
    assert state_of(tx)[:5] == before[:5]


@pytest.mark.django_db
def test_only_post_is_accepted(client):
    assert client.get(URL).status_code == 405


@pytest.mark.django_db
def test_without_a_configured_secret_nothing_is_accepted(client, settings, shipped_tx):
    tx = shipped_tx()
    del settings.DELIVERY_WEBHOOK_SECRET
    before = state_of(tx)

    with pytest.raises(ImproperlyConfigured, match="DELIVERY_WEBHOOK_SECRET"):
        notify(client, delivered())

    assert state_of(tx) == before


# --- When the money cannot be captured ------------------------------------------------------


@pytest.mark.django_db
def test_delivery_after_the_authorization_expired_is_recorded_but_not_captured(client, shipped_tx):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        tx = shipped_tx()
    with time_machine.travel(start + timedelta(days=7, minutes=1), tick=False):
        expire_authorizations.delay()
        assert Transaction.objects.get(pk=tx.pk).state == State.EXPIRED

        response = notify(client, delivered())

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["capture"]) == ("delivered", "refused")
    assert body["detail"] == "A payment that is expired cannot be captured."
    tx.refresh_from_db()
    assert (tx.state, tx.captured_amount) == (State.EXPIRED, Money("0.00", "EUR"))
    assert Shipment.objects.get(transaction=tx).status == Shipment.Status.DELIVERED
    refused = tx.events.get(action="delivery_capture_refused")
    assert refused.system_actor == "delivery-confirmation"
    assert "could not be captured" in refused.message
    assert DeliveryNotification.objects.get().outcome == (
        "delivered; capture refused: A payment that is expired cannot be captured."
    )


@pytest.mark.django_db
def test_delivery_after_the_merchant_captured_reports_nothing_to_capture(client, shipped_tx):
    tx = shipped_tx()
    tx_services.transaction_capture(transaction_id=tx.pk, amount=Money("40.00", "EUR"))

    response = notify(client, delivered())

    assert response.json()["capture"] == "not needed"
    tx.refresh_from_db()
    assert tx.captured_amount == Money("40.00", "EUR")
    assert not tx.events.filter(action="delivery_capture_refused").exists()


@pytest.mark.django_db
def test_a_delivery_whose_capture_was_interrupted_is_captured_by_the_sweep(
    client, shipped_tx, monkeypatch
):
    tx = shipped_tx()

    def crash(**kwargs):
        raise RuntimeError("worker killed")

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        monkeypatch.setattr(tx_services, "transaction_capture", crash)
        client.raise_request_exception = False
        response = notify(client, delivered(delivered_at=start.isoformat()))
        monkeypatch.undo()
    assert response.status_code == 500
    assert Shipment.objects.get(transaction=tx).status == Shipment.Status.DELIVERED
    assert Transaction.objects.get(pk=tx.pk).state == State.AUTHORIZED

    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        assert shipping.shipments_capture_delivered() == []  # the webhook may still be at it
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        swept = shipping.shipments_capture_delivered()
        assert shipping.shipments_capture_delivered() == []  # once

    assert swept == [Shipment.objects.get(transaction=tx).pk]
    tx.refresh_from_db()
    assert (tx.state, tx.captured_amount) == (State.CAPTURED, tx.amount)


# --- Concurrency ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_same_notification_sent_five_times_at_once_captures_once(shipped_tx):
    tx = shipped_tx()
    body = json.dumps(delivered()).encode()
    barrier = threading.Barrier(5)
    statuses: list[object] = [None] * 5

    def send(index: int) -> None:
        try:
            barrier.wait()
            statuses[index] = notify(Client(), {}, body=body).json()["status"]
        except Exception as error:
            statuses[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(map(str, statuses)) == ["already processed"] * 4 + ["delivered"]
    tx.refresh_from_db()
    assert tx.state == State.CAPTURED
    assert tx.events.filter(action="capture").count() == 1
    assert tx.events.filter(action="delivered").count() == 1
    assert DeliveryNotification.objects.count() == 1


def test_the_documented_example_is_signed_as_documented():
    doc = (settings_module.BASE_DIR / "docs" / "delivery-notifications.md").read_text()
    timestamp = re.search(r"X-Delivery-Timestamp: (\d+)", doc).group(1)
    signature = re.search(r"X-Delivery-Signature: ([0-9a-f]{64})", doc).group(1)
    body = re.search(r"^(\{\"notification_id\".*\})$", doc, re.MULTILINE).group(1).encode()

    shipping.delivery_signature_verify(
        body=body,
        timestamp=timestamp,
        signature=signature,
        secret=b"example-secret",
        now=datetime.fromtimestamp(int(timestamp), tz=UTC),
    )
    assert shipping.delivery_payload_parse(body).tracking_number == "JJD000390007812345"
