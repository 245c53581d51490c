"""Production settings: secrets have no defaults, HTTPS everywhere.

`manage.py check --deploy` passes with no warnings when the variables in
.env.example's production section are set.
"""

from billing_site.startup import fail

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    raise fail("DEBUG must be off in production; unset DEBUG or set DEBUG=false")

SECRET_KEY = env.str("SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
    raise fail(
        "SECRET_KEY must be set to a random value of at least 50 characters; generate one with "
        "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise fail("ALLOWED_HOSTS must list the host names the site is served under (comma-separated)")

if not env.str("EMAIL_URL", default=""):
    raise fail("EMAIL_URL must be set in production, e.g. smtp+tls://user:password@smtp.host:587")

if not DELIVERY_WEBHOOK_SECRET:  # noqa: F405
    raise fail(
        "DELIVERY_WEBHOOK_SECRET must be set in production: the shared secret that signs "
        "courier delivery notifications (docs/delivery-notifications.md)"
    )

CONN_MAX_AGE = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_MAX_AGE"] = CONN_MAX_AGE  # noqa: F405

# HTTPS: the site runs behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# /healthz is probed over plain HTTP inside the deployment network.
SECURE_REDIRECT_EXEMPT = [r"^healthz(/live)?$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGGING["root"]["level"] = env.str("LOG_LEVEL", default="INFO")  # noqa: F405
