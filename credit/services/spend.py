"""Spending per day summed up for closed days (SpendDay, SpendRollup).

The wallet page's chart shows 90 days of spending by shop. Summing a busy wallet's
entries for 90 days on every view costs tens of milliseconds, so days that can no
longer change are summed once and kept. A day is closed for a wallet once the wallet has
a movement after the day ends: a wallet entry is never dated before the wallet's
previous one (credit.models.Entry.created_at), and the wallet's last movement time is
committed with its entry, so no entry can ever be added to a day before the day of
``Wallet.last_movement_at``. The summary is exact, not a cache that may go stale.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from credit.models import SpendDay, SpendRollup, Transfer, Wallet

# What counts as spending: payments from credit, less what was refunded to credit
# (the same rule as the automatic recharge's average daily spend).
SPEND_KINDS = (Transfer.Kind.DEBIT, Transfer.Kind.REFUND)


def _day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone)


def last_closed_day(wallet: Wallet, zone: ZoneInfo) -> dt.date | None:
    """The last day no entry of the wallet can be added to any more (None: no movement)."""
    if wallet.last_movement_at is None:
        return None
    return wallet.last_movement_at.astimezone(zone).date() - dt.timedelta(days=1)


_SUM_DAYS = """
INSERT INTO credit_spendday (wallet_id, day, shop_id, amount)
SELECT %(wallet)s, (e.created_at AT TIME ZONE %(zone)s)::date, t.shop_id, -SUM(e.amount)
FROM credit_entry e JOIN credit_transfer t ON t.id = e.transfer_id
WHERE e.ledger_account_id = %(account)s AND t.kind = ANY(%(kinds)s)
  AND e.created_at >= %(start)s AND e.created_at < %(end)s
GROUP BY 2, 3
ON CONFLICT ON CONSTRAINT spend_day_once DO NOTHING
"""


def spend_days_sum_up(*, wallet: Wallet, zone: ZoneInfo, first_day: dt.date) -> dt.date | None:
    """Sum up the wallet's closed days from ``first_day`` on that are not yet; returns the
    last day summed up (None: none), for the chart to read the days after it from the
    entries.

    One query when nothing is new (the summary's row), which is every view but the first
    after a day closes. Concurrent calls are safe: the summary row is locked, each day's
    rows are computed from entries that can no longer change, and a day is written once.
    """
    zone_name = str(zone)
    summed = (
        SpendRollup.objects.filter(wallet=wallet, time_zone=zone_name)
        .values_list("through", flat=True)
        .first()
    )
    closed = last_closed_day(wallet, zone)
    if closed is None or closed < first_day or (summed is not None and summed >= closed):
        return summed if summed is not None and summed >= first_day else None
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO credit_spendrollup (wallet_id, time_zone, through) "
                "VALUES (%s, %s, %s) ON CONFLICT (wallet_id) DO NOTHING",
                [wallet.pk, zone_name, first_day - dt.timedelta(days=1)],
            )
        rollup = SpendRollup.objects.select_for_update().get(wallet=wallet)
        if rollup.time_zone != zone_name:
            # The platform moved to another time zone: its days are other days.
            SpendDay.objects.filter(wallet=wallet).delete()
            rollup.time_zone = zone_name
            rollup.through = first_day - dt.timedelta(days=1)
        start = max(rollup.through + dt.timedelta(days=1), first_day)
        if start <= closed:
            with connection.cursor() as cursor:
                cursor.execute(
                    _SUM_DAYS,
                    {
                        "wallet": wallet.pk,
                        "zone": zone_name,
                        "account": wallet.ledger_account_id,
                        "kinds": [str(kind) for kind in SPEND_KINDS],
                        "start": _day_start(start, zone),
                        "end": _day_start(closed + dt.timedelta(days=1), zone),
                    },
                )
            rollup.through = closed
            # Days that left the chart's window are never read again.
            SpendDay.objects.filter(wallet=wallet, day__lt=first_day).delete()
        rollup.save()
    return rollup.through if rollup.through >= first_day else None
