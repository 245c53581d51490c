from django.apps import AppConfig


class BillingSiteConfig(AppConfig):
    """The project package as an app: project-wide commands, tasks and templates."""

    name = "billing_site"
    verbose_name = "Billing site"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from billing_site.staff import staff_groups_sync

        # Staff groups need the permissions that post_migrate creates.
        post_migrate.connect(staff_groups_sync, dispatch_uid="billing_site.staff_groups")
