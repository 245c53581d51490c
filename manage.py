#!/usr/bin/env python
"""Django's command-line utility, failing in one line when the database is unreachable."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings.dev")
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError:
        from billing_site.startup import check_database, fail

        # Only a database that cannot be reached is reported in one line; any
        # other operational error keeps its traceback.
        problem = check_database()
        if problem:
            raise fail(problem) from None
        raise


if __name__ == "__main__":
    main()
