"""ISO 20022 CAMT.053 (BkToCstmrStmt): the end-of-day statement banks send.

Any version of the schema is read (urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN):
the elements used here have kept their names since 001.02; where they moved
(the status became ``Sts/Cd`` in 001.09, a party's name ``Pty/Nm`` in 001.08)
both places are looked at.

The XML is parsed with defusedxml and a document type declaration is refused
outright: a bank statement never has one, and entity expansion is the classic
way to make a parser eat the machine.

One file holds one statement (one ``Stmt``). Of its entries (``Ntry``) only
booked credits are imported: ``CdtDbtInd`` CRDT, status BOOK, not a reversal.
An entry that batches several payments (several ``TxDtls`` with their own
amounts) gives one line per payment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.utils.translation import gettext as _

from credit.exceptions import StatementError
from credit.statements.matching import variable_symbol_from
from credit.statements.records import (
    COUNTERPARTY_ACCOUNT_MAX,
    COUNTERPARTY_MAX,
    MESSAGE_MAX,
    CreditLine,
    ParsedStatement,
    ReferenceMaker,
    amount_parse,
    clip,
    date_parse,
    normalise_iban,
)

NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d{2}$")
_ANY_ISO = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:([a-z]{4})\.(\d{3})\.")
# EndToEndId when the payer gave none.
_NOT_PROVIDED = {"NOTPROVIDED", "NOT PROVIDED"}


class _Reader:
    """find/findall/findtext with the document's namespace bound to the prefix ``c``."""

    def __init__(self, namespace: str) -> None:
        self.ns = {"c": namespace}

    @staticmethod
    def _path(path: str) -> str:
        return "/".join(f"c:{step}" for step in path.split("/"))

    def find(self, element: Element | None, path: str) -> Element | None:
        return None if element is None else element.find(self._path(path), self.ns)

    def findall(self, element: Element | None, path: str) -> list[Element]:
        return [] if element is None else element.findall(self._path(path), self.ns)

    def text(self, element: Element | None, *paths: str) -> str:
        """The stripped text of the first of ``paths`` that is present and not empty."""
        for path in paths:
            found = self.find(element, path)
            if found is not None and (found.text or "").strip():
                return found.text.strip()
        return ""

    def texts(self, element: Element | None, path: str) -> list[str]:
        return [
            found.text.strip()
            for found in self.findall(element, path)
            if (found.text or "").strip()
        ]


def _document(data: bytes) -> tuple[Element, str]:
    try:
        root = fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise StatementError(
            _(
                "The XML declares a document type or entities, which a bank statement never "
                "does; it was not read."
            )
        ) from None
    except ParseError as error:
        line, column = getattr(error, "position", (0, 0))
        raise StatementError(
            _(
                "The file is not well-formed XML (line %(line)d, column %(column)d): it may be "
                "cut off or not a bank statement."
            )
            % {"line": line, "column": column}
        ) from None
    namespace, _sep, local = (
        root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    )
    if not NAMESPACE.match(namespace) or local != "Document":
        other = _ANY_ISO.match(namespace)
        if other:
            raise StatementError(
                _(
                    "This is an ISO 20022 %(message)s.%(variant)s file, not a camt.053 bank "
                    "statement."
                )
                % {"message": other.group(1), "variant": other.group(2)}
            )
        raise StatementError(
            _(
                "This XML is not an ISO 20022 camt.053 bank statement (its root element is "
                "“%(root)s”)."
            )
            % {"root": local[:60]}
        )
    return root, namespace


def parse(data: bytes, *, file_sha256: str) -> ParsedStatement:
    """Read a CAMT.053 file; StatementError names what is wrong (nothing is partly read)."""
    root, namespace = _document(data)
    read = _Reader(namespace)
    statements = read.findall(root, "BkToCstmrStmt/Stmt")
    if not statements:
        raise StatementError(_("The camt.053 file contains no statement (no Stmt element)."))
    if len(statements) > 1:
        raise StatementError(
            _(
                "The file contains %(count)d statements; import one statement (one account and "
                "period) per file."
            )
            % {"count": len(statements)}
        )
    statement = statements[0]
    statement_id = read.text(statement, "Id")
    if not statement_id:
        raise StatementError(_("The statement has no identifier (Stmt/Id)."))
    if len(statement_id) > 120:
        raise StatementError(_("The statement identifier is longer than 120 characters."))
    iban = normalise_iban(read.text(statement, "Acct/Id/IBAN"))
    if not iban:
        raise StatementError(
            _(
                "The statement does not name its account's IBAN (Stmt/Acct/Id/IBAN), so it "
                "cannot be checked against the platform's bank account."
            )
        )
    account_currency = read.text(statement, "Acct/Ccy").upper()

    references = ReferenceMaker()
    lines: list[CreditLine] = []
    ignored = 0
    for number, entry in enumerate(read.findall(statement, "Ntry"), start=1):
        where = _("Entry %(number)d") % {"number": number}
        direction = read.text(entry, "CdtDbtInd")
        if direction not in ("CRDT", "DBIT"):
            raise StatementError(
                _("%(where)s: the credit/debit indicator “%(value)s” is neither CRDT nor DBIT.")
                % {"where": where, "value": direction[:20]}
            )
        status = read.text(entry, "Sts/Cd", "Sts")
        reversal = read.text(entry, "RvslInd").lower() == "true"
        if direction != "CRDT" or status != "BOOK" or reversal:
            ignored += 1
            continue
        lines.extend(_entry_lines(read, entry, where=where, references=references))

    period_from = period_to = None
    start = read.text(statement, "FrToDt/FrDtTm")
    end = read.text(statement, "FrToDt/ToDtTm")
    if start and end:
        period_from = date_parse(start, where=_("The statement"), what=_("period start"))
        period_to = date_parse(end, where=_("The statement"), what=_("period end"))
    elif lines:
        period_from = min(line.booked_on for line in lines)
        period_to = max(line.booked_on for line in lines)

    return ParsedStatement(
        format="camt053",
        statement_id=statement_id,
        file_sha256=file_sha256,
        iban=iban,
        # The account's currency when the bank states it; each entry's is checked anyway.
        currency=account_currency,
        period_from=period_from,
        period_to=period_to,
        lines=tuple(lines),
        ignored=ignored,
    )


