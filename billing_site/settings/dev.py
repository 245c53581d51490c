"""Development settings: `make run` and manage.py on a developer's machine.

Nothing needs to be set: when DATABASE_URL / REDIS_URL are unset, the
project-local servers that `make run` starts are used.
"""

import os

from billing_site.devtools.paths import local_service_env

for _name, _value in local_service_env("run").items():
    os.environ.setdefault(_name, _value)

from .base import *  # noqa: E402, F403
from .base import env  # noqa: E402

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# Static files straight from the source folders; no collectstatic in development.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
# Lets the delivery-notification endpoint work locally (docs/delivery-notifications.md).
DELIVERY_WEBHOOK_SECRET = env.str("DELIVERY_WEBHOOK_SECRET", default="dev-delivery-secret")
