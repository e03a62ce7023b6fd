"""Polls: one document per poll in ``store_status``, and each store's first and last poll in ``store_poll_range``.

``store_status`` documents: ``store_id``, ``status`` ("active"/"inactive"),
``timestamp_utc`` (BSON date, UTC, milliseconds) and ``us`` (0-999). ``us``
keeps the microseconds BSON drops, so the database path computes exactly what
the offline path computes from the CSV. The unique key is (store_id,
timestamp_utc, us). ``store_poll_range`` (``_id`` = store_id, ``first_us``,
``last_us``) answers "which stores were polled by now" and "newest poll"
without scanning the polls.

Which polls to write is decided by ``loop.ingest.dedup``; this module only
reads and writes documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from bson import ObjectId
from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from loop.rules import ACTIVE, INACTIVE, REPORT_WEEK
from loop.storage.client import DUPLICATE_KEY, READ_BATCH, WRITE_BATCH, Update, bulk_update, iter_docs
from loop.storage.schema import POLL_RANGE, STATUS
from loop.timeutil import to_utc, ts_to_us, us_array_to_series, us_to_bson_date, us_to_ts

_POLL_PROJECTION = {"_id": 0, "store_id": 1, "status": 1, "timestamp_utc": 1, "us": 1}


# --- reads -------------------------------------------------------------------------


def newest_poll_time(db: Database) -> pd.Timestamp | None:
    """The newest stored poll (from the per-store ranges: no scan of the polls)."""
    doc = db[POLL_RANGE].find_one({}, {"last_us": 1}, sort=[("last_us", DESCENDING)])
    if doc is None:
        return None
    return us_to_ts(int(doc["last_us"]))


def store_ids_polled_through(db: Database, now: pd.Timestamp) -> list[str]:
    """Ids of the stores with at least one poll at or before ``now``."""
    now_us = ts_to_us(now)
    cursor = db[POLL_RANGE].find({"first_us": {"$lte": now_us}}, {"_id": 1}, batch_size=READ_BATCH)
    return [str(doc["_id"]) for doc in cursor]


def _range_filter(start: pd.Timestamp, end: pd.Timestamp) -> dict[str, object]:
    # BSON dates are millisecond-truncated, so compare on the millisecond part
    # here and apply the exact microsecond bounds after reading.
    return {
        "timestamp_utc": {
            "$gte": us_to_bson_date(ts_to_us(start)),
            "$lte": us_to_bson_date(ts_to_us(end)),
        }
    }


def _doc_times_us(docs: list[dict[str, object]]) -> np.ndarray:
    ms = np.array([d["timestamp_utc"] for d in docs], dtype="datetime64[ms]").view("int64")
    return ms * 1000 + np.fromiter((d.get("us", 0) for d in docs), dtype="int64", count=len(docs))


def read_polls(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Polls with start <= timestamp_utc <= end, in the engine's frame shape.

    Columns: store_id (str), status (str), timestamp_utc (datetime64[us, UTC]).
    Built column-wise from bulk batches: one query, no per-store round trips.
    """
    store_ids: list[str] = []
    statuses: list[str] = []
    times: list[np.ndarray] = []
    for docs in iter_docs(db[STATUS], _range_filter(start, end), _POLL_PROJECTION):
        if not docs:
            continue
        store_ids.extend([d["store_id"] for d in docs])
        statuses.extend([d["status"] for d in docs])
        times.append(_doc_times_us(docs))
    t_us = np.concatenate(times) if times else np.empty(0, dtype="int64")
    frame = pd.DataFrame(
        {
            "store_id": pd.Series(store_ids, dtype="str"),
            "status": pd.Series(statuses, dtype="str"),
            "timestamp_utc": us_array_to_series(t_us),
        }
    )
    keep = (t_us >= ts_to_us(start)) & (t_us <= ts_to_us(end))
    if not keep.all():
        frame = frame.loc[keep].reset_index(drop=True)
    return frame


def week_polls(db: Database, now: pd.Timestamp) -> pd.DataFrame:
    """The polls the report can count: now - 7 days <= timestamp <= now."""
    now = to_utc(now)
    return read_polls(db, now - REPORT_WEEK, now)


def scan_polls(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Bare bulk read of the polls in [start, end] (the benchmark's floor)."""
    return sum(len(docs) for docs in iter_docs(db[STATUS], _range_filter(start, end), _POLL_PROJECTION))


# --- what the loader needs ----------------------------------------------------------------


def read_poll_ranges(db: Database) -> dict[str, tuple[int, int]]:
    """store_id -> (first, last) poll in microseconds since the epoch."""
    return {
        str(d["_id"]): (int(d["first_us"]), int(d["last_us"]))
        for batch in iter_docs(db[POLL_RANGE], {}, {"first_us": 1, "last_us": 1})
        for d in batch
    }


def widen_poll_ranges(db: Database, ranges: list[tuple[str, int, int]]) -> None:
    """Make each store's range cover (first_us, last_us) ($min/$max: safe against a concurrent loader)."""
    ops: list[Update] = [
        ({"_id": sid}, {"$min": {"first_us": lo}, "$max": {"last_us": hi}}, True) for sid, lo, hi in ranges
    ]
    bulk_update(db[POLL_RANGE], ops)


def oid_parts(oids: list[ObjectId]) -> tuple[np.ndarray, np.ndarray]:
    """ObjectIds as two integer arrays (12 bytes per id instead of a Python object)."""
    packed = np.frombuffer(b"".join(o.binary for o in oids), dtype=[("hi", ">u8"), ("lo", ">u4")])
    return packed["hi"].astype(np.uint64), packed["lo"].astype(np.uint32)


def _oid(hi: int, lo: int) -> ObjectId:
    return ObjectId(int(hi).to_bytes(8, "big") + int(lo).to_bytes(4, "big"))


def read_poll_keys(db: Database) -> pd.DataFrame:
    """Every stored poll as compact keys: store_id, t (us), inactive, and its _id as (hi, lo)."""
    parts = []
    projection = {"_id": 1, "store_id": 1, "timestamp_utc": 1, "us": 1, "status": 1}
    for docs in iter_docs(db[STATUS], {}, projection):
        if not docs:
            continue
        hi, lo = oid_parts([d["_id"] for d in docs])
        parts.append(
            pd.DataFrame(
                {
                    "store_id": np.array([d["store_id"] for d in docs], dtype=object),
                    "t": _doc_times_us(docs),
                    "inactive": np.fromiter((d["status"] == INACTIVE for d in docs), bool, len(docs)),
                    "hi": hi,
                    "lo": lo,
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                "store_id": np.empty(0, object),
                "t": np.empty(0, np.int64),
                "inactive": np.empty(0, bool),
                "hi": np.empty(0, np.uint64),
                "lo": np.empty(0, np.uint32),
            }
        )
    return pd.concat(parts, ignore_index=True)


def mark_polls_inactive(db: Database, hi: np.ndarray, lo: np.ndarray) -> int:
    """Set stored polls (by _id, the one filter FerretDB serves from an index) inactive."""
    ops: list[Update] = [
        ({"_id": _oid(h, low)}, {"$set": {"status": INACTIVE}}, False)
        for h, low in zip(hi.tolist(), lo.tolist(), strict=True)
    ]
    return bulk_update(db[STATUS], ops)


@dataclass
class PollInsert:
    """Outcome of inserting new polls; ``lost`` are rows another loader stored first."""

    inserted: int = 0
    duplicates: int = 0
    made_inactive: int = 0
    hi: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    lo: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    lost: list[int] = field(default_factory=list)


def insert_new_polls(db: Database, store_ids: list[str], t_us: np.ndarray, inactive: np.ndarray) -> PollInsert:
    """Insert polls the caller believes are new; the unique index catches a concurrent loader."""
    out = PollInsert()
    if len(store_ids) == 0:
        return out
    ms = t_us // 1000
    rest = (t_us - ms * 1000).tolist()
    dates = ms.astype("datetime64[ms]").astype(object).tolist()
    flags = inactive.tolist()
    coll = db[STATUS]
    oids: list[ObjectId] = []
    for start in range(0, len(store_ids), WRITE_BATCH):
        stop = min(start + WRITE_BATCH, len(store_ids))
        docs = [
            {
                "_id": ObjectId(),
                "store_id": store_ids[i],
                "status": INACTIVE if flags[i] else ACTIVE,
                "timestamp_utc": dates[i],
                "us": rest[i],
            }
            for i in range(start, stop)
        ]
        oids.extend(d["_id"] for d in docs)
        try:
            coll.insert_many(docs, ordered=False)
            out.inserted += len(docs)
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors) or details.get("writeConcernErrors"):
                raise
            out.inserted += int(details.get("nInserted", 0))
            out.duplicates += len(errors)
            out.lost.extend(start + int(e["index"]) for e in errors)
            # The other loader's copy may be active: inactive wins.
            fixes: list[Update] = [
                (
                    {
                        "store_id": docs[i]["store_id"],
                        "timestamp_utc": docs[i]["timestamp_utc"],
                        "us": docs[i]["us"],
                        "status": {"$ne": INACTIVE},
                    },
                    {"$set": {"status": INACTIVE}},
                    False,
                )
                for i in (int(e["index"]) for e in errors)
                if docs[i]["status"] == INACTIVE
            ]
            out.made_inactive += bulk_update(coll, fixes)
    out.hi, out.lo = oid_parts(oids)
    return out
