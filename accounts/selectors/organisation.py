"""Reads about an account's organisation: shops, billing profiles, platforms."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from accounts.models import BillingProfile, Platform, Registration, Shop
from accounts.selectors import platforms_open_for_signup, registrations_for_account


@dataclass(frozen=True)
class PlatformShops:
    registration: Registration
    shops: list[Shop]


def shops_by_platform(*, account_id: int) -> list[PlatformShops]:
    """The account's shops grouped by the platform they are on, every platform listed."""
    shops = list(Shop.objects.filter(registration__account_id=account_id).order_by("name", "pk"))
    return [
        PlatformShops(
            registration=registration,
            shops=[shop for shop in shops if shop.registration_id == registration.pk],
        )
        for registration in registrations_for_account(account_id=account_id)
    ]


def shop_for_account(*, account_id: int, shop_id: int) -> Shop | None:
    return (
        Shop.objects.select_related("registration__platform")
        .filter(pk=shop_id, registration__account_id=account_id)
        .first()
    )


def billing_profiles_for_account(*, account_id: int) -> QuerySet[BillingProfile]:
    return BillingProfile.objects.filter(account_id=account_id).order_by("label", "pk")


def platforms_available_to_register(*, account_id: int) -> QuerySet[Platform]:
    """Platforms open for new customers that the account is not registered on yet."""
    return platforms_open_for_signup().exclude(registrations__account_id=account_id)
