"""transaction_search: the merchant's transaction search, first page, over 1,000,000 payments.

Ours: for one merchant account, the real `payments.selectors.transaction_search` with three
criteria combined (creation date range + state + amount range, the values varied per
request from a fixed seeded list), evaluated as the merchant view
(`payments.views.merchant.transactions`) evaluates it: a `Paginator` of PAGE_SIZE, the
first page (the paginator's COUNT, then the page's slice with platform and shop joined,
turned into model instances: the selector writes its two statements itself, see its
docstring) and the elided page range. Template rendering is left out.

Baseline: the very statements Django sent for each request (captured with
CaptureQueriesContext: Django binds on the client, so they are complete SQL texts), sent
in the same order over a raw psycopg connection, rows fetched as tuples.

Both sides: one request after another on one connection each, autocommit, no statement
preparation (Django never prepares; the raw connection has prepare_threshold=None), the
same requests in the same order; the result is the 95th percentile of the request
latencies in ms. Prepare checks that both sides return the same rows and that no plan
reads payments_transaction with a sequential scan, and records EXPLAIN ANALYZE.

Data: 50 merchant accounts (made by the account services) on three sandbox platforms,
each registered on two of them, shops on half of the registrations; then the payments.
A few dozen are made by the real payment services in every state (sandbox gateway); the
rest by one INSERT ... SELECT per chunk whose per-row logic (DERIVE) is checked against
those service-made rows: given the same inputs it must produce the same value in every
column except ids, keys and timestamps (which must agree on being set or not).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import time
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from djmoney.money import Money

from accounts.models import Account, CardBrand, Platform, Shop
from accounts.services.core import account_create
from accounts.services.organisation import shop_create
from bench.scenarios import Context, Scenario
from payments.gateways import sandbox
from payments.models import Gateway, State, Transaction
from payments.selectors import TransactionFilters, transaction_search
from payments.services import transactions as tx_services
from payments.views.merchant import PAGE_SIZE

HISTORY_DAYS = 730
CHUNK = 250_000
# Distinct searches; the runs cycle through them.
SEARCHES = 50
SEED = 20260306
# Requests per run (full size); each side runs them all, one after another.
REQUESTS_PER_RUN = 250

PLATFORMS = (
    ("search-cz", "Search CZ", "CZ", "CZK"),
    ("search-es", "Search ES", "ES", "EUR"),
    ("search-bg", "Search BG", "BG", "BGN"),
)

# How a payment ended up as it is; DERIVE turns one into every column.
VARIANT_STATES = {
    "fresh": State.CREATED,  # never tried
    "declined": State.CREATED,  # a card declined while the customer was paying
    "challenge": State.ACTION_REQUIRED,  # waiting for 3-D Secure
    "authorized": State.AUTHORIZED,
    "captured": State.CAPTURED,
    "partially_refunded": State.PARTIALLY_REFUNDED,
    "refunded": State.REFUNDED,
    "voided": State.VOIDED,
    "expired": State.EXPIRED,
    "failed_declined": State.FAILED,  # declined off-session
    "failed_abandoned": State.FAILED,  # closed by reconciliation (maybe after a decline)
    "failed_abandoned_challenge": State.FAILED,  # 3-D Secure never finished
}
DECLINE_CARDS = {
    sandbox.DECLINED: "4000000000000002",
    sandbox.INSUFFICIENT_FUNDS: "4000000000009995",
    sandbox.EXPIRED_CARD: "4000000000000069",
    sandbox.INCORRECT_CVC: "4000000000000127",
}
VISA, THREE_D_SECURE = "4242424242424242", "4000002500003155"

# Every column but id, in the order DERIVE produces them.
COLUMNS = (
    "public_id",
    "account_id",
    "platform_id",
    "shop_id",
    "amount",
    "amount_currency",
    "captured_amount",
    "captured_amount_currency",
    "refunded_amount",
    "refunded_amount_currency",
    "purpose",
    "purpose_type_id",
    "purpose_id",
    "description",
    "gateway",
    "gateway_reference",
    "card_brand",
    "card_last4",
    "saved_card_id",
    "state",
    "pending_operation",
    "pending_amount",
    "pending_since",
    "auto_capture",
    "next_action_url",
    "return_url",
    "failure_code",
    "failure_message",
    "authorized_at",
    "authorization_expires_at",
    "captured_at",
    "closed_at",
    "created_at",
    "updated_at",
    "idempotency_key",
    "created_by_id",
)
KEYS = {"public_id", "gateway_reference", "idempotency_key"}
TIMES = {
    "pending_since",
    "authorized_at",
    "authorization_expires_at",
    "captured_at",
    "closed_at",
    "created_at",
    "updated_at",
}

# One row per payment of relation `spec` (public_id, account_id, platform_id, shop_id,
# currency, amount, purpose, description, auto_capture, variant, brand, last4, failure,
# captured, refunded, created_at, d_capture, d_close) -> the row payments.services leave.
DERIVE = """
SELECT s.public_id, s.account_id, s.platform_id, s.shop_id,
    s.amount, s.currency AS amount_currency,
    CASE WHEN s.variant IN ('captured', 'partially_refunded', 'refunded')
        THEN s.captured ELSE 0 END AS captured_amount,
    s.currency AS captured_amount_currency,
    CASE s.variant WHEN 'refunded' THEN s.captured
        WHEN 'partially_refunded' THEN s.refunded ELSE 0 END AS refunded_amount,
    s.currency AS refunded_amount_currency,
    s.purpose, NULL::integer AS purpose_type_id, NULL::bigint AS purpose_id,
    left(s.description, 200) AS description, %(gateway)s AS gateway,
    CASE WHEN s.variant IN ('fresh', 'declined', 'failed_declined', 'failed_abandoned') THEN ''
        ELSE 'sb_ch_' || left(md5(s.public_id::text), 20) END AS gateway_reference,
    s.brand AS card_brand, s.last4 AS card_last4, NULL::bigint AS saved_card_id,
    %(states)s::jsonb ->> s.variant AS state,
    '' AS pending_operation, NULL::numeric AS pending_amount,
    NULL::timestamptz AS pending_since, s.auto_capture,
    CASE WHEN s.variant IN ('challenge', 'failed_abandoned_challenge')
        THEN %(challenge_prefix)s || s.public_id::text || %(challenge_suffix)s ELSE ''
    END AS next_action_url,
    '' AS return_url,
    CASE WHEN s.variant IN ('declined', 'failed_declined') THEN s.failure
        WHEN s.variant IN ('failed_abandoned', 'failed_abandoned_challenge') THEN 'abandoned'
        ELSE '' END AS failure_code,
    CASE WHEN s.variant IN ('declined', 'failed_declined') THEN %(messages)s::jsonb ->> s.failure
        WHEN s.variant IN ('failed_abandoned', 'failed_abandoned_challenge') THEN %(abandoned)s
        ELSE '' END AS failure_message,
    a.authorized_at,
    CASE WHEN s.variant = 'authorized'
        THEN a.authorized_at + %(authorization_days)s * interval '1 day' END
        AS authorization_expires_at,
    k.captured_at, k.closed_at, s.created_at,
    GREATEST(s.created_at, a.authorized_at, k.captured_at, k.closed_at) AS updated_at,
    NULL::varchar AS idempotency_key, NULL::bigint AS created_by_id
