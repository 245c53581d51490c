"""Top-ups in the portal (seeds 000, 002, 003): amounts, terms, card and bank transfer,
the instructions page, staff review in the admin, roles and isolation."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from djmoney.money import Money

from credit import qr
from credit.exceptions import TopUpError
from credit.models import Lot, TopUp, Transfer, Wallet
from credit.services import ledger
from credit.services import topups as topup_services
from payments.models import Gateway, Transaction
from payments.models import State as PaymentState
from payments.signals import transaction_state_changed
from tests.factories import PlatformFactory, RegistrationFactory, UserFactory

pytestmark = pytest.mark.django_db

VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture
def platform(db):
    """A Spanish platform in EUR with the seed's presets (50 … 250 EUR)."""
    return PlatformFactory(
        code="es",
        name="Platform Spain",
        legal_name="Platform Spain S.L.",
        country="ES",
        currency="EUR",
        card_gateway="sandbox",
        bank_name="Banco Santander",
        iban="ES9121000418450200051332",
        bic="BSCHESMMXXX",
        topup_presets=[Decimal(v) for v in ("50", "100", "150", "200", "250")],
        topup_minimum=Decimal("10"),
        topup_maximum=Decimal("5000"),
    )


@pytest.fixture
def czech_platform(db):
    return PlatformFactory(
        code="cz",
        name="Platform Czechia",
        legal_name="Platform Czechia s.r.o.",
        currency="CZK",
        bank_name="Komerční banka",
        iban="CZ6508000000192000145399",
        bic="KOMBCZPP",
        local_account_number="19-2000145399/0800",
        topup_presets=[Decimal(v) for v in ("500", "1000", "2000", "5000")],
        topup_minimum=Decimal("200"),
        topup_maximum=Decimal("200000"),
    )


@pytest.fixture
def customer(platform):
    return RegistrationFactory(platform=platform).account


@pytest.fixture
def signed_in(client, customer, member_of):
    """signed_in(role="owner") -> the client, signed in as a member of ``customer``."""

    def sign_in(role: str = "owner"):
        client.force_login(member_of(customer, role).user)
        return client

    return sign_in


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a call and then its on-commit work (payment signals, e-mails), as a commit would."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def topup_url(platform) -> str:
    return reverse("credit:topup", kwargs={"platform_code": platform.code})


def detail_url(topup: TopUp) -> str:
    return reverse(
        "credit:topup_detail",
        kwargs={"platform_code": topup.wallet.platform.code, "topup_id": topup.pk},
    )


def start(client, platform, **data):
    form = {"method": "card", "terms": "on", **data}
    return client.post(topup_url(platform), form)


def pay_with_card(client, topup: TopUp, number: str = VISA):
    return client.post(
        reverse("payments:pay", kwargs={"transaction_id": topup.payment.public_id}),
        {"number": number, "expiry": "12/39", "cvc": "123", "name": "Ana García"},
    )


def amount_error(response) -> str:
    """The error shown next to the amount field (tied to it by aria-describedby)."""
    html = response.content.decode()
    match = re.search(r'id="id_amount_error">([^<]*)<', html)
    assert match, "no error next to the amount field"
    assert 'aria-describedby="id_amount_helptext id_amount_error"' in html
    return match.group(1)


def wallet_of(account, platform) -> Wallet:
    return Wallet.objects.get(account=account, platform=platform)


def transfer_topup(account, platform, amount="100.00") -> TopUp:
    wallet = ledger.wallet_for(account=account, platform=platform)
    return topup_services.topup_transfer_start(
        wallet=wallet,
        amount=Money(amount, platform.currency),
        terms_accepted=True,
        created_by=None,
    )


# --- The top-up page ----------------------------------------------------------------------


def test_the_page_offers_the_platforms_presets_and_limits(signed_in, platform):
    html = signed_in().get(topup_url(platform)).content.decode()

    for preset in ("50.00", "100.00", "150.00", "200.00", "250.00"):
        assert f'value="{preset}"' in html
    assert "€10.00" in html
    assert "€5,000.00" in html
    assert 'name="terms"' in html


def test_a_preset_amount_by_card_starts_a_payment_and_goes_to_the_card_page(
    signed_in, platform, customer
):
    response = start(signed_in(), platform, preset="100.00")

    topup = TopUp.objects.get()
    assert (topup.amount, topup.currency, topup.method, topup.state) == (
        Decimal("100.00"),
        "EUR",
        TopUp.Method.CARD,
        TopUp.State.PENDING,
    )
    assert topup.terms_accepted_at is not None
    payment = topup.payment
    assert (payment.amount, payment.purpose, payment.auto_capture) == (
        Money("100.00", "EUR"),
        "topup",
        True,
    )
    assert payment.idempotency_key == f"topup-{topup.pk}"
    assert payment.pays_for == topup
    assert payment.return_url == detail_url(topup)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "payments:pay", kwargs={"transaction_id": payment.public_id}
    )


