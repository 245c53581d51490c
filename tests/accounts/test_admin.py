"""The admin is the staff interface: second factor required, staff groups, audit log."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Account, Platform
from billing_site.staff import ADMINISTRATOR, FINANCE, SUPPORT
from tests.conftest import totp_token
from tests.factories import PASSWORD, AccountFactory, PlatformFactory, UserFactory

pytestmark = pytest.mark.django_db


def admin_login(client, user, code: str):
    return client.post(
        "/admin/login/", {"username": user.email, "password": PASSWORD, "otp_token": code}
    )


def test_staff_without_an_authenticator_cannot_enter_and_is_told_how_to_set_one_up(client):
    staff = UserFactory(is_staff=True, is_superuser=True)

    response = admin_login(client, staff, "123456")

    assert response.status_code == 200
    assert "open Security and set up an authenticator app first" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_password_alone_is_not_enough_for_the_admin(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    wrong = f"{(int(totp_token(device)) + 1) % 1_000_000:06d}"

    response = admin_login(client, staff, wrong)

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_staff_enters_the_admin_with_password_and_authenticator_code(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)

    response = admin_login(client, staff, totp_token(device))

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_backup_code_opens_the_admin_once(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    backup = StaticDevice.objects.create(user=staff, name="backup", confirmed=True)
    StaticToken.objects.create(device=backup, token="k3y9p2qz")

    assert admin_login(client, staff, "k3y9p2qz").status_code == 302
    client.logout()
    assert admin_login(client, staff, "k3y9p2qz").status_code == 200


def test_a_customer_with_an_authenticator_still_cannot_enter_the_admin(client):
    customer = UserFactory()
    device = TOTPDevice.objects.create(user=customer, name="phone", confirmed=True)

    admin_login(client, customer, totp_token(device))

    assert client.get("/admin/").status_code == 302


def test_repeated_failed_admin_logins_lock_the_address_out(client, settings):
    staff = UserFactory(is_staff=True, is_superuser=True)
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/admin/login/", {"username": staff.email, "password": "wrong", "otp_token": "1"}
        )

    response = admin_login(client, staff, totp_token(device))

    assert response.status_code == 429
    assert "Too many failed" in response.content.decode()
    assert client.get("/admin/").status_code == 302


def test_staff_change_to_an_account_is_in_the_audit_log_with_who_and_what(staff_client):
    client = staff_client()
    account = AccountFactory(name="Old Name s.r.o.", email="old@example.com")
    change_url = reverse("admin:accounts_account_change", args=[account.pk])
    form = client.get(change_url).context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update(
        {
            "name": "New Name s.r.o.",
            "registrations-TOTAL_FORMS": 0,
            "registrations-INITIAL_FORMS": 0,
            "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0,
            "billing_profiles-TOTAL_FORMS": 0,
            "billing_profiles-INITIAL_FORMS": 0,
        }
    )

    response = client.post(change_url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = LogEntry.objects.get_for_object(account).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor.is_staff
    assert entry.changes_dict["name"] == ["Old Name s.r.o.", "New Name s.r.o."]
    history = client.get(reverse("admin:accounts_account_auditlog", args=[account.pk]))
    assert "New Name s.r.o." in history.content.decode()


def test_the_admin_refuses_an_account_vat_id_with_a_bad_check_digit(staff_client):
    client = staff_client()

    response = client.post(
        reverse("admin:accounts_account_add"),
        {
            "kind": "company",
            "name": "Typo s.r.o.",
            "email": "typo@example.com",
            "language": "cs",
            "country": "CZ",
            "vat_id": "CZ25596642",
            "registrations-TOTAL_FORMS": 0,
            "registrations-INITIAL_FORMS": 0,
            "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0,
            "billing_profiles-TOTAL_FORMS": 0,
            "billing_profiles-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "check digit does not match" in str(errors["vat_id"])
    assert not Account.objects.filter(name="Typo s.r.o.").exists()


def test_an_account_added_in_the_admin_gets_a_variable_symbol(staff_client):
    client = staff_client()

    client.post(
        reverse("admin:accounts_account_add"),
        {
            "kind": "person",
            "name": "Walk-in Customer",
            "email": "walkin@example.com",
            "language": "en",
            "country": "SK",
            "registrations-TOTAL_FORMS": 0,
            "registrations-INITIAL_FORMS": 0,
            "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0,
            "billing_profiles-TOTAL_FORMS": 0,
            "billing_profiles-INITIAL_FORMS": 0,
        },
    )

    account = Account.objects.get(name="Walk-in Customer")
    assert 1_000_000 < account.variable_symbol <= 9_999_999_999


def test_the_admin_checks_a_platforms_bank_details_and_top_up_presets(staff_client):
    client = staff_client()
    platform = PlatformFactory()
    change_url = reverse("admin:accounts_platform_change", args=[platform.pk])
    form = client.get(change_url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: v for k, v in data.items() if v is not None}
    data.update(
        {
            "iban": "CZ6508000000192000145398",
            "topup_minimum": "100",
            "topup_maximum": "1000",
            "topup_presets": "50, 500",
        }
    )

    response = client.post(change_url, data)

    errors = response.context["adminform"].form.errors
    assert "not a valid IBAN" in str(errors["iban"])
    assert "between the minimum and the maximum: 50" in str(errors["topup_presets"])
    platform.refresh_from_db()
    assert platform.iban == "CZ6508000000192000145399"


@pytest.mark.parametrize(
    ("group", "may_view_accounts", "may_change_platforms", "may_see_schedules"),
    [
        (SUPPORT, True, False, False),
        (FINANCE, True, False, False),
        (ADMINISTRATOR, True, True, True),
    ],
)
def test_staff_groups_grant_what_their_job_needs(
    staff_client, group, may_view_accounts, may_change_platforms, may_see_schedules
):
    staff = UserFactory(is_staff=True)
    staff.groups.add(Group.objects.get(name=group))
    client = staff_client(staff)
    platform = PlatformFactory()

    accounts = client.get(reverse("admin:accounts_account_changelist"))
    platform_page = client.get(reverse("admin:accounts_platform_change", args=[platform.pk]))
    schedules = client.get(reverse("admin:django_celery_beat_periodictask_changelist"))

    assert (accounts.status_code == 200) is may_view_accounts
    # A platform page without change permission is read-only: no save button.
    can_save = platform_page.status_code == 200 and 'name="_save"' in platform_page.content.decode()
    assert can_save is may_change_platforms
    assert (schedules.status_code == 200) is may_see_schedules


def test_staff_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {SUPPORT, FINANCE, ADMINISTRATOR}
    assert (
        Group.objects.get(name=ADMINISTRATOR)
        .permissions.filter(codename="change_platform")
        .exists()
    )
    assert (
        not Group.objects.get(name=SUPPORT).permissions.filter(codename="change_platform").exists()
    )
    assert Platform.objects.count() >= 0