FROM spec AS s
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.variant IN (
        'authorized', 'captured', 'partially_refunded', 'refunded', 'voided', 'expired'
    ) THEN s.created_at + interval '20 seconds' END AS authorized_at
) AS a
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.variant IN ('captured', 'partially_refunded', 'refunded')
        THEN a.authorized_at + s.d_capture END AS captured_at
) AS c
CROSS JOIN LATERAL (
    SELECT CASE s.variant
        WHEN 'refunded' THEN c.captured_at + s.d_close
        WHEN 'voided' THEN a.authorized_at + s.d_close
        WHEN 'expired'
            THEN a.authorized_at + %(authorization_days)s * interval '1 day' + interval '5 minutes'
        WHEN 'failed_declined' THEN s.created_at + interval '20 seconds'
        WHEN 'failed_abandoned' THEN s.created_at + s.d_close
        WHEN 'failed_abandoned_challenge' THEN s.created_at + s.d_close
    END AS closed_at
) AS z
CROSS JOIN LATERAL (
    -- Nothing happens after the load's "now".
    SELECT CASE WHEN c.captured_at > %(now)s THEN %(now)s ELSE c.captured_at END AS captured_at,
        CASE WHEN z.closed_at > %(now)s THEN %(now)s ELSE z.closed_at END AS closed_at
) AS k
"""

# Rows first..last of `total`, spread over HISTORY_DAYS up to `end`, in creation order.
BULK_SPEC = """
WITH reg AS (
    SELECT * FROM jsonb_to_recordset(%(registrations)s::jsonb)
        AS r(rank int, slot int, account_id bigint, platform_id bigint, currency text, shops jsonb)
), g AS (
    SELECT n,
        %(end)s::timestamptz - (1 - n::float8 / %(total)s) * %(days)s * interval '1 day'
            - random() * interval '20 minutes' AS created_at,
        -- Skewed: rank 0 gets sqrt(1/accounts) of the payments (14 %% for 50 accounts).
        floor(%(accounts)s * (random() ^ 2))::int AS rank,
        (random() >= 0.7)::int AS slot,
        random() AS r_purpose, random() AS r_recent, random() AS r_state, random() AS r_amount,
        random() AS r_card, random() AS r_brand, random() AS r_part, random() AS r_delay,
        random() AS r_shop
    FROM generate_series(%(first)s, %(last)s) AS n
), base AS (
    SELECT g.*, reg.account_id, reg.platform_id, reg.currency, reg.shops,
        CASE WHEN r_purpose < 0.55 THEN 'goods' WHEN r_purpose < 0.85 THEN 'order'
            ELSE 'other' END AS purpose,
        round(exp(ln(2) + r_amount * ln(2500))::numeric, 2) AS amount,
        extract(epoch FROM %(end)s::timestamptz - g.created_at) / 86400 AS age
    FROM g JOIN reg USING (rank, slot)
), chosen AS (
    SELECT base.*,
        CASE WHEN purpose = 'goods' AND r_part < 0.1
            THEN round(amount * (0.5 + 4.5 * r_part)::numeric, 2) ELSE amount END AS captured,
        CASE
            -- Pending payments are recent: reconciliation closes them after a day.
            WHEN age < 1 AND r_recent < 0.2
                THEN (ARRAY['fresh', 'fresh', 'declined', 'challenge'])[1 + floor(r_part * 4)::int]
            -- Authorizations expire after PAYMENTS_AUTHORIZATION_DAYS.
            WHEN age < %(authorization_days)s AND purpose = 'goods' AND r_recent < 0.4
                THEN 'authorized'
            WHEN purpose = 'goods' THEN CASE
                WHEN r_state < 0.60 THEN 'captured'
                WHEN r_state < 0.66 THEN 'partially_refunded'
                WHEN r_state < 0.74 THEN 'refunded'
                WHEN r_state < 0.80 THEN 'voided'
                WHEN r_state < 0.83 AND age < %(authorization_days)s + 1 THEN 'voided'
                WHEN r_state < 0.83 THEN 'expired'
                WHEN r_state < 0.95 THEN 'failed_abandoned'
                WHEN r_state < 0.97 THEN 'failed_abandoned_challenge'
                ELSE 'failed_declined' END
            ELSE CASE  -- order and other: charged at once (purchase)
                WHEN r_state < 0.70 THEN 'captured'
                WHEN r_state < 0.75 THEN 'partially_refunded'
                WHEN r_state < 0.83 THEN 'refunded'
                WHEN r_state < 0.96 THEN 'failed_abandoned'
                WHEN r_state < 0.98 THEN 'failed_abandoned_challenge'
                ELSE 'failed_declined' END
        END AS variant
    FROM base
), spec AS (
    SELECT gen_random_uuid() AS public_id, account_id, platform_id,
        CASE WHEN purpose = 'goods' AND jsonb_array_length(shops) > 0 AND r_shop < 0.85
            THEN (shops ->> floor(r_shop / 0.85 * jsonb_array_length(shops))::int)::bigint
        END AS shop_id,
        currency, amount, purpose,
        CASE purpose WHEN 'other' THEN '' ELSE 'Order ' || (100000 + n)::text END AS description,
        purpose <> 'goods' AS auto_capture,
        variant,
        CASE WHEN variant = 'fresh' OR (variant = 'failed_abandoned' AND r_card < 0.6) THEN ''
            ELSE (ARRAY['visa', 'visa', 'visa', 'visa', 'visa', 'mastercard', 'mastercard',
                        'mastercard', 'maestro', 'amex'])[1 + floor(r_brand * 10)::int]
        END AS brand,
        CASE WHEN variant = 'fresh' OR (variant = 'failed_abandoned' AND r_card < 0.6) THEN ''
            ELSE lpad(floor(random() * 10000)::int::text, 4, '0') END AS last4,
        CASE WHEN variant IN ('declined', 'failed_declined') THEN CASE
            WHEN r_delay < 0.5 THEN 'card_declined' WHEN r_delay < 0.8 THEN 'insufficient_funds'
            WHEN r_delay < 0.9 THEN 'expired_card' ELSE 'incorrect_cvc' END
            ELSE '' END AS failure,
        captured,
        CASE WHEN variant = 'partially_refunded' THEN
            LEAST(captured - 0.01,
                  GREATEST(0.01, round(captured * (0.1 + 0.8 * r_delay)::numeric, 2)))
            ELSE 0 END AS refunded,
        created_at,
        CASE WHEN purpose = 'goods' THEN r_delay * interval '5 days'
            ELSE interval '0' END AS d_capture,
        CASE variant
            WHEN 'voided' THEN r_delay * interval '3 days'
            WHEN 'refunded' THEN r_delay * interval '30 days'
            WHEN 'failed_abandoned'
                THEN %(abandoned_hours)s * interval '1 hour' + r_delay * interval '10 minutes'
            WHEN 'failed_abandoned_challenge'
                THEN %(abandoned_hours)s * interval '1 hour' + r_delay * interval '10 minutes'
            ELSE interval '0' END AS d_close
    FROM chosen
)
"""

# The service-made rows as DERIVE's input: their inputs, with what happened to them.
SAMPLE_SPEC = """
WITH v AS (
    SELECT * FROM jsonb_to_recordset(%(sample)s::jsonb) AS v(id bigint, variant text, failure text)
), spec AS (
    SELECT t.public_id, t.account_id, t.platform_id, t.shop_id, t.amount_currency AS currency,
        t.amount, t.purpose, t.description, t.auto_capture, v.variant, t.card_brand AS brand,
        t.card_last4 AS last4, v.failure, t.captured_amount AS captured,
        t.refunded_amount AS refunded, t.created_at, interval '0' AS d_capture,
        interval '0' AS d_close
    FROM payments_transaction AS t JOIN v ON v.id = t.id
)
"""

# What a row looks like, without its values: bulk rows may only look like service-made ones.
SHAPE = """
SELECT DISTINCT t.state, t.auto_capture, t.gateway, t.pending_operation, t.return_url,
    t.card_brand = '' AS no_card, t.card_last4 ~ '^[0-9]{4}$' AS last4_digits,
    CASE WHEN t.gateway_reference = '' THEN ''
        WHEN t.gateway_reference ~ '^sb_ch_[0-9a-f]{20}$' THEN 'sb_ch_'
        ELSE t.gateway_reference END AS reference,
    CASE WHEN t.next_action_url = '' THEN ''
        WHEN t.next_action_url = %(challenge_prefix)s || t.public_id::text || %(challenge_suffix)s
        THEN 'challenge' ELSE t.next_action_url END AS next_action,
    CASE WHEN t.failure_code IN ('', 'abandoned') THEN t.failure_code
        ELSE 'declined' END AS failure,
    t.pending_amount IS NULL, t.pending_since IS NULL, t.authorized_at IS NULL,
    t.authorization_expires_at IS NULL, t.captured_at IS NULL, t.closed_at IS NULL,
    t.captured_amount = 0, t.captured_amount = t.amount, t.refunded_amount = 0,
    t.refunded_amount = t.captured_amount,
    t.amount_currency = p.currency AND t.captured_amount_currency = p.currency
        AND t.refunded_amount_currency = p.currency AS platform_currency,
    r.id IS NOT NULL AS registered,
    t.shop_id IS NULL OR sr.id = r.id AS own_shop,
    t.purpose_type_id IS NULL, t.purpose_id IS NULL, t.saved_card_id IS NULL,
    t.created_by_id IS NULL
