"""The product's URLs plus two bench-only views, for the HTTP benchmarks only.

gunicorn serves this URLconf in the bench (bench.scenarios._http.wsgi_application), so
these views pass through exactly the middleware the pages do (sessions, the signed-in
user, language, CSRF, OTP, messages, audit log, axes). They are never part of the
product's URLs.

- ``bench/trivial/``: the baseline of history_pages, the least a signed-in page does:
  it names who is asking.
- ``bench/layout/``: a reference, not a baseline: a portal page with nothing of its own,
  base.html as a wallet page renders it (the membership check, the navigation, the
  account and language menus), to show what every page pays before its content.
"""

from functools import cache

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path
from django.views.decorators.cache import never_cache

from accounts.permissions import Capability
from accounts.portal import member_required


def trivial(request: HttpRequest) -> HttpResponse:
    """The least a signed-in page can do: name who is asking (one lookup of the user)."""
    return HttpResponse(f"ok {request.user.pk}", content_type="text/plain")


@cache
def _empty_page():  # type: ignore[no-untyped-def]
    return engines["django"].from_string('{% extends "base.html" %}')


@never_cache
@member_required(Capability.VIEW_MONEY)
def layout(request: HttpRequest) -> HttpResponse:
    """The portal's layout with an empty content block, as the wallet pages are served."""
    return HttpResponse(_empty_page().render({}, request))


urlpatterns = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("bench/layout/", layout, name="bench-layout"),
    path("", include("billing_site.urls")),
]
