"""Payment QR codes: the exact strings of QR Platba (SPAYD 1.0, Czech Banking Association)
and of the EPC QR code (EPC069-12, SEPA credit transfer), and their inline SVG."""

from __future__ import annotations

from decimal import Decimal

import pytest

from credit.qr import epc_payload, payment_qr, qr_svg, spayd_payload

CZ_IBAN = "CZ6508000000192000145399"
ES_IBAN = "ES9121000418450200051332"


# --- SPAYD / QR Platba --------------------------------------------------------------------


def test_spayd_is_the_qr_platba_string():
    payload = spayd_payload(
        iban=CZ_IBAN,
        bic="KOMBCZPP",
        amount=Decimal("2000.00"),
        variable_symbol=1234567890,
        message="Credit top-up Platform Czechia",
    )

    assert payload == (
        "SPD*1.0*ACC:CZ6508000000192000145399+KOMBCZPP*AM:2000.00*CC:CZK"
        "*X-VS:1234567890*MSG:Credit top-up Platform Czechia"
    )


@pytest.mark.parametrize(
    ("amount", "written"),
    [
        (Decimal("480.5"), "AM:480.50"),
        (Decimal("5000"), "AM:5000.00"),
        (Decimal("0.01"), "AM:0.01"),
        (Decimal("9999999.99"), "AM:9999999.99"),  # ten characters, the format's limit
    ],
)
def test_spayd_writes_amounts_with_a_point_and_two_decimals(amount, written):
    payload = spayd_payload(iban=CZ_IBAN, bic="", amount=amount, variable_symbol="7", message="")

    assert payload == f"SPD*1.0*ACC:{CZ_IBAN}*{written}*CC:CZK*X-VS:7"


def test_spayd_normalises_the_iban_and_bic():
    payload = spayd_payload(
        iban="cz65 0800 0000 1920 0014 5399",
        bic="kombczpp",
        amount=Decimal("1.00"),
        variable_symbol="42",
        message="x",
    )

    assert payload.startswith("SPD*1.0*ACC:CZ6508000000192000145399+KOMBCZPP*")


def test_spayd_message_is_ascii_with_asterisks_escaped():
    payload = spayd_payload(
        iban=CZ_IBAN,
        bic="KOMBCZPP",
        amount=Decimal("10.00"),
        variable_symbol="42",
        message="Dobití *kreditu* \u2013 Česko \u2713",  # en dash, check mark
    )

    assert payload.endswith("*X-VS:42*MSG:Dobiti %2Akreditu%2A Cesko")
    assert payload.isascii()
    # The only separators left are the format's own.
    assert payload.split("*") == [
        "SPD",
        "1.0",
        "ACC:CZ6508000000192000145399+KOMBCZPP",
        "AM:10.00",
        "CC:CZK",
        "X-VS:42",
        "MSG:Dobiti %2Akreditu%2A Cesko",
    ]


def test_spayd_message_is_at_most_sixty_characters_as_written():
    payload = spayd_payload(
        iban=CZ_IBAN,
        bic="KOMBCZPP",
        amount=Decimal("10.00"),
        variable_symbol="42",
        message="A" * 58 + "*B",
    )

    message = payload.split("*MSG:")[1]
    assert message == "A" * 58  # "%2A" would not fit: cut before it, never inside it
    assert (
        len(
            spayd_payload(
                iban=CZ_IBAN, bic="", amount=Decimal("1"), variable_symbol="1", message="x" * 200
            ).split("*MSG:")[1]
        )
        == 60
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": Decimal("0")},
        {"amount": Decimal("-5.00")},
        {"amount": Decimal("1.001")},
        {"amount": Decimal("10000000.00")},  # eleven characters
        {"variable_symbol": "12345678901"},
        {"variable_symbol": "12A"},
        {"iban": "not an iban"},
        {"bic": "KOMB*CZ"},
    ],
)
def test_spayd_refuses_what_a_bank_would_not_read(bad):
    # Each refusal names what is wrong (an amount, a symbol, an account).
    arguments = {
        "iban": CZ_IBAN,
        "bic": "KOMBCZPP",
        "amount": Decimal("10.00"),
        "variable_symbol": "42",
        "message": "x",
        **bad,
    }

    with pytest.raises(ValueError, match=r"amount|variable symbol|IBAN|BIC"):
        spayd_payload(**arguments)


