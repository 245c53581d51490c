"""factory-boy factories that fill only required fields."""

from __future__ import annotations

import factory

from accounts import services as account_services
from accounts.models import Account, Membership, Platform, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "a-good-password-1")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class PlatformFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Platform

    code = factory.Sequence(lambda n: f"platform-{n}")
    name = factory.Sequence(lambda n: f"Platform {n}")
    legal_name = factory.LazyAttribute(lambda platform: f"{platform.name} Ltd.")
    country = "CZ"
    currency = "CZK"


class AccountFactory(factory.django.DjangoModelFactory):
    """Accounts come from the real service, so each gets a real variable symbol."""

    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"billing{n}@example.com")
    country = "CZ"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return account_services.account_create(**kwargs)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Membership.Role.OWNER