FROM payments_transaction AS t
JOIN accounts_platform AS p ON p.id = t.platform_id
LEFT JOIN accounts_registration AS r ON r.account_id = t.account_id AND r.platform_id = p.id
LEFT JOIN accounts_shop AS s ON s.id = t.shop_id
LEFT JOIN accounts_registration AS sr ON sr.id = s.registration_id
WHERE t.account_id = ANY(%(accounts)s) AND {which}
"""


def say(message: str) -> None:
    from bench.runner import say as runner_say

    runner_say(f"transaction_search: {message}")


# --- Data ---------------------------------------------------------------------------------


def _card(number: str) -> str:
    """A sandbox payment method, as the hosted card page makes one."""
    today = timezone.localdate()
    brand = sandbox.card_brand(number)
    return sandbox.tokenize(
        number=number,
        exp_month=12,
        exp_year=today.year + 2,
        cvc="1234" if brand == "amex" else "123",
        today=today,
    )


def make_merchants(count: int) -> list[dict[str, Any]]:
    """``count`` accounts through the account services, each on two platforms, shops on
    the even ones; their registrations as (rank, slot) rows for BULK_SPEC."""
    platforms = []
    for code, name, country, currency in PLATFORMS:
        platforms.append(
            Platform.objects.create(
                code=code,
                name=name,
                legal_name=f"{name} s.r.o.",
                country=country,
                currency=currency,
                iban="CZ6508000000192000145399",
                bic="KOMBCZPP",
                proforma_prefix="SZ",
                invoice_prefix="SF",
                credit_note_prefix="SD",
                card_gateway=Gateway.SANDBOX,
                accepted_card_brands=[
                    CardBrand.VISA,
                    CardBrand.MASTERCARD,
                    CardBrand.MAESTRO,
                    CardBrand.AMEX,
                ],
            )
        )
    registrations = []
    for rank in range(count):
        mine = [platforms[rank % 3], platforms[(rank + 1) % 3]]
        account = account_create(
            name=f"Search merchant {rank}",
            email=f"search{rank}@example.com",
            country="CZ",
            platforms=mine,
        )
        for slot, platform in enumerate(mine):
            registration = account.registrations.get(platform=platform)
            shops = []
            if rank % 2 == 0:
                for number in range(2 - slot):
                    shop = shop_create(
                        account=account, registration=registration, name=f"Shop {number + 1}"
                    )
                    shops.append(shop.pk)
            registrations.append(
                {
                    "rank": rank,
                    "slot": slot,
                    "account_id": account.pk,
                    "platform_id": platform.pk,
                    "currency": str(platform.currency),
                    "shops": shops,
                }
            )
    return registrations


def make_service_rows(registration: dict[str, Any]) -> list[dict[str, Any]]:
    """A payment in every variant, for goods (authorize, capture later) and orders
    (purchase), through payments.services and the sandbox; [{id, variant, failure}]."""
    account = Account.objects.get(pk=registration["account_id"])
    platform = Platform.objects.get(pk=registration["platform_id"])
    shop = Shop.objects.get(pk=registration["shops"][0])
    currency = registration["currency"]
    reason = gettext("The customer did not finish the payment.")
    reconcile = tx_services.Actor.task("reconcile-payments")
    decline_codes = iter(
        [sandbox.DECLINED, sandbox.INSUFFICIENT_FUNDS, sandbox.EXPIRED_CARD, sandbox.INCORRECT_CVC]
    )
    made = []
    for purpose in ("goods", "order"):
        goods = purpose == "goods"
        for variant in VARIANT_STATES:
            if not goods and variant in ("authorized", "voided", "expired"):
                continue  # purchases are never left authorized
            captures = ("captured", "partially_refunded", "refunded")
            partials = (False, True) if goods and variant in captures else (False,)
            cards = (False, True) if variant == "failed_abandoned" else (True,)
            for partial in partials:
                for tried_card in cards:
                    failure = ""
                    if variant in ("declined", "failed_declined"):
                        failure = next(decline_codes)
                    tx = tx_services.transaction_create(
                        account=account,
                        platform=platform,
                        shop=shop if goods else None,
                        amount=Money("123.45", currency),
                        purpose=purpose,
                        description=f"Order {variant}",
                        auto_capture=not goods,
                    )
                    _drive(
                        tx.pk, variant, failure, partial, tried_card, currency, reason, reconcile
                    )
                    made.append({"id": tx.pk, "variant": variant, "failure": failure})
    return made


def _drive(
    pk: int,
    variant: str,
    failure: str,
    partial: bool,
    tried_card: bool,
    currency: str,
    reason: str,
    reconcile: tx_services.Actor,
) -> None:
    """Take a created payment to ``variant`` the way customers, merchants and tasks do."""
    authorize = tx_services.transaction_authorize
    if variant == "fresh":
        return
    if variant == "declined":
        authorize(transaction_id=pk, payment_method=_card(DECLINE_CARDS[failure]))
    elif variant == "challenge":
        authorize(transaction_id=pk, payment_method=_card(THREE_D_SECURE))
    elif variant == "failed_declined":
        authorize(transaction_id=pk, payment_method=_card(DECLINE_CARDS[failure]), off_session=True)
    elif variant == "failed_abandoned":
        if tried_card:
            authorize(transaction_id=pk, payment_method=_card(DECLINE_CARDS[sandbox.DECLINED]))
        tx_services.transaction_fail(transaction_id=pk, reason=reason, actor=reconcile)
    elif variant == "failed_abandoned_challenge":
        authorize(transaction_id=pk, payment_method=_card(THREE_D_SECURE))
        tx_services.transaction_fail(transaction_id=pk, reason=reason, actor=reconcile)
    else:
        tx = authorize(transaction_id=pk, payment_method=_card(VISA))
        if variant == "voided":
            tx_services.transaction_void(transaction_id=pk)
        elif variant == "expired":
            tx_services.transaction_expire(
                transaction_id=pk, actor=tx_services.Actor.task("expire-authorizations")
            )
        elif variant != "authorized" and tx.state == State.AUTHORIZED:
            amount = Money("100.00", currency) if partial else None
            tx_services.transaction_capture(transaction_id=pk, amount=amount)
        if variant == "partially_refunded":
            tx_services.transaction_refund(transaction_id=pk, amount=Money("20.00", currency))
        elif variant == "refunded":
            tx_services.transaction_refund(transaction_id=pk)
    state = Transaction.objects.values_list("state", flat=True).get(pk=pk)
    if state != VARIANT_STATES[variant]:
        raise RuntimeError(f"service-made {variant} payment ended {state}")


def derive_params(now: dt.datetime) -> dict[str, Any]:
    marker = "00000000-0000-4000-8000-000000000000"
    url = reverse("payments:sandbox_challenge", kwargs={"transaction_id": marker})
    prefix, suffix = url.split(marker)
    return {
        "gateway": Gateway.SANDBOX.value,
        "states": json.dumps({variant: str(state) for variant, state in VARIANT_STATES.items()}),
        "messages": json.dumps(sandbox.MESSAGES),
        "abandoned": gettext("The customer did not finish the payment."),
        "challenge_prefix": prefix,
        "challenge_suffix": suffix,
        "authorization_days": settings.PAYMENTS_AUTHORIZATION_DAYS,
        "abandoned_hours": settings.PAYMENTS_ABANDONED_AFTER_HOURS,
        "now": now,
    }


def bulk_load(registrations: list[dict[str, Any]], total: int, params: dict[str, Any]) -> None:
    """``total`` payments, INSERT ... SELECT per chunk, oldest first (as they would arrive)."""
    insert = f"INSERT INTO payments_transaction ({', '.join(COLUMNS)}) {BULK_SPEC} {DERIVE}"
    end = params["now"] - dt.timedelta(hours=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.6)")
        for first in range(1, total + 1, CHUNK):
            started = time.perf_counter()
            cursor.execute(
                insert,
                {
                    **params,
                    "registrations": json.dumps(registrations),
                    "accounts": 1 + max(row["rank"] for row in registrations),
                    "total": total,
                    "first": first,
                    "last": min(total, first + CHUNK - 1),
                    "days": HISTORY_DAYS,
                    "end": end,
                },
            )
            say(f"loaded {cursor.rowcount:,} payments in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        # What autovacuum would have done by the time a merchant searches.
        cursor.execute("VACUUM (ANALYZE) payments_transaction")
        say(f"VACUUM (ANALYZE) in {time.perf_counter() - started:.1f} s")


def _key_shape(value: object) -> str:
    if value is None or value == "":
        return repr(value)
    text = str(value)
    return "sb_ch_" if re.fullmatch(r"sb_ch_[0-9a-f]{20}", text) else "set"


def verify_rows(sample: list[dict[str, Any]], accounts: list[int], params: dict) -> str:
    """Fail unless DERIVE makes the service-made rows from their inputs, and every bulk
    row has the shape of a service-made one."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'payments_transaction' AND column_name <> 'id'"
        )
        table = {row[0] for row in cursor.fetchall()}
        if table != set(COLUMNS):
            raise RuntimeError(
                f"payments_transaction changed: bulk loader lacks {table - set(COLUMNS)}, "
                f"has extra {set(COLUMNS) - table}"
            )
        cursor.execute(f"{SAMPLE_SPEC} {DERIVE}", {**params, "sample": json.dumps(sample)})
        derived = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
        ids = [row["id"] for row in sample]
        cursor.execute(
            f"SELECT {', '.join(COLUMNS)} FROM payments_transaction WHERE id = ANY(%s)", [ids]
        )
        made = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
        problems = []
        for public_id, real in made.items():
            bulk = derived[public_id]
            for column in COLUMNS:
                service_value, bulk_value = real[column], bulk[column]
                if column in TIMES or column in KEYS:
                    # Set or not alike; a gateway reference also of the sandbox's form.
                    same = _key_shape(service_value) == _key_shape(bulk_value)
                else:
                    same = service_value == bulk_value
                if not same:
                    problems.append(
                        f"{real['state']} {column}: service {service_value!r}, bulk {bulk_value!r}"
                    )
        if problems or len(made) != len(sample):
            raise RuntimeError(
                "bulk rows differ from service-made ones:\n" + "\n".join(problems[:20])
            )
        shapes = {}
        for which in ("bulk", "service"):
            condition = "NOT (t.id = ANY(%(ids)s))" if which == "bulk" else "t.id = ANY(%(ids)s)"
            cursor.execute(
                SHAPE.replace("{which}", condition), {**params, "accounts": accounts, "ids": ids}
            )
            shapes[which] = set(cursor.fetchall())
        odd = shapes["bulk"] - shapes["service"]
        if odd:
            raise RuntimeError(f"bulk rows no service makes: {sorted(odd)[:5]}")
        cursor.execute(
            "SELECT DISTINCT failure_code, failure_message FROM payments_transaction "
            "WHERE account_id = ANY(%s)",
            [accounts],
        )
        allowed = {("", ""), ("abandoned", params["abandoned"]), *sandbox.MESSAGES.items()}
        unknown = set(cursor.fetchall()) - allowed
        if unknown:
            raise RuntimeError(f"failure codes the sandbox never gives: {unknown}")
    return (
        f"{len(sample)} service-made payments (every state, goods and purchases) equal the "
        f"bulk loader's rows for the same inputs in every column except ids, keys and "
        f"timestamps; the {len(shapes['bulk'])} shapes of the bulk rows are all among the "
        f"{len(shapes['service'])} of the service-made ones"
    )


