"""Request ids: every request carries one (``request.request_id``) and every answer echoes it
(``X-Request-ID``), so a client's log line, the audit log and the server's log can be joined.

While a request is served its id is bound to the log context (``loop.logs``): every line logged
meanwhile carries ``request_id``, and so do the tasks the request enqueues (``loop.task_logs``). When the
answer is ready, one access line (logger ``loop.access``) says what was asked and answered: method,
path, route, status, duration, the caller (``actor``) and the jobs the request enqueued (``report_id``, ...).

An incoming ``X-Request-ID`` is kept when it is sane (1-64 characters of ``[A-Za-z0-9._-]``: what a
proxy or a client library makes); anything else (too long, control characters, spaces) is replaced by a
new id, never echoed, so a header cannot inject text into logs or the audit log.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.utils.encoding import escape_uri_path

from loop import logs
from loop.accounts.capabilities import Principal

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
ATTRIBUTE = "request_id"  # DRF's Request passes attribute reads through to the HttpRequest
MAX_LENGTH = 64
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")

access_logger = logging.getLogger("loop.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str) -> str | None:
    """The given id if it may be kept as it is, else None."""
    return value if _SANE.fullmatch(value) else None


def request_id_of(request: object) -> str:
    """The request's id ("" for a request that did not pass the middleware, e.g. a bare test request)."""
    value = getattr(request, ATTRIBUTE, "")
    return value if isinstance(value, str) else ""


def actor_name(request: HttpRequest) -> str | None:
    """Who made the request, once DRF or Django authenticated it: the audit log's name for them
    (``loop.audit.services.actor_of``), or None for an anonymous or unauthenticated caller."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, Principal):
        return auth.name if auth.kind != "open" or auth.user_id is not None else None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return str(user.get_username())
    return None


class RequestIdMiddleware:
    """Sets ``request.request_id`` and the answer's ``X-Request-ID``, binds the id to the log context
    and writes the access line; placed first in MIDDLEWARE so every answer (errors of later middleware
    included) carries the id and is logged, and the duration covers the whole stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        began = time.perf_counter()
        request_id = sane_request_id(request.META.get(META_KEY, "")) or new_request_id()
        setattr(request, ATTRIBUTE, request_id)
        # Bound until the answer is closed (request_finished), not only until it leaves this middleware:
        # Django logs a 4xx or 5xx answer ("Not Found: ...") after the middleware, and those lines carry it too.
        logs.start_request(request_id=request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        log_access(request, response, (time.perf_counter() - began) * 1000.0)
        return response


@receiver(request_finished, dispatch_uid="loop.request_ids.end_request")
def end_request(**kwargs: Any) -> None:
    """The WSGI server closed the answer, in the thread that served it: its fields go."""
    logs.end_request()


# Ids an answer names (a trigger's new report, an upload's import, ...) that its access line repeats.
ANSWERED_IDS = ("report_id", "import_id", "delivery_id", "alert_id", "store_id", "channel_id")


def _loggable(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable()


def ids_of(match: Any, response: HttpResponseBase) -> dict[str, str]:
    """The ids a request is about: its route's ``<..._id>`` parameters, and those its JSON answer names."""
    found = {k: v for k, v in (getattr(match, "kwargs", None) or {}).items() if k.endswith("_id") and _loggable(v)}
    data = getattr(response, "data", None)  # DRF's Response keeps what it rendered
    if isinstance(data, dict):
        found.update({k: data[k] for k in ANSWERED_IDS if _loggable(data.get(k))})
    return found


def log_access(request: HttpRequest, response: HttpResponseBase, duration_ms: float) -> None:
    if not access_logger.isEnabledFor(logging.INFO):
        return
    match = getattr(request, "resolver_match", None)
    path = escape_uri_path(request.path)  # as sent: a decoded %0A would start a new line in the text format
    fields: dict[str, Any] = {
        "method": request.method,
        "path": path,
        "route": getattr(match, "route", None) or None,
        "status": response.status_code,
        "duration_ms": round(duration_ms, 1),
        "actor": actor_name(request),
        **ids_of(match, response),
    }
    extra = {k: v for k, v in fields.items() if v is not None}
    access_logger.info("%s %s %d %.1fms", request.method, path, response.status_code, duration_ms, extra=extra)
