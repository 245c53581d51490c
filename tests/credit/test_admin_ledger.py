"""The staff interface of the ledger: read-only records, money moved only through the
adjust and overdraft pages, the statement import page and the review queue."""

from __future__ import annotations

from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from credit.models import BankStatement, LedgerAccount, StatementLine, TopUp, Transfer, Wallet
from tests.credit.test_statements import (
    balance,
    csv_file,
    fixture_text,
    ledger_counts,
    pending_transfer,
    vs,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def staff_with(*codenames: str):
    """A staff user holding exactly these credit permissions."""
    user = UserFactory(is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="credit", codename__in=codenames)
    )
    return user


def adjust_url(wallet: Wallet) -> str:
    return reverse("admin:credit_wallet_adjust", args=[wallet.pk])


def adjust_form(client, wallet: Wallet) -> dict[str, str]:
    """The adjust page's hidden idempotency key, as the browser would send it back."""
    page = client.get(adjust_url(wallet))
    assert page.status_code == 200
    return {"key": page.context["form"].initial["key"]}


def page_text(response) -> str:
    return response.content.decode()


# --- Wallets ----------------------------------------------------------------------------


def test_wallet_list_shows_balances_with_currency_and_finds_a_variable_symbol(
    staff_client, make_wallet
):
    rich = make_wallet("120.00")
    make_wallet("5.00")
    client = staff_client()

    found = client.get(reverse("admin:credit_wallet_changelist"), {"q": vs(rich)})

    assert found.status_code == 200
    assert list(found.context["cl"].result_list) == [rich]
    assert "€120.00" in page_text(found) or "120.00 €" in page_text(found)
    by_name = client.get(reverse("admin:credit_wallet_changelist"), {"q": rich.account.name})
    assert list(by_name.context["cl"].result_list) == [rich]


def test_a_wallet_page_is_read_only_with_links_to_the_money_pages(staff_client, make_wallet):
    wallet = make_wallet("10.00")

    page = staff_client().get(reverse("admin:credit_wallet_change", args=[wallet.pk]))

    assert page.status_code == 200
    assert 'name="_save"' not in page_text(page)
    assert adjust_url(wallet) in page_text(page)
    assert reverse("admin:credit_wallet_overdraft", args=[wallet.pk]) in page_text(page)


def test_adjusting_credit_needs_a_reason_and_writes_the_audit_log(staff_client, make_wallet):
    wallet = make_wallet("10.00")
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = staff_client(staff)
    form = adjust_form(client, wallet)
    before = ledger_counts()

    refused = client.post(
        adjust_url(wallet), {**form, "direction": "credit", "amount": "25.00", "reason": "  "}
    )

    assert refused.status_code == 200
    assert "Give the reason for the adjustment." in page_text(refused)
    assert ledger_counts() == before

    done = client.post(
        adjust_url(wallet),
        {**form, "direction": "credit", "amount": "25.00", "reason": "Goodwill for the outage"},
        follow=True,
    )

    assert done.redirect_chain[-1][0] == reverse("admin:credit_wallet_change", args=[wallet.pk])
    assert "The balance of" in page_text(done)
    assert balance(wallet) == Decimal("35.00")
    transfer = Transfer.objects.get(kind=Transfer.Kind.ADJUSTMENT)
    assert (transfer.created_by, transfer.memo) == (staff, "Adjustment: Goodwill for the outage")
    entry = LogEntry.objects.get_for_object(transfer).get()
    assert entry.actor == staff
    assert entry.changes_dict["reason"] == [None, "Goodwill for the outage"]


def test_taking_away_more_credit_than_the_wallet_holds_is_refused_clearly(
    staff_client, make_wallet
):
    wallet = make_wallet("10.00")
    client = staff_client()
    form = adjust_form(client, wallet)

    refused = client.post(
        adjust_url(wallet),
        {**form, "direction": "debit", "amount": "50.00", "reason": "Chargeback"},
    )

    assert refused.status_code == 200
    assert "Insufficient credit" in page_text(refused)
    assert balance(wallet) == Decimal("10.00")
    for bad, message in (("0", "more than zero"), ("abc", "as a number"), ("1.234", "2 decimal")):
        page = client.post(
            adjust_url(wallet), {**form, "direction": "credit", "amount": bad, "reason": "x"}
        )
        assert message in page_text(page)
    assert balance(wallet) == Decimal("10.00")


