"""Forms of the sign-up, login (password, then the second factor) and password pages."""

from __future__ import annotations

import re

import django_otp
from django import forms
from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.auth.forms import (
    AuthenticationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
)
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_countries import countries
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.forms.common import BusinessIdentifiersMixin
from accounts.models import Account, Platform, User
from accounts.selectors import platforms_open_for_signup
from accounts.services.signup import password_reset_finish
from billing_site.mail import email_send_on_commit


class PortalFormMixin:
    """Bootstrap classes on the widgets, and ``is-invalid`` on fields with errors.

    Django itself adds ``aria-invalid`` and ``aria-describedby`` (pointing at
    ``<id>_error`` and ``<id>_helptext``), which templates/accounts/auth/_field.html
    renders.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        generic_required = str(forms.Field.default_error_messages["required"])
        for field in self.fields.values():  # type: ignore[attr-defined]
            if str(field.error_messages.get("required", "")) == generic_required:
                # "This field is required." names no field; say which one.
                field.error_messages["required"] = _("“%(field)s” is required.") % {
                    "field": field.label
                }
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput | forms.RadioSelect):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    def full_clean(self) -> None:
        super().full_clean()  # type: ignore[misc]
        for name in self.errors:  # type: ignore[attr-defined]
            if name in self.fields:  # type: ignore[attr-defined]
                widget = self.fields[name].widget  # type: ignore[attr-defined]
                if "is-invalid" not in widget.attrs.get("class", ""):
                    widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid"


# --- Sign-up ------------------------------------------------------------------


class PlatformChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Platform) -> str:
        return f"{obj.name} · {obj.country.name} · {obj.currency}"


def _country_choices() -> list[tuple[str, str]]:
    # A callable, so the names are in the language active when the form is shown.
    return [("", _("Choose a country")), *countries]


class SignupForm(PortalFormMixin, BusinessIdentifiersMixin, forms.Form):
    """A person, the account they bill to and the platform they buy on, in one go."""

    first_name = forms.CharField(
        label=_("First name"),
        error_messages={"required": _("Enter your first name.")},
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label=_("Last name"),
        error_messages={"required": _("Enter your last name.")},
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        help_text=_("You log in with it. We send a link to confirm it."),
        error_messages={"required": _("Enter your e-mail address: you will log in with it.")},
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        error_messages={"required": _("Choose a password.")},
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        error_messages={"required": _("Type the password again, to rule out a typo.")},
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    account_kind = forms.ChoiceField(
        label=_("You buy as"),
        error_messages={"required": _("Choose whether you buy as a company or as a person.")},
        choices=Account.Kind.choices,
        initial=Account.Kind.COMPANY,
        widget=forms.RadioSelect,
    )
    account_name = forms.CharField(
        label=_("Company or billing name"),
        max_length=200,
        required=False,
        help_text=_("Shown on invoices. For a person, leave it empty to use your name."),
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    country = forms.ChoiceField(
        label=_("Country"),
        error_messages={"required": _("Choose the country of the billing address.")},
        choices=_country_choices,
        widget=forms.Select(attrs={"autocomplete": "country"}),
    )
    street = forms.CharField(
        label=_("Street and number"),
        error_messages={"required": _("Enter the street and number of the billing address.")},
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "street-address"}),
    )
    city = forms.CharField(
        label=_("City"),
        error_messages={"required": _("Enter the city of the billing address.")},
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "address-level2"}),
    )
    postal_code = forms.CharField(
        label=_("Postal code"),
        error_messages={"required": _("Enter the postal code of the billing address.")},
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
    )
    vat_id = forms.CharField(
        label=_("VAT ID"),
        max_length=20,
        required=False,
        help_text=_("With the country prefix, e.g. CZ12345678."),
    )
    company_id = forms.CharField(
        label=_("Company ID"),
        max_length=20,
        required=False,
        help_text=_("The company registration number, e.g. 12345678."),
    )
    platform = PlatformChoiceField(
        label=_("Platform"),
        queryset=Platform.objects.none(),
        empty_label=None,
        widget=forms.RadioSelect,
        help_text=_("Where you buy: it sets the currency of your credit and invoices."),
        error_messages={"required": _("Choose the platform you want to buy on.")},
    )
    terms = forms.BooleanField(
        label=_("I accept the terms of service and the privacy policy."),
        error_messages={"required": _("Accept the terms of service to create an account.")},
    )

    # Set by clean_email: the template then offers the login and reset links.
    email_taken = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Here, not on the field, so that the rules are listed in the active language.
        self.fields[
            "password1"
        ].help_text = password_validation.password_validators_help_text_html()
        platforms = platforms_open_for_signup()
        self.fields["platform"].queryset = platforms
        open_platforms = list(platforms[:2])
        if len(open_platforms) == 1:
            self.fields["platform"].initial = open_platforms[0].pk
            self.fields["country"].initial = str(open_platforms[0].country)
        elif not open_platforms:
            self.fields["platform"].help_text = _(
                "No platform accepts new customers at the moment. Please try again later."
            )

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"].strip()).lower()
        if User.objects.filter(email__iexact=email).exists():
            self.email_taken = True
            raise ValidationError(
                _(
                    "There is already a user with this e-mail address. Log in, or reset "
                    "your password if you have forgotten it."
                ),
                code="email_taken",
            )
        return email

    def clean(self) -> dict:
        cleaned = super().clean()
        password1 = cleaned.get("password1")
        password2 = cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error(
                "password2",
                ValidationError(
                    _("The two passwords differ. Type the same password twice."),
                    code="password_mismatch",
                ),
            )
        if password1:
            # The similarity check compares with the name and address being signed up.
            candidate = User(
                email=cleaned.get("email") or self.data.get("email", ""),
                first_name=cleaned.get("first_name", ""),
                last_name=cleaned.get("last_name", ""),
            )
            try:
                password_validation.validate_password(password1, candidate)
            except ValidationError as error:
                self.add_error("password1", error)
        kind = cleaned.get("account_kind")
        name = (cleaned.get("account_name") or "").strip()
        if not name:
            if kind == Account.Kind.COMPANY:
                self.add_error(
                    "account_name",
                    ValidationError(
                        _("Enter the company's name as it should appear on invoices."),
                        code="required",
                    ),
                )
            else:
                full_name = " ".join(
                    part for part in (cleaned.get("first_name"), cleaned.get("last_name")) if part
                )
                cleaned["account_name"] = full_name
        return cleaned


class VerificationResendForm(PortalFormMixin, forms.Form):
    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        error_messages={"required": _("Enter the e-mail address you signed up with.")},
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


# --- Login ------------------------------------------------------------------------


class LoginForm(AuthenticationForm):
    """Django's login form (fields ``username`` and ``password``; it passes the request
    to authenticate(), which django-axes needs), refusing unconfirmed addresses."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "Please enter a correct e-mail address and password. The password is case-sensitive."
        ),
        "email_unverified": _(
            "Please confirm your e-mail address first: open the link we e-mailed you "
            "when you signed up."
        ),
    }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].error_messages["required"] = _("Enter your e-mail address.")
        self.fields["password"].error_messages["required"] = _("Enter your password.")

    def clean_username(self) -> str:
        # One spelling per address, so django-axes counts JANA@ and jana@ together.
        return (self.cleaned_data.get("username") or "").strip().lower()

    def clean(self) -> dict:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username and password:
            # The address goes in under both names: django-axes reads the credential
            # named AXES_USERNAME_FORM_FIELD, which defaults to USERNAME_FIELD ("email"),
            # both when it checks for a lockout and when it records a failure. Under
            # "username" alone it would record every failure for the user None.
            self.user_cache = authenticate(
                self.request, username=username, email=username, password=password
            )
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not user.email_verified:
            raise ValidationError(self.error_messages["email_unverified"], code="email_unverified")

    @property
    def email_unverified(self) -> bool:
        return self.has_error(NON_FIELD_ERRORS, "email_unverified")


