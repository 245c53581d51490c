"""The account's organisation in the portal: company details, switching accounts,
shops, billing profiles and platform registrations."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.models import Account, BillingProfile, Registration, Shop
from accounts.selectors import CURRENT_ACCOUNT_SESSION_KEY
from tests.factories import (
    BillingProfileFactory,
    MembershipFactory,
    PlatformFactory,
    RegistrationFactory,
    ShopFactory,
)

pytestmark = pytest.mark.django_db

COMPANY = reverse("accounts:company")
COMPANY_EDIT = reverse("accounts:company_edit")
SHOPS = reverse("accounts:shops")
SHOP_CREATE = reverse("accounts:shop_create")
PROFILES = reverse("accounts:billing_profiles")
PROFILE_CREATE = reverse("accounts:billing_profile_create")
PLATFORMS = reverse("accounts:platforms")

VALID_VAT_ID = "CZ25596641"
VALID_COMPANY_ID = "25596641"


def html(response) -> str:
    return response.content.decode()


def field_error(page: str, field: str) -> str:
    """The error text shown next to ``field`` (and tied to it with aria-describedby)."""
    assert re.search(rf'aria-describedby="[^"]*\bid_{field}_error\b', page), f"no error on {field}"
    match = re.search(rf'<div class="invalid-feedback" id="id_{field}_error">([^<]*)</div>', page)
    assert match, f"no error text for {field}"
    return match[1]


@pytest.fixture
def owner(account, member_of):
    return member_of(account, "owner")


# --- Company details ----------------------------------------------------------------


def test_company_page_shows_details_variable_symbol_and_platforms(client_for, owner):
    account = owner.account
    platform = account.registrations.get().platform

    page = html(client_for(owner.user).get(COMPANY))

    assert account.name in page
    assert account.email in page
    assert str(account.variable_symbol) in page
    assert "payment reference" in page
    assert "bank transfer" in page
    assert platform.name in page
    assert platform.currency in page


def company_data(account: Account, **overrides: str) -> dict[str, str]:
    return {
        "kind": "company",
        "name": "Acme s.r.o.",
        "email": "office@acme.example",
        "language": "cs",
        "street": "Dlouhá 1",
        "city": "Praha",
        "postal_code": "110 00",
        "country": "CZ",
        "vat_id": "cz 255 966 41",
        "company_id": VALID_COMPANY_ID,
        **overrides,
    }


def test_company_edit_saves_details_with_normalised_identifiers(client_for, owner):
    account = owner.account
    client = client_for(owner.user)

    form = client.get(COMPANY_EDIT)
    response = client.post(COMPANY_EDIT, company_data(account), follow=True)

    assert form.status_code == 200
    assert f'value="{account.name}"' in html(form)
    account.refresh_from_db()
    assert (account.name, account.vat_id, account.company_id) == (
        "Acme s.r.o.",
        VALID_VAT_ID,
        VALID_COMPANY_ID,
    )
    assert "The company details have been saved." in html(response)


def test_company_edit_refuses_a_vat_id_with_a_wrong_checksum(client_for, owner):
    before = Account.objects.filter(pk=owner.account_id).values().get()

    response = client_for(owner.user).post(
        COMPANY_EDIT, company_data(owner.account, vat_id="CZ25596642")
    )

    assert response.status_code == 200
    assert "check digit does not match" in field_error(html(response), "vat_id")
    assert Account.objects.filter(pk=owner.account_id).values().get() == before


def test_company_edit_refuses_a_company_id_with_a_wrong_checksum(client_for, owner):
    before = Account.objects.filter(pk=owner.account_id).values().get()

    response = client_for(owner.user).post(
        COMPANY_EDIT, company_data(owner.account, vat_id="", company_id="25596642")
    )

    assert "not a valid company ID for Czechia" in field_error(html(response), "company_id")
    assert Account.objects.filter(pk=owner.account_id).values().get() == before


def test_company_edit_refuses_a_vat_id_of_another_country(client_for, owner):
    response = client_for(owner.user).post(
        COMPANY_EDIT, company_data(owner.account, vat_id="SK2020317068", company_id="")
    )

    assert "belongs to Slovakia, but the country is Czechia" in field_error(
        html(response), "vat_id"
    )


def test_accountant_sees_company_without_edit_button_and_cannot_edit(client_for, owner, member_of):
    accountant = member_of(owner.account, "accountant")
    client = client_for(accountant.user)

    page = html(client.get(COMPANY))
    refused = client.post(COMPANY_EDIT, company_data(owner.account))

    assert str(owner.account.variable_symbol) in page
    assert COMPANY_EDIT not in page
    assert refused.status_code == 403
    assert Account.objects.get(pk=owner.account_id).name == owner.account.name


# --- Switching accounts ----------------------------------------------------------------


def test_switching_account_changes_what_the_company_page_shows(client_for, owner):
    second = MembershipFactory(user=owner.user, account__name="Zeta Second", role="accountant")
    client = client_for(owner.user)
    first_page = html(client.get(COMPANY))

    response = client.post(
        reverse("accounts:switch"), {"account": second.account_id, "next": COMPANY}
    )
    second_page = html(client.get(COMPANY))

    assert owner.account.name in first_page
    assert response.status_code == 302
    assert response["Location"] == COMPANY
    assert client.session[CURRENT_ACCOUNT_SESSION_KEY] == second.account_id
    assert str(second.account.variable_symbol) in second_page
    assert str(owner.account.variable_symbol) not in second_page
    # The role follows the account: an accountant there cannot edit.
    assert client.get(COMPANY_EDIT).status_code == 403


def test_switching_to_an_account_the_user_is_not_a_member_of_is_not_found(client_for, owner):
    foreign = MembershipFactory().account
    client = client_for(owner.user)

    response = client.post(reverse("accounts:switch"), {"account": foreign.pk, "next": "/"})
    nonsense = client.post(reverse("accounts:switch"), {"account": "abc"})

    assert response.status_code == 404
    assert nonsense.status_code == 404
    assert CURRENT_ACCOUNT_SESSION_KEY not in client.session
    assert str(owner.account.variable_symbol) in html(client.get(COMPANY))


def test_switch_refuses_to_redirect_elsewhere_and_is_post_only(client_for, owner):
    client = client_for(owner.user)

    response = client.post(
        reverse("accounts:switch"),
        {"account": owner.account_id, "next": "https://evil.example/phish"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get(reverse("accounts:switch")).status_code == 405


# --- Shops ----------------------------------------------------------------


@pytest.fixture
def merchant(owner):
    """The owner's account on a CZK and a EUR platform."""
    czk = owner.account.registrations.get()
    eur = RegistrationFactory(
        account=owner.account, platform=PlatformFactory(name="Euro Market", currency="EUR")
    )
    return owner, czk, eur


