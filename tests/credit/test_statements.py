"""Bank statements: reading camt.053 and our CSV, matching payments to pending top-ups,
importing once, refusing bad files whole, and the staff review of what did not match."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.core.management import CommandError, call_command
from djmoney.money import Money

from credit.exceptions import StatementError
from credit.models import BankStatement, Entry, StatementLine, TopUp, Transfer, Wallet
from credit.services import ledger
from credit.services import statements as statement_services
from credit.services.statements import (
    statement_import,
    statement_line_assign,
    statement_line_reject,
)
from credit.services.topups import topup_transfer_start
from credit.statements import statement_parse
from credit.statements.csv_layout import HEADER
from credit.statements.matching import variable_symbol_from
from payments.models import State as PaymentState
from tests.conftest import run_manage
from tests.factories import UserFactory

FIXTURES = Path(__file__).parent / "fixtures"
UNKNOWN_VS = "9999999999"
pytestmark = pytest.mark.django_db


def fixture_text(name: str, **symbols: object) -> str:
    """A hand-written statement in tests/credit/fixtures with the accounts' variable symbols."""
    values = {"vs_a": UNKNOWN_VS, "vs_b": UNKNOWN_VS, "vs_c": UNKNOWN_VS, **symbols}
    return (FIXTURES / name).read_text(encoding="utf-8").format(**values)


def csv_file(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def pending_transfer(wallet: Wallet, amount: str) -> TopUp:
    """A bank-transfer top-up waiting for its money, started as the portal starts it."""
    return topup_transfer_start(
        wallet=wallet,
        amount=Money(amount, wallet.currency),
        terms_accepted=True,
        created_by=None,
    )


def vs(wallet: Wallet) -> int:
    return wallet.account.variable_symbol


def balance(wallet: Wallet) -> Decimal:
    wallet.refresh_from_db()
    return wallet.balance


def ledger_counts() -> dict[str, int]:
    return {
        "statements": BankStatement.objects.count(),
        "lines": StatementLine.objects.count(),
        "transfers": Transfer.objects.count(),
        "entries": Entry.objects.count(),
        "paid_topups": TopUp.objects.filter(state=TopUp.State.PAID).count(),
    }


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a call and then its on-commit work (payment announcements, e-mails), as a commit
    would: the payments handler credits top-ups there."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
def customers(make_wallet):
    """Three customers' wallets on the platform (a, b, c), empty."""
    return make_wallet(), make_wallet(), make_wallet()


# --- Reading ------------------------------------------------------------------------------


def test_camt053_001_02_gives_its_three_credits_and_ignores_the_debit():
    parsed = statement_parse(
        fixture_text("camt053_v02.xml", vs_a=123, vs_b="0000004567", vs_c=89).encode(),
        filename="kb.xml",
    )

    assert parsed.format == "camt053"
    assert parsed.statement_id == "192000145399-2026-062"
    assert parsed.iban == "CZ6508000000192000145399"
    assert parsed.currency == "EUR"
    assert (str(parsed.period_from), str(parsed.period_to)) == ("2026-03-03", "2026-03-03")
    assert parsed.ignored == 1
    assert [
        (line.bank_reference, line.amount, line.variable_symbol, line.counterparty)
        for line in parsed.lines
    ] == [
        ("KB-260303-000017", Decimal("100.00"), "123", "Acme Digital s.r.o."),
        ("KB-260303-000023", Decimal("250.00"), "4567", "Jana Novakova"),
        ("KB-260303-000042", Decimal("75.50"), "89", "Petr Svoboda"),
    ]
    assert parsed.lines[0].counterparty_account == "CZ5503000000000123456789"
    assert parsed.lines[1].counterparty_account == "2400123456/2010"
    assert parsed.lines[2].message == "Kredit VS:89 brezen"


def test_camt053_001_10_reads_the_newer_elements_and_digests_a_booking_without_reference():
    text = fixture_text("camt053_v10.xml", vs_a=123, vs_b=4567, vs_c=89).encode()

    parsed = statement_parse(text, filename="statement")
    again = statement_parse(text, filename="statement")

    assert parsed.statement_id == "STMT-2026-03-04-EUR-001"
    assert parsed.iban == "CZ6508000000192000145399"  # written with spaces in the file
    assert parsed.ignored == 2  # a debit and a pending (PDNG) credit
    assert [(line.amount, line.variable_symbol) for line in parsed.lines] == [
        (Decimal("40.00"), "123"),
        (Decimal("60.00"), "4567"),
        (Decimal("15.00"), "89"),
    ]
    assert parsed.lines[0].counterparty == "Acme Digital s.r.o."  # Dbtr/Pty/Nm
    assert str(parsed.lines[0].booked_on) == "2026-03-04"  # BookgDt/DtTm
    assert parsed.lines[2].bank_reference.startswith("digest:")
    assert parsed.lines[2].bank_reference == again.lines[2].bank_reference


def test_our_csv_layout_is_read_with_quoted_cells_and_a_symbol_in_the_message():
    parsed = statement_parse(
        fixture_text("statement.csv", vs_a=123, vs_b=4567, vs_c=89).encode(),
        filename="march.csv",
    )

    assert parsed.format == "csv"
    assert parsed.statement_id.startswith("csv:")
    assert [
        (line.bank_reference, line.amount, line.variable_symbol, line.counterparty)
        for line in parsed.lines
    ] == [
        ("CSV-20260305-01", Decimal("100.00"), "123", "Acme Digital s.r.o."),
        ("CSV-20260305-02", Decimal("19.99"), "4567", "Novakova, Jana"),
        ("CSV-20260306-01", Decimal("75.50"), "89", "Petr Svoboda"),
    ]
    assert (str(parsed.period_from), str(parsed.period_to)) == ("2026-03-05", "2026-03-06")


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["VS:123"], "123"),
        (["/VS/0000123"], "123"),
        (["/VS123/SS/KS0308"], "123"),
        (["Platba vs 55 dekuji"], "55"),
        (["1234567890"], "1234567890"),
        (["12345678901"], ""),  # eleven digits: not a variable symbol
        (["Invoice 2024"], ""),  # a number inside free text is not one
        (["0"], ""),
        (["INV-7", "4567", "VS:89"], "89"),  # an explicit VS wins over a bare reference
        (["INV-7", "4567"], "4567"),
        ([None, ""], ""),
    ],
)
def test_variable_symbol_is_found_in_the_usual_places(texts, expected):
    assert variable_symbol_from(texts) == expected


