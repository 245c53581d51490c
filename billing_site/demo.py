"""Demo data for `make run`: idempotent, built through the real services.

Platforms in CZK and EUR; a merchant on two of them with a shop on each and a
member in every role; a second customer; staff users whose authenticator
secrets `make run` prints, so the admin (which requires two-factor) is usable.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Account, Membership, Platform, Registration, Shop, User
from accounts.services import core as account_services
from billing_site.staff import ADMINISTRATOR, SUPPORT, staff_groups_sync


@dataclass(frozen=True)
class DemoLogin:
    label: str
    email: str
    password: str
    where: str
    # Hex key of the demo authenticator (staff), printed as base32 for apps.
    totp_key: str = ""

    @property
    def totp_secret(self) -> str:
        return base64.b32encode(bytes.fromhex(self.totp_key)).decode() if self.totp_key else ""


STAFF_LOGIN = DemoLogin(
    "Staff (administrator)",
    "admin@example.com",
    "admin-demo-2026",
    "/admin/",
    totp_key="3132333435363738393031323334353637383930",
)
SUPPORT_LOGIN = DemoLogin(
    "Staff (support)",
    "support@example.com",
    "support-demo-2026",
    "/admin/",
    totp_key="4142434445464748494a4b4c4d4e4f5051525354",
)
CUSTOMER_LOGIN = DemoLogin("Merchant owner", "customer@example.com", "customer-demo-2026", "/")
BILLING_LOGIN = DemoLogin("Merchant billing", "billing@example.com", "billing-demo-2026", "/")
ACCOUNTANT_LOGIN = DemoLogin(
    "Merchant accountant", "accountant@example.com", "accountant-demo-2026", "/"
)
TECHNICAL_LOGIN = DemoLogin("Merchant technical", "tech@example.com", "tech-demo-2026", "/")
SECOND_CUSTOMER_LOGIN = DemoLogin("Second customer", "ana@example.com", "ana-demo-2026", "/")

PLATFORMS = [
    {
        "code": "webhost-cz",
        "name": "WebHost CZ",
        "legal_name": "WebHost s.r.o.",
        "street": "Vinohradská 12",
        "city": "Praha 2",
        "postal_code": "120 00",
        "country": "CZ",
        "vat_id": "CZ25596641",
        "company_id": "25596641",
        "support_email": "podpora@webhost.example",
        "bank_name": "Komerční banka",
        "iban": "CZ6508000000192000145399",
        "bic": "KOMBCZPP",
        "local_account_number": "19-2000145399/0800",
        "currency": "CZK",
        "default_language": "cs",
        "time_zone": "Europe/Prague",
        "topup_presets": [Decimal(v) for v in ("500", "1000", "2000", "5000")],
        "topup_minimum": Decimal("200"),
        "topup_maximum": Decimal("200000"),
        "proforma_prefix": "ZF",
        "invoice_prefix": "FV",
        "credit_note_prefix": "DB",
    },
    {
        "code": "webhost-es",
        "name": "WebHost ES",
        "legal_name": "WebHost Hosting S.L.",
        "street": "Calle de Alcalá 45",
        "city": "Madrid",
        "postal_code": "28014",
        "country": "ES",
        "vat_id": "ESB58378431",
        "company_id": "B58378431",
        "support_email": "soporte@webhost.example",
        "bank_name": "Banco Santander",
        "iban": "ES9121000418450200051332",
        "bic": "CAIXESBBXXX",
        "currency": "EUR",
        "default_language": "es",
        "time_zone": "Europe/Madrid",
        # Seed 002: 50 to 250 EUR, Visa and Mastercard, no American Express.
        "accepted_card_brands": ["visa", "mastercard"],
        "topup_presets": [Decimal(v) for v in ("50", "100", "150", "200", "250")],
        "topup_minimum": Decimal("10"),
        "topup_maximum": Decimal("5000"),
        "proforma_prefix": "PRO",
        "invoice_prefix": "FAC",
        "credit_note_prefix": "ABO",
    },
    {
        "code": "admarket-bg",
        "name": "AdMarket BG",
        "legal_name": "АдМаркет ЕООД",
        "street": "бул. Витоша 1",
        "city": "София",
        "postal_code": "1000",
        "country": "BG",
        "vat_id": "BG175074752",
        "company_id": "175074752",
        "support_email": "support@admarket.example",
        "bank_name": "UniCredit Bulbank",
        "iban": "BG80BNBG96611020345678",
        "bic": "UNCRBGSF",
        "currency": "EUR",
        "default_language": "bg",
        "time_zone": "Europe/Sofia",
        "topup_presets": [Decimal(v) for v in ("25", "50", "100", "250")],
        "topup_minimum": Decimal("10"),
        "topup_maximum": Decimal("10000"),
        "proforma_prefix": "PF",
        "invoice_prefix": "INV",
        "credit_note_prefix": "CN",
    },
]


def _platform(values: dict) -> Platform:
    platform, _created = Platform.objects.update_or_create(
        code=values["code"], defaults={k: v for k, v in values.items() if k != "code"}
    )
    return platform


def _user(login: DemoLogin, **fields: object) -> User:
    user = User.objects.filter(email=login.email).first()
    if user is None:
        user = User.objects.create_user(login.email, login.password, **fields)
    else:
        for name, value in fields.items():
            setattr(user, name, value)
    # Always the printed password, so the logins `make run` shows work.
    user.set_password(login.password)
    user.email_verified_at = user.email_verified_at or timezone.now()
    user.save()
    if login.totp_key:
        TOTPDevice.objects.update_or_create(
            user=user,
            name="Demo authenticator",
            defaults={"key": login.totp_key, "confirmed": True},
        )
    return user


def _member(account: Account, login: DemoLogin, role: str, **fields: object) -> User:
    user = _user(login, **fields)
    Membership.objects.update_or_create(user=user, account=account, defaults={"role": role})
    return user


def _shop(registration: Registration, name: str, website: str) -> Shop:
    shop, _created = Shop.objects.get_or_create(
        registration=registration, name=name, defaults={"website": website}
    )
    return shop


@transaction.atomic
def load() -> list[DemoLogin]:
    staff_groups_sync()
    czech, spanish, bulgarian = (_platform(values) for values in PLATFORMS)

    admin = _user(
        STAFF_LOGIN, first_name="Petra", last_name="Admin", is_staff=True, is_superuser=True
    )
    admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
    support = _user(SUPPORT_LOGIN, first_name="Marek", last_name="Support", is_staff=True)
    support.groups.add(Group.objects.get(name=SUPPORT))

    owner = _user(CUSTOMER_LOGIN, first_name="Jana", last_name="Nováková", language="en")
    merchant = Account.objects.filter(memberships__user=owner).first()
    if merchant is None:
        merchant = account_services.account_create(
            name="Acme Web s.r.o.",
            email="billing@acme.example",
            country="CZ",
            kind=Account.Kind.COMPANY,
            language="cs",
            street="Karlova 5",
            city="Brno",
            postal_code="602 00",
            vat_id="CZ27082440",
            company_id="27082440",
            platforms=[czech, bulgarian],
        )
    Membership.objects.update_or_create(
        user=owner, account=merchant, defaults={"role": Membership.Role.OWNER}
    )
    cz_registration = account_services.registration_create(account=merchant, platform=czech)
    bg_registration = account_services.registration_create(account=merchant, platform=bulgarian)
    _shop(cz_registration, "Acme Shop CZ", "https://shop.acme.example")
    _shop(bg_registration, "Acme Store BG", "https://bg.acme.example")
    _member(
        merchant, BILLING_LOGIN, Membership.Role.BILLING, first_name="Karel", last_name="Platil"
    )
    _member(
        merchant, ACCOUNTANT_LOGIN, Membership.Role.ACCOUNTANT, first_name="Eva", last_name="Účetní"
    )
    _member(
        merchant,
        TECHNICAL_LOGIN,
        Membership.Role.TECHNICAL,
        first_name="Tomáš",
        last_name="Technik",
    )

    ana = _user(SECOND_CUSTOMER_LOGIN, first_name="Ana", last_name="García", language="es")
    if not Membership.objects.filter(user=ana).exists():
        person = account_services.account_create(
            name="Ana García",
            email="ana@example.com",
            country="ES",
            kind=Account.Kind.PERSON,
            language="es",
            street="Calle Mayor 3",
            city="Sevilla",
            postal_code="41001",
            platforms=[spanish],
        )
        account_services.membership_create(user=ana, account=person, role=Membership.Role.OWNER)
    _demo_payments(merchant=merchant, owner=owner, czech=czech, bulgarian=bulgarian)
    _demo_credit(
        merchant=merchant,
        owner=owner,
        second=Account.objects.get(memberships__user=ana),
        czech=czech,
        bulgarian=bulgarian,
        spanish=spanish,
    )
    return [
        STAFF_LOGIN,
        SUPPORT_LOGIN,
        CUSTOMER_LOGIN,
        BILLING_LOGIN,
        ACCOUNTANT_LOGIN,
        TECHNICAL_LOGIN,
        SECOND_CUSTOMER_LOGIN,
    ]


def _card(number: str) -> str:
    from payments.gateways import sandbox

    today = timezone.localdate()
    return sandbox.tokenize(
        number=number, exp_month=12, exp_year=today.year + 3, cvc="123", today=today
    )


def _demo_payments(*, merchant: Account, owner: User, czech: Platform, bulgarian: Platform) -> None:
    """Card payments in every state for the merchant interface, once."""
    from djmoney.money import Money

    from payments.models import Transaction
    from payments.services import transactions as tx
    from payments.services.transactions import Actor

    if Transaction.objects.filter(idempotency_key__startswith="demo-").exists():
        return
    shop = Shop.objects.get(registration__account=merchant, registration__platform=bulgarian)
    person = Actor(user=owner)

    def goods(key: str, amount: str, description: str) -> Transaction:
        return tx.transaction_create(
            account=merchant,
            platform=bulgarian,
            shop=shop,
            amount=Money(amount, bulgarian.currency),
            purpose="goods",
            description=description,
            idempotency_key=f"demo-{key}",
        )

    visa, mastercard = "4242424242424242", "5555555555554444"
    waiting = goods("1", "120.00", "Order 1001: two banner prints")
    tx.transaction_authorize(transaction_id=waiting.pk, payment_method=_card(visa))
    tx.transaction_note_add(
        transaction_id=waiting.pk, author=owner, text="Customer asked for delivery on Friday."
    )
    partly = goods("2", "80.00", "Order 1002: roll-up stand")
    tx.transaction_authorize(transaction_id=partly.pk, payment_method=_card(mastercard))
    tx.transaction_capture(
        transaction_id=partly.pk, amount=Money("60.00", bulgarian.currency), actor=person
    )
    refunded = goods("3", "45.50", "Order 1003: flyers")
    tx.transaction_authorize(transaction_id=refunded.pk, payment_method=_card(visa))
    tx.transaction_capture(transaction_id=refunded.pk, actor=person)
    tx.transaction_refund(
        transaction_id=refunded.pk, amount=Money("10.00", bulgarian.currency), actor=person
    )
    voided = goods("4", "30.00", "Order 1004: cancelled by the customer")
    tx.transaction_authorize(transaction_id=voided.pk, payment_method=_card(visa))
    tx.transaction_void(transaction_id=voided.pk, actor=person)
    declined = goods("5", "99.00", "Order 1005: card declined")
    tx.transaction_authorize(
        transaction_id=declined.pk, payment_method=_card("4000000000000002"), off_session=True
    )
    topup = tx.transaction_create(
        account=merchant,
        platform=czech,
        amount=Money("2000.00", czech.currency),
        purpose="topup",
        description="Credit top-up",
        auto_capture=True,
        idempotency_key="demo-6",
    )
    tx.transaction_authorize(transaction_id=topup.pk, payment_method=_card(visa))


def _at(days_ago: float):
    """Book demo history in the past (time-machine is a development tool; without it,
    everything is booked now)."""
    import contextlib
    from datetime import timedelta

    try:
        import time_machine
    except ImportError:
        return contextlib.nullcontext()
    return time_machine.travel(timezone.now() - timedelta(days=days_ago), tick=False)


def _demo_credit(
    *,
    merchant: Account,
    owner: User,
    second: Account,
    czech: Platform,
    bulgarian: Platform,
    spanish: Platform,
) -> None:
    """Credit with two months of history on the merchant's wallets, once."""
    import random
    from decimal import Decimal

    from djmoney.money import Money

    from credit.models import Transfer, Wallet
    from credit.services import ledger
    from credit.services.topups import topup_transfer_start
    from payments.models import SavedCard

    if Transfer.objects.filter(idempotency_key__startswith="demo-credit-").exists():
        return
    rng = random.Random(2026)  # noqa: S311 - demo numbers, not security
    for platform, unit, topups in (
        (czech, Decimal("1"), ("6000.00", "4000.00")),
        (bulgarian, Decimal("0.04"), ("250.00", "150.00")),
    ):
        wallet = ledger.wallet_for(account=merchant, platform=platform)
        shop = Shop.objects.get(registration__account=merchant, registration__platform=platform)
        with _at(60):
            ledger.wallet_credit(
                wallet=wallet,
                amount=Money(topups[0], wallet.currency),
                kind=Transfer.Kind.TOPUP_CARD,
                idempotency_key=f"demo-credit-{platform.code}-t1",
                memo="Top-up by card",
            )
        with _at(25):
            ledger.wallet_credit(
                wallet=wallet,
                amount=Money(topups[1], wallet.currency),
                kind=Transfer.Kind.TOPUP_TRANSFER,
                idempotency_key=f"demo-credit-{platform.code}-t2",
                memo="Top-up by bank transfer",
            )
        for day in range(58, 0, -1):
            if rng.random() < 0.35:
                continue
            amount = (Decimal(rng.randint(40, 140)) * unit).quantize(Decimal("0.01"))
            with _at(day - rng.random() * 0.5):
                ledger.wallet_debit(
                    wallet=wallet,
                    amount=Money(amount, wallet.currency),
                    idempotency_key=f"demo-credit-{platform.code}-d{day}",
                    memo=rng.choice(
                        [
                            "Hosting renewal",
                            "Domain renewal",
                            "Ad campaign",
                            "SSL certificate",
                            "Extra storage",
                        ]
                    ),
                    shop=shop if rng.random() < 0.8 else None,
                )
        refunded = Transfer.objects.filter(wallet=wallet, kind=Transfer.Kind.DEBIT).last()
        ledger.wallet_refund(
            debit=refunded,
            amount=Money(refunded.amount / 2, wallet.currency),
            idempotency_key=f"demo-credit-{platform.code}-r1",
            memo="Partly refunded",
        )
    czech_wallet = ledger.wallet_for(account=merchant, platform=czech)
    Wallet.objects.filter(pk=czech_wallet.pk).update(
        low_balance_limit=Decimal("8000.00"), pay_from_credit=True
    )
    # Automatic recharge on the EUR wallet, with a saved sandbox card.
    bulgarian_wallet = ledger.wallet_for(account=merchant, platform=bulgarian)
    today = timezone.localdate()
    card = SavedCard.objects.create(
        account=merchant,
        platform=bulgarian,
        gateway="sandbox",
        token=_card("4242424242424242"),
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=today.year + 3,
    )
    Wallet.objects.filter(pk=bulgarian_wallet.pk).update(
        auto_recharge_enabled=True,
        auto_recharge_amount=Decimal("100.00"),
        auto_recharge_card=card,
    )
    # The second customer: some credit, paying from it, and a transfer still on its way.
    spanish_wallet = ledger.wallet_for(account=second, platform=spanish)
    ledger.wallet_credit(
        wallet=spanish_wallet,
        amount=Money("150.00", "EUR"),
        kind=Transfer.Kind.TOPUP_CARD,
        idempotency_key="demo-credit-es-t1",
        memo="Top-up by card",
    )
    Wallet.objects.filter(pk=spanish_wallet.pk).update(pay_from_credit=True)
    topup_transfer_start(
        wallet=spanish_wallet,
        amount=Money("100.00", "EUR"),
        terms_accepted=True,
        created_by=None,
    )
