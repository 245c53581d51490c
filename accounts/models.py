"""Who sells (platforms), who is billed (accounts), who acts for them (users, memberships),
and how an account is organised (registrations on platforms, shops, billing profiles)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField
from djmoney.models.fields import CurrencyField
from djmoney.money import Money
from timezone_field import TimeZoneField

VARIABLE_SYMBOL_MAX = 9_999_999_999  # ten digits, as Czech and Slovak banks carry it


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        # E-mail addresses are matched without regard to case at login.
        return self.get(email__iexact=username)

    def _create_user(self, email: str, password: str | None, **extra_fields: object) -> User:
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields: object) -> User:
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields: object):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        extra_fields.setdefault("email_verified_at", timezone.now())
        if extra_fields["is_staff"] is not True or extra_fields["is_superuser"] is not True:
            raise ValueError("A superuser must have is_staff and is_superuser set")
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person who logs in: a customer's member or a staff user. The e-mail is the login."""

    username = None
    email = models.EmailField(_("e-mail address"), unique=True)
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, blank=True, default=""
    )
    email_verified_at = models.DateTimeField(_("e-mail verified at"), null=True, blank=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class PostalAddress(models.Model):
    street = models.CharField(_("street and number"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    country = CountryField(_("country"))

    class Meta:
        abstract = True

    @property
    def address_lines(self) -> list[str]:
        lines = [self.street, f"{self.postal_code} {self.city}".strip(), self.country.name]
        return [line for line in lines if line]


class CardBrand(models.TextChoices):
    VISA = "visa", "Visa"
    MASTERCARD = "mastercard", "Mastercard"
    MAESTRO = "maestro", "Maestro"
    AMEX = "amex", "American Express"
    DISCOVER = "discover", "Discover"
    DINERS = "diners", "Diners Club"
    JCB = "jcb", "JCB"
    UNIONPAY = "unionpay", "UnionPay"


def default_card_brands() -> list[str]:
    return [CardBrand.VISA, CardBrand.MASTERCARD, CardBrand.MAESTRO]


class Platform(PostalAddress):
    """The selling entity in one country: its own currency, bank account, documents and credit.

    Amounts (top-up presets and limits) are in the platform's currency.
    """

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=120)
    legal_name = models.CharField(_("legal name"), max_length=200)
    vat_id = models.CharField(_("VAT ID"), max_length=20, blank=True)
    company_id = models.CharField(_("company ID"), max_length=20, blank=True)
    support_email = models.EmailField(_("support e-mail"), blank=True)
    bank_name = models.CharField(_("bank name"), max_length=120, blank=True)
    iban = models.CharField(_("IBAN"), max_length=34)
    bic = models.CharField(_("BIC"), max_length=11)
    local_account_number = models.CharField(
        _("local account number"),
        max_length=30,
        blank=True,
        help_text=_("Czech and Slovak banks: prefix-number/bank code, e.g. 19-2000145399/0800."),
    )
    currency = CurrencyField(_("currency"), choices=[(c, c) for c in settings.CURRENCIES])
    default_language = models.CharField(
        _("default language"), max_length=8, choices=settings.LANGUAGES, default="en"
    )
    time_zone = TimeZoneField(_("time zone"), default="UTC")
    card_gateway = models.CharField(
        _("card gateway"),
        max_length=24,
        choices=[("sandbox", _("Sandbox (test cards)")), ("stripe", "Stripe")],
        default="sandbox",
        help_text=_("Where card payments on this platform are processed."),
    )
    accepted_card_brands = ArrayField(
        models.CharField(max_length=16, choices=CardBrand.choices),
        verbose_name=_("accepted card brands"),
        default=default_card_brands,
        blank=True,
    )
    topup_presets = ArrayField(
        models.DecimalField(max_digits=12, decimal_places=2),
        verbose_name=_("top-up presets"),
        default=list,
        blank=True,
        help_text=_("Amounts offered as buttons, in the platform's currency, comma-separated."),
    )
    topup_minimum = models.DecimalField(
        _("top-up minimum"),
        max_digits=12,
        decimal_places=2,
        default=Decimal("10.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    topup_maximum = models.DecimalField(
        _("top-up maximum"), max_digits=12, decimal_places=2, default=Decimal("10000.00")
    )
    # Automatic recharge (seed 003): charge the saved card when the credit falls below
    # this many days of the average daily spend, averaged over this many days.
    recharge_threshold_days = models.PositiveSmallIntegerField(
        _("recharge below days of spend"), default=5
    )
    spend_average_days = models.PositiveSmallIntegerField(_("average spend over days"), default=30)
    proforma_prefix = models.CharField(_("proforma invoice series prefix"), max_length=10)
    invoice_prefix = models.CharField(_("invoice series prefix"), max_length=10)
    credit_note_prefix = models.CharField(_("credit note series prefix"), max_length=10)
    is_active = models.BooleanField(_("open for new customers"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("platform")
        verbose_name_plural = _("platforms")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(topup_minimum__gt=0)
                & models.Q(topup_maximum__gte=models.F("topup_minimum")),
                name="platform_topup_limits_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(recharge_threshold_days__gte=1)
                & models.Q(spend_average_days__gte=1),
                name="platform_recharge_days_positive",
            ),
            models.CheckConstraint(
                condition=~models.Q(proforma_prefix=models.F("invoice_prefix"))
                & ~models.Q(invoice_prefix=models.F("credit_note_prefix"))
                & ~models.Q(proforma_prefix=models.F("credit_note_prefix")),
                name="platform_series_prefixes_distinct",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"

    def money(self, amount: Decimal | int | str) -> Money:
        return Money(amount, self.currency)

    @property
    def topup_minimum_money(self) -> Money:
        return self.money(self.topup_minimum)

    @property
    def topup_maximum_money(self) -> Money:
        return self.money(self.topup_maximum)

    def accepts_card_brand(self, brand: str) -> bool:
        return brand in self.accepted_card_brands


class Account(PostalAddress):
    """The billed party: a company or a person, a merchant or a customer."""

    class Kind(models.TextChoices):
        COMPANY = "company", _("Company")
        PERSON = "person", _("Person")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.COMPANY)
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("contact e-mail"))
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="en"
    )
    vat_id = models.CharField(_("VAT ID"), max_length=20, blank=True)
    company_id = models.CharField(_("company ID"), max_length=20, blank=True)
    variable_symbol = models.PositiveBigIntegerField(
        _("variable symbol"),
        unique=True,
        editable=False,
        help_text=_("Identifies this account's bank transfers; up to ten digits."),
    )
    platforms = models.ManyToManyField(
        Platform, through="Registration", related_name="accounts", verbose_name=_("platforms")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(variable_symbol__gte=1)
                & models.Q(variable_symbol__lte=VARIABLE_SYMBOL_MAX),
                name="account_variable_symbol_ten_digits",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Registration(models.Model):
    """An account registered on a platform: it buys there, in that platform's currency."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="registrations")
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="registrations")
    created_at = models.DateTimeField(_("registered at"), auto_now_add=True)

    class Meta:
        verbose_name = _("platform registration")
        verbose_name_plural = _("platform registrations")
        ordering = ["platform__name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "platform"], name="registration_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account} @ {self.platform.name}"


class Membership(models.Model):
    """A user acting for an account, with a role that says what they may do."""

    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        ADMIN = "admin", _("Administrator")
        BILLING = "billing", _("Billing")
        ACCOUNTANT = "accountant", _("Accountant")
        TECHNICAL = "technical", _("Technical")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(_("member since"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["account", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.account} ({self.get_role_display()})"


class Invitation(models.Model):
    """An e-mailed offer to join an account with a role; the link carries a secret token.

    Only a hash of the token is stored, so a database leak does not hand out memberships.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(_("e-mail address"))
    role = models.CharField(_("role"), max_length=16, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("invited by"),
    )
    created_at = models.DateTimeField(_("sent at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]
        constraints = [
            # One open invitation per address and account; re-inviting replaces it.
            models.UniqueConstraint(
                Lower("email"),
                "account",
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.account} ({self.get_role_display()})"

    @property
    def is_open(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )


class Shop(models.Model):
    """A merchant's cost centre on one platform. Shops share the account's credit there,
    and every charge records its shop so invoices can break costs down (seed 003)."""

    registration = models.ForeignKey(
        Registration, on_delete=models.PROTECT, related_name="shops", verbose_name=_("platform")
    )
    name = models.CharField(_("name"), max_length=120)
    website = models.URLField(_("website"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("shop")
        verbose_name_plural = _("shops")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"), "registration", name="shop_name_unique_per_platform"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BillingProfile(PostalAddress):
    """Another name, address, e-mail and VAT ID to bill a particular service to (seed 001)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="billing_profiles")
    label = models.CharField(
        _("label"), max_length=80, help_text=_("Your name for this profile, e.g. 'Agency clients'.")
    )
    billing_name = models.CharField(_("billing name"), max_length=200)
    email = models.EmailField(_("billing e-mail"))
    vat_id = models.CharField(_("VAT ID"), max_length=20, blank=True)
    company_id = models.CharField(_("company ID"), max_length=20, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("billing profile")
        verbose_name_plural = _("billing profiles")
        ordering = ["label", "id"]
        constraints = [
            models.UniqueConstraint(Lower("label"), "account", name="billing_profile_label_unique"),
        ]

    def __str__(self) -> str:
        return self.label