# --- The searches -------------------------------------------------------------------------


def searches(today: dt.date) -> list[TransactionFilters]:
    """What merchants ask, varied from a fixed seed: a week, month or quarter of the two
    years, one final state, an amount range."""
    rng = random.Random(SEED)  # noqa: S311 - workload, not security
    states = [State.CAPTURED, State.REFUNDED, State.PARTIALLY_REFUNDED, State.VOIDED]
    states += [State.FAILED, State.EXPIRED]
    weights = [50, 15, 10, 10, 10, 5]
    amounts = [(10, 50), (20, 100), (50, 200), (100, 500), (200, 1000), (500, 5000)]
    found = []
    for _ in range(SEARCHES):
        days = rng.choice((7, 31, 92))
        start = (
            today
            - dt.timedelta(days=HISTORY_DAYS)
            + dt.timedelta(days=rng.randrange(HISTORY_DAYS - days))
        )
        low, high = rng.choice(amounts)
        found.append(
            TransactionFilters(
                created_from=start,
                created_to=start + dt.timedelta(days=days - 1),
                state=str(rng.choices(states, weights)[0]),
                amount_min=Decimal(low),
                amount_max=Decimal(high),
            )
        )
    return found


def django_page(account_id: int, filters: TransactionFilters) -> tuple[int, list[Transaction]]:
    """The first page as payments.views.merchant.transactions evaluates it."""
    found = transaction_search(account_id=account_id, filters=filters)
    paginator = Paginator(found, PAGE_SIZE)
    page = paginator.get_page(None)
    rows = list(page.object_list)  # the template's {% if page.object_list %} and loop
    list(paginator.get_elided_page_range(page.number, on_each_side=2))
    return paginator.count, rows


