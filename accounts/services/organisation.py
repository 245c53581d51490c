"""How an account is organised: its company details, shops and billing profiles.

Writes lock the Account row first, so checks such as "this shop name is free on
that platform" and the write that relies on them cannot interleave with
another request's. Identifiers (VAT ID, company ID) arrive normalised: the
forms check them with accounts.validators.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext as _

from accounts.exceptions import BillingProfileInUse, BillingProfileLabelTaken, ShopNameTaken
from accounts.models import Account, BillingProfile, Registration, Shop


def _account_lock(account_id: int) -> Account:
    return Account.objects.select_for_update().get(pk=account_id)


# --- Company details -----------------------------------------------------------


@transaction.atomic
def account_update(
    *,
    account: Account,
    kind: str,
    name: str,
    email: str,
    language: str,
    country: str,
    street: str = "",
    city: str = "",
    postal_code: str = "",
    vat_id: str = "",
    company_id: str = "",
) -> Account:
    """Change the company details. The variable symbol never changes (banks match
    transfers by it). The audit log records the change (django-auditlog)."""
    account = _account_lock(account.pk)
    account.kind = kind
    account.name = name
    account.email = email
    account.language = language
    account.country = str(country).upper()
    account.street = street
    account.city = city
    account.postal_code = postal_code
    account.vat_id = vat_id
    account.company_id = company_id
    account.save()
    return account


# --- Shops -------------------------------------------------------------------------


def _shop_name_free(*, registration_id: int, name: str, exclude_shop_id: int | None) -> None:
    taken = Shop.objects.filter(registration_id=registration_id, name__iexact=name.strip())
    if exclude_shop_id is not None:
        taken = taken.exclude(pk=exclude_shop_id)
    if taken.exists():
        raise ShopNameTaken(
            _("You already have a shop called “%(name)s” on this platform.")
            % {"name": name.strip()}
        )


@transaction.atomic
def shop_create(
    *,
    account: Account,
    registration: Registration,
    name: str,
    website: str = "",
    is_active: bool = True,
) -> Shop:
    """A new shop on one of the account's platforms; names are unique per platform
    regardless of case."""
    account = _account_lock(account.pk)
    if registration.account_id != account.pk:
        raise ValueError("The registration belongs to another account")
    _shop_name_free(registration_id=registration.pk, name=name, exclude_shop_id=None)
    return Shop.objects.create(
        registration=registration, name=name.strip(), website=website, is_active=is_active
    )


@transaction.atomic
def shop_update(
    *, account: Account, shop: Shop, name: str, website: str = "", is_active: bool = True
) -> Shop:
    """Rename a shop, change its website or (de)activate it. Its platform stays: its
    charges are in that platform's currency."""
    account = _account_lock(account.pk)
    shop = Shop.objects.get(pk=shop.pk, registration__account=account)
    _shop_name_free(registration_id=shop.registration_id, name=name, exclude_shop_id=shop.pk)
    shop.name = name.strip()
    shop.website = website
    shop.is_active = is_active
    shop.save(update_fields=["name", "website", "is_active"])
    return shop


# --- Billing profiles -------------------------------------------------------------------


def _label_free(*, account: Account, label: str, exclude_profile_id: int | None) -> None:
    taken = BillingProfile.objects.filter(account=account, label__iexact=label.strip())
    if exclude_profile_id is not None:
        taken = taken.exclude(pk=exclude_profile_id)
    if taken.exists():
        raise BillingProfileLabelTaken(
            _("You already have a billing profile called “%(label)s”.") % {"label": label.strip()}
        )


@transaction.atomic
def billing_profile_create(
    *,
    account: Account,
    label: str,
    billing_name: str,
    email: str,
    country: str,
    street: str = "",
    city: str = "",
    postal_code: str = "",
    vat_id: str = "",
    company_id: str = "",
) -> BillingProfile:
    """A billing profile; labels are unique within the account regardless of case."""
    account = _account_lock(account.pk)
    _label_free(account=account, label=label, exclude_profile_id=None)
    return BillingProfile.objects.create(
        account=account,
        label=label.strip(),
        billing_name=billing_name,
        email=email,
        country=str(country).upper(),
        street=street,
        city=city,
        postal_code=postal_code,
        vat_id=vat_id,
        company_id=company_id,
    )


@transaction.atomic
def billing_profile_update(
    *,
    account: Account,
    billing_profile: BillingProfile,
    label: str,
    billing_name: str,
    email: str,
    country: str,
    street: str = "",
    city: str = "",
    postal_code: str = "",
    vat_id: str = "",
    company_id: str = "",
) -> BillingProfile:
    account = _account_lock(account.pk)
    profile = BillingProfile.objects.get(pk=billing_profile.pk, account=account)
    _label_free(account=account, label=label, exclude_profile_id=profile.pk)
    profile.label = label.strip()
    profile.billing_name = billing_name
    profile.email = email
    profile.country = str(country).upper()
    profile.street = street
    profile.city = city
    profile.postal_code = postal_code
    profile.vat_id = vat_id
    profile.company_id = company_id
    profile.save()
    return profile


@transaction.atomic
def billing_profile_delete(*, account: Account, billing_profile: BillingProfile) -> None:
    """Delete a billing profile that no service uses (those protect it)."""
    account = _account_lock(account.pk)
    profile = BillingProfile.objects.filter(pk=billing_profile.pk, account=account).first()
    if profile is None:
        return  # already gone: deleting twice is harmless
    try:
        with transaction.atomic():
            profile.delete()
    except (ProtectedError, RestrictedError):
        raise BillingProfileInUse(
            _("“%(label)s” is still assigned to services. Assign them to another profile first.")
            % {"label": profile.label}
        ) from None


# --- Reads (selectors; see the report: they belong in accounts/selectors.py) ---------------
