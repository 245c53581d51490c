"""The scheduler's heartbeat: when a beat-sent task last ran, for /healthz."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

CACHE_KEY = "beat:last-tick-at"


def record_tick(at: datetime | None = None) -> datetime:
    moment = at or timezone.now()
    # Kept for a day: an older tick means the scheduler is long dead anyway.
    cache.set(CACHE_KEY, moment.isoformat(), timeout=24 * 3600)
    return moment


def last_tick() -> datetime | None:
    value = cache.get(CACHE_KEY)
    return datetime.fromisoformat(value) if value else None
