"""What each request's identity needs (a key's row, a session's row, its user), kept per process while
every process is told of each change at once.

Why: under 50 clients on 2 cores, each database round trip of a request gives up the GIL and waits behind
the process's other threads to get it back (docs/benchmarks.md, "Authentication"), so a key or a session
cost 10-25 ms at p95. Read from this cache they cost no round trip.

Why it stays right: every write that can change who someone is or what they may do (a key saved, revoked or
deleted; a user or a group saved or deleted, group membership; a session saved or deleted) calls
``accounts_changed`` once its transaction commits. That empties this process's cache and publishes on a
Redis channel; a listener thread in every process empties its own on the message. The cache is used only
while that listener is subscribed (with a Redis broker, ``ACCOUNTS_CACHE_SECONDS`` > 0): without Redis, or
while the subscription is down, every request reads the database as before. An entry read from the
database just before a change and stored after the change's message would be stale: a generation number,
bumped by every emptying, refuses such a store. ``ACCOUNTS_CACHE_SECONDS`` bounds an entry's life in case a
message is lost anyway (a publish that failed while the listeners stayed subscribed).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.db import transaction

from loop.backends import uses_redis_broker

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Entries kept at most; past it the cache is emptied (accounts are few; this only bounds memory).
MAX_ENTRIES = 20_000
# How often the listener pings Redis while idle, so a dead connection is noticed (seconds).
HEALTH_CHECK_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 10.0
LISTENER_NAME = "loop-accounts-cache"


def channel() -> str:
    # The deployment (its MongoDB database) is part of the name, as the rate limit's keys: two services
    # sharing a Redis do not empty each other's caches (harmless, only wasted).
    return f"loop:accounts-changed:{settings.MONGO_DB}"


def enabled() -> bool:
    return settings.ACCOUNTS_CACHE_SECONDS > 0 and uses_redis_broker()


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self.generation = 0
        self.live = False  # the listener is subscribed: messages reach this process
        self._pid: int | None = None

    # --- entries ---

    def get(self, kind: str, key: str) -> Any | None:
        if not self.live:
            return None
        found = self._entries.get((kind, key))
        if found is None or time.monotonic() - found[0] >= settings.ACCOUNTS_CACHE_SECONDS:
            return None
        return found[1]

    def put(self, kind: str, key: str, value: Any, generation: int) -> None:
        with self._lock:
            if not self.live or generation != self.generation:
                return  # something changed since the value was read: it may be stale
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[(kind, key)] = (time.monotonic(), value)

    def empty(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def set_live(self, live: bool) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self.live = live

    # --- the listener ---

    def start_listener(self) -> None:
        """Once per process (a fork starts none: the thread stays behind in the parent)."""
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            self.live = False
            self._entries.clear()
        threading.Thread(target=self._listen, args=(pid,), name="accounts-cache", daemon=True).start()

    def _listen(self, pid: int) -> None:
        delay = 0.5
        while self._pid == pid:
            try:
                client = redis.Redis.from_url(
                    settings.CELERY_BROKER_URL,
                    socket_connect_timeout=2,
                    health_check_interval=HEALTH_CHECK_SECONDS,
                    client_name=f"{LISTENER_NAME}-{pid}",  # found in CLIENT LIST
                )
                pubsub = client.pubsub()
                pubsub.subscribe(channel())
                while self._pid == pid:
                    message = pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
                    if message is None:
                        pubsub.check_health()
                    elif message["type"] == "subscribe":
                        self.set_live(True)
                        delay = 0.5
                    elif message["type"] == "message":
                        self.empty()
            except Exception as exc:  # noqa: BLE001 - any failure: read the database until subscribed again
                if self.live:
                    logger.warning("accounts cache off until Redis is back: %s", exc)
            self.set_live(False)
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)


_cache = _Cache()


def cached(kind: str, key: str, read: Callable[[], T | None]) -> T | None:
    """``read()``'s answer, kept for the next requests of this process; None (nothing found) is not kept."""
    if not enabled():
        return read()
    _cache.start_listener()
    found = _cache.get(kind, key)
    if found is not None:
        return found
    generation = _cache.generation
    value = read()
    if value is not None:
        _cache.put(kind, key, value, generation)
    return value


def accounts_changed() -> None:
    """After the current transaction commits: empty this process's cache and tell every other process."""
    transaction.on_commit(_announce)


def _announce() -> None:
    _cache.empty()
    if not enabled():
        return
    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1).publish(
            channel(), "changed"
        )
    except (redis.RedisError, OSError) as exc:
        # Listeners that can reach Redis get nothing: their entries live ACCOUNTS_CACHE_SECONDS at most.
        logger.warning("accounts change not announced, Redis unavailable: %s", exc)


def is_live() -> bool:
    """The listener is subscribed (tests, /health/)."""
    return _cache.live
