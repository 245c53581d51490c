"""The launcher's helpers for project-local and existing servers."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from django.conf import settings

from billing_site.devtools.paths import local_service_env, postgres_socket_dir, postgres_url
from billing_site.devtools.services import _Users, create_database_if_missing
from tests.conftest import database_url


def test_make_run_creates_the_database_an_existing_server_lacks():
    name = f"billing_check_{uuid.uuid4().hex[:8]}"
    url = database_url(settings.DATABASES["default"], name=name)
    admin_url = database_url(settings.DATABASES["default"], name="postgres")

    create_database_if_missing(url, log=lambda _message: None)
    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        with psycopg.connect(
            admin_url.replace("postgres://", "postgresql://", 1), autocommit=True
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_an_unreachable_server_is_left_for_the_preflight_check():
    create_database_if_missing("postgres://nobody@127.0.0.1:1/x", log=pytest.fail)


def test_the_last_launcher_to_leave_is_the_one_that_stops_a_shared_server(tmp_path):
    users = _Users(tmp_path / "users")
    users.add(os.getpid())
    users.add(os.getppid())

    assert users.remove(os.getppid()) == [os.getpid()]
    assert users.remove(os.getpid()) == []


def test_launchers_that_died_do_not_keep_a_server_alive(tmp_path):
    users = _Users(tmp_path / "users")
    users.add(2**22 + 12345)  # above the default pid_max: never a live process

    assert users.remove(os.getpid()) == []


def test_manage_py_finds_the_local_servers_without_exported_variables():
    found = local_service_env("test")

    if settings.DATABASES["default"]["HOST"] != str(postgres_socket_dir("test")):
        pytest.skip("this run uses an existing PostgreSQL, not the project-local one")
    assert found["DATABASE_URL"] == postgres_url("test")
