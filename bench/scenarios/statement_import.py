"""statement_import: crediting a day's CAMT.053 statement vs debiting from one client.

Ours: one fresh CAMT.053 statement per round (its own statement id and bank references)
of N incoming payments, 90 % of them carrying the variable symbol of an account on the
platform and exactly the amount of one of its pending bank-transfer top-ups (what
credit.statements.matching needs for an automatic match), 10 % an unknown variable
symbol (they wait for review). It is imported through the real
``credit.services.statements.statement_import``, as ``manage.py import_statement`` and
the admin do: parse, record every line once, settle each match (payment received,
top-up credited once, ledger transfer, e-mail queued). The rate is credited payments
per second of that one call. Afterwards (not timed) the credited count, the ledger and
the balances are checked, and the same file is imported again: it must credit nothing.

Baseline: the same process calling ``credit.services.ledger.wallet_debit`` in a loop
on wallets of the same platform, debits per second: what one client gets from the
ledger's simplest money movement, for a comparable number of operations.

Data: the accounts (with variable symbols from the database sequence), registrations
and wallets are made through the real services. The pending top-ups a statement pays
(N * 0.9 per round) are bulk-loaded in SQL with the rows ``topup_transfer_start``
writes (the top-up, its bank-transfer payment and that payment's three log events);
prepare checks a bulk-loaded top-up against one made by the service, column by column.

Size: the issue's, 20,000 payments per statement (a large bank's day). Matched lines
are settled in batches (credit.services.statements.SETTLE_BATCH lines per database
transaction, a fixed number of statements per batch: payments received, top-ups
credited and paid in bulk), so the rate is what a real day's file gets; each credit's
e-mail is rendered during the import and a batch's e-mails are queued as one task.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import random
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal

from bench.scenarios import Context, Scenario

PLATFORM_CODE = "bench-statements"
IBAN = "CZ6508000000192000145399"
CURRENCY = "EUR"
# Share of a statement's payments that match a pending top-up; the rest are unknown.
MATCHING_SHARE = 0.9
# Unknown variable symbols: valid ten-digit numbers far above the account sequence.
UNKNOWN_VS_BASE = 9_000_000_000
# An amount no statement line carries (statement amounts stay below 1,000.00).
SAMPLE_AMOUNT = Decimal("9876.54")
BASELINE_WALLETS = 200
# Sizes: the full statement is the 20,000 payments.
PAYMENTS_FULL = 20_000
PAYMENTS_QUICK = 40
ACCOUNTS_FULL = 500
BASELINE_BALANCE = Decimal("100000000.00")
DEBIT = Decimal("1.00")
CENT = Decimal("0.01")


# --- Data ---------------------------------------------------------------------------------


def _platform():  # type: ignore[no-untyped-def]
    from accounts.models import Platform

    platform, _created = Platform.objects.get_or_create(
        code=PLATFORM_CODE,
        defaults={
            "name": "Bench statements",
            "legal_name": "Bench s.r.o.",
            "country": "CZ",
            "currency": CURRENCY,
            "iban": IBAN,
            "bic": "KOMBCZPP",
            "bank_name": "Komercni banka",
            "local_account_number": "19-2000145399/0800",
            "proforma_prefix": "ZF",
            "invoice_prefix": "FV",
            "credit_note_prefix": "DB",
        },
    )
    return platform


def _accounts(platform, count: int) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """``count`` accounts registered on the platform, each with its wallet, through the
    services; (wallet id, account id, variable symbol) each."""
    from accounts.services.core import account_create
    from credit.services import ledger

    rows = []
    for index in range(count):
        account = account_create(
            name=f"Statement payer {index}",
            email=f"payer{index}@statements.bench.example",
            country="CZ",
            platforms=[platform],
        )
        wallet = ledger.wallet_for(account=account, platform=platform)
        rows.append((wallet.pk, account.pk, account.variable_symbol))
    return rows


def _topups_bulk(platform, wallets: list[tuple[int, int]], amounts: list[Decimal]) -> list[int]:  # type: ignore[no-untyped-def]
    """Pending bank-transfer top-ups, as ``topup_transfer_start(created_by=None)`` leaves
    them, one per (wallet id, account id) and amount, in one transaction; their ids.

    The service writes: the top-up; its payment (payments_transaction, state created,
    keyed ``topup-<top-up id>``) with the event ``created``; then, authorizing the
    transfer, the events ``authorize_requested`` and ``authorize`` (the bank-transfer
    gateway answers "pending", which leaves the payment created).
    """
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction
    from django.urls import reverse
    from django.utils.translation import gettext as _

    from credit.models import TopUp
    from payments.gateways.bank_transfer import BankTransferGateway

    count = len(wallets)
    topup_type = ContentType.objects.get_for_model(TopUp).pk
    # The same texts the services compute (in the active language, as they do).
    description = (_("Credit top-up on %(platform)s") % {"platform": platform.name})[:200]
    marker = "987654321987"
    url = reverse(
        "credit:topup_detail", kwargs={"platform_code": platform.code, "topup_id": marker}
    )
    pending = BankTransferGateway().authorize(
        None,  # type: ignore[arg-type]
        payment_method="",
        capture=False,
        save_card=False,
        off_session=False,
        idempotency_key="",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval('credit_topup_id_seq'), nextval('payments_transaction_id_seq') "
            "FROM generate_series(1, %s)",
            [count],
        )
        ids = cursor.fetchall()
        topup_ids = [row[0] for row in ids]
        payment_ids = [row[1] for row in ids]
        cursor.execute(
            """
            INSERT INTO payments_transaction (
                id, public_id, account_id, platform_id, shop_id,
                amount, amount_currency, captured_amount, captured_amount_currency,
                refunded_amount, refunded_amount_currency, purpose, purpose_type_id, purpose_id,
                description, gateway, gateway_reference, card_brand, card_last4, saved_card_id,
                state, pending_operation, pending_amount, pending_since, auto_capture,
                next_action_url, return_url, failure_code, failure_message, authorized_at,
                authorization_expires_at, captured_at, closed_at, created_by_id, created_at,
                updated_at, idempotency_key
            )
            SELECT p.id, gen_random_uuid(), p.account_id, %(platform)s, NULL,
                p.amount, %(currency)s, 0, %(currency)s,
                0, %(currency)s, 'topup', %(topup_type)s, p.topup_id,
                %(description)s, 'bank_transfer', '', '', '', NULL,
                'created', '', NULL, NULL, false,
                '', replace(%(url)s, %(marker)s, p.topup_id::text), '', '', NULL,
                NULL, NULL, NULL, NULL, now(),
                now(), 'topup-' || p.topup_id
            FROM unnest(%(payments)s::bigint[], %(topups)s::bigint[], %(accounts)s::bigint[],
                        %(amounts)s::numeric[]) AS p(id, topup_id, account_id, amount)
            """,
            {
                "platform": platform.pk,
                "currency": CURRENCY,
                "topup_type": topup_type,
                "description": description,
                "url": url,
                "marker": marker,
                "payments": payment_ids,
                "topups": topup_ids,
                "accounts": [account for _wallet, account in wallets],
                "amounts": amounts,
            },
        )
        cursor.execute(
            """
            INSERT INTO credit_topup (
                id, wallet_id, amount, currency, method, state, payment_id, transfer_id,
                terms_accepted_at, proof, proof_status, reviewed_by_id, reviewed_at,
                review_note, created_by_id, created_at, paid_at
            )
            SELECT t.id, t.wallet_id, t.amount, %(currency)s, 'transfer', 'pending', t.payment_id,
                NULL, now(), '', '', NULL, NULL, '', NULL, now(), NULL
            FROM unnest(%(topups)s::bigint[], %(wallets)s::bigint[], %(payments)s::bigint[],
                        %(amounts)s::numeric[]) AS t(id, wallet_id, payment_id, amount)
            """,
            {
                "currency": CURRENCY,
                "topups": topup_ids,
                "wallets": [wallet for wallet, _account in wallets],
                "payments": payment_ids,
                "amounts": amounts,
            },
        )
        # The payment's log, in the order the services write it (ids ascending).
        cursor.execute(
            """
            INSERT INTO payments_transactionevent (
                transaction_id, kind, action, old_state, new_state, amount, gateway_code,
                message, author_id, system_actor, created_at
            )
            SELECT e.transaction_id, 'action', e.action, e.old_state, e.new_state, e.amount,
                e.gateway_code, e.message, NULL, e.system_actor, now()
            FROM (
                SELECT p.id AS transaction_id, s.step, s.action, s.old_state, s.new_state,
                    CASE WHEN s.step = 1 THEN p.amount END AS amount, s.gateway_code,
                    CASE WHEN s.step = 1 THEN %(description)s ELSE s.message END AS message,
                    s.system_actor
                FROM unnest(%(payments)s::bigint[], %(amounts)s::numeric[]) AS p(id, amount)
                CROSS JOIN (VALUES
                    (1, 'created', '', 'created', '', '', 'system'),
                    (2, 'authorize_requested', 'created', '', '', '', 'topup'),
                    (3, 'authorize', 'created', 'created', %(code)s, %(message)s, 'topup')
                ) AS s(step, action, old_state, new_state, gateway_code, message, system_actor)
                ORDER BY p.id, s.step
            ) AS e
            """,
            {
                "payments": payment_ids,
                "amounts": amounts,
                "description": description,
                "code": pending.code,
                "message": pending.message,
            },
        )
    return topup_ids


# Columns that differ between any two top-ups by nature: keys, links, times.
_VOLATILE = {
    "id",
    "public_id",
    "payment_id",
    "purpose_id",
    "transaction_id",
    "idempotency_key",
    "return_url",
    "created_at",
    "updated_at",
    "terms_accepted_at",
}


def _rows(sql: str, params: list) -> list[dict]:  # type: ignore[type-arg]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _snapshot(topup_id: int) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """A top-up's rows (top-up, payment, payment events) without the volatile columns."""
    topup = _rows("SELECT * FROM credit_topup WHERE id = %s", [topup_id])
    payment_id = topup[0]["payment_id"]
    payment = _rows("SELECT * FROM payments_transaction WHERE id = %s", [payment_id])
    events = _rows(
        "SELECT * FROM payments_transactionevent WHERE transaction_id = %s ORDER BY id",
        [payment_id],
    )
    plain = {
        "credit_topup": topup,
        "payments_transaction": payment,
        "payments_transactionevent": events,
    }
    keyed = {
        "return_url": payment[0]["return_url"].replace(str(topup_id), "<id>"),
        "idempotency_key": payment[0]["idempotency_key"].replace(str(topup_id), "<id>"),
        "purpose_id": payment[0]["purpose_id"] == topup_id,
    }
    result = {
        table: [{k: v for k, v in row.items() if k not in _VOLATILE} for row in rows]
        for table, rows in plain.items()
    }
    result["keys"] = [keyed]
    return result


