"""The poll layout before packed day parts: one ``store_status`` document per poll.

Only ``migrate_polls`` reads it: it streams the old documents out, and once
their polls are stored as day parts, removes them, their indexes and
``store_poll_range``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop.storage.client import iter_docs
from loop.storage.schema import LEGACY_POLL_INDEXES, LEGACY_POLL_RANGE, STATUS
from loop.timeutil import us_array_to_series

_LEGACY = {"store_id": {"$exists": True}}


class LegacyLayoutError(RuntimeError):
    """The database still holds one document per poll; ``migrate_polls`` converts it."""

    def __init__(self) -> None:
        super().__init__(
            "this database stores polls in the old one-document-per-poll layout: "
            "run `python manage.py migrate_polls` first (see README)"
        )


def has_legacy_polls(db: Database) -> bool:
    return db[STATUS].find_one(_LEGACY, {"_id": 1}) is not None


def require_current_layout(db: Database) -> None:
    """Refuse to read or write polls while old-layout documents are there (they would be ignored)."""
    if has_legacy_polls(db):
        raise LegacyLayoutError()


def iter_legacy_polls(db: Database) -> Iterator[pd.DataFrame]:
    """The old documents' polls, in large batches, as (store_id, status, timestamp_utc) frames."""
    projection = {"_id": 0, "store_id": 1, "status": 1, "timestamp_utc": 1, "us": 1}
    for docs in iter_docs(db[STATUS], _LEGACY, projection):
        if not docs:
            continue
        ms = np.array([d["timestamp_utc"] for d in docs], dtype="datetime64[ms]").view("int64")
        rest = np.fromiter((d.get("us", 0) for d in docs), dtype="int64", count=len(docs))
        yield pd.DataFrame(
            {
                "store_id": [d["store_id"] for d in docs],
                "status": [d["status"] for d in docs],
                "timestamp_utc": us_array_to_series(ms * 1000 + rest),
            }
        )


def drop_legacy_indexes(db: Database) -> None:
    """The old unique (store_id, timestamp_utc, us) key would refuse a second day head (all three missing)."""
    existing = set(db[STATUS].index_information())
    for name in LEGACY_POLL_INDEXES:
        if name in existing:
            db[STATUS].drop_index(name)


def delete_legacy_polls(db: Database) -> int:
    deleted = db[STATUS].delete_many(_LEGACY).deleted_count
    db.drop_collection(LEGACY_POLL_RANGE)
    return deleted
