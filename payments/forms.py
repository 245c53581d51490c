"""Forms of the payment pages."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _


class SandboxCardForm(forms.Form):
    """The sandbox's hosted card page. The number only passes through `tokenize`."""

    number = forms.CharField(
        label=_("Card number"),
        max_length=23,
        widget=forms.TextInput(
            attrs={"autocomplete": "cc-number", "inputmode": "numeric", "spellcheck": "false"}
        ),
    )
    expiry = forms.CharField(
        label=_("Expiry (MM/YY)"),
        max_length=7,
        widget=forms.TextInput(attrs={"autocomplete": "cc-exp", "placeholder": "MM/YY"}),
    )
    cvc = forms.CharField(
        label=_("Security code (CVC)"),
        max_length=4,
        widget=forms.TextInput(attrs={"autocomplete": "cc-csc", "inputmode": "numeric"}),
    )
    name = forms.CharField(
        label=_("Name on the card"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "cc-name"}),
    )
    save_card = forms.BooleanField(label=_("Save this card for later payments"), required=False)

    def clean_expiry(self) -> tuple[int, int]:
        match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", self.cleaned_data["expiry"])
        if not match:
            raise forms.ValidationError(_("Enter the expiry as MM/YY, e.g. 08/29."))
        month, year = int(match.group(1)), int(match.group(2))
        if year < 100:
            year += 2000
        if not 1 <= month <= 12:
            raise forms.ValidationError(_("The month must be between 01 and 12."))
        return month, year
