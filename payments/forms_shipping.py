"""Portal forms of shipping: prepare a shipment, mark it shipped.

Plain forms with fields taken from the Shipment model (labels, lengths): the
services in payments/services/shipping.py do the writing.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from accounts.forms.organisation import PortalFormMixin, model_field
from payments.models import Shipment


def _country_choices() -> list[tuple[str, str]]:
    return [("", _("Choose a country")), *((code, name) for code, name in countries)]


class ShipmentForm(PortalFormMixin, forms.Form):
    recipient_name = model_field(
        Shipment,
        "recipient_name",
        widget=forms.TextInput(attrs={"autocomplete": "shipping name"}),
    )
    street = model_field(
        Shipment,
        "street",
        widget=forms.TextInput(attrs={"autocomplete": "shipping street-address"}),
    )
    postal_code = model_field(
        Shipment,
        "postal_code",
        widget=forms.TextInput(attrs={"autocomplete": "shipping postal-code"}),
    )
    city = model_field(
        Shipment,
        "city",
        widget=forms.TextInput(attrs={"autocomplete": "shipping address-level2"}),
    )
    country = forms.ChoiceField(
        label=_("Country"),
        choices=_country_choices,
        widget=forms.Select(attrs={"autocomplete": "shipping country"}),
    )
    phone = model_field(
        Shipment,
        "phone",
        help_text=_("For the courier, if they need to reach the recipient."),
        widget=forms.TextInput(attrs={"autocomplete": "shipping tel", "type": "tel"}),
    )
    items = model_field(Shipment, "items", widget=forms.Textarea(attrs={"rows": 4}))

    def clean_items(self) -> str:
        lines = [line.strip() for line in self.cleaned_data["items"].splitlines() if line.strip()]
        if not lines:
            raise forms.ValidationError(_("List at least one item, one per line."))
        return "\n".join(lines)


class ShipForm(PortalFormMixin, forms.Form):
    carrier = model_field(
        Shipment,
        "carrier",
        required=True,
        help_text=_("The courier company, e.g. DHL, GLS, DPD."),
    )
    tracking_number = model_field(
        Shipment,
        "tracking_number",
        required=True,
        help_text=_("As printed on the carrier's label; delivery confirmations refer to it."),
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "characters"}),
    )
