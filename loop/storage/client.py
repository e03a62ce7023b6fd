"""Clients, and every difference between mongod, FerretDB and mongomock the service works around.

The other storage modules call the helpers here (``bulk_update``,
``iter_docs``) instead of testing which server they talk to.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import bson
import pymongo
from django.conf import settings
from pymongo import MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from loop.backends import is_mongomock_url
from loop.storage import schema

READ_BATCH = 100_000
# Documents per insert_many call: large round trips, bounded client memory.
WRITE_BATCH = 50_000
# Update statements per command. FerretDB 1.24 keeps one SQLite connection per
# statement of an update command until the command ends, from a pool of 100:
# a command with ~100 statements that match documents deadlocks the database.
UPDATE_BATCH = 50
DUPLICATE_KEY = 11000

_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}
_indexed: set[tuple[int, str, str]] = set()

# (filter, update, upsert)
Update = tuple[dict[str, Any], dict[str, Any], bool]


def get_client(url: str | None = None) -> Any:
    """The process's client for ``url`` (default ``settings.MONGO_URL``).

    ``mongomock://`` gives one in-process mongomock client shared by the whole
    process (the demo's web threads and its embedded worker see the same data).
    Real clients are cached per process id: a client must not cross a fork
    (gunicorn and Celery's prefork pool fork after import).
    """
    url = url or settings.MONGO_URL
    in_process = is_mongomock_url(url)
    key = (0 if in_process else os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            if in_process:
                import mongomock

                client = mongomock.MongoClient()
            else:
                timeout = settings.MONGO_TIMEOUT_MS
                client = MongoClient(
                    url,
                    serverSelectionTimeoutMS=timeout,
                    connectTimeoutMS=timeout,
                    appname="loop-store-monitoring",
                )
            _clients[key] = client
    return client


def get_db(name: str | None = None, url: str | None = None) -> Database:
    """The service database, with its indexes ensured once per process."""
    db = get_client(url)[name or settings.MONGO_DB]
    in_process = is_mongomock(db)
    key = (0 if in_process else os.getpid(), str(id(db.client)), db.name)
    if key not in _indexed:
        schema.create_indexes(db)
        _indexed.add(key)
    return db


def is_mongomock(db: Database) -> bool:
    return type(db).__module__.startswith("mongomock")


def server_health() -> str:
    """ "ok", or why the server did not answer (quickly: the health check must not hang)."""
    try:
        with pymongo.timeout(2):
            get_client().admin.command("ping")
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def drop_database(db: Database) -> None:
    from loop.storage.polls import forget_cached_heads

    db.client.drop_database(db.name)
    _indexed.difference_update({k for k in _indexed if k[2] == db.name})
    forget_cached_heads(db)


def collection_counts(db: Database) -> dict[str, int]:
    """Documents per service collection, and "polls": the polls stored in all day parts."""
    names = (schema.STATUS, schema.HOURS, schema.ZONES, schema.REPORTS)
    counts = {name: db[name].count_documents({}) for name in names}
    counts["polls"] = sum(int(doc.get("n", 0)) for doc in db[schema.STATUS].find({"kind": "day"}, {"n": 1}))
    return counts


def bulk_update(coll: Collection, ops: list[Update]) -> int:
    """Run update operations as unordered bulk calls; returns modified count.

    mongomock's bulk_write is incompatible with pymongo 4.20's UpdateOne, so
    under mongomock (in-process, no round trips) the updates run one by one.
    """
    if not ops:
        return 0
    if is_mongomock(coll.database):
        return sum(coll.update_one(f, u, upsert=up).modified_count for f, u, up in ops)
    modified = 0
    for batch in batched(ops, UPDATE_BATCH):
        result = coll.bulk_write([UpdateOne(f, u, upsert=up) for f, u, up in batch], ordered=False)
        modified += result.modified_count
    return modified


def iter_docs(coll: Collection, filt: dict[str, Any], projection: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Matching documents as lists of decoded documents, in large batches.

    On a real server they arrive as raw BSON batches (few round trips, one
    C-level decode per batch); mongomock has no raw batches.
    """
    if is_mongomock(coll.database):
        yield list(coll.find(filt, projection))
        return
    for raw in coll.find_raw_batches(filt, projection, batch_size=READ_BATCH):
        yield bson.decode_all(raw)


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
