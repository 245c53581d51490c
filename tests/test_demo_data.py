"""`manage.py demo_data`, which `make run` calls every time, is idempotent and complete."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils.datastructures import MultiValueDict
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.admin import PlatformAdminForm
from accounts.models import Account, Membership, Platform, Shop, User
from billing_site import demo
from tests.conftest import totp_token

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count() for model in (Platform, Account, Membership, User, Shop, TOTPDevice)
    )


def load() -> str:
    output = StringIO()
    call_command("demo_data", stdout=output)
    return output.getvalue()


def test_demo_data_twice_creates_everything_once_and_prints_the_logins():
    output = load()
    after_first = counts()
    load()

    assert counts() == after_first
    for login in (demo.STAFF_LOGIN, demo.CUSTOMER_LOGIN, demo.SECOND_CUSTOMER_LOGIN):
        assert login.email in output
        assert login.password in output
    assert f"TOTP secret {demo.STAFF_LOGIN.totp_secret}" in output


def test_demo_merchant_has_two_shops_on_a_czk_and_a_eur_platform_and_every_role():
    load()
    merchant = Account.objects.get(memberships__user__email=demo.CUSTOMER_LOGIN.email)

    shops = Shop.objects.filter(registration__account=merchant)
    assert sorted(shop.registration.platform.currency for shop in shops) == ["CZK", "EUR"]
    roles = set(merchant.memberships.values_list("role", flat=True))
    assert roles == {"owner", "billing", "accountant", "technical"}
    second = Account.objects.get(memberships__user__email=demo.SECOND_CUSTOMER_LOGIN.email)
    assert second != merchant


def test_demo_platforms_pass_the_checks_staff_forms_apply():
    load()

    for platform in Platform.objects.all():
        form = PlatformAdminForm(instance=platform)
        data = MultiValueDict()
        for name, field in form.fields.items():
            value = form.initial.get(name)
            value = field.prepare_value(value) if value is not None else ""
            if isinstance(value, list):
                data.setlist(name, value)
            else:
                data[name] = value
        bound = PlatformAdminForm(data=data, instance=platform)
        assert bound.is_valid(), (platform.code, bound.errors)


def test_printed_customer_login_works_on_the_login_page(client):
    load()

    response = client.post(
        "/login/",
        {"username": demo.CUSTOMER_LOGIN.email, "password": demo.CUSTOMER_LOGIN.password},
        follow=True,
    )

    assert "Acme Web s.r.o." in response.content.decode()


def test_printed_staff_login_and_totp_secret_open_the_admin(client):
    load()
    device = TOTPDevice.objects.get(user__email=demo.STAFF_LOGIN.email)
    assert device.key == demo.STAFF_LOGIN.totp_key

    response = client.post(
        "/admin/login/",
        {
            "username": demo.STAFF_LOGIN.email,
            "password": demo.STAFF_LOGIN.password,
            "otp_token": totp_token(device),
        },
    )

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_demo_data_restores_a_changed_demo_password(client):
    load()
    customer = User.objects.get(email=demo.CUSTOMER_LOGIN.email)
    customer.set_password("something-else-entirely")
    customer.save()

    load()

    customer.refresh_from_db()
    assert customer.check_password(demo.CUSTOMER_LOGIN.password)
