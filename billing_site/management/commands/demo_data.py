from django.core.management.base import BaseCommand

from billing_site import demo


class Command(BaseCommand):
    help = "Create or refresh the demo platforms, accounts, members and staff (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        logins = demo.load()
        self.stdout.write("Demo logins (password after the e-mail):")
        for login in logins:
            self.stdout.write(
                f"  {login.label:<22} {login.email:<24} {login.password:<21} at {login.where}"
            )
        self.stdout.write("")
        self.stdout.write("The admin asks staff for a code from an authenticator app. Add a secret")
        self.stdout.write("to any TOTP app, or print the current codes with")
        self.stdout.write("  .venv/bin/python -m billing_site.devtools manage totp_codes")
        for login in logins:
            if login.totp_secret:
                self.stdout.write(f"  {login.email:<24} TOTP secret {login.totp_secret}")