@pytest.mark.parametrize("typed", ["37", "37.5", "37,50", "1 200.00", "5000"])
def test_a_custom_amount_within_the_limits_is_accepted(signed_in, platform, typed):
    response = start(signed_in(), platform, amount=typed)

    assert response.status_code == 302
    expected = Decimal(typed.replace(" ", "").replace(",", "."))
    assert TopUp.objects.get().amount == expected


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0", "The amount must be more than zero."),
        ("-20", "The amount must be more than zero."),
        ("abc", "Enter the amount as a number, e.g. 49.90."),
        ("1e3", "Enter the amount as a number, e.g. 49.90."),
        ("50 EUR", "Enter the amount as a number, e.g. 49.90."),
        ("20.001", "The amount can have at most two decimal places."),
        ("9.99", "The smallest top-up is €10.00."),
        ("5000.01", "The largest top-up is €5,000.00."),
        ("", "Choose an amount or type one."),
    ],
)
def test_a_bad_amount_is_refused_next_to_the_field_and_creates_nothing(
    signed_in, platform, typed, message
):
    response = start(signed_in(), platform, amount=typed)

    assert response.status_code == 200
    assert amount_error(response) == message
    assert not TopUp.objects.exists()
    assert not Transaction.objects.exists()


def test_a_preset_and_a_different_typed_amount_are_refused(signed_in, platform):
    response = start(signed_in(), platform, preset="50.00", amount="70")

    assert amount_error(response) == "Choose one of the amounts or type your own, not both."
    assert not TopUp.objects.exists()


def test_an_amount_that_is_not_a_preset_cannot_be_sent_as_one(signed_in, platform):
    response = start(signed_in(), platform, preset="0.01")

    assert "Choose one of the offered amounts." in response.content.decode()
    assert not TopUp.objects.exists()


def test_the_terms_must_be_accepted(signed_in, platform):
    client = signed_in()
    response = client.post(topup_url(platform), {"method": "card", "preset": "50.00"})

    assert response.status_code == 200
    assert "Accept the terms and conditions to top up." in response.content.decode()
    assert not TopUp.objects.exists()
    assert not Transaction.objects.exists()


def test_the_service_refuses_a_top_up_without_the_terms(platform, customer):
    wallet = ledger.wallet_for(account=customer, platform=platform)

    with pytest.raises(TopUpError) as refused:
        topup_services.topup_card_start(
            wallet=wallet, amount=Money("50", "EUR"), terms_accepted=False, created_by=None
        )

    assert refused.value.extra == {"field": "terms"}
    assert not TopUp.objects.exists()


def test_an_unregistered_platform_is_not_found(signed_in, platform):
    other = PlatformFactory(code="bg", currency="EUR")

    assert signed_in().get(topup_url(other)).status_code == 404
    assert not Wallet.objects.filter(platform=other).exists()


# --- Card ---------------------------------------------------------------------------------


def test_a_card_top_up_is_credited_once_through_the_sandbox_page(
    signed_in, platform, customer, committed, mailoutbox
):
    client = signed_in()
    start(client, platform, preset="150.00")
    topup = TopUp.objects.get()

    response = committed(pay_with_card, client, topup)

    assert response.status_code == 302
    assert response["Location"] == detail_url(topup)
    topup.refresh_from_db()
    wallet = wallet_of(customer, platform)
    assert topup.state == TopUp.State.PAID
    assert wallet.balance == Decimal("150.00")
    assert Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.TOPUP_CARD).count() == 1
    lot = Lot.objects.get(wallet=wallet)
    assert (lot.amount, lot.remaining, lot.source) == (
        Decimal("150.00"),
        Decimal("150.00"),
        Lot.Source.CARD,
    )
    assert ledger.ledger_mismatches() == []
    page = client.get(detail_url(topup)).content.decode()
    assert "Credited" in page
    assert "€150.00" in page
    assert [message.to for message in mailoutbox] == [[customer.email]]
    assert "€150.00" in mailoutbox[0].subject


