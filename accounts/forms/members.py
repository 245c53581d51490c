"""Portal forms for members and invitations."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from accounts.forms.organisation import PortalFormMixin
from accounts.models import Membership, User


class InvitationForm(PortalFormMixin, forms.Form):
    email = forms.EmailField(
        label=_("E-mail address"),
        help_text=_("We e-mail a link that lets this person join the account."),
    )
    role = forms.ChoiceField(label=_("Role"))

    def __init__(
        self,
        *args: object,
        roles: list[tuple[str, str]],
        offered: list[tuple[str, str]] | None = None,
        **kwargs: object,
    ) -> None:
        """``roles`` are accepted (the service refuses what the inviter may not hand
        out, with a clear message); ``offered`` are the ones the select shows."""
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles
        if offered is not None:
            self.fields["role"].widget.choices = offered
        self.fields["role"].initial = Membership.Role.BILLING

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class MemberRoleForm(PortalFormMixin, forms.Form):
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args: object, roles: list[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles


class InvitationSignupForm(PortalFormMixin, forms.Form):
    """A new user accepting an invitation: the e-mail comes from the invitation."""

    first_name = forms.CharField(label=_("First name"), max_length=150)
    last_name = forms.CharField(label=_("Last name"), max_length=150)
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: object, email: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.email = email
        # Built per request, so the rules are listed in the visitor's language.
        self.fields[
            "password1"
        ].help_text = password_validation.password_validators_help_text_html()
        self.fields["first_name"].widget.attrs["autocomplete"] = "given-name"
        self.fields["last_name"].widget.attrs["autocomplete"] = "family-name"

    def clean(self) -> dict:
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", _("The two passwords differ; please type them again."))
        elif password1:
            candidate = User(
                email=self.email,
                first_name=cleaned.get("first_name", ""),
                last_name=cleaned.get("last_name", ""),
            )
            try:
                password_validation.validate_password(password1, candidate)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned
