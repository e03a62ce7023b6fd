"""The layout before packed documents: one document per poll, per hours row and per zone row.

Only ``migrate_polls`` reads it: it streams the old documents out, and once
their rows are stored in the packed layout, removes them, their indexes and,
last, ``store_poll_range``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop.storage.client import iter_docs
from loop.storage.schema import HOURS, LEGACY_POLL_INDEXES, LEGACY_POLL_RANGE, LEGACY_STORE_INDEX, STATUS, ZONES
from loop.timeutil import us_array_to_series

_LEGACY = {"store_id": {"$exists": True}}


class LegacyLayoutError(RuntimeError):
    """The database still holds one document per poll; ``migrate_polls`` converts it."""

    def __init__(self) -> None:
        super().__init__(
            "this database stores polls in the old one-document-per-poll layout: "
            "run `python manage.py migrate_polls` first (see README)"
        )


# Databases this process has seen in the current layout. Nothing writes the old layout any more, so a
# database never goes back to it: the check (a collection listing and up to three index listings,
# ~20 ms on FerretDB with a few months of day collections) is paid once per process, not per request.
_CURRENT: set[tuple[int, str]] = set()


def has_legacy_polls(db: Database) -> bool:
    """True while old-layout documents may be stored.

    Checked through catalog data (cheap on any server), not by searching documents: the old
    layout always had ``store_poll_range`` and its indexes, and ``migrate_polls`` drops them
    only after the old documents are gone.
    """
    key = (id(db.client), db.name)
    if key in _CURRENT:
        return False
    names = set(db.list_collection_names())
    indexes = {STATUS: LEGACY_POLL_INDEXES[0], HOURS: LEGACY_STORE_INDEX, ZONES: LEGACY_STORE_INDEX}
    legacy = LEGACY_POLL_RANGE in names or any(
        name in names and index in db[name].index_information() for name, index in indexes.items()
    )
    if not legacy:
        _CURRENT.add(key)
    return legacy


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


def read_legacy_hours(db: Database) -> pd.DataFrame:
    docs = [d for batch in iter_docs(db[HOURS], _LEGACY, {"_id": 0}) for d in batch]
    columns = ("day_of_week", "start_seconds", "end_seconds")
    return pd.DataFrame(
        {
            "store_id": [d["store_id"] for d in docs],
            **{c: np.array([d[c] for d in docs], dtype=np.int64) for c in columns},
        }
    )


def read_legacy_zones(db: Database) -> pd.DataFrame:
    docs = sorted(
        (d for batch in iter_docs(db[ZONES], _LEGACY, {"_id": 0}) for d in batch), key=lambda d: d.get("seq", 0)
    )
    return pd.DataFrame({"store_id": [d["store_id"] for d in docs], "timezone_str": [d["timezone_str"] for d in docs]})


def drop_legacy_poll_indexes(db: Database) -> None:
    """The old unique (store_id, timestamp_utc, us) key would refuse a second day head (all three missing)."""
    existing = set(db[STATUS].index_information())
    for name in LEGACY_POLL_INDEXES:
        if name in existing:
            db[STATUS].drop_index(name)


def delete_legacy_documents(db: Database) -> int:
    """Delete the old polls, hours and zones (and their indexes); ``store_poll_range`` goes last."""
    deleted = db[STATUS].delete_many(_LEGACY).deleted_count
    for name in (HOURS, ZONES):
        db[name].delete_many(_LEGACY)
        if LEGACY_STORE_INDEX in db[name].index_information():
            db[name].drop_index(LEGACY_STORE_INDEX)
    db.drop_collection(LEGACY_POLL_RANGE)
    return deleted
