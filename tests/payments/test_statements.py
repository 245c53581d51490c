"""Monthly statements (seed 004 "extrase"): per platform and month, as CSV for Excel
(safe from formula injection) and as an A4 PDF with the platform as issuer."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import subprocess

import pytest
import time_machine
from django.urls import reverse
from moneyed import Money

from payments.models import Transaction
from payments.selectors import statement_for_month
from payments.services import transactions as tx_services
from tests.factories import PlatformFactory, RegistrationFactory, ShopFactory
from tests.payments.conftest import card

pytestmark = pytest.mark.django_db

UTC = dt.UTC


@pytest.fixture
def platform(db):
    """A Spanish platform with a legal identity (the statement's issuer), in Madrid time."""
    return PlatformFactory(
        code="webhost-es",
        name="WebHost ES",
        legal_name="WebHost Hosting S.L.",
        street="Calle de Alcalá 45",
        city="Madrid",
        postal_code="28014",
        country="ES",
        vat_id="ESB58378431",
        currency="EUR",
        card_gateway="sandbox",
        time_zone="Europe/Madrid",
    )


@pytest.fixture
def payer(platform):
    from tests.factories import AccountFactory

    account = AccountFactory(
        name="Tiskárna Šťastný s.r.o.", street="Dlouhá 5", city="Praha", postal_code="110 00"
    )
    RegistrationFactory(account=account, platform=platform)
    return account


def pay(payer, platform, amount, *, at, description="", capture=None, refund=None, shop=None):
    """A card payment made at ``at``: authorized, then optionally captured and refunded."""
    with time_machine.travel(at, tick=False):
        tx = tx_services.transaction_create(
            account=payer,
            platform=platform,
            amount=Money(amount, platform.currency),
            purpose="goods",
            description=description,
            shop=shop,
        )
        tx_services.transaction_authorize(transaction_id=tx.pk, payment_method=card())
        if capture:
            tx_services.transaction_capture(
                transaction_id=tx.pk, amount=Money(capture, platform.currency)
            )
        if refund:
            tx_services.transaction_refund(
                transaction_id=tx.pk, amount=Money(refund, platform.currency)
            )
    return Transaction.objects.get(pk=tx.pk)


@pytest.fixture
def march(payer, platform):
    """Three payments in March 2026 (Madrid time), and some that must not appear."""
    shop = ShopFactory(registration=payer.registrations.get(), name="@Shop")
    made = [
        pay(
            payer,
            platform,
            "100.00",
            at=dt.datetime(2026, 3, 2, 9, tzinfo=UTC),
            description="Order 1001: banners",
            capture="100.00",
            refund="25.00",
            shop=shop,
        ),
        pay(
            payer,
            platform,
            "80.00",
            at=dt.datetime(2026, 3, 15, 9, tzinfo=UTC),
            description='=HYPERLINK("http://evil.example","click")',
            capture="60.00",
        ),
        # 23:30 UTC on 28 February is already 1 March in Madrid.
        pay(
            payer,
            platform,
            "30.00",
            at=dt.datetime(2026, 2, 28, 23, 30, tzinfo=UTC),
            description="+420 123",
        ),
    ]
    # 22:30 UTC on 31 March is 1 April in Madrid (summer time): April's statement.
    pay(payer, platform, "5.00", at=dt.datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    # The same account on another platform, and another account here: other statements.
    other_platform = PlatformFactory(currency="CZK", card_gateway="sandbox")
    RegistrationFactory(account=payer, platform=other_platform)
    pay(payer, other_platform, "999.00", at=dt.datetime(2026, 3, 10, tzinfo=UTC))
    stranger = RegistrationFactory(platform=platform).account
    pay(stranger, platform, "777.00", at=dt.datetime(2026, 3, 10, tzinfo=UTC))
    return made


@pytest.fixture
def member(payer, member_of, client_for):
    def sign_in(role="owner"):
        return client_for(member_of(payer, role).user)

    return sign_in


def csv_url(year=2026, month=3, platform="webhost-es") -> str:
    url = reverse("payments:statement_csv", kwargs={"year": year, "month": month})
    return f"{url}?platform={platform}" if platform else url


def pdf_url(year=2026, month=3, platform="webhost-es") -> str:
    url = reverse("payments:statement_pdf", kwargs={"year": year, "month": month})
    return f"{url}?platform={platform}" if platform else url


def download_csv(client, url) -> tuple[object, bytes]:
    response = client.get(url)
    assert response.status_code == 200
    assert response.streaming
    return response, b"".join(response.streaming_content)


# --- CSV ---------------------------------------------------------------------------------


def test_csv_lists_the_months_payments_of_this_platform_for_excel(member, march):
    response, body = download_csv(member("accountant"), csv_url())

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="statement-webhost-es-2026-03.csv"'
    )
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 byte order mark, for Excel
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    header, lines = rows[0], rows[1:]
    assert header[:3] == ["Created", "Transaction ID", "Description"]
    by_id = {line[1]: dict(zip(header, line, strict=True)) for line in lines}
    assert set(by_id) == {str(tx.public_id) for tx in march}
    # Oldest first, times in the platform's time zone (Madrid).
    assert [line[0] for line in lines] == [
        "2026-03-01 00:30:00",
        "2026-03-02 10:00:00",
        "2026-03-15 10:00:00",
    ]
    first = by_id[str(march[0].public_id)]
    assert first["Amount"] == "100.00"
    assert first["Captured"] == "100.00"
    assert first["Refunded"] == "25.00"
    assert first["State"] == "Partly refunded"
    assert first["Currency"] == "EUR"
    assert first["Card brand"] == "Visa"
    assert first["Card last four digits"] == "4242"
    assert first["Gateway reference"] == march[0].gateway_reference


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(member, march):
    _response, body = download_csv(member(), csv_url())
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    descriptions = {row["Description"] for row in rows}
    shops = {row["Shop"] for row in rows}

    assert '\'=HYPERLINK("http://evil.example","click")' in descriptions
    assert "'+420 123" in descriptions
    assert "'@Shop" in shops
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    # Amounts stay numbers.
    assert {row["Amount"] for row in rows} == {"100.00", "80.00", "30.00"}


def test_the_month_is_cut_in_the_platforms_time_zone(member, march):
    _response, body = download_csv(member(), csv_url(month=4))
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))

    assert [(row["Created"], row["Amount"]) for row in rows] == [("2026-04-01 00:30:00", "5.00")]


