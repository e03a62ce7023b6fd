"""Which backend a configured URL selects: the one place that reads URL schemes.

``mongomock://`` is the in-process MongoDB of ``make run`` and the unit tests;
``memory://`` is the embedded broker (reports run on a thread pool in the web process).
"""

from __future__ import annotations

from django.conf import settings

MONGOMOCK_SCHEME = "mongomock://"
# What MONGO_URL may select: a MongoDB-wire server (pymongo) or the in-process mongomock.
MONGO_SCHEMES = ("mongodb://", "mongodb+srv://", MONGOMOCK_SCHEME)
EMBEDDED_BROKER_SCHEME = "memory://"
REDIS_SCHEMES = ("redis://", "rediss://")


def is_mongomock_url(url: str) -> bool:
    return url.startswith(MONGOMOCK_SCHEME)


def uses_mongomock() -> bool:
    return is_mongomock_url(settings.MONGO_URL)


def uses_embedded_broker() -> bool:
    return settings.CELERY_BROKER_URL.startswith(EMBEDDED_BROKER_SCHEME)


def uses_redis_broker() -> bool:
    return settings.CELERY_BROKER_URL.startswith(REDIS_SCHEMES)
