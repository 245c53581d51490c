"""Project-wide views: the portal start page and the health report."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.permissions import Capability, role_can
from accounts.selectors import membership_chosen, memberships_for_user, registrations_for_account
from billing_site import heartbeat
from billing_site.startup import check_broker, check_database
from credit.selectors import low_balances


@never_cache
@require_GET
def liveness(request: HttpRequest) -> JsonResponse:
    """The web process answers; for container health checks of the web service alone."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, broker and scheduler status; 200 when all three are well, else 503.

    The scheduler counts as alive when a beat-sent heartbeat task ran within
    three heartbeat intervals (so a worker is consuming, too).
    """
    database_problem = check_database(close=False)
    broker_problem = check_broker()
    try:
        last_tick_at = heartbeat.last_tick()
    except Exception:
        last_tick_at = None
    now = timezone.now()
    tick_age = (now - last_tick_at).total_seconds() if last_tick_at else None
    beat_ok = tick_age is not None and tick_age <= 3 * settings.BEAT_HEARTBEAT_SECONDS
    body = {
        "status": "ok" if not (database_problem or broker_problem) and beat_ok else "degraded",
        "time": now.isoformat(),
        "database": {"ok": database_problem is None, "error": database_problem},
        "broker": {"ok": broker_problem is None, "error": broker_problem},
        "beat": {
            "ok": beat_ok,
            "last_tick_at": last_tick_at.isoformat() if last_tick_at else None,
            "seconds_since_last_tick": round(tick_age, 1) if tick_age is not None else None,
            "interval_seconds": settings.BEAT_HEARTBEAT_SECONDS,
        },
    }
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The portal's start page: the account the user acts for, at a glance."""
    memberships = list(memberships_for_user(user=request.user))
    membership = membership_chosen(memberships, session=request.session)
    request.memberships = memberships  # the navigation reuses them
    registrations = (
        registrations_for_account(account_id=membership.account_id) if membership else []
    )
    lows = (
        low_balances(account_id=membership.account_id)
        if membership and role_can(membership.role, Capability.VIEW_MONEY)
        else []
    )
    return render(
        request,
        "home.html",
        {"membership": membership, "registrations": registrations, "low_balances": lows},
    )
