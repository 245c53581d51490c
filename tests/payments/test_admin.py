"""The admin for payments: search and filters, a read-only transaction page with its
message log, staff notes, and money actions that call the services row by row."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from moneyed import Money

from payments.models import (
    DeliveryNotification,
    SavedCard,
    Shipment,
    State,
    Transaction,
    TransactionEvent,
    WebhookEvent,
)
from payments.services import transactions as tx_services
from tests.factories import PlatformFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_transaction_changelist")


def change_url(tx: Transaction) -> str:
    return reverse("admin:payments_transaction_change", args=[tx.pk])


def fresh(tx: Transaction) -> Transaction:
    return Transaction.objects.get(pk=tx.pk)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def staff_with(*codenames: str):
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="payments", codename__in=codenames)
    )
    return user


# --- List, search, filters ---------------------------------------------------------------


def test_transaction_list_filters_by_state_and_searches(staff_client, authorized_tx, new_tx):
    client = staff_client()
    authorized = authorized_tx("100.00")
    created = new_tx("20.00")

    by_state = client.get(CHANGELIST, {"state__exact": "authorized"})
    assert list(by_state.context["cl"].result_list) == [authorized]

    for term in (
        str(authorized.public_id),
        authorized.short_id.lower(),
        authorized.gateway_reference,
        "4242",
    ):
        result = client.get(CHANGELIST, {"q": term}).context["cl"].result_list
        assert list(result) == [authorized], term
    by_account = client.get(CHANGELIST, {"q": created.account.name}).context["cl"].result_list
    assert set(by_account) == {authorized, created}
    by_symbol = client.get(CHANGELIST, {"q": str(created.account.variable_symbol)})
    assert set(by_symbol.context["cl"].result_list) == {authorized, created}


def test_list_filters_cover_state_purpose_gateway_brand_and_platform(staff_client, new_tx):
    new_tx()
    PlatformFactory()  # a platform filter appears once there is a choice to make
    response = staff_client().get(CHANGELIST)

    titles = {spec.title for spec in response.context["cl"].filter_specs}
    assert {"state", "purpose", "gateway", "card brand", "platform"} <= titles


# --- The transaction page ----------------------------------------------------------------


def test_transaction_page_is_read_only_and_shows_the_message_log(staff_client, authorized_tx):
    tx = tx_services.transaction_capture(
        transaction_id=authorized_tx("100.00").pk, amount=Money("40.00", "EUR")
    )
    client = staff_client()

    response = client.get(change_url(tx))
    page = response.content.decode()

    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}  # nothing editable
    assert 'name="_save"' not in page
    assert "Capture requested" in page
    assert "Authorized → Captured" in page
    assert "€40.00" in page  # captured, and still refundable
    # Posting the admin's change form changes nothing.
    assert client.post(change_url(tx), {"state": "refunded"}).status_code == 403
    assert fresh(tx).state == State.CAPTURED


def test_staff_note_is_added_with_the_staff_user_as_author(staff_client, authorized_tx):
    tx = authorized_tx()
    staff = UserFactory(is_staff=True, is_superuser=True, first_name="Petra", last_name="Staff")
    client = staff_client(staff)

    page = client.get(change_url(tx)).content.decode()
    note_url = reverse("admin:payments_transaction_note", args=[tx.pk])
    assert note_url in page

    response = client.post(note_url, {"text": "Called the customer."}, follow=True)

    assert "The note was added." in messages_of(response)
    note = tx.events.get(kind=TransactionEvent.Kind.NOTE)
    assert (note.author, note.message) == (staff, "Called the customer.")
    assert "Called the customer." in response.content.decode()
    assert "Petra Staff (staff)" in response.content.decode()


def test_an_empty_staff_note_is_refused(staff_client, authorized_tx):
    tx = authorized_tx()
    note_url = reverse("admin:payments_transaction_note", args=[tx.pk])

    response = staff_client().post(note_url, {"text": " "}, follow=True)

    assert "The note was not added: Write the note first." in messages_of(response)
    assert not tx.events.filter(kind=TransactionEvent.Kind.NOTE).exists()


# --- The message log cannot be edited or deleted -----------------------------------------


def test_log_entries_cannot_be_edited_or_deleted_in_the_admin(staff_client, authorized_tx):
    tx = authorized_tx()
    note = tx_services.transaction_note_add(
        transaction_id=tx.pk, author=UserFactory(), text="Original words."
    )
    client = staff_client()
    event_url = reverse("admin:payments_transactionevent_change", args=[note.pk])

    page = client.get(event_url)
    assert page.status_code == 200
    assert page.context["adminform"].form.fields == {}
    assert client.post(event_url, {"message": "Changed."}).status_code == 403
    delete_url = reverse("admin:payments_transactionevent_delete", args=[note.pk])
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:payments_transactionevent_add")).status_code == 403
    action_form = client.get(reverse("admin:payments_transactionevent_changelist")).context[
        "action_form"
    ]
    assert action_form is None or "delete_selected" not in dict(
        action_form.fields["action"].choices
    )
    note.refresh_from_db()
    assert note.message == "Original words."
    # Nor can a transaction be added or deleted.
    assert client.get(reverse("admin:payments_transaction_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:payments_transaction_delete", args=[tx.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("model", [SavedCard, WebhookEvent, Shipment, DeliveryNotification])
def test_gateway_records_are_read_only(staff_client, model):
    client = staff_client()
    opts = model._meta

    assert (
        client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")).status_code
        == 200
    )
    assert client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 403


# --- Money actions -----------------------------------------------------------------------


def run_action(client, action: str, transactions: list[Transaction], *, confirm: bool = True):
    data = {"action": action, "_selected_action": [tx.pk for tx in transactions]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(CHANGELIST, data, follow=True)


def test_capture_action_asks_first_then_reports_each_row(staff_client, authorized_tx):
    authorized = authorized_tx("100.00")
    voided = tx_services.transaction_void(transaction_id=authorized_tx("50.00").pk)
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = staff_client(staff)

    ask = run_action(client, "capture_full", [authorized, voided], confirm=False)
    assert "Capture the full authorized amount" in ask.content.decode()
    assert authorized.short_id in ask.content.decode()
    assert fresh(authorized).state == State.AUTHORIZED

    done = run_action(client, "capture_full", [authorized, voided])

    texts = messages_of(done)
    assert f"{authorized.short_id} ({authorized.account.name}): €100.00 captured." in texts
    assert any(
        text.startswith(f"{voided.short_id} (") and "cannot be captured" in text for text in texts
    )
    assert fresh(authorized).state == State.CAPTURED
    assert fresh(authorized).events.get(action="capture").author == staff
    assert fresh(voided).state == State.VOIDED


def test_void_action(staff_client, authorized_tx):
    tx = authorized_tx()

    done = run_action(staff_client(), "void", [tx])

    assert f"{tx.short_id} ({tx.account.name}): authorization of €100.00 voided." in messages_of(
        done
    )
    assert fresh(tx).state == State.VOIDED


def test_refund_action_refunds_what_is_left(staff_client, authorized_tx):
    tx = tx_services.transaction_capture(transaction_id=authorized_tx("100.00").pk)
    tx = tx_services.transaction_refund(transaction_id=tx.pk, amount=Money("30.00", "EUR"))
    not_captured = authorized_tx()

    done = run_action(staff_client(), "refund_full", [tx, not_captured])

    texts = messages_of(done)
    assert f"{tx.short_id} ({tx.account.name}): €70.00 refunded." in texts
    assert any("cannot be refunded" in text for text in texts)
    assert fresh(tx).state == State.REFUNDED
    assert fresh(not_captured).state == State.AUTHORIZED


def test_staff_without_the_money_permission_can_look_and_note_but_not_act(
    staff_client, authorized_tx
):
    tx = authorized_tx()
    support = staff_with("view_transaction", "add_transactionevent", "view_transactionevent")
    client = staff_client(support)

    listing = client.get(CHANGELIST)
    assert listing.status_code == 200
    assert listing.context["action_form"] is None  # no action this user may run
    page = client.get(change_url(tx)).content.decode()
    assert "Authorization requested" in page

    run_action(client, "capture_full", [tx])
    assert fresh(tx).state == State.AUTHORIZED
    note_url = reverse("admin:payments_transaction_note", args=[tx.pk])
    client.post(note_url, {"text": "Customer called."})
    assert tx.events.filter(kind=TransactionEvent.Kind.NOTE, author=support).exists()


def test_staff_who_may_only_look_cannot_add_notes(staff_client, authorized_tx):
    tx = authorized_tx()
    client = staff_client(staff_with("view_transaction"))

    assert "staff-note" not in client.get(change_url(tx)).content.decode()
    response = client.post(reverse("admin:payments_transaction_note", args=[tx.pk]), {"text": "x"})
    assert response.status_code == 403
    assert not tx.events.filter(kind=TransactionEvent.Kind.NOTE).exists()


def test_log_entries_can_be_searched_across_transactions(staff_client, authorized_tx):
    tx = authorized_tx()
    tx_services.transaction_note_add(transaction_id=tx.pk, author=UserFactory(), text="Fragile.")
    changelist = reverse("admin:payments_transactionevent_changelist")
    client = staff_client()

    for term in ("Fragile", str(tx.public_id)):
        response = client.get(changelist, {"q": term})
        assert response.status_code == 200
        assert response.context["cl"].result_count >= 1, term


def test_a_saved_cards_gateway_token_is_never_shown(staff_client, new_tx):
    from tests.payments.conftest import card

    tx = new_tx()
    tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card(), save_card=True)
    saved = SavedCard.objects.get()

    page = staff_client().get(reverse("admin:payments_savedcard_change", args=[saved.pk]))

    assert page.status_code == 200
    assert "4242" in page.content.decode()
    assert saved.token not in page.content.decode()
