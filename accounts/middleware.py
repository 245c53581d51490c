"""Speak the user's language; keep a session's "last active" time fresh."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

SEEN_AT_KEY = "_seen_at"
SEEN_AT_EVERY_SECONDS = 300


class UserLanguageMiddleware:
    """A signed-in user's saved language wins over the browser's, unless they chose
    another one with the language switch on this browser (the language cookie)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and user.language
            and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES
        ):
            translation.activate(user.language)
            request.LANGUAGE_CODE = user.language
        if user is not None and user.is_authenticated:
            # qsessions updates a session's "last active" only when the session is
            # saved; touch it at most every five minutes so the list on the
            # security page is honest without a write on every request.
            now = int(time.time())
            if now - request.session.get(SEEN_AT_KEY, 0) > SEEN_AT_EVERY_SECONDS:
                request.session[SEEN_AT_KEY] = now
        return self.get_response(request)
