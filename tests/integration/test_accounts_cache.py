"""The accounts cache's listener against a real Redis, in this process: it keeps entries only while
subscribed, an announcement from another connection empties them, and a lost subscription turns it off
until it is subscribed again. (Over HTTP, with gunicorn: test_accounts_cache_http.py.)
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from loop.accounts import cache
from tests.support.integration import BROKER_URL
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

CHANNEL_DB = f"cache_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def live(settings, servers: None) -> Iterator[redis.Redis]:
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.ACCOUNTS_CACHE_SECONDS = 60
    settings.MONGO_DB = CHANNEL_DB  # one channel for the module: the listener subscribes once per process
    client = redis.Redis.from_url(BROKER_URL)
    cache.cached("user", "warm-up", lambda: None)  # starts the listener
    wait_until(cache.is_live, 10, "the listener to subscribe")
    yield client
    client.close()


def _reader(answer: str) -> tuple[list[str], Callable[[], str]]:
    reads: list[str] = []

    def read() -> str:
        reads.append(answer)
        return answer

    return reads, read


def test_an_entry_is_read_once_then_kept(live: redis.Redis) -> None:
    reads, read = _reader("v1")
    assert cache.cached("key", "a", read) == "v1"
    assert cache.cached("key", "a", read) == "v1"
    assert reads == ["v1"]


def test_an_announcement_from_another_connection_empties_the_cache(live: redis.Redis) -> None:
    reads, read = _reader("v1")
    cache.cached("key", "b", read)
    assert live.publish(cache.channel(), "changed") == 1  # this process's listener is subscribed
    wait_until(lambda: cache.cached("key", "b", read) is not None and len(reads) == 2, 5, "the entry to be read again")


def test_a_lost_subscription_turns_the_cache_off(live: redis.Redis) -> None:
    reads, read = _reader("v1")
    cache.cached("key", "c", read)
    name = f"{cache.LISTENER_NAME}-{os.getpid()}"
    listener = next(c for c in live.client_list() if c["name"] == name)
    live.client_kill_filter(_id=listener["id"])
    wait_until(lambda: not cache.is_live(), 10, "the listener to notice")
    cache.cached("key", "c", read)
    cache.cached("key", "c", read)
    assert len(reads) == 3  # nothing kept while unsubscribed: each call read
    wait_until(cache.is_live, 15, "the listener to subscribe again")
    cache.cached("key", "c", read)
    cache.cached("key", "c", read)
    assert len(reads) == 4  # emptied on subscribing, then kept again


def test_an_entry_read_before_a_change_and_stored_after_it_is_not_kept(live: redis.Redis) -> None:
    reads: list[str] = []

    def read_then_change_lands() -> str:
        reads.append("old")
        cache._announce()  # the change commits (and is announced) while this read is in flight
        return "old"

    cache.cached("key", "d", read_then_change_lands)
    reads_after, read = _reader("new")
    assert cache.cached("key", "d", read) == "new"
    assert reads_after == ["new"]


def test_an_entry_lives_accounts_cache_seconds_at_most(live: redis.Redis, settings) -> None:
    settings.ACCOUNTS_CACHE_SECONDS = 1
    reads, read = _reader("v1")
    cache.cached("key", "e", read)
    cache.cached("key", "e", read)
    assert len(reads) == 1
    time.sleep(1.1)  # nothing announced meanwhile: only its age sends it back to the database
    cache.cached("key", "e", read)
    assert len(reads) == 2
