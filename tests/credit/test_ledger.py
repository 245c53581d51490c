"""The ledger: double entry, cached balances that match, lots, idempotency, append-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from djmoney.money import Money

from credit.exceptions import IdempotencyConflict, InsufficientCredit, RefundTooLarge, WrongCurrency
from credit.models import Allocation, Entry, Lot, Transfer, Wallet
from credit.services import ledger
from tests.credit.conftest import eur, key

pytestmark = pytest.mark.django_db


def entries_sum(wallet: Wallet) -> Decimal:
    return Entry.objects.filter(ledger_account=wallet.ledger_account).aggregate(
        total=Sum("amount")
    )["total"] or Decimal(0)


def test_a_top_up_and_a_debit_are_balanced_double_entries(wallet):
    topup = ledger.wallet_credit(
        wallet=wallet, amount=eur("100.00"), kind=Transfer.Kind.TOPUP_CARD, idempotency_key=key()
    )
    debit = ledger.wallet_debit(wallet=wallet, amount=eur("30.25"), idempotency_key=key())

    for transfer in (topup, debit):
        legs = list(transfer.entries.values_list("amount", flat=True))
        assert len(legs) == 2
        assert sum(legs) == 0
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("69.75") == entries_sum(wallet)
    assert ledger.ledger_mismatches() == []


def test_a_debit_larger_than_the_credit_is_refused_and_writes_nothing(make_wallet):
    wallet = make_wallet("20.00")
    transfers_before = Transfer.objects.count()

    with pytest.raises(InsufficientCredit, match="Insufficient credit"):
        ledger.wallet_debit(wallet=wallet, amount=eur("20.01"), idempotency_key=key())

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("20.00")
    assert Transfer.objects.count() == transfers_before


def test_an_overdraft_granted_by_staff_lets_the_balance_go_below_zero_up_to_the_limit(
    make_wallet,
):
    wallet = make_wallet("10.00")
    wallet.overdraft_limit = Decimal("50.00")
    wallet.save()

    ledger.wallet_debit(wallet=wallet, amount=eur("60.00"), idempotency_key=key())
    with pytest.raises(InsufficientCredit):
        ledger.wallet_debit(wallet=wallet, amount=eur("0.01"), idempotency_key=key())

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("-50.00")


def test_the_database_refuses_a_balance_below_the_overdraft_even_past_the_service(wallet):
    with (
        pytest.raises(DatabaseError, match="wallet_balance_within_overdraft"),
        transaction.atomic(),
    ):
        Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("-0.01"))


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (eur("0"), "more than zero"),
        (eur("-1"), "more than zero"),
        (eur("1.001"), "two decimal places"),
        (Money("10", "CZK"), "in EUR"),
    ],
)
def test_bad_amounts_are_refused_with_a_clear_error(make_wallet, amount, message):
    wallet = make_wallet("100.00")

    with pytest.raises(WrongCurrency, match=message):
        ledger.wallet_debit(wallet=wallet, amount=amount, idempotency_key=key())

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("100.00")


def test_a_replayed_key_returns_the_first_transfer_and_moves_nothing(make_wallet):
    wallet = make_wallet("100.00")
    first = ledger.wallet_debit(wallet=wallet, amount=eur("10.00"), idempotency_key="order-1")

    again = ledger.wallet_debit(wallet=wallet, amount=eur("10.00"), idempotency_key="order-1")

    assert again.pk == first.pk
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("90.00")


def test_the_same_key_with_different_content_is_an_error(make_wallet):
    wallet = make_wallet("100.00")
    ledger.wallet_debit(wallet=wallet, amount=eur("10.00"), idempotency_key="order-2")

    with pytest.raises(IdempotencyConflict):
        ledger.wallet_debit(wallet=wallet, amount=eur("11.00"), idempotency_key="order-2")

    wallet.refresh_from_db()
    assert wallet.balance == Decimal("90.00")


def test_debits_are_drawn_from_the_oldest_lots_first(wallet):
    first = ledger.wallet_credit(
        wallet=wallet, amount=eur("50.00"), kind=Transfer.Kind.TOPUP_CARD, idempotency_key=key()
    )
    second = ledger.wallet_credit(
        wallet=wallet,
        amount=eur("100.00"),
        kind=Transfer.Kind.TOPUP_TRANSFER,
        idempotency_key=key(),
    )

    debit = ledger.wallet_debit(wallet=wallet, amount=eur("70.00"), idempotency_key=key())

    drawn = {a.lot.transfer_id: a.amount for a in Allocation.objects.filter(debit=debit)}
    assert drawn == {first.pk: Decimal("50.00"), second.pk: Decimal("20.00")}
    assert Lot.objects.get(transfer=first).remaining == 0
    assert Lot.objects.get(transfer=second).remaining == Decimal("80.00")


def test_a_refund_returns_the_money_to_the_lots_it_came_from(wallet):
    first = ledger.wallet_credit(
        wallet=wallet, amount=eur("50.00"), kind=Transfer.Kind.TOPUP_CARD, idempotency_key=key()
    )
    second = ledger.wallet_credit(
        wallet=wallet, amount=eur("50.00"), kind=Transfer.Kind.TOPUP_CARD, idempotency_key=key()
    )
    debit = ledger.wallet_debit(wallet=wallet, amount=eur("80.00"), idempotency_key=key())

    ledger.wallet_refund(debit=debit, amount=eur("40.00"), idempotency_key=key())

    assert Lot.objects.get(transfer=second).remaining == Decimal("50.00")
    assert Lot.objects.get(transfer=first).remaining == Decimal("10.00")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("60.00") == entries_sum(wallet)
    with pytest.raises(RefundTooLarge, match=r"At most €40\.00"):
        ledger.wallet_refund(debit=debit, amount=eur("40.01"), idempotency_key=key())


def test_an_overdrawn_debit_is_covered_by_the_next_top_up(make_wallet):
    wallet = make_wallet("10.00")
    wallet.overdraft_limit = Decimal("100.00")
    wallet.save()
    debit = ledger.wallet_debit(wallet=wallet, amount=eur("30.00"), idempotency_key=key())

    topup = ledger.wallet_credit(
        wallet=wallet, amount=eur("50.00"), kind=Transfer.Kind.TOPUP_CARD, idempotency_key=key()
    )

    net = {}
    for allocation in Allocation.objects.filter(debit=debit):
        net[allocation.lot_id] = net.get(allocation.lot_id, 0) + allocation.amount
    lot = Lot.objects.get(transfer=topup)
    assert net[lot.pk] == Decimal("20.00")
    assert net.get(None, 0) == 0
    assert lot.remaining == Decimal("30.00")


def test_each_debit_records_its_shop_and_what_it_paid_for(make_wallet):
    from tests.factories import ShopFactory

    wallet = make_wallet("100.00")
    registration = wallet.account.registrations.get(platform=wallet.platform)
    shop = ShopFactory(registration=registration)

    debit = ledger.wallet_debit(
        wallet=wallet, amount=eur("5.00"), idempotency_key=key(), shop=shop, pays_for=shop
    )

    assert debit.shop == shop
    assert debit.pays_for == shop


@pytest.mark.parametrize("table", ["credit_entry", "credit_transfer", "credit_allocation"])
def test_raw_sql_cannot_update_or_delete_ledger_rows(make_wallet, table):
    make_wallet("100.00")
    ledger.wallet_debit(wallet=Wallet.objects.get(), amount=eur("1.00"), idempotency_key=key())

    for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute("SAVEPOINT raw")
            with pytest.raises(DatabaseError, match="Cannot update or delete rows"):
                cursor.execute(statement)
            cursor.execute("ROLLBACK TO SAVEPOINT raw")


def test_a_transfer_whose_entries_do_not_sum_to_zero_cannot_commit(wallet):
    transfer = Transfer.objects.create(
        kind=Transfer.Kind.ADJUSTMENT,
        idempotency_key="broken",
        fingerprint="x",
        amount=Decimal("5"),
        currency="EUR",
        wallet=wallet,
    )

    Entry.objects.create(
        transfer=transfer,
        ledger_account=wallet.ledger_account,
        amount=Decimal("5"),
        currency="EUR",
    )

    # The check is deferred to commit; make it run now, as COMMIT would.
    with pytest.raises(DatabaseError, match="do not sum to zero"), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_an_entry_in_another_currency_than_its_account_is_refused(wallet):
    transfer = Transfer.objects.create(
        kind=Transfer.Kind.ADJUSTMENT,
        idempotency_key="czk",
        fingerprint="x",
        amount=Decimal("5"),
        currency="CZK",
        wallet=wallet,
    )

    with pytest.raises(DatabaseError, match="another currency"), transaction.atomic():
        Entry.objects.create(
            transfer=transfer,
            ledger_account=wallet.ledger_account,
            amount=Decimal("5"),
            currency="CZK",
        )


def test_a_staff_adjustment_needs_a_reason_and_is_in_the_audit_log(make_wallet):
    from auditlog.models import LogEntry

    from tests.factories import UserFactory

    wallet = make_wallet("10.00")
    staff = UserFactory(is_staff=True)
    with pytest.raises(WrongCurrency, match="reason"):
        ledger.wallet_adjust(
            wallet=wallet,
            amount=eur("5.00"),
            reason=" ",
            staff=staff,
            idempotency_key=key(),
            direction="credit",
        )

    transfer = ledger.wallet_adjust(
        wallet=wallet,
        amount=eur("5.00"),
        reason="Goodwill for the outage",
        staff=staff,
        idempotency_key=key(),
        direction="credit",
    )

    entry = LogEntry.objects.get_for_object(transfer).get()
    assert entry.actor == staff
    assert "Goodwill for the outage" in str(entry.changes)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("15.00")
