"""Access control for the API: the optional bearer tokens and the trigger rate limit.

Token (``settings.API_TOKEN``): when set, every API view requires
``Authorization: Bearer <token>``; ``/health/`` and the API docs opt out
(``authentication_classes = []`` and AllowAny). A missing or wrong token is a
401 JSON error with ``WWW-Authenticate: Bearer``. Tokens are compared in
constant time.

Read token (``settings.API_READ_TOKEN``, optional, only with API_TOKEN): may
use the safe methods (GET, HEAD, OPTIONS); an unsafe method needs the full
token and answers it 403. ``ApiAccess`` (``DEFAULT_PERMISSION_CLASSES``)
decides this once for every view; a view lets the read token use an unsafe
method by listing it in ``read_token_methods`` (POST /trigger_report/: a
report changes no data).

Rate limit (``settings.TRIGGER_RATE_LIMIT``, e.g. ``"10/minute"``; empty or
``0`` disables it): a fixed window per client address. With a Redis broker the
counter lives in Redis (INCR + EXPIRE in one transaction) so the limit holds
across gunicorn workers; in embedded mode (``memory://``) it is a counter in
the process. Every POST counts, valid or not.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import NotAuthenticated, PermissionDenied, Throttled
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from loop.backends import uses_redis_broker
from loop.rates import Rate, parse_rate

if TYPE_CHECKING:  # rest_framework.views imports this module (the default authenticator)
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

BEARER_SCHEME_NAME = "bearerAuth"
_TOKEN_OK = "api-token"  # request.auth marker once the full-access token matched
_READ_TOKEN_OK = "read-token"  # ... once the read-only token matched


# --- token ----------------------------------------------------------------------


def _as_bytes(value: str) -> bytes:
    # WSGI header values are latin-1 decoded (PEP 3333): latin-1 gives the bytes
    # back; anything else (a test client's str) goes through UTF-8.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (no early exit that leaks how much matched)."""
    return hmac.compare_digest(_as_bytes(given), expected.encode("utf-8"))


@dataclass(frozen=True)
class TokenProblem:
    """``request.auth`` when the token is missing or wrong: what ApiAccess answers in its 401."""

    message: str


class ApiTokenAuthentication(BaseAuthentication):
    """Checks ``Authorization: Bearer <token>`` against ``settings.API_TOKEN`` and ``API_READ_TOKEN``.

    It never raises: a bad header becomes a ``TokenProblem`` as ``request.auth`` and
    ApiAccess turns it into a 401, so views that allow anyone (the docs)
    are not broken by a stale token a browser keeps sending.
    """

    def authenticate(self, request: Request) -> tuple[None, str | TokenProblem] | None:
        expected = settings.API_TOKEN
        if not expected:
            return None
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return (None, TokenProblem("Missing API token: send 'Authorization: Bearer <token>'."))
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return (None, TokenProblem("Malformed Authorization header: expected 'Bearer <token>'."))
        given = given.strip()
        if token_matches(given, expected):
            return (None, _TOKEN_OK)
        read_token = settings.API_READ_TOKEN
        if read_token and token_matches(given, read_token):
            return (None, _READ_TOKEN_OK)
        return (None, TokenProblem("Invalid API token."))

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiAccess(BasePermission):
    """Who may call a view, by method: anyone without API_TOKEN; else the full token for every method, the
    read token for safe methods and for the unsafe ones the view lists in ``read_token_methods``."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not settings.API_TOKEN or request.auth == _TOKEN_OK:
            return True
        if request.auth != _READ_TOKEN_OK:
            # Raised (not returned False) to keep the precise message; DRF adds
            # WWW-Authenticate from the view's first authenticator.
            problem = request.auth.message if isinstance(request.auth, TokenProblem) else "Missing API token."
            raise NotAuthenticated(problem)
        method = request.method or ""
        if method in SAFE_METHODS or method in getattr(view, "read_token_methods", ()):
            return True
        if not hasattr(view, method.lower()):
            return True  # a method the view does not have: its 405, not a 403
        raise PermissionDenied("This token may only read: changing data needs the full-access API_TOKEN.")


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Declares the token in the OpenAPI schema (Postman imports it as Bearer auth)."""

    target_class = "loop.api.access.ApiTokenAuthentication"
    name = BEARER_SCHEME_NAME

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The server's API_TOKEN (full access) or API_READ_TOKEN (reads and triggers only: 403 on "
                "ingestion, uploads, the PUTs and the DELETEs). Only enforced when the server sets API_TOKEN."
            ),
        }


# --- rate limit -------------------------------------------------------------------


class _LocalCounter:
    """Fixed-window counters in this process (embedded mode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, window end)

    def hit(self, key: str, window_end: float, now: float) -> int:
        with self._lock:
            if len(self._counts) > 1000:  # drop finished windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count = self._counts.get(key, (0, window_end))[0] + 1
            self._counts[key] = (count, window_end)
            return count

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


_local = _LocalCounter()
_redis_lock = threading.Lock()
_redis_clients: dict[tuple[int, str], Any] = {}


def _redis(url: str) -> Any:
    # One client per process and URL; never reused across a fork (gunicorn).
    key = (os.getpid(), url)
    with _redis_lock:
        client = _redis_clients.get(key)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            _redis_clients[key] = client
    return client


def rate_key(scope: str, ident: str, rate: Rate, window: int) -> str:
    # The deployment (its MongoDB database) is part of the key: two services
    # sharing a Redis do not share limits.
    return f"loop:ratelimit:{settings.MONGO_DB}:{scope}:{ident}:{rate.seconds}:{window}"


def count_hit(scope: str, ident: str, rate: Rate, now: float | None = None) -> tuple[int, float]:
    """Count one request; returns (requests in this window, seconds until it ends)."""
    now = time.time() if now is None else now
    window = int(now // rate.seconds)
    retry_after = (window + 1) * rate.seconds - now
    key = rate_key(scope, ident, rate, window)
    if not uses_redis_broker():
        return _local.hit(key, now + retry_after, now), retry_after
    pipe = _redis(settings.CELERY_BROKER_URL).pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, rate.seconds + 5)
    count, _ = pipe.execute()
    return int(count), retry_after


class TriggerRateThrottle(BaseThrottle):
    """``settings.TRIGGER_RATE_LIMIT`` per client address for POST /trigger_report/."""

    scope = "trigger"

    def allow_request(self, request: Request, view: APIView) -> bool:
        rate = parse_rate(settings.TRIGGER_RATE_LIMIT)
        if rate is None or request.method != "POST":  # a 405 or OPTIONS costs nothing
            return True
        # get_ident honours X-Forwarded-For only for REST_FRAMEWORK NUM_PROXIES
        # trusted proxies (0 by default), so a client cannot forge its address.
        try:
            count, retry_after = count_hit(self.scope, self.get_ident(request), rate)
        except (redis.RedisError, OSError) as exc:
            # Redis is the broker too: if it is down the trigger cannot be
            # queued anyway and answers 503; do not turn that into a 500.
            logger.warning("rate limit not checked, Redis unavailable: %s", exc)
            return True
        if count > rate.count:
            raise Throttled(
                wait=math.ceil(retry_after),
                # DRF appends "Expected available in N seconds."
                detail=f"Too many reports triggered: the limit is {rate.describe()} per client.",
            )
        return True


def reset_local_counters() -> None:
    """Forget the in-process counts (tests)."""
    _local.clear()