def test_an_adjustment_submitted_twice_moves_the_money_once(staff_client, make_wallet):
    wallet = make_wallet("10.00")
    client = staff_client()
    data = {**adjust_form(client, wallet), "direction": "credit", "amount": "5.00", "reason": "x"}

    client.post(adjust_url(wallet), data)
    client.post(adjust_url(wallet), data)

    assert balance(wallet) == Decimal("15.00")
    assert Transfer.objects.filter(kind=Transfer.Kind.ADJUSTMENT).count() == 1


def test_staff_without_the_permission_cannot_adjust_credit_or_overdraft(staff_client, make_wallet):
    wallet = make_wallet("10.00")
    client = staff_client(staff_with("view_wallet", "view_transfer"))

    page = client.get(reverse("admin:credit_wallet_change", args=[wallet.pk]))
    tried = client.post(
        adjust_url(wallet),
        {"key": "0" * 32, "direction": "credit", "amount": "500.00", "reason": "for me"},
    )
    overdraft = client.post(
        reverse("admin:credit_wallet_overdraft", args=[wallet.pk]), {"limit": "1000"}
    )

    assert page.status_code == 200
    assert adjust_url(wallet) not in page_text(page)
    assert (tried.status_code, overdraft.status_code) == (403, 403)
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.overdraft_limit) == (Decimal("10.00"), Decimal("0.00"))


def test_setting_an_overdraft_is_checked_and_audited(staff_client, make_wallet):
    wallet = make_wallet("10.00")
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = staff_client(staff)
    url = reverse("admin:credit_wallet_overdraft", args=[wallet.pk])

    negative = client.post(url, {"limit": "-5"})
    done = client.post(url, {"limit": "50.00"})

    assert "cannot be negative" in page_text(negative)
    assert done.status_code == 302
    wallet.refresh_from_db()
    assert wallet.overdraft_limit == Decimal("50.00")
    entry = LogEntry.objects.get_for_object(wallet).get()
    assert (entry.actor, entry.changes_dict["overdraft_limit"]) == (staff, ["0.00", "50.00"])


# --- Read-only ledger records --------------------------------------------------------------


def test_transfers_are_read_only_and_show_their_entries(staff_client, make_wallet):
    wallet = make_wallet("10.00")
    transfer = Transfer.objects.get(wallet=wallet)
    client = staff_client()

    page = client.get(reverse("admin:credit_transfer_change", args=[transfer.pk]))

    assert page.status_code == 200
    assert 'name="_save"' not in page_text(page)
    assert "entries (legs of the transfer)" in page_text(page).lower()
    assert page_text(page).count("€10.00") + page_text(page).count("-€10.00") >= 2
    assert client.get(reverse("admin:credit_transfer_add")).status_code == 403
    assert (
        client.post(reverse("admin:credit_transfer_delete", args=[transfer.pk])).status_code == 403
    )
    history = client.get(reverse("admin:credit_transfer_changelist"), {"wallet": wallet.pk})
    assert list(history.context["cl"].result_list) == [transfer]


@pytest.mark.parametrize("model", ["ledgeraccount", "lot", "autorecharge", "wallet"])
def test_ledger_records_cannot_be_added_or_deleted_in_the_admin(staff_client, make_wallet, model):
    make_wallet("10.00")
    client = staff_client()

    assert client.get(reverse(f"admin:credit_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:credit_{model}_add")).status_code == 403


def test_ledger_accounts_show_the_sum_of_their_entries(staff_client, make_wallet):
    wallet = make_wallet("10.00")
    client = staff_client()

    page = client.get(reverse("admin:credit_ledgeraccount_changelist"))

    shown = {account.pk: account.entries_total for account in page.context["cl"].result_list}
    assert shown[wallet.ledger_account_id] == Decimal("10.00")
    clearing = LedgerAccount.objects.get(kind=LedgerAccount.Kind.GATEWAY_CLEARING)
    assert shown[clearing.pk] == Decimal("-10.00")


