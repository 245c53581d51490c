from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing_site import demo


class Command(BaseCommand):
    help = "Print the current two-factor codes of the demo staff users (development only)."

    def handle(self, *args: object, **options: object) -> None:
        if not settings.DEBUG:
            raise CommandError("only available with DEBUG on (development)")
        for login in (demo.STAFF_LOGIN, demo.SUPPORT_LOGIN):
            device = TOTPDevice.objects.filter(user__email=login.email, key=login.totp_key).first()
            if device is None:
                continue
            totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
            self.stdout.write(f"{login.email:<24} {totp.token():0{device.digits}d}")