# --- Importing ----------------------------------------------------------------------------


def test_statement_with_nine_of_ten_payments_matching_credits_exactly_those_nine(
    make_wallet, platform, staff, committed
):
    wallets = [make_wallet() for _ in range(10)]
    topups = [pending_transfer(wallet, f"{20 + index}.00") for index, wallet in enumerate(wallets)]
    rows = [
        f"2026-03-05,{20 + index}.00,EUR,{vs(wallet)},REF-{index},Payer {index},,top-up"
        for index, wallet in enumerate(wallets[:9])
    ]
    rows.append(f"2026-03-05,99.00,EUR,{vs(wallets[9])},REF-9,Payer 9,,top-up")  # wrong amount

    result = committed(
        statement_import, platform=platform, file=csv_file(*rows), filename="s.csv", staff=staff
    )

    assert (result.matched, result.waiting, result.duplicates) == (9, 1, 0)
    assert [balance(wallet) for wallet in wallets] == [
        *(Decimal(f"{20 + index}.00") for index in range(9)),
        Decimal("0.00"),
    ]
    assert [TopUp.objects.get(pk=topup.pk).state for topup in topups] == [
        *([TopUp.State.PAID] * 9),
        TopUp.State.PENDING,
    ]
    waiting = StatementLine.objects.get(status=StatementLine.Status.UNMATCHED)
    assert (waiting.bank_reference, waiting.topup) == ("REF-9", None)
    assert Transfer.objects.filter(kind=Transfer.Kind.TOPUP_TRANSFER).count() == 9
    assert ledger.ledger_mismatches() == []


