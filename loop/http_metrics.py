"""HTTP requests and their latency for GET /metrics, labelled by route (the URL pattern), method and status.

The route is the pattern that matched, written as docs/access.md writes routes
(``/stores/<store_id>/timeline/``), never the raw path: a label per store id would make a series per store.
Requests no pattern names: ``static`` (WhiteNoise answers before URL resolution) and ``other`` (the JSON
404 of an unknown path, and anything answered before resolution). Methods outside the HTTP set are
counted as ``other`` too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase

from loop.metrics import made

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


@lru_cache(maxsize=512)
def route_label(pattern: str) -> str:
    """``^stores/(?P<store_id>[^/]+)/timeline/?$`` or ``stores/<str:store_id>/timeline/``
    -> ``/stores/<store_id>/timeline/``."""
    text = pattern.removeprefix("^").removesuffix("$")
    text = _GROUP.sub(r"<\1>", text)
    text = re.sub(r"<\w+:(\w+)>", r"<\1>", text).replace("/?", "/")
    if not text:
        return "/"
    return "/" + text if not text.startswith("/") else text


def request_route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        static = "/" + str(settings.STATIC_URL).strip("/") + "/"
        return "static" if request.path.startswith(static) else "other"
    route = match.route
    if not route or route == "^":  # the catch-all JSON 404
        return "other"
    return route_label(route)


class HttpMetricsMiddleware:
    """Counts every answer and observes its time; early in MIDDLEWARE so the other middleware's time counts."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed("METRICS_ENABLED is off")
        self.get_response = get_response
        metrics = made()  # at start-up: every process has its series before its first request
        self.requests, self.duration = metrics.HTTP_REQUESTS, metrics.HTTP_DURATION
        self.series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        began = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - began
        method = request.method if request.method in METHODS else "other"
        labels = (request_route(request), method, response.status_code)
        # The labelled series of each (route, method, status), found once: prometheus-client's labels() checks and
        # locks on every call. Routes are patterns and statuses few, so this stays small.
        series = self.series.get(labels)
        if series is None:
            names = (labels[0], labels[1], str(labels[2]))
            series = self.series[labels] = (self.requests.labels(*names), self.duration.labels(*names))
        series[0].inc()
        series[1].observe(seconds)
        return response
