"""Access control for the API: who a request is (a ``Principal``), what each view allows, and the trigger rate limit.

Who (``PrincipalAuthentication``, the one authenticator): ``request.auth`` becomes a
``loop.accounts.capabilities.Principal``:

- ``Authorization: Bearer <API_TOKEN>``: ``token:API_TOKEN``, every capability (the bootstrap admin);
  ``Bearer <API_READ_TOKEN>``: ``token:API_READ_TOKEN``, the read scope. Compared in constant time.
- ``Bearer <API key>``: the key's scope within its owner's role (``loop.accounts.services.authenticate_key``).
- A Django session (the dashboard's sign-in): the user's role; CSRF is checked on unsafe methods.
- Nothing, with ``settings.AUTH_REQUIRED`` off: the open principal (every capability, named after the
  signed-in user or ``anonymous``); headers are not looked at, as before when API_TOKEN was unset.

It never raises for bad credentials (only for a session write without its CSRF token): a missing or bad
credential becomes an ``AuthProblem`` as ``request.auth`` and the permission answers it, so the public
views (the docs) are not broken by a stale token a browser keeps sending.

What (``CapabilityAccess``, ``DEFAULT_PERMISSION_CLASSES``): every view declares
``required_capabilities`` (HTTP method -> the one ``Capability`` needed, ``None`` = public); HEAD and
OPTIONS take GET's (OPTIONS of a view without GET needs read). A view or method without a declaration is
refused for everyone (fail closed); a method the view does not implement keeps its 405. 401: no or bad
credentials (with ``WWW-Authenticate: Bearer``); 403: known, but not allowed. The table of every route is
docs/access.md (the tests read it).

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
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework.exceptions import APIException, NotAuthenticated, PermissionDenied, Throttled
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from loop.accounts import selectors, services
from loop.accounts.capabilities import ALL, SCOPE_CAPABILITIES, Capability, Principal, Scope
from loop.backends import uses_redis_broker
from loop.rates import Rate, parse_rate

if TYPE_CHECKING:  # rest_framework.views imports this module (the default authenticator)
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

BEARER_SCHEME_NAME = "bearerAuth"
MISSING = "Missing API token or key: send 'Authorization: Bearer <API key or token>', or sign in."
MALFORMED = "Malformed Authorization header: expected 'Bearer <API key or token>'."
ACCOUNTS_DOWN = "The accounts database is unavailable; try again later."
# What each capability lets a caller do, for the 403 messages.
DOING = {
    Capability.READ: "read",
    Capability.INGEST: "ingest (POST /store_status/, POST /imports/)",
    Capability.OPERATE: "operate (hours, zones, profiles, maintenance, alert acks)",
    Capability.ADMIN: "administer (keys of others, channels, deletions)",
}
READ_TOKEN_NAME = "token:API_READ_TOKEN"


class AccountsUnavailable(APIException):
    # Not loop.api.errors.ServiceUnavailable: that module imports DRF's views, which import this one.
    status_code = 503
    default_detail = ACCOUNTS_DOWN
    default_code = "service_unavailable"


# --- who ------------------------------------------------------------------------


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
class AuthProblem:
    """``request.auth`` when the credentials are missing or refused: what CapabilityAccess answers (401 or 503)."""

    message: str
    unavailable: bool = False  # the accounts database could not be asked: 503, not 401


def _no_response(request: HttpRequest) -> HttpResponse:  # CSRFCheck wants a next step; never called here
    return HttpResponse()


def _csrf_failure(request: HttpRequest) -> str | None:
    """Why a session request fails Django's CSRF check, or None (as DRF's SessionAuthentication.enforce_csrf).

    Django's check reads a form field (``request.POST``) before the header: on an upload that would parse
    the multipart body with Django's own handlers (memory, temporary files) before the view's GridFS one
    and its size limit. Uploads are never forms here, so an unread multipart body is hidden from the check
    and the token must come in the ``X-CSRFToken`` header.
    """
    hide_body = request.content_type == "multipart/form-data" and not hasattr(request, "_post")
    if hide_body:
        request.__dict__.update(_post=QueryDict(), _files=MultiValueDict())  # as if parsed: nothing
    try:
        check = CSRFCheck(_no_response)
        check.process_request(request)
        reason: object = check.process_view(request, _no_response, (), {})  # DRF's CSRFCheck answers the reason
    finally:
        if hide_body:
            request.__dict__.pop("_post")
            request.__dict__.pop("_files")
    return f"CSRF check failed: {reason} Send the X-CSRFToken header." if reason else None


class PrincipalAuthentication(BaseAuthentication):
    """Bearer key or static token, else the Django session, else (AUTH_REQUIRED off) the open principal."""

    def authenticate(self, request: Request) -> tuple[Any, Principal | AuthProblem]:
        if not settings.SERVER_TIMING:
            return self._authenticate(request)
        started = time.perf_counter()
        try:
            return self._authenticate(request)
        finally:
            request._request.auth_seconds = time.perf_counter() - started  # type: ignore[attr-defined]

    def _authenticate(self, request: Request) -> tuple[Any, Principal | AuthProblem]:
        if not settings.AUTH_REQUIRED:
            return self._open(request)
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            return self._bearer(header)
        try:
            user = self._session_user(request)
        except DatabaseError as exc:
            logger.error("session not checked, accounts database unavailable: %s", exc)
            return (None, AuthProblem(ACCOUNTS_DOWN, unavailable=True))
        if user is None:
            return (None, AuthProblem(MISSING))
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            reason = _csrf_failure(request._request)
            if reason is not None:
                raise PermissionDenied(reason)
        try:
            return (user, selectors.user_principal(user=user))
        except DatabaseError as exc:
            logger.error("role not read, accounts database unavailable: %s", exc)
            return (None, AuthProblem(ACCOUNTS_DOWN, unavailable=True))

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def _session_user(request: Request) -> Any | None:
        # Django's AuthenticationMiddleware put a lazy user on the request; inactive users come back anonymous.
        user = getattr(request._request, "user", None)
        return user if user is not None and user.is_authenticated else None

    def _bearer(self, header: str) -> tuple[Any, Principal | AuthProblem]:
        scheme, _, given = header.strip().partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return (None, AuthProblem(MALFORMED))
        if settings.API_TOKEN and token_matches(given, settings.API_TOKEN):
            return (None, Principal(kind="token", name="token:API_TOKEN", capabilities=ALL))
        if settings.API_READ_TOKEN and token_matches(given, settings.API_READ_TOKEN):
            return (None, Principal(kind="token", name=READ_TOKEN_NAME, capabilities=SCOPE_CAPABILITIES[Scope.READ]))
        try:
            return services.authenticate_key(key=given, now=timezone.now())
        except services.KeyRefused as refused:
            return (None, AuthProblem(str(refused)))
        except DatabaseError as exc:
            logger.error("API key not checked, accounts database unavailable: %s", exc)
            return (None, AuthProblem(ACCOUNTS_DOWN, unavailable=True))

    def _open(self, request: Request) -> tuple[Any, Principal]:
        # The name is the signed-in user's only when the request passes the CSRF check (or is safe), so a
        # forged cross-site request is never recorded under someone's name; it is not refused (anyone may).
        try:
            user = self._session_user(request)
        except DatabaseError:
            user = None  # no accounts database (a demo never migrated): still open
        if user is not None and request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            if _csrf_failure(request._request) is not None:
                user = None
        name = user.get_username() if user is not None else "anonymous"
        return (user, Principal(kind="open", name=name, capabilities=ALL, user_id=user.pk if user else None))


class ServerTimingMiddleware:
    """With ``settings.SERVER_TIMING``: ``Server-Timing: auth;dur=<ms>``, the time spent finding who the
    request is (a key, a session, a token; database waits included): how ``make bench-load --auth`` tells
    authentication's cost apart from the rest of a loaded server's latency."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = self.get_response(request)
        spent = getattr(request, "auth_seconds", None)
        if spent is not None:
            response["Server-Timing"] = f"auth;dur={spent * 1000:.3f}"
        return response


