"""Where the project-local servers keep their data, and how to reach them.

Imported by the dev and test settings, so it must stay free of heavy imports.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

Profile = Literal["run", "test", "bench"]

BASE_DIR = Path(__file__).resolve().parent.parent.parent
LOCAL_DIR = BASE_DIR / ".local"
DATABASE_NAME = "billing"
DATABASE_USER = "postgres"
# The socket file name PostgreSQL creates in the socket folder.
_SOCKET_FILE = ".s.PGSQL.5432"
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


def profile_dir(profile: Profile) -> Path:
    return LOCAL_DIR / profile


def postgres_data_dir(profile: Profile) -> Path:
    return profile_dir(profile) / "postgres"


def postgres_socket_dir(profile: Profile) -> Path:
    """The data folder itself, or a short folder under /tmp when that path is too long."""
    data_dir = postgres_data_dir(profile)
    if len(str(data_dir / _SOCKET_FILE)) <= _MAX_SOCKET_PATH:
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"billing-site-pg-{digest}"  # noqa: S108 - a socket folder, not data


def postgres_url(profile: Profile, database: str = DATABASE_NAME) -> str:
    return f"postgres://{DATABASE_USER}@/{database}?host={postgres_socket_dir(profile)}"


def redis_state_file(profile: Profile) -> Path:
    return profile_dir(profile) / "redis" / "server.json"


def local_service_env(profile: Profile) -> dict[str, str]:
    """DATABASE_URL / REDIS_URL of the project-local servers, where they exist.

    Lets `manage.py` find the servers that a running `make run` started, without
    the developer exporting anything. Real environment variables always win.
    """
    found: dict[str, str] = {}
    if (postgres_data_dir(profile) / "PG_VERSION").is_file():
        found["DATABASE_URL"] = postgres_url(profile)
    state_file = redis_state_file(profile)
    if state_file.is_file():
        try:
            state = json.loads(state_file.read_text())
            if _pid_alive(int(state["pid"])):
                found["REDIS_URL"] = state["url"]
        except (ValueError, KeyError, OSError):
            pass
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
