"""Bank statements: reading them (camt053, csv_layout) and matching payments (matching).

``statement_parse`` reads a whole file into a ParsedStatement or raises
StatementError with the reason; it touches no database, so a file that fails
half-way has imported nothing. Importing is credit.services.statements.
"""

from __future__ import annotations

import hashlib

from django.utils.translation import gettext as _

from credit.exceptions import StatementError
from credit.statements import camt053, csv_layout
from credit.statements.records import CreditLine, ParsedStatement, statement_check

__all__ = ["MAX_FILE_BYTES", "CreditLine", "ParsedStatement", "statement_check", "statement_parse"]

# A month of a busy account's camt.053 is a few megabytes.
MAX_FILE_BYTES = 20 * 1024 * 1024


def statement_parse(data: bytes, *, filename: str = "") -> ParsedStatement:
    """The statement in ``data``: camt.053 XML when it looks like XML (or is named .xml),
    our CSV layout otherwise."""
    if not data.strip():
        raise StatementError(_("The file is empty."))
    if len(data) > MAX_FILE_BYTES:
        raise StatementError(
            _("The file is larger than %(limit)d MB; split the statement.")
            % {"limit": MAX_FILE_BYTES // (1024 * 1024)}
        )
    digest = hashlib.sha256(data).hexdigest()
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start == b"<" or filename.lower().endswith(".xml"):
        return camt053.parse(data, file_sha256=digest)
    return csv_layout.parse(data, file_sha256=digest)
