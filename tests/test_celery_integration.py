"""A real Celery worker and a real beat process against the real broker and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.core.cache import cache
from django_celery_beat.models import PeriodicTask

from billing_site import heartbeat
from tests.conftest import BASE_DIR, database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def start(name: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "billing_site", name, "--loglevel=INFO", *args],
        env=env,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output


def test_beat_and_a_real_worker_keep_healthz_green(client):
    cache.delete(heartbeat.CACHE_KEY)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.test",
        # The processes must see this test's database, not the default one.
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "BEAT_HEARTBEAT_SECONDS": "1",
    }
    worker = start("worker", "--pool=solo", "--without-gossip", "--without-mingle", env=env)
    beat = start("beat", "--pidfile=", "--max-interval=1", env=env)
    try:
        deadline = time.monotonic() + 60
        ticks_seen = set()
        while time.monotonic() < deadline and len(ticks_seen) < 2:
            tick = heartbeat.last_tick()
            if tick:
                ticks_seen.add(tick)
            assert worker.poll() is None, stop(worker)
            assert beat.poll() is None, stop(beat)
            time.sleep(0.2)
        response = client.get("/healthz")
    finally:
        worker_log = stop(worker)
        beat_log = stop(beat)

    # Two distinct ticks: beat kept sending and the worker kept running them.
    assert len(ticks_seen) >= 2, worker_log + beat_log
    assert response.status_code == 200, response.content
    assert response.json()["beat"]["ok"] is True
    # The schedule from billing_site/schedules.py is in the admin-editable tables.
    assert PeriodicTask.objects.filter(
        name="record-beat-heartbeat", task="billing_site.tasks.record_beat_tick", enabled=True
    ).exists()
    assert "billing_site.tasks.record_beat_tick" in worker_log