def _entry_lines(
    read: _Reader, entry: Element, *, where: str, references: ReferenceMaker
) -> list[CreditLine]:
    amount_element = read.find(entry, "Amt")
    amount = amount_parse(amount_element.text if amount_element is not None else "", where=where)
    currency = ((amount_element.get("Ccy") if amount_element is not None else "") or "").upper()
    if not currency:
        raise StatementError(_("%(where)s: the amount has no currency.") % {"where": where})
    booked = read.text(entry, "BookgDt/Dt", "BookgDt/DtTm")
    if not booked:
        raise StatementError(_("%(where)s has no booking date.") % {"where": where})
    booked_on = date_parse(booked, where=where, what=_("booking date"))
    entry_reference = read.text(entry, "AcctSvcrRef")
    entry_message = read.text(entry, "AddtlNtryInf")
    details = read.findall(entry, "NtryDtls/TxDtls")

    if len(details) <= 1:
        detail = details[0] if details else None
        return [
            _line(
                read,
                detail,
                where=where,
                references=references,
                reference=entry_reference or read.text(detail, "Refs/AcctSvcrRef"),
                booked_on=booked_on,
                amount=amount,
                currency=currency,
                fallback_message=entry_message,
            )
        ]

    # A batch booking: one line per payment, which must add up to the entry.
    lines = []
    for index, detail in enumerate(details, start=1):
        part_where = _("%(where)s, payment %(index)d") % {"where": where, "index": index}
        part = read.find(detail, "AmtDtls/TxAmt/Amt")
        if part is None:
            part = read.find(detail, "Amt")
        if part is None:
            raise StatementError(
                _(
                    "%(where)s books %(count)d payments together without their separate "
                    "amounts; it cannot be split."
                )
                % {"where": where, "count": len(details)}
            )
        part_currency = (part.get("Ccy") or currency).upper()
        own_reference = read.text(detail, "Refs/AcctSvcrRef")
        reference = own_reference or (f"{entry_reference}/{index}" if entry_reference else "")
        lines.append(
            _line(
                read,
                detail,
                where=part_where,
                references=references,
                reference=reference,
                booked_on=booked_on,
                amount=amount_parse(part.text, where=part_where),
                currency=part_currency,
                fallback_message=entry_message,
            )
        )
    if sum((line.amount for line in lines), Decimal(0)) != amount:
        raise StatementError(
            _("%(where)s: its payments do not add up to the amount booked.") % {"where": where}
        )
    return lines


def _line(
    read: _Reader,
    detail: Element | None,
    *,
    where: str,
    references: ReferenceMaker,
    reference: str,
    booked_on,  # type: ignore[no-untyped-def]
    amount: Decimal,
    currency: str,
    fallback_message: str,
) -> CreditLine:
    end_to_end = read.text(detail, "Refs/EndToEndId")
    if end_to_end.upper() in _NOT_PROVIDED:
        end_to_end = ""
    structured = read.texts(detail, "RmtInf/Strd/CdtrRefInf/Ref")
    unstructured = read.texts(detail, "RmtInf/Ustrd")
    variable_symbol = variable_symbol_from(_in_order(end_to_end, structured, unstructured))
    counterparty = read.text(detail, "RltdPties/Dbtr/Nm", "RltdPties/Dbtr/Pty/Nm")
    counterparty_account = read.text(
        detail, "RltdPties/DbtrAcct/Id/IBAN", "RltdPties/DbtrAcct/Id/Othr/Id"
    )
    message = " ".join(unstructured) or read.text(detail, "AddtlTxInf") or fallback_message
    bank_reference = references.reference(
        reference,
        where=where,
        content=(
            booked_on,
            amount,
            currency,
            end_to_end,
            counterparty,
            counterparty_account,
            message,
        ),
    )
    return CreditLine(
        bank_reference=bank_reference,
        booked_on=booked_on,
        amount=amount,
        currency=currency,
        variable_symbol=variable_symbol,
        counterparty=clip(counterparty, COUNTERPARTY_MAX),
        counterparty_account=clip(counterparty_account, COUNTERPARTY_ACCOUNT_MAX),
        message=clip(message, MESSAGE_MAX),
        position=where,
    )


def _in_order(first: str, *groups: Iterable[str]) -> list[str]:
    texts = [first]
    for group in groups:
        texts.extend(group)
    return texts
