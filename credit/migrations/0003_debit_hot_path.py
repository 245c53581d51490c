"""The debit's hot path: fewer indexes to write, less work while the wallet is locked.

Nothing here changes what is stored or checked: the same row lock, CHECK constraints,
foreign keys, triggers and unique idempotency key.

Indexes. Every debit writes a transfer, two entries and a queue row, and every index on
them is written too (the transfer had 13). Each index kept serves a query we run:

- dropped, because another index starts with the same column: transfer.wallet
  (transfer_wallet_time, transfer_wallet_kind), transfer.pays_for_type
  (transfer_pays_for), entry.ledger_account (entry_account_time), allocation.debit
  (allocation_debit), pendingallocation.wallet (pending_allocation_wallet);
- dropped, unused: the varchar_pattern_ops copy of the idempotency key that Django adds
  next to a unique CharField (for LIKE 'prefix%'); the planner used it for the
  idempotency look-up only because it equals the unique index, which now serves it
  (the admin searches the key with iexact, which neither index serves);
- made partial (WHERE ... IS NOT NULL): refund_of (the refunds of a debit), shop,
  payment, created_by and pays_for. A debit usually sets none of them, so it no longer
  writes these indexes, while a look-up by value still uses them: the refund check
  and the PROTECT check Django runs before a user, shop, payment or content type is
  deleted.

credit_debit() (same signature and results as in 0002_functions):

- the counter-account look-up says kind <> 'wallet', so that its cached plan can use the
  partial unique index (platform_id, kind); without it the generic plan would scan every
  ledger account of the platform (one per wallet), so PL/pgSQL re-planned it on every call;
- the wallet's platform and currency and the counter account are read in one query;
- before the lock: the transfer, its queue row and the counter-account's entry (one
  statement), and the spending sum that the automatic recharge compares with (when it
  is switched on), so the lock covers only the UPDATE that takes it and moves the
  balance, the wallet's entry (one statement with the UPDATE: it needs the new balance),
  the low-balance flag, the 72-hour recharge check and the commit. The spending sum may
  now miss a debit that commits while this one waits for the lock; it is an average over
  weeks, and "one recharge per 72 hours" is still decided under the lock (and by the
  exclusion constraint);
- the result row is returned with RETURN NEXT instead of a query.

credit_allocate() (same body): runs with enable_seqscan and enable_bitmapscan off. Its
queue (credit_pendingallocation) is nearly empty and full of dead rows between two
vacuums; planned while empty, the cached plan scanned the whole table on every call
(and a bitmap scan never marks dead index entries), so each call got slower until
autovacuum came. An index scan stays short.
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

_before = importlib.import_module("credit.migrations.0002_functions")

DEBIT = r"""
CREATE OR REPLACE FUNCTION credit_debit(
    p_wallet_id bigint,
    p_amount numeric,
    p_kind text,
    p_counter_kind text,
    p_key text,
    p_fingerprint text,
    p_memo text,
    p_shop_id bigint,
    p_pays_type_id integer,
    p_pays_id bigint,
    p_created_by_id bigint,
    p_now timestamptz
) RETURNS TABLE (
    transfer_id bigint,
    replayed boolean,
    balance numeric,
    warn_low_balance boolean,
    recharge_id bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    unlocked record;
    w credit_wallet%ROWTYPE;
    earlier record;
    counter_id bigint;
    new_id bigint;
    warn boolean := false;
    queued bigint := NULL;
    average_days integer;
    threshold_days integer;
    spent numeric;
    threshold numeric;
BEGIN
    SELECT id, fingerprint INTO earlier FROM credit_transfer WHERE idempotency_key = p_key;
    IF FOUND THEN
        IF earlier.fingerprint <> p_fingerprint THEN
            RAISE EXCEPTION 'credit: idempotency key % was used for another movement', p_key
                USING ERRCODE = 'LE004';
        END IF;
        transfer_id := earlier.id;
        replayed := true;
        warn_low_balance := false;
        RETURN NEXT;
        RETURN;
    END IF;

    -- First what needs no lock. The wallet row read here is not locked: only what a debit
    -- never changes is taken from it (platform, currency), and whether the automatic
    -- recharge is on (to sum the spending now; the lock re-reads the setting).
    SELECT credit_wallet.platform_id, credit_wallet.currency,
           credit_wallet.auto_recharge_enabled, credit_ledgeraccount.id AS counter_id
        INTO unlocked
        FROM credit_wallet
        LEFT JOIN credit_ledgeraccount
            ON credit_ledgeraccount.platform_id = credit_wallet.platform_id
           AND credit_ledgeraccount.kind = p_counter_kind
           AND credit_ledgeraccount.kind <> 'wallet'
        WHERE credit_wallet.id = p_wallet_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credit: no wallet %', p_wallet_id USING ERRCODE = 'LE002';
    END IF;
    counter_id := unlocked.counter_id;
    IF counter_id IS NULL THEN
        -- The platform's first debit of this kind: open its revenue (or adjustments) account.
        INSERT INTO credit_ledgeraccount (kind, platform_id, currency, name, created_at)
            SELECT p_counter_kind, accounts_platform.id, accounts_platform.currency,
                   initcap(replace(p_counter_kind, '_', ' ')) || ' · ' || accounts_platform.name,
                   p_now
            FROM accounts_platform WHERE accounts_platform.id = unlocked.platform_id
            ON CONFLICT (platform_id, kind) WHERE kind <> 'wallet' DO NOTHING;
        SELECT id INTO counter_id FROM credit_ledgeraccount
            WHERE platform_id = unlocked.platform_id AND kind = p_counter_kind
              AND kind <> 'wallet';
    END IF;
    -- The transfer, its queue entry and the counter-account's leg (all rolled back with
    -- the rest if the funds do not cover the debit).
    WITH transfer AS (
        INSERT INTO credit_transfer (kind, idempotency_key, fingerprint, amount, currency, memo,
                                     wallet_id, shop_id, pays_for_type_id, pays_for_id,
                                     created_by_id, created_at)
            VALUES (p_kind, p_key, p_fingerprint, p_amount, unlocked.currency, p_memo,
                    p_wallet_id, p_shop_id, p_pays_type_id, p_pays_id, p_created_by_id, p_now)
            RETURNING id
    ), queue AS (
        INSERT INTO credit_pendingallocation (transfer_id, wallet_id, amount)
            SELECT id, p_wallet_id, p_amount FROM transfer
    ), counter_leg AS (
        INSERT INTO credit_entry (transfer_id, ledger_account_id, amount, currency,
                                  balance_after, created_at)
            SELECT id, counter_id, p_amount, unlocked.currency, NULL, p_now FROM transfer
    )
    SELECT id INTO new_id FROM transfer;

    -- Seed 003: the spending the recharge threshold is based on (this debit included).
    IF unlocked.auto_recharge_enabled THEN
        SELECT spend_average_days, recharge_threshold_days INTO average_days, threshold_days
            FROM accounts_platform WHERE id = unlocked.platform_id;
        SELECT COALESCE(SUM(CASE WHEN kind = 'debit' THEN amount ELSE -amount END), 0)
            INTO spent
            FROM credit_transfer
            WHERE wallet_id = p_wallet_id AND kind IN ('debit', 'refund')
              AND created_at >= p_now - make_interval(days => average_days);
    END IF;

    -- The lock: one UPDATE takes the wallet row and moves the balance, only if the funds
    -- (with the overdraft) cover it, and the wallet's leg records the new balance. The row
    -- stays locked until the transaction ends.
    WITH moved AS (
        UPDATE credit_wallet SET balance = balance - p_amount
            WHERE id = p_wallet_id AND balance - p_amount >= -overdraft_limit
            RETURNING *
    ), wallet_leg AS (
        INSERT INTO credit_entry (transfer_id, ledger_account_id, amount, currency,
                                  balance_after, created_at)
            SELECT new_id, ledger_account_id, -p_amount, currency, balance, p_now FROM moved
    )
    SELECT * INTO w FROM moved;
    IF NOT FOUND THEN
        SELECT * INTO w FROM credit_wallet WHERE id = p_wallet_id;
        RAISE EXCEPTION 'credit: insufficient credit'
            USING ERRCODE = 'LE001', DETAIL = (w.balance + w.overdraft_limit)::text;
    END IF;

    -- Seed 000: warn once when the balance falls below the customer's limit.
    warn := w.low_balance_limit > 0 AND w.balance < w.low_balance_limit
            AND NOT w.low_balance_warned;
    IF warn THEN
        UPDATE credit_wallet SET low_balance_warned = true WHERE id = w.id;
    END IF;

    -- Seed 003: below N days of the average daily spend, charge the saved card (once in 72 h).
    IF w.auto_recharge_enabled AND w.auto_recharge_amount IS NOT NULL
       AND w.auto_recharge_card_id IS NOT NULL THEN
        IF spent IS NULL THEN
            -- Switched on while this debit waited for the lock.
            SELECT spend_average_days, recharge_threshold_days INTO average_days, threshold_days
                FROM accounts_platform WHERE id = w.platform_id;
            SELECT COALESCE(SUM(CASE WHEN kind = 'debit' THEN amount ELSE -amount END), 0)
                INTO spent
                FROM credit_transfer
                WHERE wallet_id = w.id AND kind IN ('debit', 'refund')
                  AND created_at >= p_now - make_interval(days => average_days);
        END IF;
        threshold := round(GREATEST(spent, 0) / average_days, 2) * threshold_days;
        IF w.balance < threshold AND NOT EXISTS (
            SELECT 1 FROM credit_autorecharge
            WHERE wallet_id = w.id AND created_at > p_now - interval '72 hours'
        ) THEN
            INSERT INTO credit_autorecharge (wallet_id, amount, currency, state,
                                             balance_at_trigger, threshold, trigger_id,
                                             failure_message, created_at)
                VALUES (w.id, w.auto_recharge_amount, w.currency, 'queued', w.balance,
                        threshold, new_id, '', p_now)
                RETURNING id INTO queued;
        END IF;
    END IF;

    transfer_id := new_id;
    replayed := false;
    balance := w.balance;
    warn_low_balance := warn;
    recharge_id := queued;
    RETURN NEXT;