def _check_bulk_loader(platform, wallet_id: int, account_id: int) -> str:  # type: ignore[no-untyped-def]
    """One top-up made by ``topup_transfer_start`` and one bulk-loaded, for the same wallet
    and amount, must agree on every column but keys and times. Both stay pending (nothing
    in the statements pays SAMPLE_AMOUNT)."""
    from djmoney.money import Money

    from credit.models import Wallet
    from credit.services.topups import topup_transfer_start

    made = topup_transfer_start(
        wallet=Wallet.objects.get(pk=wallet_id),
        amount=Money(SAMPLE_AMOUNT, CURRENCY),
        terms_accepted=True,
        created_by=None,
    )
    (loaded,) = _topups_bulk(platform, [(wallet_id, account_id)], [SAMPLE_AMOUNT])
    service_rows, bulk_rows = _snapshot(made.pk), _snapshot(loaded)
    if service_rows != bulk_rows:
        differences = []
        for table, rows in service_rows.items():
            if rows != bulk_rows[table]:
                differences.append(f"{table}: service {rows} != bulk {bulk_rows[table]}")
        raise RuntimeError(
            "the bulk-loaded top-up differs from topup_transfer_start's:\n" + "\n".join(differences)
        )
    return "a bulk-loaded top-up matches one made by topup_transfer_start (keys, times aside)"