def test_camt_import_credits_the_matching_top_up_and_leaves_the_others_for_review(
    customers, platform, staff, committed
):
    a, b, c = customers
    paid = pending_transfer(a, "100.00")
    other_amount = pending_transfer(b, "200.00")  # b sends 250.00: not this top-up
    text = fixture_text("camt053_v02.xml", vs_a=vs(a), vs_b=vs(b))  # c's payment: unknown VS

    result = committed(
        statement_import, platform=platform, file=text.encode(), filename="kb.xml", staff=staff
    )

    assert (result.already_imported, result.matched, result.waiting, result.ignored) == (
        False,
        1,
        2,
        1,
    )
    assert "Credited automatically: 1. Waiting for review: 2." in result.summary
    assert (balance(a), balance(b), balance(c)) == (Decimal("100.00"), 0, 0)
    paid.refresh_from_db()
    other_amount.refresh_from_db()
    assert paid.state == TopUp.State.PAID
    assert other_amount.state == TopUp.State.PENDING
    assert paid.payment.state == PaymentState.CAPTURED
    assert paid.payment.gateway_reference == "KB-260303-000017"
    lines = {line.bank_reference: line for line in result.statement.lines.all()}
    assert lines["KB-260303-000017"].status == StatementLine.Status.MATCHED
    assert lines["KB-260303-000017"].topup == paid
    assert lines["KB-260303-000023"].status == StatementLine.Status.UNMATCHED
    assert lines["KB-260303-000042"].status == StatementLine.Status.UNMATCHED
    statement = result.statement
    assert (statement.imported_by, statement.iban, statement.format) == (
        staff,
        "CZ6508000000192000145399",
        "camt053",
    )
    # The payments handler ran on commit too, and credited nothing a second time.
    assert Transfer.objects.filter(wallet=a).count() == 1


def test_importing_the_same_statement_twice_credits_nothing_twice_and_says_so(
    customers, platform, staff, committed
):
    a, b, _c = customers
    pending_transfer(a, "100.00")
    text = fixture_text("camt053_v02.xml", vs_a=vs(a), vs_b=vs(b)).encode()
    committed(statement_import, platform=platform, file=text, filename="kb.xml", staff=staff)
    before = ledger_counts()
    pending_transfer(b, "250.00")  # arrives after the first import: still not credited again

    again = committed(
        statement_import, platform=platform, file=text, filename="kb.xml", staff=staff
    )

    assert again.already_imported
    assert (again.matched, again.waiting, again.duplicates) == (0, 0, 3)
    assert "was already imported" in again.summary
    assert "nothing was credited again" in again.summary
    assert ledger_counts() == before
    assert (balance(a), balance(b)) == (Decimal("100.00"), 0)


def test_a_payment_in_two_different_statements_is_recorded_once(
    customers, platform, staff, committed
):
    a, _b, _c = customers
    pending_transfer(a, "100.00")
    committed(
        statement_import,
        platform=platform,
        file=fixture_text("camt053_v02.xml", vs_a=vs(a)).encode(),
        filename="kb.xml",
        staff=staff,
    )
    pending_transfer(a, "100.00")
    overlapping = csv_file(
        f"2026-03-03,100.00,EUR,{vs(a)},KB-260303-000017,Acme Digital s.r.o.,,the same payment",
    )

    result = committed(
        statement_import, platform=platform, file=overlapping, filename="s.csv", staff=staff
    )

    assert not result.already_imported
    assert (result.matched, result.duplicates) == (0, 1)
    assert balance(a) == Decimal("100.00")


