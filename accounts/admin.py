"""The staff interface for accounts. Changes are recorded by django-auditlog."""

from __future__ import annotations

from auditlog.mixins import AuditlogHistoryAdminMixin
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.forms.common import BusinessIdentifiersMixin, DecimalListField
from accounts.models import (
    Account,
    BillingProfile,
    CardBrand,
    Invitation,
    Membership,
    Platform,
    Registration,
    Shop,
    User,
)
from accounts.services import core
from accounts.validators import (
    normalize_bic,
    normalize_iban,
    normalize_local_account_number,
)


@admin.register(User)
class UserAdmin(AuditlogHistoryAdminMixin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = [
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_active",
        "two_factor",
        "email_verified_at",
        "last_login",
    ]
    list_filter = ["is_staff", "is_superuser", "is_active", "groups"]
    search_fields = ["email", "first_name", "last_name"]
    readonly_fields = ["last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "language")}),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Important dates"), {"fields": ("email_verified_at", "last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return (
            super()
            .get_queryset(request)
            .annotate(confirmed_totp=Count("totpdevice", filter=Q(totpdevice__confirmed=True)))
        )

    @admin.display(description=_("two-factor"), boolean=True, ordering="confirmed_totp")
    def two_factor(self, user: User) -> bool:
        return bool(getattr(user, "confirmed_totp", 0))


class PlatformAdminForm(BusinessIdentifiersMixin, forms.ModelForm):
    topup_presets = DecimalListField(
        label=_("top-up presets"),
        required=False,
        help_text=_("Amounts offered as buttons, in the platform's currency, comma-separated."),
    )

    accepted_card_brands = forms.MultipleChoiceField(
        label=_("accepted card brands"),
        choices=CardBrand.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    class Meta:
        model = Platform
        fields = "__all__"

    def clean_iban(self) -> str:
        return normalize_iban(self.cleaned_data["iban"])

    def clean_bic(self) -> str:
        return normalize_bic(self.cleaned_data["bic"])

    def clean(self) -> dict:
        cleaned = super().clean()
        local = cleaned.get("local_account_number")
        if local:
            try:
                cleaned["local_account_number"] = normalize_local_account_number(
                    local, str(cleaned.get("country") or "")
                )
            except forms.ValidationError as error:
                self.add_error("local_account_number", error)
        minimum, maximum = cleaned.get("topup_minimum"), cleaned.get("topup_maximum")
        if minimum is not None and maximum is not None:
            if maximum < minimum:
                self.add_error("topup_maximum", _("The maximum must not be below the minimum."))
            outside = [a for a in cleaned.get("topup_presets") or [] if not minimum <= a <= maximum]
            if outside:
                self.add_error(
                    "topup_presets",
                    _("Presets must lie between the minimum and the maximum: %(amounts)s")
                    % {"amounts": ", ".join(str(a) for a in outside)},
                )
        return cleaned


@admin.register(Platform)
class PlatformAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    form = PlatformAdminForm
    list_display = ["name", "code", "country", "currency", "default_language", "is_active"]
    list_filter = ["is_active", "currency", "country"]
    search_fields = ["name", "legal_name", "code", "vat_id", "company_id"]
    fieldsets = (
        (None, {"fields": ("code", "name", "is_active")}),
        (
            _("Legal entity"),
            {
                "fields": (
                    "legal_name",
                    "street",
                    "city",
                    "postal_code",
                    "country",
                    "vat_id",
                    "company_id",
                    "support_email",
                )
            },
        ),
        (_("Bank account"), {"fields": ("bank_name", "iban", "bic", "local_account_number")}),
        (
            _("Money and language"),
            {
                "fields": (
                    "currency",
                    "default_language",
                    "time_zone",
                    "card_gateway",
                    "accepted_card_brands",
                )
            },
        ),
        (
            _("Top-ups"),
            {
                "fields": (
                    "topup_presets",
                    "topup_minimum",
                    "topup_maximum",
                    "recharge_threshold_days",
                    "spend_average_days",
                )
            },
        ),
        (
            _("Document series"),
            {"fields": ("proforma_prefix", "invoice_prefix", "credit_note_prefix")},
        ),
    )


class AccountAdminForm(BusinessIdentifiersMixin, forms.ModelForm):
    class Meta:
        model = Account
        fields = "__all__"


class RegistrationInline(admin.TabularInline):
    model = Registration
    extra = 0
    readonly_fields = ["created_at"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class BillingProfileInline(admin.StackedInline):
    model = BillingProfile
    extra = 0


@admin.register(Account)
class AccountAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    form = AccountAdminForm
    list_display = ["name", "kind", "email", "country", "variable_symbol", "created_at"]
    list_filter = ["kind", "country", "platforms"]
    search_fields = ["name", "email", "vat_id", "company_id", "=variable_symbol"]
    readonly_fields = ["variable_symbol", "created_at"]
    inlines = [RegistrationInline, MembershipInline, BillingProfileInline]
    fieldsets = (
        (None, {"fields": ("kind", "name", "email", "language", "variable_symbol")}),
        (_("Address"), {"fields": ("street", "city", "postal_code", "country")}),
        (_("Identifiers"), {"fields": ("vat_id", "company_id")}),
        (None, {"fields": ("created_at",)}),
    )

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if not change:
            # New accounts get their variable symbol from the database sequence.
            obj.variable_symbol = core.variable_symbol_next()
        super().save_model(request, obj, form, change)


@admin.register(Membership)
class MembershipAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "account__name"]
    autocomplete_fields = ["user", "account"]
    list_select_related = ["user", "account"]


@admin.register(Registration)
class RegistrationAdmin(admin.ModelAdmin):
    list_display = ["account", "platform", "created_at"]
    list_filter = ["platform"]
    search_fields = ["account__name", "=account__variable_symbol"]
    autocomplete_fields = ["account"]
    list_select_related = ["account", "platform"]


@admin.register(Shop)
class ShopAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    list_display = ["name", "account_name", "platform_name", "website", "is_active"]
    list_filter = ["is_active", "registration__platform"]
    search_fields = ["name", "registration__account__name", "website"]
    list_select_related = ["registration__account", "registration__platform"]
    raw_id_fields = ["registration"]

    @admin.display(description=_("account"), ordering="registration__account__name")
    def account_name(self, shop: Shop) -> str:
        return shop.registration.account.name

    @admin.display(description=_("platform"), ordering="registration__platform__name")
    def platform_name(self, shop: Shop) -> str:
        return shop.registration.platform.name


class BillingProfileAdminForm(BusinessIdentifiersMixin, forms.ModelForm):
    class Meta:
        model = BillingProfile
        fields = "__all__"


@admin.register(BillingProfile)
class BillingProfileAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    form = BillingProfileAdminForm
    list_display = ["label", "account", "billing_name", "email", "country"]
    search_fields = ["label", "billing_name", "email", "account__name", "vat_id"]
    autocomplete_fields = ["account"]
    list_select_related = ["account"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "account", "role", "created_at", "expires_at", "status"]
    list_filter = ["role"]
    search_fields = ["email", "account__name"]
    readonly_fields = [
        "account",
        "email",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    fields = readonly_fields
    actions = ["revoke"]
    list_select_related = ["account"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invitations are sent from the portal, which e-mails the link

    @admin.display(description=_("status"))
    def status(self, invitation: Invitation) -> str:
        if invitation.accepted_at:
            return str(_("accepted"))
        if invitation.revoked_at:
            return str(_("revoked"))
        if invitation.expires_at <= timezone.now():
            return str(_("expired"))
        return str(_("open"))

    @admin.action(description=_("Revoke selected open invitations"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        count = 0
        # One save per row (not .update()) so that the audit log records each.
        for invitation in queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True):
            invitation.revoked_at = timezone.now()
            invitation.save(update_fields=["revoked_at"])
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d invitation revoked.", "%(count)d invitations revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )
