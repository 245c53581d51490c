"""The ledger's hot paths as database functions: credit_debit() and credit_allocate().

A wallet's row lock lasts until the transaction ends. credit_debit() does a
whole debit in one call and, when the caller has no transaction, is a
transaction of its own, so the lock lasts one round trip; the allocation of
the debit to lots (first in, first out) is left out of that locked section
and done by credit_allocate() right after the commit, for every debit that is
waiting at that moment (see docs/performance.md for the measurements).

credit.services.ledger is the only caller.

credit_debit() (wallet_debit checks the input and the fingerprint first):
1. returns the earlier transfer when the idempotency key was used with the same
   fingerprint (replayed = true), and raises LE004 when it was used with other
   content;
2. writes the transfer row and queues it for lot allocation, then locks the
   wallet with the UPDATE that moves its balance, only when the balance plus
   the overdraft covers the amount (else LE001, with the available amount as
   DETAIL, and nothing is kept);
3. writes the two entries;
4. sets the low-balance flag when the balance falls below the customer's limit
   (warn_low_balance = true: the caller e-mails after commit), and queues an
   automatic recharge (an AutoRecharge row; recharge_id returned: the caller
   charges after commit) when the balance fell below the platform's days of
   average spend and no recharge exists in the last 72 hours. The same rules
   for credits live in credit.services.wallets; tests cover both.

credit_allocate(wallet, wait) takes the wallet's lot lock (a transaction-level
advisory lock; with wait = false it returns -1 at once when another
transaction holds it), removes every committed waiting debit of the wallet
from the queue and allocates them, oldest first, to the oldest open lots; what
no lot covers is recorded as an overdraft (an allocation without a lot).
"""

from django.db import migrations

DEBIT = r"""
CREATE FUNCTION credit_debit(
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
    w credit_wallet%ROWTYPE;
    earlier record;
    wallet_platform bigint;
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
        RETURN QUERY SELECT earlier.id, true, NULL::numeric, false, NULL::bigint;
        RETURN;
    END IF;

    -- First what needs no lock: the counter-account, the transfer row, the queue entry
    -- (all rolled back with the rest if the funds do not cover the debit).
    SELECT platform_id INTO wallet_platform FROM credit_wallet WHERE id = p_wallet_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'credit: no wallet %', p_wallet_id USING ERRCODE = 'LE002';
    END IF;
    SELECT id INTO counter_id FROM credit_ledgeraccount
        WHERE platform_id = wallet_platform AND kind = p_counter_kind;
    IF counter_id IS NULL THEN
        -- The platform's first debit of this kind: open its revenue (or adjustments) account.
        INSERT INTO credit_ledgeraccount (kind, platform_id, currency, name, created_at)
            SELECT p_counter_kind, accounts_platform.id, accounts_platform.currency,
                   initcap(replace(p_counter_kind, '_', ' ')) || ' · ' || accounts_platform.name,
                   p_now
            FROM accounts_platform WHERE accounts_platform.id = wallet_platform
            ON CONFLICT (platform_id, kind) WHERE kind <> 'wallet' DO NOTHING;
        SELECT id INTO counter_id FROM credit_ledgeraccount
            WHERE platform_id = wallet_platform AND kind = p_counter_kind;
    END IF;
    INSERT INTO credit_transfer (kind, idempotency_key, fingerprint, amount, currency, memo,
                                 wallet_id, shop_id, pays_for_type_id, pays_for_id,
                                 created_by_id, created_at)
        SELECT p_kind, p_key, p_fingerprint, p_amount, credit_wallet.currency, p_memo,
               p_wallet_id, p_shop_id, p_pays_type_id, p_pays_id, p_created_by_id, p_now
        FROM credit_wallet WHERE id = p_wallet_id
        RETURNING id INTO new_id;
    INSERT INTO credit_pendingallocation (transfer_id, wallet_id, amount)
        VALUES (new_id, p_wallet_id, p_amount);

    -- The lock: one UPDATE takes the wallet row and moves the balance, only if the funds
    -- (with the overdraft) cover it. The row stays locked until the transaction ends.
    UPDATE credit_wallet SET balance = balance - p_amount
        WHERE id = p_wallet_id AND balance - p_amount >= -overdraft_limit
        RETURNING * INTO w;
    IF NOT FOUND THEN
        SELECT * INTO w FROM credit_wallet WHERE id = p_wallet_id;
        RAISE EXCEPTION 'credit: insufficient credit'
            USING ERRCODE = 'LE001', DETAIL = (w.balance + w.overdraft_limit)::text;
    END IF;
    INSERT INTO credit_entry (transfer_id, ledger_account_id, amount, currency, balance_after,
                              created_at)
        VALUES (new_id, w.ledger_account_id, -p_amount, w.currency, w.balance, p_now),
               (new_id, counter_id, p_amount, w.currency, NULL, p_now);

    -- Seed 000: warn once when the balance falls below the customer's limit.
    warn := w.low_balance_limit > 0 AND w.balance < w.low_balance_limit
            AND NOT w.low_balance_warned;
    IF warn THEN
        UPDATE credit_wallet SET low_balance_warned = true WHERE id = w.id;
    END IF;

    -- Seed 003: below N days of the average daily spend, charge the saved card (once in 72 h).
    IF w.auto_recharge_enabled AND w.auto_recharge_amount IS NOT NULL
       AND w.auto_recharge_card_id IS NOT NULL THEN
        SELECT spend_average_days, recharge_threshold_days INTO average_days, threshold_days
            FROM accounts_platform WHERE id = w.platform_id;
        SELECT COALESCE(SUM(CASE WHEN kind = 'debit' THEN amount ELSE -amount END), 0)
            INTO spent
            FROM credit_transfer
            WHERE wallet_id = w.id AND kind IN ('debit', 'refund')
              AND created_at >= p_now - make_interval(days => average_days);
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

    RETURN QUERY SELECT new_id, false, w.balance, warn, queued;
END;
$$;
"""

