"""manage.py import_statement --platform <code> <file> [--staff-email ...]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Platform, User
from credit.exceptions import StatementError
from credit.services.statements import statement_import


class Command(BaseCommand):
    help = (
        "Import a bank statement (ISO 20022 camt.053 XML or the CSV layout of "
        "docs/bank-statements.md) for a platform: payments matching a pending top-up are "
        "credited, the others wait for review in the admin. Importing a file twice credits "
        "nothing twice. Exits 1 with the reason when the file cannot be imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the statement file (.xml or .csv)")
        parser.add_argument(
            "--platform", required=True, help="the platform's code, e.g. webhost-cz"
        )
        parser.add_argument(
            "--staff-email", default="", help="the staff user recorded as the importer"
        )

    def handle(self, *args: object, **options: str) -> None:
        platform = Platform.objects.filter(code=options["platform"]).first()
        if platform is None:
            codes = ", ".join(Platform.objects.order_by("code").values_list("code", flat=True))
            raise CommandError(f"no platform with the code {options['platform']!r} ({codes})")
        staff = None
        if options["staff_email"]:
            staff = User.objects.filter(email__iexact=options["staff_email"], is_staff=True).first()
            if staff is None:
                raise CommandError(f"no staff user with the e-mail {options['staff_email']!r}")
        path = Path(options["file"])
        try:
            with path.open("rb") as file:
                result = statement_import(
                    platform=platform, file=file, filename=path.name, staff=staff
                )
        except OSError as error:
            raise CommandError(f"cannot read {path}: {error.strerror}") from None
        except StatementError as error:
            raise CommandError(f"{path.name} was not imported: {error.message}") from None
        self.stdout.write(result.summary)