# --- The statement ------------------------------------------------------------------------


def _entry(number: int, reference: str, amount: Decimal, vs: int, booked: date, style: int) -> str:
    """One booked credit (Ntry); the variable symbol where Czech and SEPA payers put it."""
    end_to_end = "NOTPROVIDED"
    structured = ""
    message = f"Dobiti kreditu {number}"
    if style == 0:
        end_to_end = f"/VS{vs}/SS/KS0308"
    elif style == 1:
        structured = (
            "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
            f"<Ref>{vs}</Ref></CdtrRefInf></Strd>"
        )
    else:
        message = f"Kredit VS:{vs} platba {number}"
    return (
        f'<Ntry><NtryRef>{number}</NtryRef><Amt Ccy="{CURRENCY}">{amount}</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
        f"<BookgDt><Dt>{booked}</Dt></BookgDt><ValDt><Dt>{booked}</Dt></ValDt>"
        f"<AcctSvcrRef>{reference}</AcctSvcrRef>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd>"
        "<NtryDtls><TxDtls>"
        f"<Refs><EndToEndId>{end_to_end}</EndToEndId></Refs>"
        f'<AmtDtls><TxAmt><Amt Ccy="{CURRENCY}">{amount}</Amt></TxAmt></AmtDtls>'
        f"<RltdPties><Dbtr><Nm>Payer {number % 9973} s.r.o.</Nm></Dbtr>"
        f"<DbtrAcct><Id><IBAN>CZ55030000000001{number:08d}</IBAN></Id></DbtrAcct></RltdPties>"
        f"<RmtInf>{structured}<Ustrd>{message}</Ustrd></RmtInf>"
        "</TxDtls></NtryDtls></Ntry>"
    )


