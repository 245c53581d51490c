"""Forms of the wallet pages: history filters, the accounting period, wallet settings.

The filters are read from the query string with short names people can type and
bookmark (``?type=debit&from=2026-03-01&to=2026-03-31&shop=7``); ``from`` is a
Python keyword, so those fields are declared under other names and renamed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from accounts.forms.organisation import PortalFormMixin
from credit.models import Transfer, Wallet
from credit.selectors import BadCursor, Cursor, HistoryFilters, shops_of_wallet
from payments.forms_merchant import AmountField, DateInput
from payments.models import SavedCard

# An accounting period longer than this is refused: split it (the page stays quick).
MAX_PERIOD_DAYS = 366


def _query_names(form_class: type[forms.Form], names: dict[str, str]) -> None:
    """Give declared fields the names they have in the query string, keeping their order."""
    form_class.base_fields = {
        names.get(name, name): field for name, field in form_class.base_fields.items()
    }


def _date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        widget=DateInput(),
        error_messages={"invalid": _("Enter a real date as YYYY-MM-DD, e.g. 2026-03-31.")},
    )


def _month_end(day: dt.date) -> dt.date:
    next_month = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return next_month - dt.timedelta(days=1)


class _CursorMixin:
    """The page links' hidden positions (``after``, ``before``): made by us, checked here.

    A damaged one is an error of the whole form (the fields are hidden), and the
    cleaned value is a Cursor.
    """

    def _clean_cursors(self, cleaned: dict) -> None:
        for name in ("after", "before"):
            text = (cleaned.get(name) or "").strip()
            try:
                cleaned[name] = Cursor.decode(text) if text else None
            except BadCursor:
                cleaned[name] = None
                self._bad_cursor()
                return
        if cleaned["after"] and cleaned["before"]:
            self._bad_cursor()

    def _bad_cursor(self) -> None:
        self.add_error(  # type: ignore[attr-defined]
            None,
            forms.ValidationError(
                _("This page link is damaged or incomplete; start again from the first page."),
                code="bad_cursor",
            ),
        )


class HistoryFilterForm(_CursorMixin, PortalFormMixin, forms.Form):
    """History criteria; all optional, all combined (AND)."""

    kind = forms.ChoiceField(
        label=_("Type"),
        required=False,
        choices=[("", _("Any type")), *Transfer.Kind.choices],
        error_messages={"invalid_choice": _("Choose one of the listed types.")},
    )
    date_from = _date_field(_("From"))
    date_to = _date_field(_("To"))
    # The wallet's shops, read once (one query) for the list and the check of the choice.
    shop = forms.TypedChoiceField(
        label=_("Shop"),
        required=False,
        coerce=int,
        empty_value=None,
        error_messages={"invalid_choice": _("Choose one of your shops on this platform.")},
    )
    after = forms.CharField(required=False, widget=forms.HiddenInput)
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, wallet: Wallet, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shop"].choices = [
            ("", _("Any shop")),
            *((shop.pk, shop.name) for shop in shops_of_wallet(wallet=wallet)),
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and start > end:
            self.add_error("to", _("The end date is before the start date."))
        self._clean_cursors(cleaned)
        return cleaned

    def filters(self) -> HistoryFilters:
        data = self.cleaned_data if self.is_bound else {}
        return HistoryFilters(
            kind=data.get("type") or "",
            date_from=data.get("from"),
            date_to=data.get("to"),
            shop_id=data.get("shop"),
        )

    @property
    def is_filtering(self) -> bool:
        return self.is_bound and any(self.data.get(name) for name in ("type", "from", "to", "shop"))


_query_names(HistoryFilterForm, {"kind": "type", "date_from": "from", "date_to": "to"})


class AccountingPeriodForm(_CursorMixin, PortalFormMixin, forms.Form):
    """The period of the accounting view: both days included; the current month by default."""

    date_from = _date_field(_("From"))
    date_to = _date_field(_("To"))
    after = forms.CharField(required=False, widget=forms.HiddenInput)
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, default: tuple[dt.date, dt.date], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.default = default
        self.fields["from"].help_text = _("The first day of the period.")
        self.fields["to"].help_text = _("The last day, included.")

    def clean(self) -> dict:
        cleaned = super().clean()
        if "from" not in self.errors and "to" not in self.errors:
            start, end = cleaned.get("from"), cleaned.get("to")
            # One day given: that day's month from or up to it; none: the default period.
            if start is None and end is None:
                start, end = self.default
            elif start is None:
                start = end.replace(day=1)
            elif end is None:
                end = _month_end(start)
            if start > end:
                self.add_error("to", _("The end date is before the start date."))
            elif (end - start).days >= MAX_PERIOD_DAYS:
                self.add_error(
                    "to",
                    _("Choose a period of at most %(days)d days; export longer ones in parts.")
                    % {"days": MAX_PERIOD_DAYS},
                )
            else:
                cleaned["from"], cleaned["to"] = start, end
        self._clean_cursors(cleaned)
        return cleaned

    @property
    def period(self) -> tuple[dt.date, dt.date]:
        """The chosen (valid) period, or the default one when nothing was chosen."""
        if self.is_bound and self.is_valid():
            return self.cleaned_data["from"], self.cleaned_data["to"]
        return self.default


_query_names(AccountingPeriodForm, {"date_from": "from", "date_to": "to"})


class WalletSettingsForm(PortalFormMixin, forms.Form):
    """Pay from credit, the low-balance limit and the automatic recharge of one wallet.

    The rules (amount limits, a saved card of this account on this platform) are
    checked again by credit.services.wallets.wallet_settings_update.
    """

    pay_from_credit = forms.BooleanField(
        label=_("Pay new orders from credit"),
        required=False,
        help_text=_(
            "When this is on, new orders on this platform are paid from this credit "
            "automatically as soon as they are placed, as long as the credit covers them. "
            "When it is off, you pay each order yourself."
        ),
    )
    low_balance_limit = AmountField(
        label=_("Low-balance limit"),
        min_value=Decimal(0),
        help_text=_(
            "When the balance falls below this amount we e-mail the account and its members "
            "who see money, once, and show a banner in the portal; we warn again only after "
            "the balance has risen above it. Enter 0 to switch the warning off."
        ),
    )
    auto_recharge_enabled = forms.BooleanField(label=_("Recharge automatically"), required=False)
    auto_recharge_amount = AmountField(
        label=_("Recharge amount"), required=False, min_value=Decimal("0.01")
    )
    auto_recharge_card = forms.ModelChoiceField(
        label=_("Card to charge"),
        required=False,
        queryset=None,
        empty_label=_("Choose a saved card"),
        error_messages={"invalid_choice": _("Choose one of your saved cards.")},
    )

    def __init__(self, *args: object, wallet: Wallet, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.wallet = wallet
        platform = wallet.platform
        currency = wallet.currency
        self.cards = SavedCard.objects.filter(
            account_id=wallet.account_id, platform_id=wallet.platform_id, removed_at__isnull=True
        ).order_by("-created_at")
        self.fields["auto_recharge_card"].queryset = self.cards
        limit = self.fields["low_balance_limit"]
        limit.label = _("Low-balance limit (%(currency)s)") % {"currency": currency}
        limit.error_messages["min_value"] = _("The limit cannot be negative; 0 switches it off.")
        limit.error_messages["required"] = _("Enter the limit; 0 switches the warning off.")
        amount = self.fields["auto_recharge_amount"]
        amount.label = _("Recharge amount (%(currency)s)") % {"currency": currency}
        amount.help_text = _("Between %(minimum)s and %(maximum)s.") % {
            "minimum": platform.topup_minimum_money,
            "maximum": platform.topup_maximum_money,
        }
        amount.error_messages["min_value"] = _("The amount must be more than zero.")

    @classmethod
    def initial_for(cls, wallet: Wallet) -> dict:
        return {
            "pay_from_credit": wallet.pay_from_credit,
            "low_balance_limit": wallet.low_balance_limit,
            "auto_recharge_enabled": wallet.auto_recharge_enabled,
            "auto_recharge_amount": wallet.auto_recharge_amount,
            "auto_recharge_card": wallet.auto_recharge_card_id,
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("auto_recharge_enabled"):
            if (
                cleaned.get("auto_recharge_amount") is None
                and "auto_recharge_amount" not in self.errors
            ):
                self.add_error(
                    "auto_recharge_amount",
                    _("Enter how much to recharge each time, or switch automatic recharge off."),
                )
            if not self.cards.exists():
                self.add_error(
                    "auto_recharge_card",
                    _(
                        "You have no saved card on this platform. Pay a top-up by card and "
                        "tick “Save this card”, then come back here."
                    ),
                )
            elif (
                cleaned.get("auto_recharge_card") is None
                and "auto_recharge_card" not in self.errors
            ):
                self.add_error("auto_recharge_card", _("Choose the card to charge."))
        return cleaned

    def service_arguments(self) -> dict:
        """The cleaned values as credit.services.wallets.wallet_settings_update takes them."""
        data = self.cleaned_data
        currency = self.wallet.currency
        enabled = data["auto_recharge_enabled"]
        amount = data.get("auto_recharge_amount")
        card = data.get("auto_recharge_card")
        return {
            "pay_from_credit": data["pay_from_credit"],
            "low_balance_limit": Money(data["low_balance_limit"], currency),
            "auto_recharge_enabled": enabled,
            # Switched off, the amount and card are kept for the next time it is switched on.
            "auto_recharge_amount": Money(amount, currency) if amount is not None else None,
            "auto_recharge_card_id": card.pk if card is not None else None,
        }