def raw_page(raw: psycopg.Connection, statements: tuple[str, ...]) -> tuple[int, list[tuple]]:
    """The same statements: the COUNT, then (unless nothing matched) the page."""
    count = raw.execute(statements[0]).fetchone()[0]  # type: ignore[index]
    rows = [row for sql in statements[1:] for row in raw.execute(sql).fetchall()]
    return count, rows


def capture(account_id: int, filters: TransactionFilters) -> tuple[str, ...]:
    """The statements Django sends for one search: the COUNT, then the page (its LIMIT
    is PAGE_SIZE, or the count when fewer match, and there is none when nothing does)."""
    with CaptureQueriesContext(connection) as captured:
        count, _rows = django_page(account_id, filters)
    statements = tuple(query["sql"] for query in captured.captured_queries)
    if (
        len(statements) != (2 if count else 1)
        or not statements[0].startswith("SELECT COUNT(*)")
        or (count and f"LIMIT {min(count, PAGE_SIZE)}" not in statements[1])
    ):
        raise RuntimeError(f"unexpected queries for a search page: {statements}")
    return statements


def plan(raw: psycopg.Connection, sql: str, *, analyze: bool = False) -> str:
    options = "(ANALYZE, BUFFERS OFF) " if analyze else ""
    return "\n".join(row[0] for row in raw.execute(f"EXPLAIN {options}{sql}").fetchall())


