"""Django's database sessions (``SESSION_ENGINE``), with the row of each request read by one plain query.

Every signed-in request reads its session: through the ORM, compiling that lookup cost about 0.15 ms more
than the query itself on the bench machine (docs/benchmarks.md, "Authentication"). Same table, same rule
(an expired row is no session), so sign-out and expiry behave exactly as Django's own ``db`` engine. The
session is kept decoded per process by ``loop.accounts.cache``: every save and delete of a session empties
it everywhere.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from typing import Any

from django.contrib import auth
from django.contrib.auth import middleware as auth_middleware
from django.contrib.sessions.backends import db
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from loop.accounts import cache


class SessionStore(db.SessionStore):
    def load(self) -> dict[str, Any]:
        # Kept decoded by loop.accounts.cache: decoding decompresses, and zlib gives up the GIL, which under
        # load costs a wait behind the process's other threads (docs/benchmarks.md, "Authentication").
        # Each request gets its own copy of the data; the expiry is checked on every use, as the query would.
        found = cache.cached("session", self.session_key, self._read_session) if self.session_key else None
        if found is not None and found[0] > timezone.now():
            self.expires_at: dt.datetime = found[0]  # AuthenticationMiddleware keeps the user until then
            return dict(found[1])
        self._session_key = None  # as Django's: an unknown or expired key is no session
        return {}

    def _read_session(self) -> tuple[dt.datetime, dict[str, Any]] | None:
        row = self._get_session_from_db()
        return (row.expire_date, self.decode(row.session_data)) if row is not None else None

    def _get_session_from_db(self) -> Any | None:
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = list(self.model.objects.raw(_session_sql(), [self.session_key, now]))
        if rows:
            return rows[0]
        self._session_key = None  # as Django's: an unknown or expired key is no session
        return None

    def save(self, must_create: bool = False) -> None:
        super().save(must_create=must_create)
        cache.accounts_changed()

    def delete(self, session_key: str | None = None) -> None:
        super().delete(session_key)  # sign-out, a new session key at sign-in
        cache.accounts_changed()


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    """Django's, except that a signed-in session's user is kept per process with its session (by
    ``loop.accounts.cache``, emptied by every change): the session's data, the backend and the password-hash
    check that ``django.contrib.auth.get_user`` does are not redone on every request, only the expiry."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: _request_user(request))  # type: ignore[assignment]


def _request_user(request: HttpRequest) -> Any:
    if not hasattr(request, "_cached_user"):
        request._cached_user = _session_user(request)  # type: ignore[attr-defined]
    return request._cached_user  # type: ignore[attr-defined]


def _session_user(request: HttpRequest) -> Any:
    key = request.session.session_key
    if not key:
        return auth.get_user(request)
    resolved: list[Any] = []

    def resolve() -> tuple[dt.datetime, Any] | None:
        user = auth.get_user(request)
        resolved.append(user)
        expires = getattr(request.session, "expires_at", None)
        # Only a signed-in user is kept; the copy kept is never a request's own.
        return (expires, copy.copy(user)) if user.is_authenticated and expires is not None else None

    found = cache.cached("session-user", key, resolve)
    if resolved:
        return resolved[0]
    if found is None or found[0] <= timezone.now():
        return auth.get_user(request)  # expired: Django's own answer (anonymous)
    return copy.copy(found[1])


@functools.cache
def _session_sql() -> str:
    meta: Any = db.SessionStore.get_model_class()._meta
    q = connection.ops.quote_name
    key, expires = meta.get_field("session_key").column, meta.get_field("expire_date").column
    return f"SELECT * FROM {q(meta.db_table)} WHERE {q(key)} = %s AND {q(expires)} > %s"
