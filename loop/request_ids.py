"""Request ids: every request carries one (``request.request_id``) and every answer echoes it
(``X-Request-ID``), so a client's log line, the audit log and the server's log can be joined.

An incoming ``X-Request-ID`` is kept when it is sane (1-64 characters of ``[A-Za-z0-9._-]``: what a
proxy or a client library makes); anything else (too long, control characters, spaces) is replaced by a
new id, never echoed, so a header cannot inject text into logs or the audit log.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
ATTRIBUTE = "request_id"  # DRF's Request passes attribute reads through to the HttpRequest
MAX_LENGTH = 64
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str) -> str | None:
    """The given id if it may be kept as it is, else None."""
    return value if _SANE.fullmatch(value) else None


def request_id_of(request: object) -> str:
    """The request's id ("" for a request that did not pass the middleware, e.g. a bare test request)."""
    value = getattr(request, ATTRIBUTE, "")
    return value if isinstance(value, str) else ""


class RequestIdMiddleware:
    """Sets ``request.request_id`` and the answer's ``X-Request-ID``; placed first in MIDDLEWARE so every
    answer (errors of later middleware included) carries it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = sane_request_id(request.META.get(META_KEY, "")) or new_request_id()
        setattr(request, ATTRIBUTE, request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response