def _abridged(sql: str) -> str:
    columns, _from, rest = sql.partition(" FROM ")
    return f"SELECT ({columns.count(',') + 1} columns) FROM {rest}"


def p95(seconds: list[float]) -> float:
    """Nearest-rank 95th percentile, in ms."""
    ordered = sorted(seconds)
    return ordered[math.ceil(0.95 * len(ordered)) - 1] * 1000


# --- Scenario steps -----------------------------------------------------------------------


def prepare(ctx: Context) -> None:
    total = ctx.size(quick=20_000, full=1_000_000)
    started = time.perf_counter()
    merchants = ctx.size(quick=10, full=50)
    registrations = make_merchants(merchants)
    say(f"{merchants} accounts by {time.perf_counter() - started:.1f} s")
    accounts = sorted({row["account_id"] for row in registrations})
    # The smallest merchant with shops gets the service-made payments.
    sample_registration = next(
        row for row in reversed(registrations) if row["shops"] and row["slot"] == 0
    )
    sample = make_service_rows(sample_registration)
    say(f"{len(sample)} service-made payments by {time.perf_counter() - started:.1f} s")
    params = derive_params(timezone.now())
    bulk_load(registrations, total, params)
    verified = verify_rows(sample, accounts, params)
    say(f"rows verified by {time.perf_counter() - started:.1f} s")

    # The biggest merchant (rank 0) searches.
    account_id = registrations[0]["account_id"]
    raw = psycopg.connect(ctx.database_url, autocommit=True, prepare_threshold=None)
    raw.execute("SET TIME ZONE 'UTC'")  # as Django's connection
    ctx.state["raw"] = raw
    requests = searches(params["now"].date())
    statements = [capture(account_id, filters) for filters in requests]
    # Both sides once per search (which also warms them up): same rows, no Seq Scan.
    counts = []
    for filters, sql in zip(requests, statements, strict=True):
        ours_count, ours_rows = django_page(account_id, filters)
        raw_count, raw_rows = raw_page(raw, sql)
        if ours_count != raw_count or [tx.pk for tx in ours_rows] != [row[0] for row in raw_rows]:
            raise RuntimeError(f"the two sides disagree on {filters}")
        for query in sql:
            explained = plan(raw, query)
            if "Seq Scan on payments_transaction" in explained:
                raise RuntimeError(
                    f"a search reads payments_transaction sequentially ({filters}):\n{explained}"
                )
        counts.append(ours_count)
    requests_per_run = ctx.size(quick=60, full=REQUESTS_PER_RUN)
    order = [index % len(requests) for index in range(requests_per_run)]
    ctx.state.update(
        account_id=account_id,
        requests=[requests[index] for index in order],
        statements=[statements[index] for index in order],
    )
    heaviest = counts.index(max(counts))
    example = requests[heaviest]
    rows = Transaction.objects.filter(account_id=account_id).count()
    ctx.state["details"] = {
        "data": (
            f"{total:,} bulk + {len(sample)} service-made payments over {HISTORY_DAYS} days, "
            f"{merchants} accounts, {len(PLATFORMS)} platforms; the searching merchant has "
            f"{rows:,}. {verified}."
        ),
        "searches": (
            f"{len(requests)} distinct searches (date range of 7, 31 or 92 days + state + "
            f"amount range), cycled for {requests_per_run} requests per run; "
            f"{min(counts):,} to {max(counts):,} matches (median "
            f"{sorted(counts)[len(counts) // 2]:,})"
        ),
        "plans checked": "no search's COUNT or page query reads payments_transaction "
        "with a Seq Scan (EXPLAIN of each)",
        "heaviest search": (
            f"{example.created_from} to {example.created_to}, state {example.state}, amount "
            f"{example.amount_min} to {example.amount_max}: {counts[heaviest]:,} matches"
        ),
        "page query": _abridged(statements[heaviest][1]),
        "page query plan (EXPLAIN ANALYZE, BUFFERS OFF)": plan(
            raw, statements[heaviest][1], analyze=True
        ),
        "count query plan (EXPLAIN ANALYZE, BUFFERS OFF)": plan(
            raw, statements[heaviest][0], analyze=True
        ),
    }
    say(f"prepared in {time.perf_counter() - started:.1f} s")