def test_the_capture_announced_twice_credits_the_wallet_once(
    signed_in, platform, customer, committed
):
    client = signed_in()
    start(client, platform, preset="50.00")
    topup = TopUp.objects.get()
    committed(pay_with_card, client, topup)
    payment = Transaction.objects.get(pk=topup.payment_id)

    # The webhook and the synchronous confirmation both report the capture.
    for _ in range(2):
        committed(
            transaction_state_changed.send,
            sender=Transaction,
            transaction=payment,
            old_state=PaymentState.CREATED,
            new_state=PaymentState.CAPTURED,
        )

    wallet = wallet_of(customer, platform)
    assert wallet.balance == Decimal("50.00")
    assert Transfer.objects.filter(wallet=wallet).count() == 1
    assert Lot.objects.filter(wallet=wallet).count() == 1


def test_a_declined_card_leaves_the_top_up_waiting_and_a_retry_credits_it(
    signed_in, platform, customer, committed
):
    client = signed_in()
    start(client, platform, preset="200.00")
    topup = TopUp.objects.get()

    declined = committed(pay_with_card, client, topup, DECLINED)

    assert declined.status_code == 200
    assert "Your card was declined." in declined.content.decode()
    topup.refresh_from_db()
    assert topup.state == TopUp.State.PENDING
    assert not Wallet.objects.filter(account=customer, balance__gt=0).exists()
    page = client.get(detail_url(topup)).content.decode()
    assert "Waiting for the card payment" in page
    assert reverse("payments:pay", kwargs={"transaction_id": topup.payment.public_id}) in page

    committed(pay_with_card, client, topup, VISA)

    topup.refresh_from_db()
    assert topup.state == TopUp.State.PAID
    assert wallet_of(customer, platform).balance == Decimal("200.00")


# --- Bank transfer ------------------------------------------------------------------------


def test_a_transfer_top_up_shows_the_instructions_with_an_epc_qr_code(
    signed_in, platform, customer
):
    client = signed_in()
    response = start(client, platform, preset="250.00", method="transfer")

    topup = TopUp.objects.get()
    assert response["Location"] == detail_url(topup)
    payment = topup.payment
    assert (payment.gateway, payment.state, payment.idempotency_key) == (
        Gateway.BANK_TRANSFER,
        PaymentState.CREATED,
        f"topup-{topup.pk}",
    )
    assert payment.events.filter(action="authorize").exists()  # awaiting the transfer
    page = client.get(detail_url(topup)).content.decode()
    assert 'data-testid="iban">ES91 2100 0418 4502 0005 1332<' in page
    assert "BSCHESMMXXX" in page
    assert "Banco Santander" in page
    assert str(customer.variable_symbol) in page
    assert "€250.00" in page
    expected = qr.epc_payload(
        bic="BSCHESMMXXX",
        name="Platform Spain S.L.",
        iban="ES9121000418450200051332",
        amount=Decimal("250.00"),
        remittance=f"VS:{customer.variable_symbol}",
    )
    assert qr.qr_svg(expected, title="x").split("<path", 1)[1] in page  # the same QR code
    assert '<svg version="1.1"' in page
    assert 'role="img"' in page
    assert wallet_of(customer, platform).balance == 0


def test_a_czk_transfer_shows_the_local_account_and_a_qr_platba_code(
    client, czech_platform, member_of
):
    account = RegistrationFactory(platform=czech_platform).account
    client.force_login(member_of(account, "billing").user)

    client.post(
        topup_url(czech_platform), {"preset": "2000.00", "method": "transfer", "terms": "on"}
    )

    topup = TopUp.objects.get()
    page = client.get(detail_url(topup)).content.decode()
    assert "19-2000145399/0800" in page
    assert "CZ65 0800 0000 1920 0014 5399" in page
    assert str(account.variable_symbol) in page
    expected = qr.spayd_payload(
        iban="CZ6508000000192000145399",
        bic="KOMBCZPP",
        amount=Decimal("2000.00"),
        variable_symbol=account.variable_symbol,
        message="Credit top-up Platform Czechia",
    )
    assert expected.startswith("SPD*1.0*ACC:CZ6508000000192000145399+KOMBCZPP*AM:2000.00*CC:CZK")
    assert qr.qr_svg(expected, title="x").split("<path", 1)[1] in page
    assert "QR Platba" in page


def test_a_currency_without_a_qr_standard_shows_the_details_only(client, member_of):
    polish = PlatformFactory(code="pl", currency="PLN", iban="PL61109010140000071219812874")
    account = RegistrationFactory(platform=polish).account
    client.force_login(member_of(account).user)

    client.post(topup_url(polish), {"amount": "100", "method": "transfer", "terms": "on"})

    page = client.get(detail_url(TopUp.objects.get())).content.decode()
    assert "PL61 1090 1014 0000 0712 1981 2874" in page
    assert str(account.variable_symbol) in page
    assert "<svg" not in page


