from django.core.management.base import BaseCommand

from billing_site import demo


class Command(BaseCommand):
    help = "Create or refresh the demo platform, customer and staff user (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        logins = demo.load()
        self.stdout.write("Demo logins:")
        for login in logins:
            self.stdout.write(
                f"  {login.label:<18} {login.email:<24} password: {login.password:<20} "
                f"at {login.where}"
            )