def run_ours(ctx: Context) -> float:
    account_id = ctx.state["account_id"]
    latencies = []
    for filters in ctx.state["requests"]:
        start = time.perf_counter()
        django_page(account_id, filters)
        latencies.append(time.perf_counter() - start)
    return p95(latencies)


def run_baseline(ctx: Context) -> float:
    raw = ctx.state["raw"]
    latencies = []
    for statements in ctx.state["statements"]:
        start = time.perf_counter()
        raw_page(raw, statements)
        latencies.append(time.perf_counter() - start)
    return p95(latencies)


def cleanup(ctx: Context) -> None:
    raw = ctx.state.pop("raw", None)
    if raw is not None:
        raw.close()


SCENARIO = Scenario(
    name="transaction_search",
    description=(
        "Merchant transaction search (date range + state + amount range), first page with "
        "its count, over 1,000,000 payments: 95th-percentile latency of transaction_search "
        "+ Paginator as the merchant view evaluates it vs the same SQL sent with raw psycopg"
    ),
    unit="ms p95",
    higher_is_better=False,
    goal=0.5,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes=(
        "One merchant (the biggest of 50, 14 % of the payments), one request at a time on one "
        "connection per side; the baseline sends the exact statements Django sent (captured), "
        "neither side prepares statements. Template rendering and form parsing are not "
        "measured. Bulk rows carry no message log or sandbox records (the search reads "
        "neither); the service-made sample does. The slowest requests are those with the most "
        "matches (COUNTs over a quarter): database time, alike on both sides. Plans: see "
        "details."
    ),
)
