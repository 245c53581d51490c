"""The staff interface: Django's admin, reachable only with a verified second factor."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Password plus a code from the staff member's authenticator app."""

    def clean_otp(self, user):  # type: ignore[no-untyped-def]
        if user is not None and not any(devices_for_user(user, confirmed=True)):
            raise forms.ValidationError(
                _(
                    "The back office needs two-factor authentication. Sign in to the portal, "
                    "open Security and set up an authenticator app first."
                ),
                code="no_device",
            )
        return super().clean_otp(user)

    def _chosen_device(self, user):  # type: ignore[no-untyped-def]
        """No device picker: a six-digit code is for the authenticator app, anything
        else is tried as a backup code. Only that one device is tried (and throttled)."""
        from django_otp.plugins.otp_static.models import StaticDevice
        from django_otp.plugins.otp_totp.models import TOTPDevice

        token = (self.cleaned_data.get("otp_token") or "").strip()
        model = TOTPDevice if token.isdigit() and len(token) == 6 else StaticDevice
        return model.objects.filter(user=user, confirmed=True).order_by("pk").first()


class BillingAdminSite(OTPAdminSite):
    site_header = _("Billing back office")
    site_title = _("Billing back office")
    index_title = _("Administration")
    login_form = StaffLoginForm
    login_template = "admin/staff_login.html"

    def __init__(self, name: str = "admin") -> None:
        # django-otp names its site "otpadmin"; ours is *the* admin, so URL names
        # stay the standard `admin:...`.
        super().__init__(name=name)