def _statement(statement_id: str, entries: list[str], booked: date) -> bytes:
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>{statement_id}-MSG</MsgId>"
        f"<CreDtTm>{booked}T23:59:59+01:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><CreDtTm>{booked}T23:59:59+01:00</CreDtTm>"
        f"<FrToDt><FrDtTm>{booked}T00:00:00+01:00</FrDtTm>"
        f"<ToDtTm>{booked}T23:59:59+01:00</ToDtTm></FrToDt>"
        f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>{CURRENCY}</Ccy></Acct>"
    )
    return (head + "".join(entries) + "</Stmt></BkToCstmrStmt></Document>").encode()


def _make_round(ctx: Context, payments: int) -> dict:  # type: ignore[type-arg]
    """A fresh statement of ``payments`` credits and the pending top-ups its matching
    lines pay (bulk-loaded now, before the clock runs)."""
    state = ctx.state
    number = next(state["rounds"])
    tag = f"{state['tag']}-{number:03d}"
    rng = random.Random(number)  # noqa: S311 - test data, not security
    accounts = state["accounts"]
    matching = round(payments * MATCHING_SHARE)
    # Amounts from 10.00 to 999.99; the account of each matching line cycles, so every
    # account has several top-ups waiting (the importer must pick the one of the amount).
    lines = []
    wallets, amounts = [], []
    for index in range(payments):
        amount = (Decimal(rng.randrange(1000, 100000)) / 100).quantize(CENT)
        if index < matching:
            wallet_id, account_id, vs = accounts[index % len(accounts)]
            wallets.append((wallet_id, account_id))
            amounts.append(amount)
        else:
            vs = UNKNOWN_VS_BASE + number * 1_000_000 + index
        lines.append((amount, vs))
    _topups_bulk(state["platform"], wallets, amounts)
    order = list(range(payments))
    rng.shuffle(order)
    booked = date(2026, 1, 1) + timedelta(days=number)
    entries = [
        _entry(position, f"BENCH-{tag}-{index:06d}", *lines[index], booked, index % 3)
        for position, index in enumerate(order, start=1)
    ]
    return {
        "statement_id": f"BENCH-STMT-{tag}",
        "data": _statement(f"BENCH-STMT-{tag}", entries, booked),
        "matching": matching,
        "credited_sum": sum(amounts, Decimal(0)),
        "payments": payments,
    }


# --- Checks -------------------------------------------------------------------------------


def _ledger_state(platform) -> dict:  # type: ignore[no-untyped-def, type-arg]
    from django.db.models import Count, Sum

    from credit.models import StatementLine, TopUp, Transfer, Wallet

    transfers = Transfer.objects.filter(wallet__platform=platform)
    return {
        "transfers": transfers.count(),
        "topup_transfers": transfers.filter(kind=Transfer.Kind.TOPUP_TRANSFER).count(),
        "paid_topups": TopUp.objects.filter(
            wallet__platform=platform, state=TopUp.State.PAID
        ).count(),
        "lines": StatementLine.objects.filter(platform=platform).aggregate(n=Count("pk"))["n"],
        "balances": dict(
            Wallet.objects.filter(platform=platform).values_list("pk", "balance").order_by("pk")
        ),
        "balance_total": Wallet.objects.filter(platform=platform).aggregate(s=Sum("balance"))["s"],
    }


def _import(ctx: Context, statement: dict, filename: str):  # type: ignore[no-untyped-def, type-arg]
    """The import as manage.py import_statement and the admin call it (a binary file)."""
    from credit.services.statements import statement_import

    return statement_import(
        platform=ctx.state["platform"],
        file=io.BytesIO(statement["data"]),
        filename=filename,
        staff=ctx.state["staff"],
    )