# --- Statement import page ----------------------------------------------------------------


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_staff_import_a_statement_and_see_what_was_credited(
    staff_client, make_wallet, platform, django_capture_on_commit_callbacks
):
    wallet = make_wallet()
    pending_transfer(wallet, "100.00")
    client = staff_client()
    listing = client.get(reverse("admin:credit_bankstatement_changelist"))
    assert reverse("admin:credit_bankstatement_import") in page_text(listing)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:credit_bankstatement_import"),
            {
                "platform": platform.pk,
                "file": upload("kb.xml", fixture_text("camt053_v02.xml", vs_a=vs(wallet)).encode()),
            },
            follow=True,
        )

    statement = BankStatement.objects.get()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:credit_bankstatement_change", args=[statement.pk]
    )
    assert "Credited automatically: 1. Waiting for review: 2." in page_text(response)
    assert "KB-260303-000042" in page_text(response)  # the lines are listed on the page
    assert balance(wallet) == Decimal("100.00")
    listing = client.get(reverse("admin:credit_bankstatement_changelist"))
    waiting_url = reverse("admin:credit_statementline_changelist") + (
        f"?statement={statement.pk}&amp;status=unmatched"
    )
    assert waiting_url in page_text(listing)
    waiting = client.get(waiting_url.replace("&amp;", "&"))
    assert len(waiting.context["cl"].result_list) == 2


def test_a_refused_file_shows_the_reason_and_imports_nothing(staff_client, platform):
    client = staff_client()
    foreign = fixture_text("camt053_v02.xml").replace(
        "CZ6508000000192000145399", "DE89370400440532013000"
    )

    response = client.post(
        reverse("admin:credit_bankstatement_import"),
        {"platform": platform.pk, "file": upload("kb.xml", foreign.encode())},
    )

    assert response.status_code == 200
    assert "Nothing was imported: The statement is for the account DE89370400440532013000" in (
        page_text(response)
    )
    assert BankStatement.objects.count() == StatementLine.objects.count() == 0


def test_staff_without_the_import_permission_cannot_import(staff_client, platform):
    client = staff_client(staff_with("view_bankstatement"))

    listing = client.get(reverse("admin:credit_bankstatement_changelist"))
    response = client.post(
        reverse("admin:credit_bankstatement_import"),
        {"platform": platform.pk, "file": upload("s.csv", csv_file())},
    )

    assert reverse("admin:credit_bankstatement_import") not in page_text(listing)
    assert response.status_code == 403
    assert BankStatement.objects.count() == 0


# --- The review queue ---------------------------------------------------------------------


@pytest.fixture
def queue(make_wallet, platform):
    """One payment credited automatically, two waiting: a known account paying an amount it
    has no top-up for, and an unknown variable symbol."""
    from credit.services.statements import statement_import

    known, matched = make_wallet(), make_wallet()
    pending_transfer(matched, "30.00")
    statement_import(
        platform=platform,
        file=csv_file(
            f"2026-03-05,30.00,EUR,{vs(matched)},R-MATCHED,Payer,,top-up",
            f"2026-03-05,42.00,EUR,{vs(known)},R-KNOWN,Known Payer,,top-up",
            "2026-03-06,7.00,EUR,9999999999,R-UNKNOWN,Stranger,,who knows",
        ),
        filename="s.csv",
        staff=None,
    )
    return known, matched


def test_the_review_queue_shows_waiting_payments_unless_asked_otherwise(staff_client, queue):
    known, _matched = queue
    client = staff_client()
    url = reverse("admin:credit_statementline_changelist")

    waiting = client.get(url)
    everything = client.get(url, {"status": "all"})
    credited = client.get(url, {"status": "matched"})

    assert [line.bank_reference for line in waiting.context["cl"].result_list] == [
        "R-KNOWN",
        "R-UNKNOWN",
    ]
    assert known.account.name in page_text(waiting)  # the account its VS names
    assert "unknown variable symbol" in page_text(waiting)
    assert len(everything.context["cl"].result_list) == 3
    assert [line.bank_reference for line in credited.context["cl"].result_list] == ["R-MATCHED"]