def _needed(view: APIView, method: str) -> tuple[bool, Capability | None]:
    """(declared, capability) of a method on a view: HEAD and OPTIONS take GET's."""
    declared: dict[str, Capability | None] | None = getattr(view, "required_capabilities", None)
    if declared is None:
        return False, None
    if method in ("HEAD", "OPTIONS"):
        if "GET" in declared:
            return True, declared["GET"]
        return method == "OPTIONS", Capability.READ  # OPTIONS of a view without GET: describing it is a read
    return method in declared, declared.get(method)


def _refusal(principal: Principal, capability: Capability) -> str:
    noun = {"key": "API key", "user": "account", "token": "token"}.get(principal.kind, "caller")
    allowed = f"only {', '.join(sorted(principal.capabilities))}" if principal.capabilities else "nothing (no role)"
    return f"This {noun} ({principal.name}) may not {DOING[capability]}; it may {allowed}."


class CapabilityAccess(BasePermission):
    """Lets a request through when its principal has the capability the view declares for the method."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        method = (request.method or "").upper()
        declared, capability = _needed(view, method)
        if not declared:
            if method not in ("HEAD", "OPTIONS") and not hasattr(view, method.lower()):
                return True  # a method the view does not have: its 405
            # Fail closed: a view (or a method) nobody declared access for is refused for everyone.
            raise PermissionDenied(f"{method} {request.path} declares no access rule: refused.")
        if capability is None and not getattr(view, "requires_identity", False):
            return True  # public (health, the API docs)
        auth = request.auth
        if isinstance(auth, AuthProblem):
            # Raised (not returned False) to keep the precise message; DRF adds
            # WWW-Authenticate from the view's first authenticator.
            if auth.unavailable:
                raise AccountsUnavailable(auth.message)
            raise NotAuthenticated(auth.message)
        if not isinstance(auth, Principal):
            if not settings.AUTH_REQUIRED:
                return True  # no authenticator ran (a test's force_authenticate): the open service lets it through
            raise NotAuthenticated(MISSING)
        if capability is None or auth.can(capability):
            return True
        raise PermissionDenied(_refusal(auth, capability))


class BearerScheme(OpenApiAuthenticationExtension):
    """Declares the bearer credentials in the OpenAPI schema (Postman imports it as Bearer auth)."""

    target_class = "loop.api.access.PrincipalAuthentication"
    name = BEARER_SCHEME_NAME

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key (POST /keys/; its scope: read, ingest, operate or admin), or the server's "
                "API_TOKEN (everything) or API_READ_TOKEN (the read scope). The dashboard signs in with a "
                "session instead. Only enforced when the server sets AUTH_REQUIRED (on with API_TOKEN); "
                "docs/access.md lists what each route needs."
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