# The lot lock of a wallet: advisory lock (class 'LOT', wallet id).
ALLOCATE = r"""
CREATE FUNCTION credit_allocate(p_wallet_id bigint, p_wait boolean, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lot_ids bigint[];
    lot_left numeric[];
    lot_taken numeric[];
    current integer := 1;
    debit record;
    left_amount numeric;
    take numeric;
    debits integer := 0;
    allocation_transfer bigint[] := '{}';
    allocation_lot bigint[] := '{}';
    allocation_amount numeric[] := '{}';
BEGIN
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(4542292, p_wallet_id::integer);
    ELSIF NOT pg_try_advisory_xact_lock(4542292, p_wallet_id::integer) THEN
        RETURN -1;
    END IF;

    SELECT array_agg(id ORDER BY created_at, id), array_agg(remaining ORDER BY created_at, id)
        INTO lot_ids, lot_left
        FROM credit_lot WHERE wallet_id = p_wallet_id AND remaining > 0;
    lot_ids := COALESCE(lot_ids, '{}');
    lot_left := COALESCE(lot_left, '{}');
    lot_taken := array_fill(0::numeric, ARRAY[GREATEST(cardinality(lot_ids), 1)]);

    FOR debit IN
        WITH taken AS (
            DELETE FROM credit_pendingallocation WHERE wallet_id = p_wallet_id
            RETURNING transfer_id, amount
        )
        SELECT taken.transfer_id, taken.amount FROM taken
            JOIN credit_transfer ON credit_transfer.id = taken.transfer_id
            ORDER BY credit_transfer.created_at, credit_transfer.id
    LOOP
        debits := debits + 1;
        left_amount := debit.amount;
        WHILE left_amount > 0 AND current <= cardinality(lot_ids) LOOP
            take := LEAST(lot_left[current], left_amount);
            IF take > 0 THEN
                lot_left[current] := lot_left[current] - take;
                lot_taken[current] := lot_taken[current] + take;
                allocation_transfer := allocation_transfer || debit.transfer_id;
                allocation_lot := allocation_lot || lot_ids[current];
                allocation_amount := allocation_amount || take;
                left_amount := left_amount - take;
            END IF;
            IF lot_left[current] = 0 THEN
                current := current + 1;
            END IF;
        END LOOP;
        IF left_amount > 0 THEN
            allocation_transfer := allocation_transfer || debit.transfer_id;
            allocation_lot := allocation_lot || NULL::bigint;
            allocation_amount := allocation_amount || left_amount;
        END IF;
    END LOOP;

    IF debits > 0 THEN
        INSERT INTO credit_allocation (transfer_id, debit_id, lot_id, amount, created_at)
            SELECT t, t, l, a, p_now
            FROM unnest(allocation_transfer, allocation_lot, allocation_amount) AS x(t, l, a);
        UPDATE credit_lot SET remaining = credit_lot.remaining - x.taken
            FROM unnest(lot_ids, lot_taken[1:cardinality(lot_ids)]) AS x(id, taken)
            WHERE credit_lot.id = x.id AND x.taken > 0;
    END IF;
    RETURN debits;
END;
$$;
"""

DROP_DEBIT = """
DROP FUNCTION credit_debit(bigint, numeric, text, text, text, text, text, bigint, integer,
                           bigint, bigint, timestamptz);
"""
DROP_ALLOCATE = "DROP FUNCTION credit_allocate(bigint, boolean, timestamptz);"


class Migration(migrations.Migration):
    dependencies = [("credit", "0001_initial")]

    operations = [
        migrations.RunSQL(sql=DEBIT, reverse_sql=DROP_DEBIT),
        migrations.RunSQL(sql=ALLOCATE, reverse_sql=DROP_ALLOCATE),
    ]
