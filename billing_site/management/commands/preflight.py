from django.core.management.base import BaseCommand

from billing_site.startup import require_services


class Command(BaseCommand):
    help = "Check that PostgreSQL and Redis answer; exit 2 with one line per problem if not."

    requires_system_checks = []

    def handle(self, *args: object, **options: object) -> None:
        require_services()
        self.stdout.write("database and broker are reachable")