def test_amounts_are_decimals_never_floats():
    with pytest.raises(TypeError):
        spayd_payload(iban=CZ_IBAN, bic="", amount=10.5, variable_symbol="1", message="")


# --- EPC QR (SEPA) ------------------------------------------------------------------------


def test_epc_is_the_epc069_12_string():
    payload = epc_payload(
        bic="BSCHESMMXXX",
        name="Platform Spain S.L.",
        iban=ES_IBAN,
        amount=Decimal("100"),
        remittance="VS:1234567890",
    )

    assert payload == (
        "BCD\n002\n1\nSCT\nBSCHESMMXXX\nPlatform Spain S.L.\nES9121000418450200051332\n"
        "EUR100.00\n\n\nVS:1234567890"
    )


def test_epc_cuts_the_name_to_70_and_the_remittance_to_140_characters():
    payload = epc_payload(
        bic="BSCHESMMXXX",
        name="N" * 80,
        iban=ES_IBAN,
        amount=Decimal("12.30"),
        remittance="R" * 200,
    )

    lines = payload.split("\n")
    assert len(lines) == 11
    assert lines[5] == "N" * 70
    assert lines[7] == "EUR12.30"
    assert lines[10] == "R" * 140
    assert len(payload.encode()) <= 331


def test_epc_keeps_a_name_with_diacritics_in_utf8():
    payload = epc_payload(
        bic="UNCRBGSF",
        name="Платформа България ЕООД",
        iban="BG80BNBG96611020345678",
        amount=Decimal("25.00"),
        remittance="VS:42",
    )

    assert payload.split("\n")[2] == "1"  # character set 1: UTF-8
    assert "Платформа България ЕООД" in payload


@pytest.mark.parametrize(
    "amount", [Decimal("0"), Decimal("0.001"), Decimal("1000000000.00"), Decimal("-1")]
)
def test_epc_refuses_amounts_outside_the_standard(amount):
    with pytest.raises(ValueError, match="amount"):
        epc_payload(bic="BSCHESMMXXX", name="P", iban=ES_IBAN, amount=amount, remittance="")


def test_epc_accepts_the_largest_amount():
    payload = epc_payload(
        bic="", name="P", iban=ES_IBAN, amount=Decimal("999999999.99"), remittance="VS:1"
    )

    assert "\nEUR999999999.99\n" in payload
    assert payload.split("\n")[4] == ""  # the BIC is optional in version 002


# --- Choosing and drawing -----------------------------------------------------------------


def _qr(currency: str):
    return payment_qr(
        currency=currency,
        iban=CZ_IBAN,
        bic="KOMBCZPP",
        beneficiary="Platform s.r.o.",
        amount=Decimal("500.00"),
        variable_symbol="42",
        message="Top-up",
        title="QR payment code",
    )


def test_czk_gets_qr_platba_eur_gets_epc_other_currencies_none():
    assert _qr("CZK").standard == "spayd"
    assert _qr("CZK").payload.startswith("SPD*1.0*")
    assert _qr("EUR").standard == "epc"
    assert _qr("EUR").payload.startswith("BCD\n002\n1\nSCT\n")
    assert _qr("PLN") is None


def test_the_svg_is_inline_markup_with_an_accessible_name():
    svg = qr_svg("SPD*1.0*ACC:CZ6508000000192000145399", title='Pay <5> & "go"')

    assert svg.startswith("<svg ")
    assert "<?xml" not in svg
    assert 'role="img"' in svg
    assert 'aria-label="Pay &lt;5&gt; &amp; &quot;go&quot;"' in svg
    assert "mm" not in svg.split(">", 1)[0]  # sized by the page, not in millimetres
    assert "<path" in svg
    assert 'fill="white"' in svg


def test_a_longer_payload_makes_a_bigger_code():
    small = qr_svg("SPD*1.0*ACC:" + CZ_IBAN, title="x")
    big = qr_svg("SPD*1.0*ACC:" + CZ_IBAN + "*MSG:" + "X" * 60, title="x")

    def size(svg: str) -> int:
        return int(svg.split('viewBox="0 0 ')[1].split(" ")[0])

    assert size(big) > size(small)
