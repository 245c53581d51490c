"""/healthz tells an operator whether the database, the broker and the scheduler live."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing_site import heartbeat
from billing_site.tasks import record_beat_tick

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_tick():
    from django.core.cache import cache

    cache.delete(heartbeat.CACHE_KEY)
    yield
    cache.delete(heartbeat.CACHE_KEY)


def test_healthz_is_ok_after_a_recent_beat_tick(client):
    record_beat_tick.delay()  # eager in unit tests: real Celery code, in this process

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "error": None}
    assert body["broker"] == {"ok": True, "error": None}
    assert body["beat"]["ok"] is True
    assert body["beat"]["seconds_since_last_tick"] < 5


def test_healthz_leaves_the_requests_database_connection_usable(client, django_user_model):
    client.get("/healthz")

    assert django_user_model.objects.count() == 0


def test_healthz_is_degraded_before_the_first_tick(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["beat"] == {
        "ok": False,
        "last_tick_at": None,
        "seconds_since_last_tick": None,
        "interval_seconds": 30.0,
    }


def test_healthz_reports_a_stale_scheduler(client, settings):
    stale = timezone.now() - timedelta(seconds=4 * settings.BEAT_HEARTBEAT_SECONDS)
    heartbeat.record_tick(stale)

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["beat"]["ok"] is False
    assert body["beat"]["last_tick_at"] == stale.isoformat()
    assert body["database"]["ok"] is True


def test_healthz_reports_an_unreachable_broker(client, settings):
    record_beat_tick.delay()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    broker = response.json()["broker"]
    assert broker["ok"] is False
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in broker["error"]


def test_healthz_is_never_cached(client):
    response = client.get("/healthz")

    assert "no-cache" in response["Cache-Control"]