def test_staff_find_the_account_and_credit_a_waiting_payment_as_a_new_top_up(
    staff_client, queue, django_capture_on_commit_callbacks
):
    known, _matched = queue
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = staff_client(staff)
    line = StatementLine.objects.get(bank_reference="R-UNKNOWN")
    url = reverse("admin:credit_statementline_assign", args=[line.pk])

    search = client.get(url, {"q": str(vs(known))})
    assert known.account.name in page_text(search)
    nothing = client.get(url, {"q": "no such customer"})
    assert "No account registered on" in page_text(nothing)
    choose = client.get(url, {"account": known.account.pk})
    assert "Credit €7.00 as a new bank-transfer top-up" in page_text(choose)
    missing_choice = client.post(url, {"account": known.account.pk})
    assert "Choose a pending top-up, or to credit a new top-up." in page_text(missing_choice)
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            url,
            {"account": known.account.pk, "choice": "new", "note": "Paid by phone"},
            follow=True,
        )

    assert "was assigned to" in page_text(done)
    line.refresh_from_db()
    assert (line.status, line.reviewed_by, line.review_note) == (
        StatementLine.Status.ASSIGNED,
        staff,
        "Paid by phone",
    )
    assert line.topup.state == TopUp.State.PAID
    assert balance(known) == Decimal("7.00")
    assert LogEntry.objects.get_for_object(line).get().actor == staff
    again = client.post(url, {"account": known.account.pk, "choice": "new"}, follow=True)
    assert "no longer waiting for review" in page_text(again)
    assert balance(known) == Decimal("7.00")


def test_staff_assign_a_waiting_payment_to_the_pending_top_up_it_pays(staff_client, queue):
    known, _matched = queue
    topup = pending_transfer(known, "42.00")
    client = staff_client()
    line = StatementLine.objects.get(bank_reference="R-KNOWN")
    url = reverse("admin:credit_statementline_assign", args=[line.pk])

    choose = client.get(url, {"account": known.account.pk})
    client.post(url, {"account": known.account.pk, "choice": str(topup.pk)})

    assert "The pending top-up of €42.00" in page_text(choose)
    topup.refresh_from_db()
    assert topup.state == TopUp.State.PAID
    assert balance(known) == Decimal("42.00")


def test_rejecting_from_the_queue_needs_a_reason_and_moves_no_money(staff_client, queue):
    client = staff_client()
    lines = StatementLine.objects.filter(status=StatementLine.Status.UNMATCHED)
    changelist = reverse("admin:credit_statementline_changelist")
    selected = {"action": "reject_action", "_selected_action": [line.pk for line in lines]}
    before = ledger_counts()

    confirm = client.post(changelist, selected)
    no_reason = client.post(changelist, {**selected, "confirm": "yes", "note": ""})
    done = client.post(
        changelist, {**selected, "confirm": "yes", "note": "Returned to sender"}, follow=True
    )

    assert "will be marked as rejected" in page_text(confirm)
    assert "Say why the payment is rejected." in page_text(no_reason)
    assert "Rejected 2 payment(s); no credit was moved." in page_text(done)
    assert set(lines.model.objects.values_list("status", flat=True)) == {"matched", "rejected"}
    assert ledger_counts() == before


def test_staff_without_the_review_permission_cannot_assign_or_reject(staff_client, queue):
    known, _matched = queue
    client = staff_client(staff_with("view_statementline"))
    line = StatementLine.objects.get(bank_reference="R-UNKNOWN")

    page = client.get(reverse("admin:credit_statementline_change", args=[line.pk]))
    assign = client.post(
        reverse("admin:credit_statementline_assign", args=[line.pk]),
        {"account": known.account.pk, "choice": "new"},
    )
    reject = client.post(
        reverse("admin:credit_statementline_reject", args=[line.pk]),
        {"confirm": "yes", "note": "mine"},
    )

    assert page.status_code == 200
    assert "Assign to account" not in page_text(page)
    assert (assign.status_code, reject.status_code) == (403, 403)
    line.refresh_from_db()
    assert line.status == StatementLine.Status.UNMATCHED
