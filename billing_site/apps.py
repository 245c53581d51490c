from django.apps import AppConfig


class BillingSiteConfig(AppConfig):
    """The project package as an app: project-wide commands, tasks and templates."""

    name = "billing_site"
    verbose_name = "Billing site"
