from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from accounts import models

        # Every change to these rows (by staff in the admin or by members in the
        # portal) is recorded with its actor: who, when, what changed.
        auditlog.register(models.Account)
        auditlog.register(models.Platform)
        auditlog.register(models.Registration)
        auditlog.register(models.Membership)
        auditlog.register(models.Invitation, exclude_fields=["token_hash"])
        auditlog.register(models.Shop)
        auditlog.register(models.BillingProfile)
        auditlog.register(models.User, exclude_fields=["password", "last_login"])
