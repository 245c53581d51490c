"""Forms of the signed-in user's own pages: profile and security.

Checks that need the database or the password (is the code right, is the
password right) belong to the services; views turn their errors into errors
on these forms' fields.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.text import capfirst
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _


class PortalFormMixin:
    """Bootstrap classes on the widgets; a field with an error is marked invalid.

    Django adds aria-invalid and aria-describedby (``<id>_helptext``, ``<id>_error``);
    templates/me/_field.html renders the help and error under those ids.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        for field in self.fields.values():  # type: ignore[attr-defined]
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)

    def add_error(self, field: str | None, error: object) -> None:
        # Every error, from field cleaning or from a view after a refused service call,
        # passes through here.
        super().add_error(field, error)  # type: ignore[misc]
        names = [field] if field else list(getattr(error, "error_dict", {}) or [])
        for name in names:
            if name in self.fields:  # type: ignore[attr-defined]
                widget = self.fields[name].widget  # type: ignore[attr-defined]
                if "is-invalid" not in widget.attrs.get("class", ""):
                    widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()


def _name_local(code: str) -> str:
    return capfirst(get_language_info(code)["name_local"])


class ProfileForm(PortalFormMixin, forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    language = forms.ChoiceField(
        label=_("Language"),
        # Each language in its own name, as the language switch in the header shows them.
        choices=[(code, _name_local(code)) for code, _name in settings.LANGUAGES],
        help_text=_("The portal and the e-mails we send you use this language."),
        error_messages={"invalid_choice": _("Choose one of the offered languages.")},
    )


class TotpConfirmForm(PortalFormMixin, forms.Form):
    token = forms.RegexField(
        label=_("6-digit code from the app"),
        # Apps show the code as "123 456"; spaces are dropped before checking.
        regex=r"^\s*\d{3}\s?\d{3}\s*$",
        max_length=12,
        error_messages={
            "required": _("Enter the 6-digit code your authenticator app shows."),
            "invalid": _("The code is 6 digits, like 123456."),
        },
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_token(self) -> str:
        return "".join(self.cleaned_data["token"].split())


class PasswordConfirmForm(PortalFormMixin, forms.Form):
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        error_messages={"required": _("Enter your password to confirm.")},
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