def _verify(ctx: Context, statement: dict, result, before: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    platform = ctx.state["platform"]
    after = _ledger_state(platform)
    matching = statement["matching"]
    waiting = statement["payments"] - matching
    problems = []
    if result.already_imported or (result.matched, result.waiting) != (matching, waiting):
        problems.append(
            f"import said matched={result.matched}, waiting={result.waiting}, "
            f"already_imported={result.already_imported}; expected {matching}, {waiting}"
        )
    for key in ("transfers", "topup_transfers", "paid_topups"):
        if after[key] - before[key] != matching:
            problems.append(f"{key} grew by {after[key] - before[key]}, not {matching}")
    if after["lines"] - before["lines"] != statement["payments"]:
        problems.append(f"{after['lines'] - before['lines']} lines recorded")
    if after["balance_total"] - before["balance_total"] != statement["credited_sum"]:
        problems.append(
            f"balances grew by {after['balance_total'] - before['balance_total']}, "
            f"not {statement['credited_sum']}"
        )
    # The same file again: recorded before, nothing credited twice.
    again = _import(ctx, statement, "statement-again.xml")
    repeated = _ledger_state(platform)
    if not again.already_imported or again.matched or again.waiting:
        problems.append(
            f"re-import: already_imported={again.already_imported}, matched={again.matched}, "
            f"waiting={again.waiting}"
        )
    if again.duplicates != statement["payments"]:
        problems.append(f"re-import found {again.duplicates} duplicates")
    if repeated != after:
        changed = [key for key in after if after[key] != repeated[key]]
        problems.append(f"re-import changed {changed}")
    if problems:
        raise RuntimeError("statement_import: " + "; ".join(problems))


# --- Celery -------------------------------------------------------------------------------


def _email_tasks():  # type: ignore[no-untyped-def]
    from billing_site.tasks import send_email, send_emails

    return (send_email, send_emails)


def _private_email_queue(ctx: Context) -> None:
    """Every credited top-up queues its confirmation e-mail (Celery, Redis): a batch's
    e-mails as one send_emails task. Send this process's e-mail tasks to a list of its
    own, emptied after each round, so that they never reach the shared bench queue
    (where the recharge_reaction listener of another run would take them for its own
    messages). The work per e-mail (render, serialise, LPUSH) is the same as on the shared queue."""
    queue = f"bench-statement-import-{os.getpid()}"
    ctx.state["email_queue"] = queue
    # Celery reads a missing attribute as None (the default queue).
    ctx.state["email_queues_before"] = [getattr(task, "queue", None) for task in _email_tasks()]
    for task in _email_tasks():
        task.queue = queue
        task._exec_options = None  # Celery caches a task's options; recompute them


def _email_queue_empty(ctx: Context) -> int:
    """Empty the private list; the number of e-mails its tasks carried."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = client.lrange(ctx.state["email_queue"], 0, -1)
        client.delete(ctx.state["email_queue"])
    finally:
        client.close()
    emails = 0
    for item in raw:
        message = json.loads(item)
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        emails += len(kwargs["messages"]) if "messages" in kwargs else 1
    return emails


def _email_queue_restore(ctx: Context) -> None:
    if "email_queue" in ctx.state:
        _email_queue_empty(ctx)
        for task, queue in zip(_email_tasks(), ctx.state["email_queues_before"], strict=True):
            task.queue = queue
            task._exec_options = None


# --- Scenario -----------------------------------------------------------------------------


def prepare(ctx: Context) -> None:
    from djmoney.money import Money

    from accounts.models import Account, User
    from credit.models import Transfer, Wallet
    from credit.services import ledger

    state = ctx.state
    state["payments"] = ctx.size(quick=PAYMENTS_QUICK, full=PAYMENTS_FULL)
    state["debits"] = ctx.size(quick=100, full=2_000)
    platform = _platform()
    state["platform"] = platform
    state["staff"] = User.objects.create_user(
        email=f"importer-{os.getpid()}@statements.bench.example", is_staff=True
    )
    state["accounts"] = _accounts(platform, ctx.size(quick=20, full=ACCOUNTS_FULL))
    if Account.objects.filter(variable_symbol__gte=UNKNOWN_VS_BASE).exists():
        raise RuntimeError("an account has a variable symbol the bench uses as unknown")
    state["tag"] = uuid.uuid4().hex[:8]
    state["rounds"] = itertools.count(1)
    _private_email_queue(ctx)
    wallet_id, account_id, _vs = state["accounts"][0]
    state["bulk_check"] = _check_bulk_loader(platform, wallet_id, account_id)
    # The baseline debits wallets of the same platform holding plenty of credit.
    baseline = []
    for wallet_id, _account_id, _vs in state["accounts"][:BASELINE_WALLETS]:
        wallet = Wallet.objects.get(pk=wallet_id)
        ledger.wallet_credit(
            wallet=wallet,
            amount=Money(BASELINE_BALANCE, CURRENCY),
            kind=Transfer.Kind.TOPUP_CARD,
            idempotency_key=f"bench-statements-{uuid.uuid4()}",
        )
        baseline.append(wallet)
    state["baseline_wallets"] = baseline
    # Warm-up: a small statement through the whole path (imports, templates, plans).
    warm = _make_round(ctx, ctx.size(quick=10, full=50))
    before = _ledger_state(platform)
    _verify(ctx, warm, _import(ctx, warm, "warm-up.xml"), before)
    for _ in range(20):
        ledger.wallet_debit(
            wallet=baseline[0], amount=Money(DEBIT, CURRENCY), idempotency_key=str(uuid.uuid4())
        )
    _email_queue_empty(ctx)


def run_ours(ctx: Context) -> float:
    statement = _make_round(ctx, ctx.state["payments"])
    before = _ledger_state(ctx.state["platform"])
    start = time.perf_counter()
    result = _import(ctx, statement, "statement.xml")
    elapsed = time.perf_counter() - start
    _verify(ctx, statement, result, before)
    queued = _email_queue_empty(ctx)
    if queued != statement["matching"]:
        raise RuntimeError(f"{queued} confirmation e-mails queued for {statement['matching']}")
    return statement["matching"] / elapsed


def run_baseline(ctx: Context) -> float:
    from djmoney.money import Money

    from credit.services import ledger

    wallets = ctx.state["baseline_wallets"]
    rng = random.Random(len(wallets))  # noqa: S311 - load generation
    amount = Money(DEBIT, CURRENCY)
    count = ctx.state["debits"]
    keys = [f"bench-statements-debit-{uuid.uuid4()}" for _ in range(count)]
    chosen = [rng.choice(wallets) for _ in range(count)]
    start = time.perf_counter()
    for wallet, key in zip(chosen, keys, strict=True):
        ledger.wallet_debit(wallet=wallet, amount=amount, idempotency_key=key)
    elapsed = time.perf_counter() - start
    return count / elapsed


def cleanup(ctx: Context) -> None:
    from credit.services.ledger import ledger_mismatches

    _email_queue_restore(ctx)
    if "platform" in ctx.state:
        problems = ledger_mismatches()
        if problems:
            raise RuntimeError(f"ledger inconsistent after the runs: {problems[:3]}")


SCENARIO = Scenario(
    name="statement_import",
    description=(
        "payments credited per second importing a fresh CAMT.053 statement (90 % matching "
        "pending top-ups by variable symbol and amount) through statement_import vs "
        "wallet_debit calls per second from one client"
    ),
    unit="payments/s",
    higher_is_better=True,
    goal=0.5,
    prepare=prepare,
    run_ours=run_ours,
    run_baseline=run_baseline,
    cleanup=cleanup,
    notes=(
        f"Full size: {PAYMENTS_FULL:,} payments per statement ({MATCHING_SHARE:.0%} matching "
        f"pending top-ups, the rest unknown variable symbols) over {ACCOUNTS_FULL:,} accounts, "
        f"2,000 debits for the baseline; quick: {PAYMENTS_QUICK} payments, 20 accounts, 100 "
        "debits. Each round imports a new statement (new id and bank references) whose "
        "pending top-ups are bulk-loaded before the clock runs (checked against "
        "topup_transfer_start column by column). After each round, not timed: the credited "
        "count, transfers, paid top-ups and balance total are checked, and importing the "
        "same file again must record and credit nothing (transfer count and every balance "
        "unchanged). The ledger is verified after the runs. Matched lines are settled in "
        "batches, one database transaction each (payments received, top-ups credited "
        "through wallets_credit_many); every credit's confirmation e-mail is rendered and "
        "queued with its batch's as one send_emails task, to a private Redis list emptied "
        "after each round (its e-mails are counted)."
    ),
)
