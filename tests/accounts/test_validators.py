"""Business identifiers are checked offline; a typo is caught with a message saying what."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from accounts.validators import (
    normalize_bic,
    normalize_company_id,
    normalize_iban,
    normalize_local_account_number,
    normalize_vat_id,
)


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("CZ 255 96 641", "CZ", "CZ25596641"),
        ("sk2020317068", "SK", "SK2020317068"),
        ("ESB58378431", "ES", "ESB58378431"),
        ("BG175074752", "BG", "BG175074752"),
        ("RO18547290", "RO", "RO18547290"),
        ("EL094259216", "GR", "EL094259216"),
        ("", "CZ", ""),
    ],
)
def test_valid_vat_ids_are_normalised(raw, country, expected):
    assert normalize_vat_id(raw, country) == expected


def test_a_vat_id_with_a_wrong_check_digit_is_refused_with_the_reason():
    with pytest.raises(ValidationError) as error:
        normalize_vat_id("CZ25596642", "CZ")

    assert "check digit does not match" in error.value.messages[0]


def test_a_vat_id_of_another_country_is_refused():
    with pytest.raises(ValidationError) as error:
        normalize_vat_id("DE136695976", "CZ")

    assert error.value.messages == ["This VAT ID belongs to Germany, but the country is Czechia."]


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("25596641", "CZ", "25596641"),
        ("35757442", "SK", "35757442"),
        ("175074752", "BG", "175074752"),
        ("18547290", "RO", "18547290"),
        ("B58378431", "ES", "B58378431"),
        ("HRB 12345", "DE", "HRB 12345"),  # no offline check known: kept as given
    ],
)
def test_valid_company_ids_are_normalised(raw, country, expected):
    assert normalize_company_id(raw, country) == expected


@pytest.mark.parametrize(("raw", "country"), [("25596642", "CZ"), ("1234567", "RO"), ("X1", "ES")])
def test_invalid_company_ids_name_the_country(raw, country):
    with pytest.raises(ValidationError) as error:
        normalize_company_id(raw, country)

    names = {"CZ": "Czechia", "RO": "Romania", "ES": "Spain"}
    assert f"not a valid company ID for {names[country]}" in error.value.messages[0]


def ico_check_digit(first_seven: str) -> int:
    total = sum(int(d) * w for d, w in zip(first_seven, range(8, 1, -1), strict=True))
    return (11 - total % 11) % 10


@given(st.text(alphabet="0123456789", min_size=7, max_size=7))
def test_every_ico_with_its_check_digit_passes_and_any_other_digit_fails(first_seven):
    right = ico_check_digit(first_seven)

    assert normalize_company_id(f"{first_seven}{right}", "CZ") == f"{first_seven}{right}"
    for wrong in {str(d) for d in range(10)} - {str(right)}:
        with pytest.raises(ValidationError):
            normalize_company_id(f"{first_seven}{wrong}", "CZ")


def test_bank_details_are_checked():
    assert normalize_iban("cz65 0800 0000 1920 0014 5399") == "CZ6508000000192000145399"
    assert normalize_bic("kombczpp") == "KOMBCZPP"
    assert normalize_local_account_number("000019-2000145399/0800", "CZ") == "19-2000145399/0800"
    with pytest.raises(ValidationError, match="not a valid IBAN"):
        normalize_iban("CZ6508000000192000145398")
    with pytest.raises(ValidationError, match="not a valid account number"):
        normalize_local_account_number("19-2000145398/0800", "CZ")
    with pytest.raises(ValidationError, match="only used for Czech and Slovak banks"):
        normalize_local_account_number("19-2000145399/0800", "ES")
