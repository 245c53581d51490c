"""Wallet settings, the low-balance warning and the automatic recharge (seeds 000, 003)."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from djmoney.money import Money

from credit.exceptions import CreditError
from credit.models import AutoRecharge, Transfer, Wallet
from credit.services.ledger import average_daily_spend

logger = logging.getLogger(__name__)

RECHARGE_WINDOW = timedelta(hours=72)


# --- Low balance -------------------------------------------------------------------------


def low_balance_update(wallet: Wallet) -> None:
    """Warn once when the balance falls below the customer's limit; re-arm above it.

    Called by the ledger with the wallet row locked, after the balance changed.
    """
    below = wallet.is_below_low_balance_limit
    if below and not wallet.low_balance_warned:
        wallet.low_balance_warned = True
        wallet.save(update_fields=["low_balance_warned"])
        wallet_id = wallet.pk
        transaction.on_commit(lambda: low_balance_warning_send(wallet_id))
    elif not below and wallet.low_balance_warned:
        wallet.low_balance_warned = False
        wallet.save(update_fields=["low_balance_warned"])


def _recipients(wallet: Wallet) -> tuple[list[str], str]:
    """The account's contact e-mail and its members who see money."""
    from accounts.models import Membership
    from accounts.permissions import Capability, role_can

    account = wallet.account
    emails = {account.email.lower()}
    for membership in Membership.objects.filter(account=account).select_related("user"):
        if role_can(membership.role, Capability.VIEW_MONEY):
            emails.add(membership.user.email.lower())
    return sorted(emails), account.language


def low_balance_warning_send(wallet_id: int) -> None:
    """E-mail the low-balance warning (after the commit that set the flag)."""
    from billing_site.mail import email_send_on_commit

    wallet = Wallet.objects.select_related("account", "platform").get(pk=wallet_id)
    to, language = _recipients(wallet)
    email_send_on_commit(
        to=to,
        template="credit_low_balance",
        language=language,
        context={
            "account_name": wallet.account.name,
            "platform_name": wallet.platform.name,
            "balance": wallet.balance_money,
            "limit": wallet.money(wallet.low_balance_limit),
        },
    )


# --- Settings ------------------------------------------------------------------------------


def wallet_settings_update(
    *,
    wallet: Wallet,
    pay_from_credit: bool,
    low_balance_limit: Money,
    auto_recharge_enabled: bool,
    auto_recharge_amount: Money | None,
    auto_recharge_card_id: int | None,
) -> Wallet:
    """Save the customer's wallet settings (locks the wallet: the ledger reads them)."""
    from payments.models import SavedCard

    if str(low_balance_limit.currency) != wallet.currency or low_balance_limit.amount < 0:
        raise CreditError(
            _("Enter the limit in %(currency)s, zero or more.") % {"currency": wallet.currency},
            extra={"field": "low_balance_limit"},
        )
    card = None
    if auto_recharge_enabled:
        if auto_recharge_amount is None or auto_recharge_amount.amount <= 0:
            raise CreditError(
                _("Choose how much to recharge."), extra={"field": "auto_recharge_amount"}
            )
        platform = wallet.platform
        if not platform.topup_minimum <= auto_recharge_amount.amount <= platform.topup_maximum:
            raise CreditError(
                _("The recharge must be between %(minimum)s and %(maximum)s.")
                % {
                    "minimum": platform.topup_minimum_money,
                    "maximum": platform.topup_maximum_money,
                },
                extra={"field": "auto_recharge_amount"},
            )
        card = SavedCard.objects.filter(
            pk=auto_recharge_card_id,
            account_id=wallet.account_id,
            platform_id=wallet.platform_id,
            removed_at__isnull=True,
        ).first()
        if card is None:
            raise CreditError(
                _("Automatic recharge needs a saved card; pay a top-up by card and save it."),
                extra={"field": "auto_recharge_card"},
            )
    with transaction.atomic():
        locked = Wallet.objects.select_for_update().get(pk=wallet.pk)
        locked.pay_from_credit = pay_from_credit
        locked.low_balance_limit = low_balance_limit.amount
        locked.auto_recharge_enabled = auto_recharge_enabled
        locked.auto_recharge_amount = auto_recharge_amount.amount if auto_recharge_amount else None
        locked.auto_recharge_card = card
        locked.save()
        low_balance_update(locked)
    return locked


# --- Automatic recharge ---------------------------------------------------------------------


def recharge_threshold(wallet: Wallet) -> Decimal:
    """Five (per platform) days of the average daily spend over 30 (per platform) days."""
    platform = wallet.platform
    average = average_daily_spend(wallet=wallet, days=platform.spend_average_days)
    return average * platform.recharge_threshold_days


