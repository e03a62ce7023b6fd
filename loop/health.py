"""Whether the backing services answer (GET /health/, compose health checks)."""

from __future__ import annotations

from django.conf import settings

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


def service_health() -> dict[str, str]:
    """MongoDB's and the broker's answers, and "ok" only when both can serve."""
    mongo = storage.server_health()
    broker = broker_health()
    healthy = mongo == "ok" and broker in ("ok", "embedded")
    return {"status": "ok" if healthy else "unavailable", "mongo": mongo, "broker": broker}
