"""CSV exports of the history and of the accounting view: streamed, UTF-8 with a BOM,
the page's filters, dot decimals with the currency apart, and no formula injection."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credit import exports
from credit.models import Transfer, Wallet
from credit.selectors import HistoryFilters
from credit.services import ledger
from tests.credit.conftest import eur, key
from tests.factories import ShopFactory

pytestmark = pytest.mark.django_db


def shop_of(wallet: Wallet, name: str):
    registration = wallet.account.registrations.get(platform=wallet.platform)
    return ShopFactory(registration=registration, name=name)


def url(wallet: Wallet, name: str, **query: str) -> str:
    base = reverse(name, kwargs={"platform_code": wallet.platform.code})
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def read_csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff"), "UTF-8 with a byte order mark, for Excel"
    return list(csv.reader(io.StringIO(body[1:])))


@pytest.fixture
def signed_in(client_for, member_of):
    def sign_in(wallet: Wallet, role: str = "accountant"):
        return client_for(member_of(wallet.account, role).user)

    return sign_in


def test_the_history_csv_is_streamed_with_a_row_per_operation(signed_in, make_wallet):
    wallet = make_wallet("100.00")
    shop = shop_of(wallet, "Corner Shop")
    debit = ledger.wallet_debit(
        wallet=wallet, amount=eur("30.25"), shop=shop, memo="Order 1042", idempotency_key=key()
    )

    response = signed_in(wallet).get(url(wallet, "credit:history_csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    assert f"credit-history-{wallet.platform.code}.csv" in response["Content-Disposition"]
    header, *lines = read_csv(response)
    assert header == [
        "Time (UTC)",
        "Type",
        "Description",
        "Shop",
        "Currency",
        "Amount",
        "Balance after",
        "Reference",
    ]
    assert len(lines) == 2
    newest = dict(zip(header, lines[0], strict=True))
    assert newest["Type"] == "Payment from credit"
    assert newest["Description"] == "Order 1042"
    assert newest["Shop"] == "Corner Shop"
    assert newest["Currency"] == "EUR"
    assert newest["Amount"] == "-30.25"  # a number with a dot; the minus sign is kept
    assert newest["Balance after"] == "69.75"
    assert newest["Reference"] == str(debit.pk)
    assert lines[1][1:2] == ["Top-up by card"]
    assert lines[1][5:7] == ["100.00", "100.00"]


def test_the_history_csv_has_the_pages_filters(signed_in, make_wallet):
    wallet = make_wallet("100.00")
    north, south = shop_of(wallet, "North"), shop_of(wallet, "South")
    ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), shop=north, idempotency_key=key())
    ledger.wallet_debit(wallet=wallet, amount=eur("2.00"), shop=south, idempotency_key=key())
    ledger.wallet_debit(wallet=wallet, amount=eur("3.00"), shop=north, idempotency_key=key())

    _header, *lines = read_csv(
        signed_in(wallet).get(url(wallet, "credit:history_csv", type="debit", shop=str(north.pk)))
    )

    assert [line[5] for line in lines] == ["-3.00", "-1.00"]


def test_a_history_csv_with_bad_filters_sends_back_to_the_page_with_the_errors(
    signed_in, make_wallet
):
    wallet = make_wallet("100.00")
    client = signed_in(wallet)

    response = client.get(url(wallet, "credit:history_csv", **{"from": "2026-02-31"}))

    assert response.status_code == 302
    assert response["Location"] == url(wallet, "credit:history", **{"from": "2026-02-31"})
    assert "Enter a real date" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    "dangerous",
    ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"],
)
def test_cells_that_a_spreadsheet_would_run_are_neutralised(signed_in, make_wallet, dangerous):
    wallet = make_wallet("100.00")
    shop = shop_of(wallet, dangerous)
    ledger.wallet_debit(
        wallet=wallet, amount=eur("1.50"), shop=shop, memo=dangerous, idempotency_key=key()
    )
    client = signed_in(wallet)

    _header, debit, _topup = read_csv(client.get(url(wallet, "credit:history_csv")))
    _header, _opening, _topup, debit_line, *_totals = read_csv(
        client.get(url(wallet, "credit:accounting_csv"))
    )

    for line in (debit, debit_line):
        assert line[2] == "'" + dangerous  # description
        assert line[3] == "'" + dangerous  # shop
        assert line[5] == "-1.50"  # amounts are numbers, not neutralised


def test_plain_text_is_left_as_it_is():
    assert exports.spreadsheet_safe("Order 12 - socks") == "Order 12 - socks"
    assert exports.spreadsheet_safe("") == ""
    assert exports.spreadsheet_safe("Žluťoučký kůň") == "Žluťoučký kůň"


def test_the_accounting_csv_has_opening_movements_totals_and_closing(signed_in, make_wallet):
    with time_machine.travel(dt.datetime(2026, 2, 20, 12, tzinfo=dt.UTC)):
        wallet = make_wallet("100.00")
    shop = shop_of(wallet, "Štěpánka's shop")
    with time_machine.travel(dt.datetime(2026, 3, 5, 8, 30, tzinfo=dt.UTC)):
        ledger.wallet_credit(
            wallet=wallet,
            amount=eur("50.00"),
            kind=Transfer.Kind.TOPUP_TRANSFER,
            idempotency_key=key(),
        )
    with time_machine.travel(dt.datetime(2026, 3, 9, 17, tzinfo=dt.UTC)):
        ledger.wallet_debit(
            wallet=wallet, amount=eur("12.34"), shop=shop, memo="Order 5", idempotency_key=key()
        )
    with time_machine.travel(dt.datetime(2026, 4, 2, tzinfo=dt.UTC)):
        ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())

    response = signed_in(wallet).get(
        url(wallet, "credit:accounting_csv", **{"from": "2026-03-01", "to": "2026-03-31"})
    )

    assert (
        f"credit-accounting-{wallet.platform.code}-2026-03-01-2026-03-31.csv"
        in response["Content-Disposition"]
    )
    assert read_csv(response) == [
        ["Time (UTC)", "Type", "Description", "Shop", "Currency", "Amount", "Balance", "Reference"],
        ["2026-03-01", "Opening balance", "", "", "EUR", "", "100.00", ""],
        [
            "2026-03-05 08:30:00",
            "Top-up by bank transfer",
            "",
            "",
            "EUR",
            "50.00",
            "150.00",
            str(Transfer.objects.get(kind="topup_transfer").pk),
        ],
        [
            "2026-03-09 17:00:00",
            "Payment from credit",
            "Order 5",
            "Štěpánka's shop",
            "EUR",
            "-12.34",
            "137.66",
            str(Transfer.objects.get(memo="Order 5").pk),
        ],
        ["2026-03-31", "Total credits", "", "", "EUR", "50.00", "", ""],
        ["2026-03-31", "Total debits", "", "", "EUR", "-12.34", "", ""],
        ["2026-03-31", "Closing balance", "", "", "EUR", "", "137.66", ""],
    ]


def test_times_are_in_the_platforms_time_zone(signed_in, make_wallet):
    wallet = make_wallet()
    wallet.platform.time_zone = "Europe/Prague"
    wallet.platform.save()
    with time_machine.travel(dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC)):
        ledger.wallet_credit(
            wallet=wallet, amount=eur("5.00"), kind=Transfer.Kind.PROMOTION, idempotency_key=key()
        )

    header, line = read_csv(
        signed_in(wallet).get(url(wallet, "credit:history_csv", **{"from": "2026-04-01"}))
    )

    assert header[0] == "Time (Europe/Prague)"
    assert line[0] == "2026-04-01 00:30:00"  # 22:30 UTC is past midnight in Prague


def test_the_export_streams_lines_as_postgresql_writes_them(signed_in, make_wallet, monkeypatch):
    """Nothing is read before the first piece is asked for; the rows come from one COPY
    and leave in pieces as they arrive, not as a whole file."""
    wallet = make_wallet("100.00")
    for _ in range(3):
        ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
    monkeypatch.setattr(exports, "BLOCK_SIZE", 1)  # every piece of data is sent at once

    with CaptureQueriesContext(connection) as before_reading:
        response = signed_in(wallet).get(url(wallet, "credit:history_csv"))
    assert not [q for q in before_reading.captured_queries if "COPY" in q["sql"]]

    with CaptureQueriesContext(connection) as reading:
        pieces = list(response.streaming_content)
    copies = [q["sql"] for q in reading.captured_queries if q["sql"].startswith("COPY (")]
    assert len(copies) == 1
    assert copies[0].endswith("TO STDOUT WITH (FORMAT csv)")
    assert len(pieces) == 4  # one per row, the first after the BOM and the header
    lines = b"".join(pieces).decode()[1:].split("\n")
    assert len(lines) == 1 + 4 + 1  # header, four operations, nothing after the last "\n"


def test_a_client_that_goes_away_mid_export_leaves_the_connection_usable(make_wallet, monkeypatch):
    wallet = make_wallet("100.00")
    for _ in range(3):
        ledger.wallet_debit(wallet=wallet, amount=eur("1.00"), idempotency_key=key())
    monkeypatch.setattr(exports, "BLOCK_SIZE", 1)

    lines = exports.history_csv_lines(wallet=wallet, filters=HistoryFilters())
    next(lines)
    next(lines)
    lines.close()  # what the WSGI server does (response.close()) when the client goes away

    assert Transfer.objects.filter(wallet=wallet).count() == 4


@pytest.mark.parametrize(
    ("role", "status"),
    [("owner", 200), ("billing", 200), ("accountant", 200), ("technical", 403)],
)
def test_exports_need_the_export_capability(signed_in, make_wallet, role, status):
    wallet = make_wallet("1.00")
    client = signed_in(wallet, role)

    assert client.get(url(wallet, "credit:history_csv")).status_code == status
    assert client.get(url(wallet, "credit:accounting_csv")).status_code == status


def test_export_links_are_offered_to_roles_that_may_export(signed_in, make_wallet):
    wallet = make_wallet("1.00")

    html = signed_in(wallet, "accountant").get(url(wallet, "credit:history")).content.decode()

    assert url(wallet, "credit:history_csv") in html