END;
$$;
"""


def _or_replace(sql: str) -> str:
    return sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


_ALLOCATE_HEAD = "RETURNS integer\nLANGUAGE plpgsql AS $$"
if _ALLOCATE_HEAD not in _before.ALLOCATE:
    raise RuntimeError("credit_allocate() in 0002_functions changed: update 0003")
ALLOCATE = _or_replace(_before.ALLOCATE).replace(
    _ALLOCATE_HEAD,
    "RETURNS integer\nLANGUAGE plpgsql\nSET enable_seqscan = off\nSET enable_bitmapscan = off\n"
    "AS $$",
)

# Django's extra index for LIKE 'prefix%' on a unique CharField (its name is derived from
# the table and column, so it is the same in every database). Should the field's type
# ever change, Django would create it again; drop it again then.
LIKE_INDEX = "credit_transfer_idempotency_key_5a485f8e_like"

# The single-column indexes Django made for these foreign keys (0001_initial).
FOREIGN_KEY_INDEXES = [
    ("credit_allocation_debit_id_b463a451", "credit_allocation", "debit_id"),
    ("credit_entry_ledger_account_id_31fd932f", "credit_entry", "ledger_account_id"),
    ("credit_pendingallocation_wallet_id_85aecdbe", "credit_pendingallocation", "wallet_id"),
    ("credit_transfer_created_by_id_01122ce3", "credit_transfer", "created_by_id"),
    ("credit_transfer_payment_id_662d6bd5", "credit_transfer", "payment_id"),
    ("credit_transfer_pays_for_type_id_abbe81c8", "credit_transfer", "pays_for_type_id"),
    ("credit_transfer_refund_of_id_12110708", "credit_transfer", "refund_of_id"),
    ("credit_transfer_shop_id_942be535", "credit_transfer", "shop_id"),
    ("credit_transfer_wallet_id_18804611", "credit_transfer", "wallet_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_platform_recharge_settings"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("credit", "0002_functions"),
        ("payments", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="transfer", name="transfer_pays_for"),
        # Only the index goes: Django's AlterField would also drop and re-add (and so
        # re-validate over the whole table) each foreign-key constraint.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="allocation",
                    name="debit",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="debit_allocations",
                        to="credit.transfer",
                    ),
                ),
                migrations.AlterField(
                    model_name="entry",
                    name="ledger_account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="entries",
                        to="credit.ledgeraccount",
                    ),
                ),
                migrations.AlterField(
                    model_name="pendingallocation",
                    name="wallet",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="credit.wallet",
                    ),
                ),
                migrations.AlterField(
                    model_name="transfer",
                    name="created_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="transfer",
                    name="payment",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="credit_transfers",
                        to="payments.transaction",
                    ),
                ),
                migrations.AlterField(
                    model_name="transfer",
                    name="pays_for_type",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
                migrations.AlterField(
                    model_name="transfer",
                    name="refund_of",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="refunds",
                        to="credit.transfer",
                    ),
                ),
                migrations.AlterField(
                    model_name="transfer",
                    name="shop",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="credit_transfers",
                        to="accounts.shop",
                    ),
                ),
                migrations.AlterField(
                    model_name="transfer",
                    name="wallet",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="transfers",
                        to="credit.wallet",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f"DROP INDEX IF EXISTS {name}",
                    reverse_sql=f"CREATE INDEX {name} ON {table} ({column})",
                )
                for name, table, column in FOREIGN_KEY_INDEXES
            ],
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("pays_for_type__isnull", False)),
                fields=["pays_for_type", "pays_for_id"],
                name="transfer_pays_for",
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("refund_of__isnull", False)),
                fields=["refund_of"],
                name="transfer_refund_of",
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("shop__isnull", False)), fields=["shop"], name="transfer_shop"
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("payment__isnull", False)),
                fields=["payment"],
                name="transfer_payment",
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                condition=models.Q(("created_by__isnull", False)),
                fields=["created_by"],
                name="transfer_created_by",
            ),
        ),
        migrations.RunSQL(
            sql=f"DROP INDEX IF EXISTS {LIKE_INDEX}",
            reverse_sql=(
                f"CREATE INDEX {LIKE_INDEX} ON credit_transfer "
                "(idempotency_key varchar_pattern_ops)"
            ),
        ),
        migrations.RunSQL(sql=DEBIT, reverse_sql=_or_replace(_before.DEBIT)),
        migrations.RunSQL(sql=ALLOCATE, reverse_sql=_or_replace(_before.ALLOCATE)),
    ]
