"""Portal pages of the current account: company, members, shops, billing profiles."""

from django.urls import path

from accounts.views import members, organisation

app_name = "accounts"

urlpatterns = [
    path("", organisation.company, name="company"),
    path("edit/", organisation.company_edit, name="company_edit"),
    path("switch/", organisation.switch, name="switch"),
    path("platforms/", organisation.platforms, name="platforms"),
    # Members and invitations
    path("members/", members.members, name="members"),
    path("members/invite/", members.member_invite, name="member_invite"),
    path("members/<int:membership_id>/role/", members.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", members.member_remove, name="member_remove"),
    path(
        "invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke,
        name="invitation_revoke",
    ),
    path(
        "invitations/<int:invitation_id>/resend/",
        members.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "invitations/accept/<str:token>/",
        members.invitation_accept,
        name="invitation_accept",
    ),
    # Shops
    path("shops/", organisation.shops, name="shops"),
    path("shops/new/", organisation.shop_create, name="shop_create"),
    path("shops/<int:shop_id>/edit/", organisation.shop_edit, name="shop_edit"),
    # Billing profiles
    path("billing-profiles/", organisation.billing_profiles, name="billing_profiles"),
    path(
        "billing-profiles/new/",
        organisation.billing_profile_create,
        name="billing_profile_create",
    ),
    path(
        "billing-profiles/<int:billing_profile_id>/edit/",
        organisation.billing_profile_edit,
        name="billing_profile_edit",
    ),
    path(
        "billing-profiles/<int:billing_profile_id>/delete/",
        organisation.billing_profile_delete,
        name="billing_profile_delete",
    ),
]