def test_shops_are_listed_by_platform_with_its_currency(client_for, merchant):
    owner, czk, eur = merchant
    ShopFactory(registration=czk, name="Prague Store")
    ShopFactory(registration=eur, name="Madrid Store", website="https://madrid.example")

    page = html(client_for(owner.user).get(SHOPS))

    sections = page.split("<section")[1:]
    czk_section = next(section for section in sections if czk.platform.name in section)
    eur_section = next(section for section in sections if "Euro Market" in section)
    assert "CZK" in czk_section
    assert "Prague Store" in czk_section
    assert "Madrid Store" not in czk_section
    assert "EUR" in eur_section
    assert "Madrid Store" in eur_section
    assert "https://madrid.example" in eur_section


def test_owner_adds_a_shop_on_a_chosen_platform(client_for, merchant):
    owner, _czk, eur = merchant

    response = client_for(owner.user).post(
        SHOP_CREATE,
        {"registration": eur.pk, "name": "Web Shop", "website": "", "is_active": "on"},
        follow=True,
    )

    shop = Shop.objects.get()
    assert (shop.registration, shop.name, shop.website, shop.is_active) == (
        eur,
        "Web Shop",
        "",
        True,
    )
    assert "has been added" in html(response)


def test_shop_name_is_unique_per_platform_regardless_of_case(client_for, merchant):
    owner, czk, eur = merchant
    ShopFactory(registration=czk, name="Main Shop")
    client = client_for(owner.user)

    taken = client.post(SHOP_CREATE, {"registration": czk.pk, "name": "main shop"})
    elsewhere = client.post(SHOP_CREATE, {"registration": eur.pk, "name": "main shop"})

    assert taken.status_code == 200
    assert "already have a shop called “main shop” on this platform" in field_error(
        html(taken), "name"
    )
    assert elsewhere.status_code == 302
    assert Shop.objects.filter(registration=czk).count() == 1
    assert Shop.objects.filter(registration=eur).count() == 1


