"""Forms of the top-up pages: choosing an amount and a method, uploading a proof of payment."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from accounts.forms.organisation import PortalFormMixin
from accounts.models import Platform
from credit.exceptions import TopUpError
from credit.models import TopUp
from credit.services.topups import proof_check, topup_amount_check

# Digits with an optional decimal part; "1 200,50" and "1200.50" are both typed by people.
_NUMBER = re.compile(r"-?[0-9]+(?:[.,][0-9]+)?")


class TopUpAmountField(forms.CharField):
    """An amount as people type it: '49.90', '49,90' or '1 200'. Only digits and one
    decimal separator: '1e3', 'NaN' or '50 EUR' are not amounts."""

    default_error_messages = {
        "invalid": _("Enter the amount as a number, e.g. 49.90."),
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off", "maxlength": "20"})

    def to_python(self, value: object) -> Decimal | None:  # type: ignore[override]
        text = re.sub(r"[\s\u00a0]", "", str(value or ""))
        if not text:
            return None
        if not _NUMBER.fullmatch(text):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            return Decimal(text.replace(",", "."))
        except InvalidOperation as error:  # pragma: no cover - the pattern prevents it
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from error


class TopUpForm(PortalFormMixin, forms.Form):
    """A preset amount or one typed within the platform's limits, a method, the terms.

    ``cleaned_data["topup_amount"]`` is the checked amount as Money.
    """

    preset = forms.ChoiceField(
        label=_("Amount"),
        required=False,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": _("Choose one of the offered amounts.")},
    )
    amount = TopUpAmountField(label=_("Amount"), required=False)
    method = forms.ChoiceField(
        label=_("Pay by"),
        choices=TopUp.Method.choices,
        initial=TopUp.Method.CARD,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose how you will pay.")},
    )
    terms = forms.BooleanField(
        label=_("I accept the terms and conditions for prepaid credit"),
        error_messages={"required": _("Accept the terms and conditions to top up.")},
    )

    def __init__(self, *args: object, platform: Platform, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.platform = platform
        self.fields["preset"].choices = [
            (f"{value:f}", str(platform.money(value))) for value in platform.topup_presets
        ]
        self.fields["amount"].help_text = _("From %(minimum)s to %(maximum)s.") % {
            "minimum": platform.topup_minimum_money,
            "maximum": platform.topup_maximum_money,
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        if "amount" in self.errors or "preset" in self.errors:
            return cleaned
        preset = cleaned.get("preset") or ""
        typed = cleaned.get("amount")
        if preset and typed is not None and typed != Decimal(preset):
            self.add_error(
                "amount",
                _("Choose one of the amounts or type your own, not both."),
            )
            return cleaned
        value = typed if typed is not None else (Decimal(preset) if preset else None)
        if value is None:
            self.add_error("amount", _("Choose an amount or type one."))
            return cleaned
        money = Money(value, self.platform.currency)
        try:
            topup_amount_check(platform=self.platform, amount=money)
        except TopUpError as error:
            self.add_error("amount", error.message)
        else:
            cleaned["topup_amount"] = money
        return cleaned


class ProofForm(PortalFormMixin, forms.Form):
    """A proof of payment for a bank transfer: the bank's confirmation, PDF, JPEG or PNG."""

    proof = forms.FileField(
        label=_("Proof of payment"),
        help_text=_("The bank's confirmation of the transfer: PDF, JPEG or PNG, at most 5 MB."),
        error_messages={
            "required": _("Choose the file to upload."),
            "empty": _("The file is empty."),
        },
        widget=forms.FileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png"}),
    )

    def clean_proof(self):  # type: ignore[no-untyped-def]
        upload = self.cleaned_data["proof"]
        try:
            proof_check(upload, size=upload.size or 0)
        except TopUpError as error:
            raise forms.ValidationError(error.message) from error
        return upload
