"""Offline checks of business identifiers with python-stdnum.

Each function returns the number in its canonical, compact form or raises a
ValidationError whose message names the problem (the form puts it on the field).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum.cz import bankaccount as cz_bankaccount
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
)
from stdnum.exceptions import (
    ValidationError as StdnumError,
)

# EU member states by ISO code; Greece's VAT prefix is EL.
EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
VAT_PREFIX = {"GR": "EL"}


def _country_name(code: str) -> str:
    """The country's name in the active language (VAT prefix EL is Greece)."""
    from django_countries import countries

    code = str(code).upper()
    code = "GR" if code == "EL" else code
    return str(countries.name(code)) or code


def _reason(error: StdnumError) -> str:
    if isinstance(error, InvalidChecksum):
        return _("the check digit does not match; please check for a typo")
    if isinstance(error, InvalidLength):
        return _("it has the wrong number of characters")
    if isinstance(error, InvalidFormat):
        return _("it contains characters that do not belong there")
    if isinstance(error, InvalidComponent):
        return _("a part of it is not valid")
    return _("it is not a valid number")


def normalize_vat_id(value: str, country: str) -> str:
    """An EU VAT ID such as CZ12345678, matching ``country``; '' stays ''."""
    if not value.strip():
        return ""
    number = eu_vat.compact(value)
    try:
        number = eu_vat.validate(number)
    except StdnumError as error:
        raise ValidationError(
            _("This is not a valid EU VAT ID (%(reason)s). Example: CZ12345678."),
            code="invalid_vat_id",
            params={"reason": _reason(error)},
        ) from None
    country = str(country).upper()
    expected = VAT_PREFIX.get(country, country)
    if country in EU_COUNTRIES and number[:2] != expected:
        raise ValidationError(
            _("This VAT ID belongs to %(prefix)s, but the country is %(country)s."),
            code="vat_id_country",
            params={"prefix": _country_name(number[:2]), "country": _country_name(country)},
        )
    return number


def _czech_or_slovak_ico(number: str) -> str:
    """IČO: eight digits, the last a mod-11 check digit (the same in CZ and SK)."""
    number = number.replace(" ", "").zfill(8) if number.strip().isdigit() else number.strip()
    if not number.isdigit():
        raise InvalidFormat()
    if len(number) != 8:
        raise InvalidLength()
    total = sum(
        int(digit) * weight for digit, weight in zip(number[:7], range(8, 1, -1), strict=True)
    )
    if (11 - total % 11) % 10 != int(number[7]):
        raise InvalidChecksum()
    return number


def _stdnum(module_path: str) -> Callable[[str], str]:
    def validate(number: str) -> str:
        import importlib

        module = importlib.import_module(f"stdnum.{module_path}")
        return module.validate(number)

    return validate


# Company registration numbers python-stdnum (or a published algorithm) can check offline.
COMPANY_ID_VALIDATORS: dict[str, Callable[[str], str]] = {
    "CZ": _czech_or_slovak_ico,
    "SK": _czech_or_slovak_ico,
    "BG": _stdnum("bg.vat"),  # EIK/BULSTAT
    "RO": _stdnum("ro.cui"),
    "ES": _stdnum("es.nif"),  # NIF, including a company's CIF
    "PL": _stdnum("pl.regon"),
    "AT": _stdnum("at.businessid"),
    "BE": _stdnum("be.vat"),  # the enterprise number
    "FR": _stdnum("fr.siren"),
    "IT": _stdnum("it.iva"),
    "PT": _stdnum("pt.nif"),
    "EE": _stdnum("ee.registrikood"),
    "DK": _stdnum("dk.cvr"),
    "FI": _stdnum("fi.ytunnus"),
    "HR": _stdnum("hr.oib"),
    "SI": _stdnum("si.maticna"),
}


def normalize_company_id(value: str, country: str) -> str:
    """The company registration number in compact form; checked where we know how."""
    value = value.strip()
    if not value:
        return ""
    validator = COMPANY_ID_VALIDATORS.get(str(country).upper())
    if validator is None:
        return value.upper()
    try:
        return validator(value)
    except StdnumError as error:
        raise ValidationError(
            _("This is not a valid company ID for %(country)s (%(reason)s)."),
            code="invalid_company_id",
            params={"country": _country_name(country), "reason": _reason(error)},
        ) from None


def normalize_iban(value: str) -> str:
    try:
        return stdnum_iban.validate(value)
    except StdnumError as error:
        raise ValidationError(
            _("This is not a valid IBAN (%(reason)s)."),
            code="invalid_iban",
            params={"reason": _reason(error)},
        ) from None


def normalize_bic(value: str) -> str:
    try:
        return stdnum_bic.validate(value)
    except StdnumError as error:
        raise ValidationError(
            _("This is not a valid BIC (%(reason)s)."),
            code="invalid_bic",
            params={"reason": _reason(error)},
        ) from None


def normalize_local_account_number(value: str, country: str) -> str:
    """Czech and Slovak domestic account numbers (prefix-number/bank code, mod-11 checked)."""
    value = value.strip()
    if not value:
        return ""
    if str(country).upper() not in {"CZ", "SK"}:
        raise ValidationError(
            _("A local account number is only used for Czech and Slovak banks."),
            code="local_account_country",
        )
    try:
        compact = cz_bankaccount.validate(value)  # 000019-2000145399/0800
    except StdnumError as error:
        raise ValidationError(
            _("This is not a valid account number (%(reason)s). Example: 19-2000145399/0800."),
            code="invalid_local_account",
            params={"reason": _reason(error)},
        ) from None
    # As people write it: without the zero padding, and without a zero prefix.
    prefix_and_number, bank_code = compact.split("/")
    prefix, number = (part.lstrip("0") for part in prefix_and_number.split("-"))
    return f"{prefix}-{number}/{bank_code}" if prefix else f"{number}/{bank_code}"