def axes_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The login name django-axes counts failures for: the address in lower case, from
    any login form (portal or admin). For settings.AXES_USERNAME_CALLABLE."""
    credentials = credentials or {}
    value = credentials.get("username") or credentials.get("email")
    if value is None:
        value = getattr(request, "POST", {}).get("username")
    return str(value).strip().lower() if value else None


_SIX_DIGITS = re.compile(r"^\d{6}$")


class TwoFactorLoginForm(PortalFormMixin, forms.Form):
    """The second step: a code from the authenticator app, or a backup code.

    Six digits are checked against the TOTP device, anything else against the
    backup codes; only that one device is tried, so only it counts a failure
    (django-otp throttles a device after failures). A backup code works once.
    """

    token = forms.CharField(
        label=_("Code"),
        max_length=32,
        strip=True,
        help_text=_("The 6-digit code your authenticator app shows, or one of your backup codes."),
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
        error_messages={"required": _("Enter the code from your authenticator app.")},
    )

    def __init__(self, *args: object, user: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.device: TOTPDevice | StaticDevice | None = None

    def clean_token(self) -> str:
        # Backup codes are lower-case base32 (StaticToken.random_token), shown in groups.
        token = re.sub(r"[\s-]+", "", self.cleaned_data["token"]).lower()
        model = TOTPDevice if _SIX_DIGITS.match(token) else StaticDevice
        device = model.objects.filter(user=self.user, confirmed=True).order_by("pk").first()
        if device is None:
            raise ValidationError(self._wrong_code_message(), code="wrong_code")
        allowed, details = device.verify_is_allowed()
        if not allowed:
            raise self._throttled_error(details)
        # verify_token locks the device row, so a code cannot be used twice at once.
        verified = django_otp.verify_token(self.user, device.persistent_id, token)
        if verified is None:
            raise ValidationError(self._wrong_code_message(), code="wrong_code")
        self.device = verified
        return token

    @staticmethod
    def _wrong_code_message() -> str:
        return _(
            "That code is not right. Enter the 6-digit code your authenticator app shows "
            "now, or an unused backup code."
        )

    @staticmethod
    def _throttled_error(details: dict | None) -> ValidationError:
        locked_until = (details or {}).get("locked_until")
        seconds = 1
        if locked_until is not None:
            seconds = max(1, int((locked_until - timezone.now()).total_seconds() + 0.999))
        return ValidationError(
            ngettext(
                "Too many wrong codes. Wait %(seconds)s second and try again.",
                "Too many wrong codes. Wait %(seconds)s seconds and try again.",
                seconds,
            ),
            code="throttled",
            params={"seconds": seconds},
        )


# --- Passwords ----------------------------------------------------------------------


class PortalPasswordResetForm(PortalFormMixin, PasswordResetForm):
    """Django's reset form, e-mailing in the user's language through our mail task."""

    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        error_messages={"required": _("Enter the e-mail address you log in with.")},
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict,
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        user = context["user"]
        path = reverse(
            "password_reset_confirm", kwargs={"uidb64": context["uid"], "token": context["token"]}
        )
        email_send_on_commit(
            to=[to_email],
            template="password_reset",
            context={
                **context,
                "reset_url": settings.SITE_URL.rstrip("/") + path,
                "timeout_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
            },
            language=user.language or settings.LANGUAGE_CODE,
        )


class PortalSetPasswordForm(PortalFormMixin, SetPasswordForm):
    """The new password from a reset link; afterwards the user is let back in."""

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=commit)
        if commit:
            password_reset_finish(user=user)
        return user


class PortalPasswordChangeForm(PortalFormMixin, PasswordChangeForm):
    pass