def test_shop_edit_renames_and_deactivates_but_refuses_a_taken_name(client_for, merchant):
    owner, czk, _eur = merchant
    ShopFactory(registration=czk, name="Outlet")
    shop = ShopFactory(registration=czk, name="Old Name")
    url = reverse("accounts:shop_edit", args=[shop.pk])
    client = client_for(owner.user)

    taken = client.post(url, {"name": "OUTLET", "website": ""})
    renamed = client.post(url, {"name": "New Name", "website": "https://new.example"})

    assert "already have a shop called" in field_error(html(taken), "name")
    assert renamed.status_code == 302
    shop.refresh_from_db()
    assert (shop.name, shop.website, shop.is_active, shop.registration) == (
        "New Name",
        "https://new.example",
        False,  # the unticked box
        czk,
    )


def test_shop_cannot_be_created_on_another_accounts_platform_registration(client_for, owner):
    foreign = RegistrationFactory()

    response = client_for(owner.user).post(
        SHOP_CREATE, {"registration": foreign.pk, "name": "Sneaky"}
    )

    assert response.status_code == 200
    assert field_error(html(response), "registration")
    assert not Shop.objects.exists()


def test_accountant_sees_shops_but_cannot_add_or_edit(client_for, merchant, member_of):
    owner, czk, _eur = merchant
    shop = ShopFactory(registration=czk, name="Visible")
    client = client_for(member_of(owner.account, "accountant").user)

    page = html(client.get(SHOPS))
    refused = [
        client.post(SHOP_CREATE, {"registration": czk.pk, "name": "Nope"}),
        client.post(reverse("accounts:shop_edit", args=[shop.pk]), {"name": "Renamed"}),
    ]

    assert "Visible" in page
    assert SHOP_CREATE not in page
    assert reverse("accounts:shop_edit", args=[shop.pk]) not in page
    assert [response.status_code for response in refused] == [403, 403]
    assert list(Shop.objects.values_list("name", flat=True)) == ["Visible"]


def test_technical_member_manages_shops(client_for, merchant, member_of):
    owner, czk, _eur = merchant
    client = client_for(member_of(owner.account, "technical").user)

    response = client.post(SHOP_CREATE, {"registration": czk.pk, "name": "Tech Shop"})

    assert response.status_code == 302
    assert Shop.objects.filter(name="Tech Shop").exists()


# --- Billing profiles ----------------------------------------------------------------


def profile_data(**overrides: str) -> dict[str, str]:
    return {
        "label": "Agency clients",
        "billing_name": "Agency Client s.r.o.",
        "street": "Krátká 2",
        "city": "Brno",
        "postal_code": "602 00",
        "country": "CZ",
        "email": "invoices@agency.example",
        "vat_id": VALID_VAT_ID,
        "company_id": VALID_COMPANY_ID,
        **overrides,
    }


def test_billing_profiles_page_explains_where_payment_requests_go(client_for, owner):
    BillingProfileFactory(account=owner.account, label="Reseller", email="r@example.com")

    page = html(client_for(owner.user).get(PROFILES))

    assert "Reseller" in page
    assert "r@example.com" in page
    assert "payment requests sent to the profile's billing e-mail" in page


def test_billing_profile_is_created_with_normalised_identifiers(client_for, owner):
    response = client_for(owner.user).post(
        PROFILE_CREATE, profile_data(vat_id="cz25596641"), follow=True
    )

    profile = BillingProfile.objects.get()
    assert (profile.account, profile.label, profile.vat_id, profile.company_id) == (
        owner.account,
        "Agency clients",
        VALID_VAT_ID,
        VALID_COMPANY_ID,
    )
    assert "has been added" in html(response)


def test_billing_profile_refuses_wrong_vat_and_company_ids(client_for, owner):
    client = client_for(owner.user)

    response = client.post(PROFILE_CREATE, profile_data(vat_id="CZ25596642", company_id="25596642"))

    page = html(response)
    assert "check digit does not match" in field_error(page, "vat_id")
    assert "not a valid company ID for Czechia" in field_error(page, "company_id")
    assert not BillingProfile.objects.exists()


def test_billing_profile_label_is_unique_within_the_account(client_for, owner):
    BillingProfileFactory(account=owner.account, label="Agency clients")
    BillingProfileFactory(label="Other")  # another account may use any label

    response = client_for(owner.user).post(PROFILE_CREATE, profile_data(label="AGENCY CLIENTS"))

    assert "already have a billing profile called" in field_error(html(response), "label")
    assert BillingProfile.objects.filter(account=owner.account).count() == 1


