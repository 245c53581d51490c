"""Forms of the merchant interface: transaction search, money actions, notes."""

from __future__ import annotations

import re
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money  # formats like the model fields (e.g. "€100.00")

from accounts.forms.organisation import PortalFormMixin
from accounts.models import CardBrand
from payments.models import Purpose, State
from payments.selectors import (
    ReferenceMatch,
    TransactionFilters,
    platforms_for_account,
    shops_for_search,
)


class AmountField(forms.DecimalField):
    """A money amount as people type it: '49.90', '49,90' or '1 200'."""

    # A text input: the browser's number input would refuse "49,90" before we see it.
    widget = forms.TextInput

    default_error_messages = {
        "invalid": _("Enter the amount as a number, e.g. 49.90."),
        "max_decimal_places": _("The amount can have at most two decimal places."),
        "max_digits": _("The amount is too large."),
        "max_whole_digits": _("The amount is too large."),
    }

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off"})

    def to_python(self, value: object) -> Decimal | None:
        if isinstance(value, str):
            value = re.sub(r"[\s\u00a0]", "", value)
            if "," in value and "." not in value:
                value = value.replace(",", ".")
        return super().to_python(value)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class TransactionSearchForm(PortalFormMixin, forms.Form):
    """Search criteria; all optional, all combined. Choices come from the account."""

    created_from = forms.DateField(
        label=_("Created from"),
        required=False,
        widget=DateInput(),
        error_messages={"invalid": _("Enter a date, e.g. 2026-03-01.")},
    )
    created_to = forms.DateField(
        label=_("Created to"),
        required=False,
        widget=DateInput(),
        error_messages={"invalid": _("Enter a date, e.g. 2026-03-31.")},
    )
    state = forms.ChoiceField(
        label=_("State"), required=False, choices=[("", _("Any state")), *State.choices]
    )
    amount_min = AmountField(label=_("Amount from"), required=False, min_value=Decimal(0))
    amount_max = AmountField(label=_("Amount to"), required=False, min_value=Decimal(0))
    purpose = forms.ChoiceField(
        label=_("Purpose"), required=False, choices=[("", _("Any purpose")), *Purpose.choices]
    )
    card_brand = forms.ChoiceField(
        label=_("Card brand"), required=False, choices=[("", _("Any brand")), *CardBrand.choices]
    )
    card_last4 = forms.CharField(
        label=_("Card's last four digits"),
        required=False,
        max_length=4,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        error_messages={"max_length": _("Enter exactly four digits, e.g. 4242.")},
    )
    reference = forms.CharField(
        label=_("Gateway reference"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    reference_match = forms.ChoiceField(
        label=_("Reference match"),
        required=False,
        choices=[
            (ReferenceMatch.EXACT, _("Exactly")),
            (ReferenceMatch.PREFIX, _("Starts with")),
        ],
    )
    shop = forms.ModelChoiceField(
        label=_("Shop"),
        required=False,
        queryset=None,
        empty_label=_("Any shop"),
        error_messages={"invalid_choice": _("Choose one of your shops.")},
    )
    platform = forms.ModelChoiceField(
        label=_("Platform"),
        required=False,
        queryset=None,
        empty_label=_("Any platform"),
        error_messages={"invalid_choice": _("Choose one of your platforms.")},
    )

    def __init__(self, *args: object, account_id: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shop"].queryset = shops_for_search(account_id=account_id)
        self.fields["shop"].label_from_instance = lambda shop: (
            f"{shop.name} ({shop.registration.platform.name})"
        )
        self.fields["platform"].queryset = platforms_for_account(account_id=account_id)
        self.fields["platform"].label_from_instance = lambda platform: (
            f"{platform.name} ({platform.currency})"
        )

    def clean_card_last4(self) -> str:
        value = self.cleaned_data["card_last4"].strip()
        if value and not re.fullmatch(r"[0-9]{4}", value):
            raise forms.ValidationError(
                _("Enter exactly four digits, e.g. 4242."), code="invalid_last4"
            )
        return value

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", _("The end date is before the start date."))
        low, high = cleaned.get("amount_min"), cleaned.get("amount_max")
        if low is not None and high is not None and low > high:
            self.add_error("amount_max", _("The upper amount is below the lower one."))
        return cleaned

    def filters(self) -> TransactionFilters:
        """The valid criteria for payments.selectors.transaction_search."""
        data = self.cleaned_data
        return TransactionFilters(
            created_from=data.get("created_from"),
            created_to=data.get("created_to"),
            state=data.get("state") or "",
            amount_min=data.get("amount_min"),
            amount_max=data.get("amount_max"),
            purpose=data.get("purpose") or "",
            card_brand=data.get("card_brand") or "",
            card_last4=data.get("card_last4") or "",
            reference=data.get("reference") or "",
            reference_match=data.get("reference_match") or ReferenceMatch.EXACT,
            shop_id=data["shop"].pk if data.get("shop") else None,
            platform_id=data["platform"].pk if data.get("platform") else None,
        )

    @property
    def is_filtering(self) -> bool:
        """Whether any criterion is set (the reference match alone is not one)."""
        if not self.is_bound:
            return False
        return any(self.data.get(name) for name in self.fields if name not in ("reference_match",))


class MoneyActionForm(PortalFormMixin, forms.Form):
    """The amount of a capture or refund, at most ``maximum`` (both in its currency).

    ``confirmed`` is set by the confirmation step: the first POST checks the amount
    and shows what will happen, the second (with ``confirmed``) does it.
    """

    amount = AmountField(label=_("Amount"), min_value=Decimal("0.01"))
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    too_much_message = _("The amount can be at most %(maximum)s.")

    def __init__(self, *args: object, maximum: Money, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.maximum = maximum
        self.fields["amount"].help_text = _("In %(currency)s, at most %(maximum)s.") % {
            "currency": maximum.currency.code,
            "maximum": maximum,
        }
        self.fields["amount"].error_messages["min_value"] = _("The amount must be more than zero.")

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount > self.maximum.amount:
            raise forms.ValidationError(
                self.too_much_message % {"maximum": self.maximum}, code="too_much"
            )
        return amount

    @property
    def money(self) -> Money:
        return Money(self.cleaned_data["amount"], self.maximum.currency)


class CaptureForm(MoneyActionForm):
    too_much_message = _("You can capture at most %(maximum)s, the authorized amount.")


class RefundForm(MoneyActionForm):
    too_much_message = _("You can refund at most %(maximum)s, what is left of the captured amount.")


class NoteForm(PortalFormMixin, forms.Form):
    text = forms.CharField(
        label=_("Note"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "Everyone who can see this payment sees the note, with your name and the time."
        ),
        error_messages={"required": _("Write the note first.")},
    )
