"""The INSTALLED_APPS entry for the admin (kept free of model imports)."""

from django.contrib.admin.apps import AdminConfig


class BillingAdminConfig(AdminConfig):
    """Makes BillingAdminSite (second factor required) the default `admin.site`."""

    default_site = "billing_site.admin_site.BillingAdminSite"
