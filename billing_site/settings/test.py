"""Test settings: real PostgreSQL and Redis (started by `make test` when unset)."""

import os

from billing_site.devtools.paths import local_service_env

for _name, _value in local_service_env("test").items():
    os.environ.setdefault(_name, _value)
# Tests never share cache keys or a queue with a `make run` on the same Redis.
os.environ.setdefault("CACHE_KEY_PREFIX", "billing-test")
os.environ.setdefault("CELERY_QUEUE", "billing-test")

from .base import *  # noqa: E402, F403
from .base import env  # noqa: E402

# A test database of this run's own: test runs side by side (two checkouts, a
# developer and an agent) never create or drop each other's database.
DATABASES["default"]["TEST"] = {  # noqa: F405
    "NAME": env.str(
        "TEST_DATABASE_NAME",
        default=f"test_{DATABASES['default']['NAME']}_{os.getpid()}",  # noqa: F405
    )
}

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="test-only-insecure-key")
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests run tasks in-process through real Celery code; integration tests
# start a real worker process (tests/test_celery_integration.py).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".local" / "test-media")  # noqa: F405
DELIVERY_WEBHOOK_SECRET = env.str("DELIVERY_WEBHOOK_SECRET", default="test-delivery-secret")
