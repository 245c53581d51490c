"""factory-boy factories that fill only required fields.

Accounts come from the real service (they need a variable symbol from the
database sequence); everything else is plain rows.
"""

from __future__ import annotations

import factory
from django.utils import timezone

from accounts.models import (
    Account,
    BillingProfile,
    Membership,
    Platform,
    Registration,
    Shop,
    User,
)
from accounts.services import core as account_services

PASSWORD = "a-good-password-1"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    email_verified_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class PlatformFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Platform

    code = factory.Sequence(lambda n: f"platform-{n}")
    name = factory.Sequence(lambda n: f"Platform {n}")
    legal_name = factory.LazyAttribute(lambda platform: f"{platform.name} s.r.o.")
    country = "CZ"
    currency = "CZK"
    iban = "CZ6508000000192000145399"
    bic = "KOMBCZPP"
    proforma_prefix = "ZF"
    invoice_prefix = "FV"
    credit_note_prefix = "DB"


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"billing{n}@example.com")
    country = "CZ"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_services.account_create(**kwargs)


class RegistrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Registration

    account = factory.SubFactory(AccountFactory)
    platform = factory.SubFactory(PlatformFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Membership.Role.OWNER


class ShopFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shop

    registration = factory.SubFactory(RegistrationFactory)
    name = factory.Sequence(lambda n: f"Shop {n}")


class BillingProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BillingProfile

    account = factory.SubFactory(AccountFactory)
    label = factory.Sequence(lambda n: f"Profile {n}")
    billing_name = "Agency Client s.r.o."
    email = factory.Sequence(lambda n: f"invoices{n}@example.com")
    country = "CZ"
