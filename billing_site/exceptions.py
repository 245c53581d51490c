"""The root of every domain error.

Services raise subclasses of ApplicationError; views turn them into form errors
or messages, the API into JSON errors carrying the stable ``code``.
"""

from __future__ import annotations


class ApplicationError(Exception):
    code = "application_error"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}
