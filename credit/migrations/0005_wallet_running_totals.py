"""Running totals on the wallet and its entries, and entry times in lock order.

The wallet row gets ``credited_total`` (all money ever credited: the sum of its positive
entries), ``movement_count`` and ``last_movement_at``, moved together with the balance
under the wallet's row lock; each wallet entry copies them as ``credited_after``,
``movement_number`` and ``created_at``. The accounting view of a period then reads its
totals from two entries (the last before the period and the last in it) instead of
summing every entry of the period.

A wallet entry's time is now taken under the lock as GREATEST(the caller's clock, the
wallet's last movement): before, it was the caller's clock read before waiting for the
lock, so two debits racing across midnight could be dated in one order and have their
balances computed in the other, and a period's opening balance could then be one
debit off. A CHECK keeps the three per-entry totals together (all set on a wallet's
entries, none on the other accounts').

Existing entries are numbered and totalled in (created_at, id) order per wallet, the
order the period queries use; the wallets' totals follow from them.

credit_debit() is 0003's with the lock's UPDATE also moving the totals, and the wallet's
entry taking them from the updated row.
"""

import importlib
from decimal import Decimal

import django.utils.timezone
import pgtrigger
from django.db import migrations, models

_before = importlib.import_module("credit.migrations.0003_debit_hot_path")

_LOCKED_MOVE = """    WITH moved AS (
        UPDATE credit_wallet SET balance = balance - p_amount
            WHERE id = p_wallet_id AND balance - p_amount >= -overdraft_limit
            RETURNING *
    ), wallet_leg AS (
        INSERT INTO credit_entry (transfer_id, ledger_account_id, amount, currency,
                                  balance_after, created_at)
            SELECT new_id, ledger_account_id, -p_amount, currency, balance, p_now FROM moved
    )"""
_LOCKED_MOVE_WITH_TOTALS = """    WITH moved AS (
        UPDATE credit_wallet SET balance = balance - p_amount,
                                 movement_count = movement_count + 1,
                                 last_movement_at = GREATEST(p_now, last_movement_at)
            WHERE id = p_wallet_id AND balance - p_amount >= -overdraft_limit
            RETURNING *
    ), wallet_leg AS (
        INSERT INTO credit_entry (transfer_id, ledger_account_id, amount, currency,
                                  balance_after, credited_after, movement_number, created_at)
            SELECT new_id, ledger_account_id, -p_amount, currency, balance, credited_total,
                   movement_count, last_movement_at
            FROM moved
    )"""
if _before.DEBIT.count(_LOCKED_MOVE) != 1:
    raise RuntimeError("credit_debit() in 0003_debit_hot_path changed: update 0005")
DEBIT = _before.DEBIT.replace(_LOCKED_MOVE, _LOCKED_MOVE_WITH_TOTALS)

BACKFILL = """
WITH running AS (
    SELECT e.id,
           SUM(GREATEST(e.amount, 0)) OVER w AS credited,
           ROW_NUMBER() OVER w AS number
    FROM credit_entry e
    JOIN credit_wallet ON credit_wallet.ledger_account_id = e.ledger_account_id
    WINDOW w AS (PARTITION BY e.ledger_account_id ORDER BY e.created_at, e.id)
)
UPDATE credit_entry SET credited_after = running.credited, movement_number = running.number
FROM running WHERE credit_entry.id = running.id;

UPDATE credit_wallet
SET credited_total = totals.credited, movement_count = totals.number,
    last_movement_at = totals.last
FROM (
    SELECT ledger_account_id, SUM(GREATEST(amount, 0)) AS credited, COUNT(*) AS number,
           MAX(created_at) AS last
    FROM credit_entry GROUP BY ledger_account_id
) AS totals
WHERE totals.ledger_account_id = credit_wallet.ledger_account_id;
"""


def backfill(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Entries are append-only (a trigger refuses UPDATE); these columns are new.
    with pgtrigger.ignore("credit.Entry:append_only"), schema_editor.connection.cursor() as c:
        c.execute(BACKFILL)


class Migration(migrations.Migration):
    dependencies = [
        ("credit", "0004_pgtrigger_ignore_default"),
    ]

    operations = [
        migrations.AddField(
            model_name="entry",
            name="credited_after",
            field=models.DecimalField(blank=True, decimal_places=2, max_digits=18, null=True),
        ),
        migrations.AddField(
            model_name="entry",
            name="movement_number",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="credited_total",
            field=models.DecimalField(
                decimal_places=2, db_default=Decimal("0.00"), default=Decimal("0.00"), max_digits=18
            ),
        ),
        migrations.AddField(
            model_name="wallet",
            name="last_movement_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="wallet",
            name="movement_count",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AlterField(
            model_name="entry",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="entry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("balance_after__isnull", True),
                        ("credited_after__isnull", True),
                        ("movement_number__isnull", True),
                    ),
                    models.Q(
                        ("balance_after__isnull", False),
                        ("credited_after__isnull", False),
                        ("movement_number__gt", 0),
                    ),
                    _connector="OR",
                ),
                name="entry_wallet_totals_together",
            ),
        ),
        migrations.RunSQL(sql=DEBIT, reverse_sql=_before.DEBIT),
    ]
