"""Django's database sessions (``SESSION_ENGINE``), with the row of each request read by one plain query.

Every signed-in request reads its session: through the ORM, compiling that lookup cost about 0.15 ms more
than the query itself on the bench machine (docs/benchmarks.md, "Authentication"). Same table, same rule
(an expired row is no session), so sign-out and expiry behave exactly as Django's own ``db`` engine.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.sessions.backends import db
from django.db import connection
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any | None:
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        rows = list(self.model.objects.raw(_session_sql(), [self.session_key, now]))
        if rows:
            return rows[0]
        self._session_key = None  # as Django's: an unknown or expired key is no session
        return None


@functools.cache
def _session_sql() -> str:
    meta: Any = db.SessionStore.get_model_class()._meta
    q = connection.ops.quote_name
    key, expires = meta.get_field("session_key").column, meta.get_field("expire_date").column
    return f"SELECT * FROM {q(meta.db_table)} WHERE {q(key)} = %s AND {q(expires)} > %s"