def auto_recharge_consider(wallet: Wallet, *, trigger: Transfer) -> AutoRecharge | None:
    """Queue a recharge when this debit left the balance below the threshold.

    Runs with the wallet locked inside the debit's transaction, so concurrent
    debits are serialised; at most one recharge per 72 hours is also enforced by
    the database (exclusion constraint). The charge is queued on commit.
    """
    if not (
        wallet.auto_recharge_enabled
        and wallet.auto_recharge_amount
        and wallet.auto_recharge_card_id
    ):
        return None
    threshold = recharge_threshold(wallet)
    if wallet.balance >= threshold:
        return None
    if AutoRecharge.objects.filter(
        wallet=wallet, created_at__gt=timezone.now() - RECHARGE_WINDOW
    ).exists():
        return None
    try:
        with transaction.atomic():
            recharge = AutoRecharge.objects.create(
                wallet=wallet,
                amount=wallet.auto_recharge_amount,
                currency=wallet.currency,
                balance_at_trigger=wallet.balance,
                threshold=threshold,
                trigger=trigger,
            )
    except IntegrityError:
        return None  # another recharge within 72 hours, per the exclusion constraint
    from credit.tasks import auto_recharge_charge

    recharge_id = recharge.pk
    transaction.on_commit(lambda: auto_recharge_charge.delay(recharge_id))
    return recharge


def auto_recharge_charge(*, recharge_id: int) -> AutoRecharge:
    """Charge the saved card for a queued recharge (off-session, captured at once).

    The wallet is credited by credit.handlers when the payment is captured; a
    refused charge marks the recharge failed and e-mails the customer.
    """
    from payments.services.transactions import Actor, transaction_authorize, transaction_create

    with transaction.atomic():
        recharge = (
            AutoRecharge.objects.select_for_update(of=("self",))
            .select_related("wallet__account", "wallet__platform", "wallet__auto_recharge_card")
            .get(pk=recharge_id)
        )
        if recharge.state != AutoRecharge.State.QUEUED:
            return recharge
        wallet = recharge.wallet
        card = wallet.auto_recharge_card
        if card is None or card.removed_at is not None:
            recharge.state = AutoRecharge.State.FAILED
            recharge.failure_message = _("No saved card any more.")
            recharge.finished_at = timezone.now()
            recharge.save()
            transaction.on_commit(lambda: _recharge_failed_email(recharge_id))
            return recharge
        payment = transaction_create(
            account=wallet.account,
            platform=wallet.platform,
            amount=Money(recharge.amount, recharge.currency),
            purpose="auto_recharge",
            gateway=card.gateway,
            description=_("Automatic recharge of credit"),
            pays_for=recharge,
            auto_capture=True,
            idempotency_key=f"auto-recharge-{recharge.pk}",
        )
        recharge.payment = payment
        recharge.state = AutoRecharge.State.CHARGING
        recharge.save(update_fields=["payment", "state"])
    # The gateway is called after the commit above, with no lock held.
    transaction_authorize(
        transaction_id=payment.pk,
        payment_method=card.token,
        capture=True,
        off_session=True,
        actor=Actor.task("automatic-recharge"),
    )
    recharge.refresh_from_db()
    return recharge


def auto_recharge_finish(*, recharge_id: int, succeeded: bool, message: str = "") -> None:
    """Called when the recharge's payment is settled (credit.handlers)."""
    with transaction.atomic():
        recharge = AutoRecharge.objects.select_for_update().get(pk=recharge_id)
        if recharge.state in (AutoRecharge.State.SUCCEEDED, AutoRecharge.State.FAILED):
            return
        recharge.state = AutoRecharge.State.SUCCEEDED if succeeded else AutoRecharge.State.FAILED
        recharge.failure_message = "" if succeeded else message[:300]
        recharge.finished_at = timezone.now()
        recharge.save()
        if not succeeded:
            logger.warning("automatic recharge %s failed: %s", recharge_id, message)
            transaction.on_commit(lambda: _recharge_failed_email(recharge_id))


def _recharge_failed_email(recharge_id: int) -> None:
    from billing_site.mail import email_send_on_commit

    recharge = AutoRecharge.objects.select_related("wallet__account", "wallet__platform").get(
        pk=recharge_id
    )
    wallet = recharge.wallet
    to, language = _recipients(wallet)
    email_send_on_commit(
        to=to,
        template="credit_recharge_failed",
        language=language,
        context={
            "account_name": wallet.account.name,
            "platform_name": wallet.platform.name,
            "amount": Money(recharge.amount, recharge.currency),
            "reason": recharge.failure_message,
            "balance": wallet.balance_money,
        },
    )