# --- Staff review -------------------------------------------------------------------------


@pytest.fixture
def reviewer(staff_client):
    """A staff client of the Finance kind: may see and review top-ups."""
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="credit", codename__in=["view_topup", "change_topup"]
        )
    )
    return staff_client(user), user


def test_staff_approval_credits_the_transfer_once(reviewer, platform, customer, committed):
    client, staff = reviewer
    topup = transfer_topup(customer, platform, "120.00")
    approve = reverse("admin:credit_topup_approve", args=[topup.pk])

    confirm_page = client.get(approve)
    assert confirm_page.status_code == 200
    assert "Yes, approve and credit" in confirm_page.content.decode()
    assert TopUp.objects.get().state == TopUp.State.PENDING  # nothing before confirming

    committed(client.post, approve, {"confirm": "yes"})
    committed(client.post, approve, {"confirm": "yes"})  # a second approval does nothing

    topup.refresh_from_db()
    wallet = wallet_of(customer, platform)
    assert topup.state == TopUp.State.PAID
    assert (topup.reviewed_by, topup.proof_status) == (staff, TopUp.Proof.APPROVED)
    assert wallet.balance == Decimal("120.00")
    assert Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.TOPUP_TRANSFER).count() == 1
    assert Lot.objects.get(wallet=wallet).source == Lot.Source.TRANSFER
    entries = LogEntry.objects.get_for_object(topup)
    assert entries.count() == 1
    entry = entries.get()
    assert entry.actor == staff
    assert entry.changes_dict["review"] == [None, "approved"]
    assert entry.changes_dict["payment"] == ["created", "captured"]


def test_the_approve_action_from_the_list_credits_each_selected_transfer(
    reviewer, platform, customer, committed
):
    client, _staff = reviewer
    first = transfer_topup(customer, platform, "10.00")
    second = transfer_topup(customer, platform, "20.00")
    changelist = reverse("admin:credit_topup_changelist")
    selection = {"action": "approve_transfer", "_selected_action": [first.pk, second.pk]}

    confirm = client.post(changelist, selection)
    assert confirm.status_code == 200
    assert "Yes, approve and credit" in confirm.content.decode()
    committed(client.post, changelist, {**selection, "confirm": "yes"})

    assert wallet_of(customer, platform).balance == Decimal("30.00")


def test_rejecting_needs_a_note_and_leaves_the_wallet_unchanged(
    reviewer, platform, customer, committed
):
    client, staff = reviewer
    topup = transfer_topup(customer, platform, "80.00")
    reject = reverse("admin:credit_topup_reject", args=[topup.pk])

    without_note = client.post(reject, {"confirm": "yes", "note": "  "})

    assert without_note.status_code == 200
    assert "Write why the transfer is rejected." in without_note.content.decode()
    assert TopUp.objects.get().state == TopUp.State.PENDING

    committed(client.post, reject, {"confirm": "yes", "note": "No such payment on the account"})

    topup.refresh_from_db()
    assert topup.state == TopUp.State.CANCELLED
    assert topup.proof_status == TopUp.Proof.REJECTED
    assert topup.review_note == "No such payment on the account"
    assert topup.payment.state == PaymentState.FAILED
    assert wallet_of(customer, platform).balance == 0
    assert not Transfer.objects.exists()
    entry = LogEntry.objects.get_for_object(topup).get()
    assert entry.actor == staff
    assert entry.changes_dict["state"] == ["pending", "cancelled"]
    assert entry.changes_dict["review_note"] == [None, "No such payment on the account"]
    # A rejected transfer cannot be approved afterwards.
    with pytest.raises(TopUpError):
        topup_services.topup_transfer_approve(topup_id=topup.pk, staff=staff)
    assert wallet_of(customer, platform).balance == 0


def test_the_customer_sees_the_reason_of_a_rejection(signed_in, platform, customer):
    topup = transfer_topup(customer, platform)
    topup_services.topup_transfer_reject(
        topup_id=topup.pk, staff=UserFactory(is_staff=True), note="Amount did not arrive"
    )

    page = signed_in("accountant").get(detail_url(topup)).content.decode()

    assert "Cancelled" in page
    assert "Amount did not arrive" in page


