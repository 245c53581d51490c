"""Fail fast, in one line, when the environment cannot run the site.

Settings, ``manage.py`` and the Celery entry points call these helpers so that a
missing variable or an unreachable server ends start-up with a single line that
says what to set, instead of a traceback.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

HINT_DATABASE = (
    "set DATABASE_URL to a reachable PostgreSQL server "
    "(postgres://user:password@host:5432/name), or unset it to let `make run` / `make test` "
    "start the project-local one"
)
HINT_REDIS = (
    "set REDIS_URL to a reachable Redis server (redis://host:6379/0), or unset it to let "
    "`make run` / `make test` start the project-local one"
)


class StartupError(SystemExit):
    """Raised to stop the process with one explanatory line on stderr."""

    def __init__(self, message: str) -> None:
        sys.stderr.write(f"billing_site: {message}\n")
        sys.stderr.flush()
        super().__init__(2)
        self.message = message


def fail(message: str) -> StartupError:
    """Print ``message`` and return the exception that stops start-up; ``raise fail(...)``."""
    return StartupError(message)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def describe_database(settings_dict: dict) -> str:
    """Where the default database lives, as a user would recognise it."""
    host = settings_dict.get("HOST") or "local socket"
    port = settings_dict.get("PORT")
    location = f"{host}:{port}" if port else host
    return f"{location}/{settings_dict.get('NAME', '')}"


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else error.__class__.__name__


def check_database(*, close: bool = True) -> str | None:
    """Return a one-line problem description, or None when the database answers.

    Start-up checks close the connection afterwards (a forking worker must not
    inherit it); a request keeps it for the rest of its work.
    """
    from django.db import connections
    from django.db.utils import OperationalError

    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except OperationalError as error:
        where = describe_database(connection.settings_dict)
        return f"cannot connect to PostgreSQL at {where} ({first_line(error)}); {HINT_DATABASE}"
    finally:
        if close:
            connection.close()
    return None


def check_broker(timeout_seconds: float = 3.0) -> str | None:
    """Return a one-line problem description, or None when Redis answers PING."""
    import redis
    from django.conf import settings

    url = settings.REDIS_URL
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
        )
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as error:
        return f"cannot reach Redis at {redact_url(url)} ({first_line(error)}); {HINT_REDIS}"
    return None


def require_services() -> None:
    """Stop the process with one line when the database or the broker is unreachable."""
    problems = [p for p in (check_database(), check_broker()) if p]
    if problems:
        for problem in problems[1:]:
            sys.stderr.write(f"billing_site: {problem}\n")
        raise fail(problems[0])
