"""Portal forms for the account's organisation: company details, shops, billing
profiles and platform registrations.

Plain forms (fields taken from the models) rather than ModelForms: the services
do the writing, and a ModelForm would also change the instance it was given
while validating, even when the input is refused.
"""

from __future__ import annotations

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.forms.common import BusinessIdentifiersMixin
from accounts.models import Account, BillingProfile, Platform, Registration, Shop


def model_field(model: type[models.Model], name: str, **kwargs: object) -> forms.Field:
    """The form field a model field would get in a ModelForm (label, choices, length)."""
    return model._meta.get_field(name).formfield(**kwargs)


class PortalFormMixin:
    """Bootstrap classes on every widget, and ``is-invalid`` on fields with errors
    (Django itself adds aria-invalid and aria-describedby pointing at
    ``<id>_error``, which templates/accounts/organisation/_field.html renders)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for field in self.fields.values():  # type: ignore[attr-defined]
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select | forms.SelectMultiple):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    @property
    def fields_with_errors(self) -> list:
        """Bound fields that have errors, in form order (for the summary at the top)."""
        return [self[name] for name in self.fields if name in self.errors]  # type: ignore[attr-defined,index]

    def add_error(self, field: str | None, error: object) -> None:
        super().add_error(field, error)  # type: ignore[misc]
        for name in self.errors:  # type: ignore[attr-defined]
            if name in self.fields:  # type: ignore[attr-defined]
                widget = self.fields[name].widget  # type: ignore[attr-defined]
                classes = widget.attrs.get("class", "").split()
                if "is-invalid" not in classes:
                    widget.attrs["class"] = " ".join([*classes, "is-invalid"])


class CompanyForm(PortalFormMixin, BusinessIdentifiersMixin, forms.Form):
    kind = model_field(Account, "kind")
    name = model_field(Account, "name")
    email = model_field(Account, "email")
    language = model_field(Account, "language")
    street = model_field(Account, "street")
    city = model_field(Account, "city")
    postal_code = model_field(Account, "postal_code")
    country = model_field(Account, "country")
    vat_id = model_field(
        Account, "vat_id", help_text=_("EU VAT ID with the country prefix, e.g. CZ12345678.")
    )
    company_id = model_field(
        Account, "company_id", help_text=_("The company registration number, e.g. 12345678.")
    )

    @classmethod
    def initial_for(cls, account: Account) -> dict:
        return {name: getattr(account, name) for name in cls.base_fields}


class ShopForm(PortalFormMixin, forms.Form):
    """Name, website, active flag; on creation also the platform (registration)."""

    registration = forms.ModelChoiceField(
        label=_("Platform"),
        queryset=Registration.objects.none(),
        empty_label=None,
        help_text=_("The shop buys on this platform, in its currency. It cannot be moved later."),
    )
    name = model_field(Shop, "name")
    website = model_field(
        Shop,
        "website",
        help_text=_("For example https://shop.example.com."),
        assume_scheme="https",
    )
    is_active = model_field(
        Shop, "is_active", help_text=_("Inactive shops keep their history but place no orders.")
    )

    def __init__(
        self,
        *args: object,
        registrations: models.QuerySet[Registration] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        if registrations is None:
            # Editing: the platform stays what it is.
            del self.fields["registration"]
        else:
            self.fields["registration"].queryset = registrations
            self.fields["registration"].label_from_instance = lambda registration: (
                f"{registration.platform.name} ({registration.platform.currency})"
            )

    @classmethod
    def initial_for(cls, shop: Shop) -> dict:
        return {"name": shop.name, "website": shop.website, "is_active": shop.is_active}


class BillingProfileForm(PortalFormMixin, BusinessIdentifiersMixin, forms.Form):
    label = model_field(BillingProfile, "label")
    billing_name = model_field(
        BillingProfile,
        "billing_name",
        help_text=_("The name printed on documents, e.g. the company's legal name."),
    )
    street = model_field(BillingProfile, "street")
    city = model_field(BillingProfile, "city")
    postal_code = model_field(BillingProfile, "postal_code")
    country = model_field(BillingProfile, "country")
    email = model_field(
        BillingProfile,
        "email",
        help_text=_("Payment requests for services assigned to this profile are sent here."),
    )
    vat_id = model_field(
        BillingProfile, "vat_id", help_text=_("EU VAT ID with the country prefix, e.g. CZ12345678.")
    )
    company_id = model_field(BillingProfile, "company_id")

    @classmethod
    def initial_for(cls, profile: BillingProfile) -> dict:
        return {name: getattr(profile, name) for name in cls.base_fields}


class PlatformRegisterForm(PortalFormMixin, forms.Form):
    platform = forms.ModelChoiceField(
        label=_("Platform"),
        queryset=Platform.objects.none(),
        empty_label=None,
        help_text=_("You will buy there in the platform's currency, with its own credit."),
    )

    def __init__(self, *args: object, platforms: models.QuerySet[Platform], **kwargs: object):
        super().__init__(*args, **kwargs)
        self.fields["platform"].queryset = platforms
        self.fields["platform"].label_from_instance = lambda platform: (
            f"{platform.name} ({platform.country.name}, {platform.currency})"
        )
