"""Whether the backing services answer (GET /health/, compose health checks)."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection

from loop import storage
from loop.backends import uses_embedded_broker, uses_redis_broker


def broker_health() -> str:
    """ "ok", "embedded", or why the broker did not answer (within 2 s)."""
    if uses_embedded_broker():
        return "embedded"
    try:
        if uses_redis_broker():
            import redis

            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
        else:
            from myproject.celery import app  # only a non-Redis broker needs Celery's own connection

            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def accounts_health() -> str:
    """ "ok", or why Django's own database (users, keys, sessions, audit) did not answer a ``SELECT 1``.

    A PostgreSQL that does not answer costs at most DATABASE_CONNECT_TIMEOUT; SQLite answers at once.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def service_health() -> dict[str, str]:
    """MongoDB's, the broker's and the accounts database's answers; "ok" only when all can serve.

    The accounts database counts: without it no session or API key can be checked, and a load balancer
    should stop sending requests to an instance whose own SQLite file is unreadable (docs/failures.md).
    """
    mongo = storage.server_health()
    broker = broker_health()
    accounts = accounts_health()
    healthy = mongo == "ok" and broker in ("ok", "embedded") and accounts == "ok"
    return {"status": "ok" if healthy else "unavailable", "mongo": mongo, "broker": broker, "accounts": accounts}
