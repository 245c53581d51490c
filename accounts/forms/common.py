"""Form pieces the portal and the admin share."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.validators import normalize_company_id, normalize_vat_id


class BusinessIdentifiersMixin:
    """Checks and normalises ``vat_id`` and ``company_id`` against ``country``.

    A wrong checksum or a VAT ID from another country becomes an error on that
    field. Mix into a Form or ModelForm that has those fields.
    """

    country_field = "country"

    def clean(self) -> dict:
        cleaned = super().clean()  # type: ignore[misc]
        country = str(cleaned.get(self.country_field) or "")
        if not country:
            return cleaned
        for field, normalize in (
            ("vat_id", normalize_vat_id),
            ("company_id", normalize_company_id),
        ):
            if field in cleaned and field in self.fields:  # type: ignore[attr-defined]
                try:
                    cleaned[field] = normalize(cleaned[field] or "", country)
                except ValidationError as error:
                    self.add_error(field, error)  # type: ignore[attr-defined]
        return cleaned


class DecimalListField(forms.CharField):
    """Comma-separated amounts, e.g. '50, 100, 150' → [Decimal('50'), ...]."""

    def to_python(self, value: object) -> list:
        from decimal import Decimal, InvalidOperation

        if isinstance(value, list | tuple):
            return list(value)
        text = super().to_python(value)
        amounts = []
        for part in [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]:
            try:
                amount = Decimal(part)
            except InvalidOperation:
                raise ValidationError(
                    _("'%(value)s' is not an amount."), code="invalid", params={"value": part}
                ) from None
            if amount <= 0 or amount.as_tuple().exponent < -2:
                raise ValidationError(
                    _("'%(value)s' must be positive with at most two decimal places."),
                    code="invalid",
                    params={"value": part},
                )
            amounts.append(amount)
        return amounts

    def prepare_value(self, value: object) -> object:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value
