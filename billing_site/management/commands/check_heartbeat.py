from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing_site import heartbeat


class Command(BaseCommand):
    help = (
        "Exit 0 when a beat-sent heartbeat ran within three intervals (beat and a worker "
        "are alive), 1 otherwise. Used as the beat container's health check."
    )

    requires_system_checks = []

    def handle(self, *args: object, **options: object) -> None:
        last = heartbeat.last_tick()
        if last is None:
            raise CommandError("no beat heartbeat recorded yet")
        age = (timezone.now() - last).total_seconds()
        if age > 3 * settings.BEAT_HEARTBEAT_SECONDS:
            raise CommandError(f"last beat heartbeat was {age:.0f} seconds ago")
        self.stdout.write(f"last beat heartbeat {age:.0f} seconds ago")