def test_a_card_top_up_cannot_be_approved_as_a_transfer(platform, customer):
    wallet = ledger.wallet_for(account=customer, platform=platform)
    topup = topup_services.topup_card_start(
        wallet=wallet, amount=Money("50", "EUR"), terms_accepted=True, created_by=None
    )

    with pytest.raises(TopUpError):
        topup_services.topup_transfer_approve(topup_id=topup.pk, staff=UserFactory(is_staff=True))
    assert Wallet.objects.get(pk=wallet.pk).balance == 0


def test_staff_without_the_review_permission_cannot_approve(staff_client, platform, customer):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_topup"))
    client = staff_client(viewer)
    topup = transfer_topup(customer, platform)

    assert client.get(reverse("admin:credit_topup_changelist")).status_code == 200
    response = client.post(
        reverse("admin:credit_topup_approve", args=[topup.pk]), {"confirm": "yes"}
    )

    assert response.status_code == 403
    assert TopUp.objects.get().state == TopUp.State.PENDING


def test_the_admin_lists_top_ups_with_filters_and_a_read_only_page(reviewer, platform, customer):
    client, _staff = reviewer
    topup = transfer_topup(customer, platform)
    PlatformFactory(code="bg", currency="EUR")  # a filter with one choice is not shown

    listing = client.get(reverse("admin:credit_topup_changelist"), {"method__exact": "transfer"})
    page = client.get(reverse("admin:credit_topup_change", args=[topup.pk]))

    assert listing.status_code == 200
    html = listing.content.decode()
    for heading in ("By method", "By state", "By proof", "By platform"):
        assert heading in html
    assert page.status_code == 200
    assert "Approve transfer…" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()


# --- Roles and isolation ------------------------------------------------------------------


def test_an_accountant_sees_top_ups_but_cannot_top_up(signed_in, platform, customer):
    topup = transfer_topup(customer, platform)
    client = signed_in("accountant")

    assert client.get(reverse("credit:topups", kwargs={"platform_code": "es"})).status_code == 200
    detail = client.get(detail_url(topup))
    assert detail.status_code == 200
    assert 'name="proof"' not in detail.content.decode()
    assert client.get(topup_url(platform)).status_code == 403
    assert start(client, platform, preset="50.00").status_code == 403
    assert TopUp.objects.count() == 1


def test_a_technical_member_sees_no_money(signed_in, platform, customer):
    topup = transfer_topup(customer, platform)
    client = signed_in("technical")

    assert client.get(reverse("credit:topups", kwargs={"platform_code": "es"})).status_code == 403
    assert client.get(detail_url(topup)).status_code == 403
    assert client.get(topup_url(platform)).status_code == 403


def test_another_accounts_top_up_is_not_found(signed_in, platform, customer):
    neighbour = RegistrationFactory(platform=platform).account
    theirs = transfer_topup(neighbour, platform)
    client = signed_in()
    kwargs = {"platform_code": platform.code, "topup_id": theirs.pk}

    assert client.get(reverse("credit:topup_detail", kwargs=kwargs)).status_code == 404
    assert client.post(reverse("credit:topup_proof", kwargs=kwargs)).status_code == 404
    assert client.get(reverse("credit:topup_proof_download", kwargs=kwargs)).status_code == 404
    # Nor under the account's own platform code when the top-up is on another platform.
    mine = transfer_topup(customer, platform)
    other_platform = PlatformFactory(code="ro", currency="EUR")
    RegistrationFactory(account=customer, platform=other_platform)
    wrong = {"platform_code": "ro", "topup_id": mine.pk}
    assert client.get(reverse("credit:topup_detail", kwargs=wrong)).status_code == 404


def test_the_list_shows_the_accounts_top_ups_only(signed_in, platform, customer):
    mine = transfer_topup(customer, platform, "33.00")
    transfer_topup(RegistrationFactory(platform=platform).account, platform, "44.00")

    html = (
        signed_in("billing")
        .get(reverse("credit:topups", kwargs={"platform_code": "es"}))
        .content.decode()
    )

    assert detail_url(mine) in html
    assert "€33.00" in html
    assert "€44.00" not in html


def test_the_credited_e_mail_goes_to_the_contact_address_in_the_accounts_language(
    platform, customer, committed, mailoutbox
):
    customer.language = "cs"
    customer.save(update_fields=["language"])
    topup = transfer_topup(customer, platform, "1200.50")

    committed(
        topup_services.topup_transfer_approve,
        topup_id=topup.pk,
        staff=UserFactory(is_staff=True),
    )

    [message] = mailoutbox
    assert message.to == [customer.email]
    assert "1 200,50 €" in message.subject  # Czech number format
    assert detail_url(topup) in message.body
