"""Settings shared by every environment, read from the environment with django-environ."""

from __future__ import annotations

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

from billing_site.schedules import beat_schedule
from billing_site.startup import fail

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's own .env is read when present; real environment variables win.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")


def database_from_env(default: str | None = None) -> dict:
    """DATABASES["default"] from DATABASE_URL; PostgreSQL only."""
    url = env.str("DATABASE_URL", default=default)
    if not url:
        raise fail(
            "DATABASE_URL is not set; set it to postgres://user:password@host:5432/name "
            "(see .env.example), or use `make run` / `make test`, which start a local server"
        )
    try:
        config = env.db_url_config(url)
    except Exception as error:  # django-environ raises several types for bad URLs
        raise fail(f"DATABASE_URL is not a valid database URL ({error})") from None
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise fail(
            "DATABASE_URL must point at PostgreSQL (postgres://...); "
            f"got a {url.split(':', 1)[0]}:// URL"
        )
    options = config.setdefault("OPTIONS", {})
    # `postgres://user@/name?host=/socket/folder` names a Unix socket folder.
    if not config.get("HOST") and "host" in options:
        config["HOST"] = options.pop("host")
    options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=10))
    config["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    config["CONN_HEALTH_CHECKS"] = True
    config["ATOMIC_REQUESTS"] = False
    return config


# --- Core -----------------------------------------------------------------

SECRET_KEY = env.str("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
SITE_NAME = env.str("SITE_NAME", default="Billing portal")

INSTALLED_APPS = [
    # The admin site requires a verified second factor (django-otp).
    "billing_site.admin_apps.BillingAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    # Sessions that know their user, IP and browser, so users can end them.
    "qsessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django_countries",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "auditlog",
    "pgtrigger",
    "djmoney",
    "django_celery_beat",
    # Our apps, in dependency order (each may use those above it, never below).
    "billing_site",
    "accounts",
    "payments",
    "credit",
    "orders",
    "invoicing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "qsessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "billing_site.urls"
WSGI_APPLICATION = "billing_site.wsgi.application"
ASGI_APPLICATION = "billing_site.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "billing_site.context_processors.site",
                "billing_site.context_processors.portal",
            ],
        },
    },
]

# Input and select widgets written in Python, the same HTML as Django's templates.
FORM_RENDERER = "billing_site.forms_renderer.FastWidgetRenderer"

# --- Database: PostgreSQL only ---------------------------------------------

DATABASES = {"default": database_from_env()}

# --- Auth -------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out user is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_ENGINE = "qsessions.backends.db"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=14 * 24 * 3600)
# How long e-mail verification and invitation links stay valid.
EMAIL_VERIFICATION_MAX_AGE_DAYS = 3
INVITATION_MAX_AGE_DAYS = 7
PASSWORD_RESET_TIMEOUT = 3 * 24 * 3600

# Brute-force protection on every login form (portal, admin): a user name
# from one address is locked out after AXES_FAILURE_LIMIT failures in a row.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_MINUTES", default=15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Our login forms post the e-mail as `username`; count it lower-cased.
AXES_USERNAME_CALLABLE = "accounts.forms.auth.axes_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/auth/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)
AXES_VERBOSE = False

# Two-factor authentication (TOTP, with single-use backup codes).
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default=SITE_NAME)
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation: the seeds' six languages --------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("cs", _("Czech")),
    ("sk", _("Slovak")),
    ("es", _("Spanish")),
    ("bg", _("Bulgarian")),
    ("ro", _("Romanian")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media files ---------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".local" / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- E-mail -------------------------------------------------------------------

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# --- Redis, cache and Celery ----------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL:
    raise fail(
        "REDIS_URL is not set; set it to redis://host:6379/0 (see .env.example), "
        "or use `make run` / `make test`, which start a local server"
    )

CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="billing")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CACHE_KEY_PREFIX,
        "OPTIONS": {"socket_connect_timeout": 3, "socket_timeout": 3},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="billing")
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# acks_late on Redis: an unacknowledged task is redelivered after this many
# seconds, so it must exceed the longest task (time limit) by a margin.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# How often beat records that it is alive; /healthz reports the last tick.
BEAT_HEARTBEAT_SECONDS = env.float("BEAT_HEARTBEAT_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE = beat_schedule(heartbeat_seconds=BEAT_HEARTBEAT_SECONDS)
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Payments -----------------------------------------------------------------

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# Seconds before a Stripe request counts as unanswered (its outcome is then reconciled),
# and how often the library retries a failed request (with the same idempotency key).
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=30.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Shared secret couriers sign delivery notifications with (docs/delivery-notifications.md).
DELIVERY_WEBHOOK_SECRET = env.str("DELIVERY_WEBHOOK_SECRET", default="")
# How long a card authorization holds before it expires (and is voided).
PAYMENTS_AUTHORIZATION_DAYS = 7
# An operation whose gateway call gave no answer is checked with the gateway after this.
PAYMENTS_RECONCILE_AFTER_MINUTES = 10
# A payment the customer never finished (card page closed) fails after this.
PAYMENTS_ABANDONED_AFTER_HOURS = 24

# --- Money ----------------------------------------------------------------------

CURRENCIES = ("EUR", "CZK", "BGN", "RON", "USD", "GBP", "PLN", "HUF")
DEFAULT_CURRENCY = "EUR"

# --- Logging --------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's own console handler, which would print everything twice.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},
    },
}