def test_an_interrupted_import_is_finished_by_importing_the_file_again(
    customers, platform, staff, committed, monkeypatch
):
    a, _b, _c = customers
    topup = pending_transfer(a, "100.00")
    text = fixture_text("camt053_v02.xml", vs_a=vs(a)).encode()

    def crash(**kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(statement_services, "transactions_transfers_received", crash)
    with pytest.raises(RuntimeError):
        statement_import(platform=platform, file=text, filename="kb.xml", staff=staff)
    line = StatementLine.objects.get(bank_reference="KB-260303-000017")
    assert (line.status, line.topup, balance(a)) == (StatementLine.Status.MATCHED, topup, 0)
    monkeypatch.undo()

    result = committed(
        statement_import, platform=platform, file=text, filename="kb.xml", staff=staff
    )

    assert result.already_imported
    assert result.resumed == 1
    assert "credited now" in result.summary
    assert balance(a) == Decimal("100.00")
    assert Transfer.objects.filter(wallet=a).count() == 1


def test_a_matched_top_up_that_failed_before_crediting_goes_back_to_review(
    customers, platform, staff, committed, monkeypatch
):
    from credit.services.topups import topup_fail

    a, _b, _c = customers
    topup = pending_transfer(a, "100.00")
    text = fixture_text("camt053_v02.xml", vs_a=vs(a)).encode()
    monkeypatch.setattr(
        statement_services,
        "transactions_transfers_received",
        lambda **kwargs: (_ for _ in ()).throw(RuntimeError("crash")),
    )
    with pytest.raises(RuntimeError):
        statement_import(platform=platform, file=text, filename="kb.xml", staff=staff)
    monkeypatch.undo()
    topup_fail(topup_id=topup.pk)

    committed(statement_import, platform=platform, file=text, filename="kb.xml", staff=staff)

    line = StatementLine.objects.get(bank_reference="KB-260303-000017")
    assert (line.status, line.topup) == (StatementLine.Status.UNMATCHED, None)
    assert "failed" in line.review_note
    assert balance(a) == 0


def _foreign_iban(text: str) -> bytes:
    return text.replace("CZ6508000000192000145399", "DE89370400440532013000").encode()


def _dollars(text: str) -> bytes:
    return (
        text.replace('Ccy="EUR"', 'Ccy="USD"').replace("<Ccy>EUR</Ccy>", "<Ccy>USD</Ccy>").encode()
    )


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&lol2;
</BkToCstmrStmt></Document>"""


@pytest.mark.parametrize(
    ("make_file", "filename", "reason"),
    [
        (lambda text: _foreign_iban(text), "kb.xml", "for the account DE89370400440532013000"),
        (lambda text: _dollars(text), "kb.xml", "in USD"),
        (lambda text: text.encode()[: len(text) // 2], "kb.xml", "not well-formed XML"),
        (lambda text: b"\x89PNG\r\n\x1a\n\x00\x00garbage\xff\xfe", "photo.png", "neither"),
        (lambda text: b"Hello, this is not a statement\n", "notes.txt", "lacks the column"),
        (
            lambda text: text.replace("camt.053.001.02", "camt.054.001.02").encode(),
            "kb.xml",
            "camt.054",
        ),
        (lambda text: BOMB, "kb.xml", "document type"),
        (
            lambda text: csv_file(
                "2026-03-05,10.00,EUR,1,R1,A,,ok",
                "2026-03-05,12;50,EUR,1,R2,A,,bad",
            ),
            "s.csv",
            "Row 3: the amount “12;50”",
        ),
        (
            lambda text: b"booked_on,amount,currency,variable_symbol\n2026-03-05,1.00,EUR,1\n",
            "s.csv",
            "bank_reference, counterparty, counterparty_account, message",
        ),
        (
            lambda text: csv_file("2026-03-05,10.00,EUR,1,R1,A,,ok", "05.03.2026,1.00,EUR,,R2,,,"),
            "s.csv",
            "Row 3: the date booked_on",
        ),
        (
            lambda text: csv_file("2026-03-05,10.00,CZK,1,R1,A,,ok"),
            "s.csv",
            "Row 2 is in CZK",
        ),
    ],
    ids=[
        "foreign-iban",
        "foreign-currency",
        "truncated-xml",
        "garbage",
        "text-not-csv",
        "camt054",
        "entity-bomb",
        "csv-bad-amount",
        "csv-missing-columns",
        "csv-bad-date",
        "csv-other-currency",
    ],
)
def test_a_bad_or_foreign_statement_is_refused_with_its_reason_and_imports_nothing(
    customers, platform, staff, committed, make_file, filename, reason
):
    a, b, c = customers
    for wallet, amount in ((a, "100.00"), (b, "250.00"), (c, "75.50")):
        pending_transfer(wallet, amount)
    text = fixture_text("camt053_v02.xml", vs_a=vs(a), vs_b=vs(b), vs_c=vs(c))
    before = ledger_counts()

    with pytest.raises(StatementError) as refused:
        committed(
            statement_import,
            platform=platform,
            file=make_file(text),
            filename=filename,
            staff=staff,
        )

    assert reason in refused.value.message
    assert ledger_counts() == before
    assert TopUp.objects.filter(state=TopUp.State.PENDING).count() == 3


# --- Review -------------------------------------------------------------------------------


@pytest.fixture
def waiting_line(customers, platform, staff, committed):
    """c's payment of 75.50 arrived without a variable symbol: it waits for review."""
    rows = csv_file("2026-03-06,75.50,EUR,,CSV-1,Petr Svoboda,SK31120000001987,forgot the VS")
    committed(statement_import, platform=platform, file=rows, filename="s.csv", staff=staff)
    return StatementLine.objects.get(bank_reference="CSV-1")


def test_assigning_a_waiting_payment_to_a_pending_top_up_credits_it_once(
    customers, waiting_line, staff, committed
):
    _a, _b, c = customers
    topup = pending_transfer(c, "75.50")

    line = committed(
        statement_line_assign,
        line_id=waiting_line.pk,
        account=c.account,
        staff=staff,
        topup_id=topup.pk,
        note="Customer called: forgot the VS",
    )

    assert line.status == StatementLine.Status.ASSIGNED
    assert (line.topup, line.reviewed_by, line.review_note) == (
        topup,
        staff,
        "Customer called: forgot the VS",
    )
    assert line.reviewed_at is not None
    assert balance(c) == Decimal("75.50")
    assert TopUp.objects.get(pk=topup.pk).state == TopUp.State.PAID
    entry = LogEntry.objects.get_for_object(line).get()
    assert entry.actor == staff
    assert entry.changes_dict["status"] == ["unmatched", "assigned"]

    with pytest.raises(StatementError, match="no longer waiting"):
        statement_line_assign(line_id=line.pk, account=c.account, staff=staff)
    assert balance(c) == Decimal("75.50")
    assert Transfer.objects.filter(wallet=c).count() == 1


def test_assigning_as_a_new_top_up_creates_and_credits_one(
    customers, waiting_line, staff, committed
):
    _a, b, _c = customers

    line = committed(statement_line_assign, line_id=waiting_line.pk, account=b.account, staff=staff)

    topup = line.topup
    assert (topup.method, topup.state, topup.amount, topup.created_by) == (
        TopUp.Method.TRANSFER,
        TopUp.State.PAID,
        Decimal("75.50"),
        staff,
    )
    assert topup.payment.state == PaymentState.CAPTURED
    assert topup.payment.gateway == "bank_transfer"
    assert balance(b) == Decimal("75.50")
    assert ledger.ledger_mismatches() == []


def test_a_top_up_of_another_amount_or_account_cannot_be_assigned(customers, waiting_line, staff):
    a, _b, c = customers
    wrong_amount = pending_transfer(c, "80.00")
    someone_else = pending_transfer(a, "75.50")

    for topup in (wrong_amount, someone_else):
        with pytest.raises(StatementError, match="not a pending bank-transfer top-up"):
            statement_line_assign(
                line_id=waiting_line.pk, account=c.account, staff=staff, topup_id=topup.pk
            )

    waiting_line.refresh_from_db()
    assert waiting_line.status == StatementLine.Status.UNMATCHED
    assert balance(a) == balance(c) == 0


def test_an_account_of_another_platform_cannot_be_assigned(waiting_line, staff):
    from tests.factories import RegistrationFactory

    stranger = RegistrationFactory().account

    with pytest.raises(StatementError, match="is not registered on"):
        statement_line_assign(line_id=waiting_line.pk, account=stranger, staff=staff)


def test_rejecting_a_payment_needs_a_reason_and_moves_no_money(waiting_line, staff):
    before = ledger_counts()

    with pytest.raises(StatementError, match="Say why"):
        statement_line_reject(line_id=waiting_line.pk, staff=staff, note="  ")
    line = statement_line_reject(line_id=waiting_line.pk, staff=staff, note="Returned to sender")

    assert (line.status, line.reviewed_by, line.review_note) == (
        StatementLine.Status.REJECTED,
        staff,
        "Returned to sender",
    )
    assert ledger_counts() == before
    entry = LogEntry.objects.get_for_object(line).get()
    assert (entry.actor, entry.changes_dict["note"]) == (staff, [None, "Returned to sender"])
    with pytest.raises(StatementError, match="no longer waiting"):
        statement_line_reject(line_id=line.pk, staff=staff, note="again")


# --- The management command -------------------------------------------------------------


def test_the_import_command_prints_the_summary(customers, platform, staff, tmp_path):
    a, _b, _c = customers
    pending_transfer(a, "100.00")
    path = tmp_path / "kb.xml"
    path.write_text(fixture_text("camt053_v02.xml", vs_a=vs(a)), encoding="utf-8")
    first, second = StringIO(), StringIO()

    call_command(
        "import_statement", str(path), platform=platform.code, staff_email=staff.email, stdout=first
    )
    call_command("import_statement", str(path), platform=platform.code, stdout=second)

    assert "Statement 192000145399-2026-062 imported." in first.getvalue()
    assert "Credited automatically: 1. Waiting for review: 2." in first.getvalue()
    assert "was already imported" in second.getvalue()
    assert BankStatement.objects.get().imported_by == staff
    assert balance(a) == Decimal("100.00")


def test_the_import_command_refuses_an_unknown_platform_or_staff_user(platform, tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(csv_file())

    with pytest.raises(CommandError, match="no platform with the code 'nope'"):
        call_command("import_statement", str(path), platform="nope")
    with pytest.raises(CommandError, match="no staff user"):
        call_command(
            "import_statement", str(path), platform=platform.code, staff_email="x@example.com"
        )


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_the_import_command_exits_0_with_the_summary_and_1_with_the_reason(
    platform, make_wallet, tmp_path, service_env
):
    """Run as an operator runs it: its own process, its exit status, its output."""
    wallet = make_wallet()
    pending_transfer(wallet, "100.00")
    good = tmp_path / "kb.xml"
    good.write_text(fixture_text("camt053_v02.xml", vs_a=vs(wallet)), encoding="utf-8")
    cut = tmp_path / "cut.xml"
    cut.write_text(fixture_text("camt053_v02.xml")[:900], encoding="utf-8")

    imported = run_manage(
        "import_statement", "--platform", platform.code, str(good), env=service_env
    )
    refused = run_manage("import_statement", "--platform", platform.code, str(cut), env=service_env)

    assert imported.returncode == 0, imported.stderr
    assert "Credited automatically: 1. Waiting for review: 2." in imported.stdout
    assert balance(wallet) == Decimal("100.00")
    assert refused.returncode == 1
    assert "cut.xml was not imported: The file is not well-formed XML" in refused.stderr
    assert BankStatement.objects.count() == 1


# --- Concurrency --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_the_same_statement_imported_four_times_at_once_credits_once(make_wallet, platform):
    from tests.credit.test_concurrency import in_threads

    wallet = make_wallet()
    pending_transfer(wallet, "100.00")
    text = fixture_text("camt053_v02.xml", vs_a=vs(wallet)).encode()

    results = in_threads(
        4, lambda i: statement_import(platform=platform, file=text, filename="kb.xml", staff=None)
    )

    assert not [result for result in results if isinstance(result, Exception)], results
    assert sorted(result.already_imported for result in results) == [False, True, True, True]
    assert sum(result.matched for result in results) == 1
    assert balance(wallet) == Decimal("100.00")
    assert (BankStatement.objects.count(), StatementLine.objects.count()) == (1, 3)
    assert ledger.ledger_mismatches() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_two_payments_for_one_top_up_in_two_statements_at_once_credit_it_once(
    make_wallet, platform
):
    from tests.credit.test_concurrency import in_threads

    wallet = make_wallet()
    topup = pending_transfer(wallet, "50.00")
    files = [
        csv_file(f"2026-03-05,50.00,EUR,{vs(wallet)},BANK-{index},Payer,,top-up")
        for index in range(2)
    ]

    results = in_threads(
        2,
        lambda i: statement_import(
            platform=platform, file=files[i], filename=f"{i}.csv", staff=None
        ),
    )

    assert not [result for result in results if isinstance(result, Exception)], results
    assert sorted((result.matched, result.waiting) for result in results) == [(0, 1), (1, 0)]
    assert balance(wallet) == Decimal("50.00")
    assert StatementLine.objects.get(status=StatementLine.Status.MATCHED).topup_id == topup.pk


# --- Settling in batches ------------------------------------------------------------------


def _settled_rows(topup: TopUp, reference_tag: str) -> dict:
    """Everything settling a top-up's payment writes, without ids, times and the parts
    that differ by nature between two customers (wallet, payment and top-up ids)."""
    from credit.models import Allocation, Lot
    from payments.models import Transaction, TransactionEvent

    topup.refresh_from_db()
    payment = Transaction.objects.get(pk=topup.payment_id)
    transfer = topup.transfer
    wallet = Wallet.objects.get(pk=topup.wallet_id)
    lot = Lot.objects.get(transfer=transfer)
    return {
        "topup": (topup.state, topup.paid_at is not None, topup.proof_status),
        "payment": (
            payment.state,
            payment.captured_amount,
            payment.gateway_reference.replace(reference_tag, "<tag>"),
            payment.authorized_at is not None,
            payment.captured_at is not None,
            payment.pending_operation,
            payment.pending_amount,
            payment.pending_since,
            payment.failure_code,
            payment.next_action_url,
            payment.closed_at,
        ),
        "events": list(
            TransactionEvent.objects.filter(transaction=payment)
            .order_by("id")
            .values_list(
                "kind",
                "action",
                "old_state",
                "new_state",
                "amount",
                "gateway_code",
                "message",
                "author_id",
                "system_actor",
            )
        ),
        "transfer": (
            transfer.kind,
            transfer.idempotency_key == f"topup-{topup.pk}",
            transfer.fingerprint
            == ledger._fingerprint(
                op="credit",
                wallet=wallet.pk,
                kind=transfer.kind,
                amount=transfer.amount,
                payment=payment.pk,
            ),
            transfer.amount,
            transfer.currency,
            transfer.memo,
            transfer.wallet_id == wallet.pk,
            transfer.payment_id == payment.pk,
            transfer.created_by_id,
            transfer.shop_id,
        ),
        "entries": [
            (
                entry.ledger_account.kind,
                entry.ledger_account_id == wallet.ledger_account_id,
                entry.amount,
                entry.currency,
                entry.balance_after,
            )
            for entry in transfer.entries.select_related("ledger_account").order_by("id")
        ],
        "lot": (lot.source, lot.amount, lot.remaining, lot.wallet_id == wallet.pk),
        "covered": sorted(
            (allocation.amount, allocation.lot_id == lot.pk)
            for allocation in Allocation.objects.filter(transfer=transfer)
        ),
    }


def _wallet_rows(wallet: Wallet) -> tuple:
    from credit.models import Lot

    wallet.refresh_from_db()
    return (
        wallet.balance,
        wallet.low_balance_warned,
        list(
            Lot.objects.filter(wallet=wallet)
            .order_by("created_at", "id")
            .values_list("source", "amount", "remaining")
        ),
    )


def test_settling_in_batches_writes_per_line_what_settling_each_line_alone_wrote(
    make_wallet, platform, staff, committed, monkeypatch
):
    """Two identical sets of customers: one set's transfers settled one by one, as the
    import did before (the payment received, then the handler's topup_credit), the other's
    by one statement import (batches). Every row, log entry and e-mail must agree."""
    from billing_site import tasks
    from payments.services.transactions import Actor, transaction_transfer_received

    monkeypatch.setattr(statement_services, "SETTLE_BATCH", 3)  # several batches
    sent: list[dict] = []
    monkeypatch.setattr(tasks.send_email, "delay", lambda **message: sent.append(message))
    # A batch's e-mails go as one task: the same messages, in the same order.
    monkeypatch.setattr(tasks.send_emails, "delay", lambda *, messages: sent.extend(messages))

    def customers_set():
        """Five wallets: plain; two top-ups on one wallet; low-balance warned that one
        credit leaves below its limit and the next lifts; overdrawn (a debit waiting to be
        covered by the next lot); one with an older lot."""
        plain, twice, low, overdrawn, older = (make_wallet() for _ in range(5))
        Wallet.objects.filter(pk=low.pk).update(
            low_balance_limit=Decimal("100.00"), low_balance_warned=True
        )
        Wallet.objects.filter(pk=overdrawn.pk).update(overdraft_limit=Decimal("50.00"))
        overdrawn.refresh_from_db()
        ledger.wallet_debit(
            wallet=overdrawn, amount=Money("30.00", "EUR"), idempotency_key=f"d-{overdrawn.pk}"
        )
        ledger.wallet_credit(
            wallet=older,
            amount=Money("15.00", "EUR"),
            kind=Transfer.Kind.TOPUP_CARD,
            idempotency_key=f"older-{older.pk}",
        )
        plan = [
            (plain, "20.00"),
            (twice, "30.00"),
            (low, "40.00"),
            (twice, "25.00"),
            (overdrawn, "45.00"),
            (low, "70.00"),
            (older, "12.34"),
        ]
        topups = [pending_transfer(wallet, amount) for wallet, amount in plan]
        return [plain, twice, low, overdrawn, older], plan, topups

    alone_wallets, _plan, alone_topups = customers_set()
    batch_wallets, batch_plan, batch_topups = customers_set()
    sent.clear()

    # One by one, in the statement's order, as the import settled each line before.
    for index, topup in enumerate(alone_topups):
        committed(
            transaction_transfer_received,
            transaction_id=topup.payment_id,
            actor=Actor(user=staff),
            reference=f"ALONE-{index}",
        )
    alone_mail = list(sent)
    sent.clear()
    rows = [
        f"2026-03-05,{amount},EUR,{vs(wallet)},BATCH-{index},Payer,,top-up"
        for index, (wallet, amount) in enumerate(batch_plan)
    ]
    statement = csv_file(*rows)
    result = committed(
        statement_import, platform=platform, file=statement, filename="s.csv", staff=staff
    )
    batch_mail = list(sent)

    assert (result.matched, result.waiting) == (7, 0)
    for alone, batch in zip(alone_topups, batch_topups, strict=True):
        assert _settled_rows(batch, "BATCH") == _settled_rows(alone, "ALONE")
    for alone, batch in zip(alone_wallets, batch_wallets, strict=True):
        assert _wallet_rows(batch) == _wallet_rows(alone)
    assert [line.status for line in result.statement.lines.order_by("id")] == [
        StatementLine.Status.MATCHED
    ] * 7
    assert [line.topup_id for line in result.statement.lines.order_by("id")] == [
        topup.pk for topup in batch_topups
    ]

    def normal(mail: list[dict], topups: list[TopUp]) -> list[dict]:
        """Each e-mail with its customer's name and top-up id taken out."""
        out = []
        for message, topup in zip(mail, topups, strict=True):
            account = topup.wallet.account
            text = {
                key: str(value)
                .replace(f"/top-ups/{topup.pk}/", "/top-ups/<id>/")
                .replace(account.name, "<name>")
                for key, value in message.items()
            }
            text["to"] = str(message["to"] == [account.email])
            out.append(text)
        return out

    assert len(batch_mail) == len(alone_mail) == 7
    assert normal(batch_mail, batch_topups) == normal(alone_mail, alone_topups)
    assert ledger.ledger_mismatches() == []

    # The same file again: recorded before, nothing credited, no e-mail.
    before = ledger_counts()
    sent.clear()
    again = committed(
        statement_import, platform=platform, file=statement, filename="s.csv", staff=staff
    )
    assert again.already_imported
    assert (again.matched, again.waiting, again.duplicates, again.resumed) == (0, 0, 7, 0)
    assert ledger_counts() == before
    assert sent == []


def test_a_line_whose_top_up_was_paid_meanwhile_is_not_credited_again(
    make_wallet, platform, staff, committed, monkeypatch
):
    from credit.services.topups import topup_transfer_approve
    from payments.models import TransactionEvent

    wallet, other = make_wallet(), make_wallet()
    approved = pending_transfer(wallet, "60.00")
    still_pending = pending_transfer(other, "35.00")
    statement = csv_file(
        f"2026-03-05,60.00,EUR,{vs(wallet)},PAID-1,Payer,,top-up",
        f"2026-03-05,35.00,EUR,{vs(other)},PAID-2,Payer,,top-up",
    )

    def crash(**kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(statement_services, "transactions_transfers_received", crash)
    with pytest.raises(RuntimeError):
        statement_import(platform=platform, file=statement, filename="s.csv", staff=staff)
    monkeypatch.undo()
    # Meanwhile staff approve the customer's proof: the top-up is credited that way.
    committed(topup_transfer_approve, topup_id=approved.pk, staff=staff)
    assert balance(wallet) == Decimal("60.00")
    events = TransactionEvent.objects.filter(transaction_id=approved.payment_id).count()

    result = committed(
        statement_import, platform=platform, file=statement, filename="s.csv", staff=staff
    )

    assert result.resumed == 1  # only the other line's top-up was still to credit
    assert (balance(wallet), balance(other)) == (Decimal("60.00"), Decimal("35.00"))
    assert Transfer.objects.filter(wallet=wallet).count() == 1
    assert TransactionEvent.objects.filter(transaction_id=approved.payment_id).count() == events
    still_pending.refresh_from_db()
    assert still_pending.state == TopUp.State.PAID
    assert ledger.ledger_mismatches() == []
