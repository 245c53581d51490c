from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CreditConfig(AppConfig):
    name = "credit"
    verbose_name = _("Credit")

    def ready(self) -> None:
        from credit.handlers import payment_state_changed
        from payments.signals import transaction_state_changed

        transaction_state_changed.connect(
            payment_state_changed, dispatch_uid="credit.payment_state_changed"
        )