def test_a_month_without_payments_is_an_empty_statement(member, march):
    _response, body = download_csv(member(), csv_url(year=2025, month=1))

    assert len(body.decode("utf-8-sig").splitlines()) == 1  # the header only


def test_statement_totals_per_state_and_money_moved(payer, platform, march):
    statement = statement_for_month(account=payer, platform=platform, year=2026, month=3)

    assert [(t.state, t.count, t.amount) for t in statement.by_state] == [
        ("authorized", 1, Money("30.00", "EUR")),
        ("captured", 1, Money("80.00", "EUR")),
        ("partially_refunded", 1, Money("100.00", "EUR")),
    ]
    (eur,) = statement.by_currency
    assert (eur.currency, eur.count) == ("EUR", 3)
    assert (eur.captured, eur.refunded, eur.net) == (
        Money("160.00", "EUR"),
        Money("25.00", "EUR"),
        Money("135.00", "EUR"),
    )


# --- PDF ---------------------------------------------------------------------------------


def pdf_text(pdf: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    result = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return result.stdout.decode()


def test_pdf_statement_names_issuer_and_recipient_and_lists_the_payments(member, march):
    response = member("accountant").get(pdf_url())

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "statement-webhost-es-2026-03.pdf" in response["Content-Disposition"]
    pdf = response.content
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    # The platform issues it: legal name, address, VAT ID; the account receives it.
    assert "WebHost Hosting S.L." in text
    assert "Calle de Alcalá 45" in text
    assert "ESB58378431" in text
    assert "Tiskárna Šťastný s.r.o." in text
    assert "March 2026" in text
    for tx in march:
        assert tx.short_id in text
    assert "Order 1001: banners" in text
    assert "Totals by state" in text
    assert "€160.00" in text
    assert "€25.00" in text
    assert "€135.00" in text
    assert "€999.00" not in text
    assert "€777.00" not in text
    assert "€5.00" not in text


def test_pdf_is_a4(member, march):
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo (poppler-utils) is not installed")
    pdf = member().get(pdf_url()).content
    info = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True)

    assert "595.276 x 841.89 pts (A4)" in info.stdout.decode()


# --- The list, and who may download --------------------------------------------------------


def test_statement_list_shows_each_platforms_months_with_downloads(member, march):
    page = member("accountant").get(reverse("payments:statements")).content.decode()

    assert "WebHost ES" in page
    assert "March 2026" in page
    assert "April 2026" in page
    assert csv_url() in page
    assert pdf_url(month=4) in page
    assert "February 2026" not in page  # 28 Feb 23:30 UTC counts for March in Madrid


def test_technical_members_cannot_download_statements(member, march):
    client = member("technical")

    assert client.get(csv_url()).status_code == 403
    assert client.get(pdf_url()).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        csv_url(platform=""),
        csv_url(platform="no-such-platform"),
        csv_url(month=13),
        pdf_url(month=0),
    ],
)
def test_a_statement_needs_a_real_month_and_one_of_the_accounts_platforms(member, march, url):
    assert member().get(url).status_code == 404


def test_a_platform_the_account_is_not_on_has_no_statement_for_it(member, march):
    PlatformFactory(code="elsewhere")

    assert member().get(csv_url(platform="elsewhere")).status_code == 404
