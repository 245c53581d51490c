"""Payment QR codes for bank transfer top-ups: pure payload builders and an inline SVG.

Two standards, chosen by the platform's currency:

- CZK: SPAYD, "QR Platba" of the Czech Banking Association (qr-platba.cz, format
  version 1.0). ``SPD*1.0*`` then ``KEY:value`` pairs separated by ``*``; keys in
  upper case; ``ACC`` is the IBAN, optionally ``+BIC``; ``AM`` at most 10
  characters with a decimal point and at most two decimals; ``CC`` the ISO 4217
  code; ``X-VS`` the variable symbol (up to ten digits); ``MSG`` a message for
  the recipient (up to 60 characters). A ``*`` inside a value is written ``%2A``.
  We keep ``MSG`` ASCII (diacritics dropped), which every Czech banking app reads.
- EUR: the EPC QR code (EPC069-12 "Quick Response Code: guidelines to enable
  data capture for the initiation of a SEPA credit transfer", version 002):
  lines ``BCD``, ``002``, ``1`` (UTF-8), ``SCT``, BIC, beneficiary name (≤ 70),
  IBAN, ``EUR<amount>`` (0.01 to 999999999.99, at most two decimals), purpose
  (empty), structured reference (empty), unstructured remittance (≤ 140). The
  last line carries the variable symbol; no trailing newline; at most 331 bytes.

Other currencies have no QR standard here: the page shows the bank details only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

import qrcode
import qrcode.constants
import qrcode.image.svg

CENT = Decimal("0.01")
SPAYD_MESSAGE_MAX = 60
EPC_NAME_MAX = 70
EPC_REMITTANCE_MAX = 140
EPC_MAX_BYTES = 331


def _amount(value: Decimal, *, maximum: Decimal) -> str:
    """``value`` with a decimal point and two decimals; refuses what no bank would take."""
    if not isinstance(value, Decimal):
        raise TypeError("amounts are Decimals")
    if value <= 0 or value > maximum:
        raise ValueError(f"amount {value} is outside 0.01..{maximum}")
    if value != value.quantize(CENT):
        raise ValueError(f"amount {value} has more than two decimal places")
    return f"{value.quantize(CENT):f}"


def _account(iban: str) -> str:
    compact = re.sub(r"\s+", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}", compact):
        raise ValueError(f"not an IBAN: {iban!r}")
    return compact


def _bic(bic: str) -> str:
    compact = re.sub(r"\s+", "", bic).upper()
    if compact and not re.fullmatch(r"[A-Z0-9]{8}([A-Z0-9]{3})?", compact):
        raise ValueError(f"not a BIC: {bic!r}")
    return compact


def ascii_text(text: str) -> str:
    """Letters without diacritics, other non-ASCII characters dropped, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if 32 <= ord(ch) < 127)
    return " ".join(plain.split())


def _spayd_message(text: str) -> str:
    """ASCII, at most 60 characters as written in the payload, with ``*`` (the field
    separator, the one character the format reserves) written ``%2A``."""
    written = ""
    for character in ascii_text(text):
        piece = "%2A" if character == "*" else character
        if len(written) + len(piece) > SPAYD_MESSAGE_MAX:
            break
        written += piece
    return written.strip()


def spayd_payload(
    *,
    iban: str,
    bic: str,
    amount: Decimal,
    variable_symbol: int | str,
    message: str,
    currency: str = "CZK",
) -> str:
    """The QR Platba string for a payment of ``amount`` to ``iban`` with a variable symbol."""
    account = _account(iban)
    bic = _bic(bic)
    amount_text = _amount(amount, maximum=Decimal("9999999.99"))  # AM: at most 10 characters
    symbol = str(variable_symbol)
    if not re.fullmatch(r"[0-9]{1,10}", symbol):
        raise ValueError(f"a variable symbol is one to ten digits, not {symbol!r}")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"not a currency code: {currency!r}")
    fields = [
        ("ACC", f"{account}+{bic}" if bic else account),
        ("AM", amount_text),
        ("CC", currency),
        ("X-VS", symbol),
    ]
    fields.append(("MSG", _spayd_message(message)))
    return "SPD*1.0*" + "*".join(f"{key}:{value}" for key, value in fields if value)


def epc_payload(*, bic: str, name: str, iban: str, amount: Decimal, remittance: str) -> str:
    """The EPC (SEPA credit transfer) QR string, version 002, UTF-8, unstructured remittance."""
    name = " ".join(name.split())[:EPC_NAME_MAX]
    if not name:
        raise ValueError("the beneficiary's name is required")
    remittance = " ".join(remittance.split())[:EPC_REMITTANCE_MAX]
    lines = [
        "BCD",
        "002",
        "1",
        "SCT",
        _bic(bic),
        name,
        _account(iban),
        "EUR" + _amount(amount, maximum=Decimal("999999999.99")),
        "",  # purpose code
        "",  # structured creditor reference (ISO 11649): we use the free text instead
        remittance,
    ]
    payload = "\n".join(lines)
    if len(payload.encode()) > EPC_MAX_BYTES:
        raise ValueError("an EPC QR payload is at most 331 bytes")
    return payload


class _InlineSvgImage(qrcode.image.svg.SvgPathFillImage):
    """One path on a white square, sized by CSS (no width and height in millimetres)."""

    def _svg(self, **kwargs: object):  # type: ignore[no-untyped-def]
        svg = super()._svg(**kwargs)
        svg.attrib.pop("width", None)
        svg.attrib.pop("height", None)
        return svg


def qr_svg(payload: str, *, title: str) -> str:
    """``payload`` as an inline SVG QR code (error correction M, as EPC069-12 asks),
    with an accessible name. Attribute values are escaped by the XML serializer, and the
    rest is generated markup: safe to inline in a page."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        image_factory=_InlineSvgImage,
        border=4,
    )
    code.add_data(payload)
    code.make(fit=True)
    image = code.make_image(**{"class": "payment-qr", "role": "img", "aria-label": title})
    return image.to_string(encoding="unicode")


@dataclass(frozen=True)
class PaymentQr:
    """A QR code for the transfer: which standard, the exact string, and its SVG."""

    standard: str  # "spayd" or "epc"
    payload: str
    svg: str


def epc_remittance(variable_symbol: int | str) -> str:
    """The remittance text of a EUR transfer: the variable symbol, as our statement
    import recognises it ("VS:123"), and as Czech and Slovak banks write it."""
    return f"VS:{variable_symbol}"


def payment_qr(
    *,
    currency: str,
    iban: str,
    bic: str,
    beneficiary: str,
    amount: Decimal,
    variable_symbol: int | str,
    message: str,
    title: str,
) -> PaymentQr | None:
    """The payment QR for a transfer in ``currency``, or None where no standard applies."""
    if currency == "CZK":
        payload = spayd_payload(
            iban=iban, bic=bic, amount=amount, variable_symbol=variable_symbol, message=message
        )
        return PaymentQr("spayd", payload, qr_svg(payload, title=title))
    if currency == "EUR":
        payload = epc_payload(
            bic=bic,
            name=beneficiary,
            iban=iban,
            amount=amount,
            remittance=epc_remittance(variable_symbol),
        )
        return PaymentQr("epc", payload, qr_svg(payload, title=title))
    return None