def test_billing_profile_edit_saves_and_checks_identifiers(client_for, owner):
    profile = BillingProfileFactory(account=owner.account, label="Old")
    url = reverse("accounts:billing_profile_edit", args=[profile.pk])
    client = client_for(owner.user)

    refused = client.post(url, profile_data(label="New", vat_id="CZ25596642"))
    saved = client.post(url, profile_data(label="New", email="new@agency.example"))

    assert "check digit does not match" in field_error(html(refused), "vat_id")
    assert saved.status_code == 302
    profile.refresh_from_db()
    assert (profile.label, profile.email) == ("New", "new@agency.example")


def test_billing_profile_is_deleted_after_confirming(client_for, owner):
    profile = BillingProfileFactory(account=owner.account, label="Gone soon")
    url = reverse("accounts:billing_profile_delete", args=[profile.pk])
    client = client_for(owner.user)

    confirm = client.get(url)
    still_there = BillingProfile.objects.filter(pk=profile.pk).exists()
    response = client.post(url, follow=True)

    assert confirm.status_code == 200
    assert "Delete the profile" in html(confirm)
    assert still_there
    assert not BillingProfile.objects.filter(pk=profile.pk).exists()
    assert "has been deleted" in html(response)


def test_technical_member_gets_403_on_billing_profiles(client_for, owner, member_of):
    profile = BillingProfileFactory(account=owner.account)
    client = client_for(member_of(owner.account, "technical").user)

    responses = [
        client.get(PROFILES),
        client.post(PROFILE_CREATE, profile_data()),
        client.post(reverse("accounts:billing_profile_delete", args=[profile.pk])),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403]
    assert BillingProfile.objects.count() == 1


def test_accountant_sees_billing_profiles_without_buttons_and_cannot_change_them(
    client_for, owner, member_of
):
    profile = BillingProfileFactory(account=owner.account, label="Shown")
    client = client_for(member_of(owner.account, "accountant").user)

    page = html(client.get(PROFILES))
    refused = [
        client.post(PROFILE_CREATE, profile_data()),
        client.post(reverse("accounts:billing_profile_edit", args=[profile.pk]), profile_data()),
        client.post(reverse("accounts:billing_profile_delete", args=[profile.pk])),
    ]

    assert "Shown" in page
    assert PROFILE_CREATE not in page
    assert reverse("accounts:billing_profile_delete", args=[profile.pk]) not in page
    assert [response.status_code for response in refused] == [403, 403, 403]
    assert list(BillingProfile.objects.values_list("label", flat=True)) == ["Shown"]


def test_billing_member_manages_billing_profiles(client_for, owner, member_of):
    client = client_for(member_of(owner.account, "billing").user)

    response = client.post(PROFILE_CREATE, profile_data())

    assert response.status_code == 302
    assert BillingProfile.objects.filter(account=owner.account).count() == 1


# --- Platforms ----------------------------------------------------------------


def test_platforms_page_lists_registrations_and_registers_on_another_platform(client_for, owner):
    registered = owner.account.registrations.get().platform
    open_platform = PlatformFactory(name="Open Market", currency="EUR", country="ES")
    closed = PlatformFactory(name="Closed Market", is_active=False)
    client = client_for(owner.user)

    page = html(client.get(PLATFORMS))
    response = client.post(PLATFORMS, {"platform": open_platform.pk}, follow=True)

    assert registered.name in page
    assert "CZK" in page
    assert "Czechia" in page
    assert f'<option value="{open_platform.pk}"' in page
    assert f'<option value="{registered.pk}"' not in page
    assert closed.name not in page
    assert Registration.objects.filter(account=owner.account, platform=open_platform).exists()
    assert "now registered on Open Market" in html(response)


def test_registering_on_a_closed_platform_is_refused(client_for, owner):
    closed = PlatformFactory(name="Closed Market", is_active=False)
    PlatformFactory(name="Open Market")

    response = client_for(owner.user).post(PLATFORMS, {"platform": closed.pk})

    assert response.status_code == 200
    assert field_error(html(response), "platform")
    assert not Registration.objects.filter(platform=closed).exists()


def test_billing_member_sees_platforms_but_cannot_register(client_for, owner, member_of):
    other = PlatformFactory(name="Open Market")
    client = client_for(member_of(owner.account, "billing").user)

    page = html(client.get(PLATFORMS))
    refused = client.post(PLATFORMS, {"platform": other.pk})

    assert owner.account.registrations.get().platform.name in page
    assert "Register on another platform" not in page
    assert refused.status_code == 403
    assert owner.account.registrations.count() == 1
