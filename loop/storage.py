"""All MongoDB access of the service lives in this module.

Collections (database ``settings.MONGO_DB``):

``store_status``
    One document per poll: ``store_id`` (str), ``status`` ("active"/"inactive"),
    ``timestamp_utc`` (BSON date, UTC) and ``us`` (0-999). BSON dates hold
    milliseconds only, while Loop's timestamps carry microseconds; ``us`` keeps
    the rest so that the database path computes exactly what the offline path
    computes from the CSV. The unique key is (store_id, timestamp_utc, us),
    i.e. (store_id, full timestamp); the (timestamp_utc, us) index serves the
    report's time-range read.
``store_poll_range``
    One document per store (``_id`` = store_id) with the first and last poll
    time (``first_us``/``last_us``, microseconds since the epoch), maintained
    by the loader with $min/$max. It answers "which stores have a poll at or
    before now" and "newest poll" without scanning the polls.
``business_hours``
    Parsed hours rows: ``store_id``, ``day_of_week`` (0 = Monday),
    ``start_seconds``, ``end_seconds`` (seconds after local midnight).
``timezones``
    ``store_id``, ``timezone_str`` and ``seq`` (row number in the loaded file,
    so duplicate rows of one store come back in file order).
``report_table``
    One document per report: status, pinned ``now``, timings, row count,
    error, and the id of the CSV file.
``report_files.files`` / ``report_files.chunks``
    The report CSVs, written in the GridFS layout (any GridFS client can read
    them; no 16 MB document limit). The layout is written here directly because
    mongomock's GridFS emulation does not work with this pymongo.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pymongo
from bson import ObjectId
from bson.binary import Binary
from django.conf import settings
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

logger = logging.getLogger(__name__)

STATUS = "store_status"
POLL_RANGE = "store_poll_range"
HOURS = "business_hours"
ZONES = "timezones"
REPORTS = "report_table"
REPORT_BUCKET = "report_files"

RUNNING = "Running"
COMPLETE = "Complete"
FAILED = "Failed"

WEEK_US = 7 * 24 * 3600 * 1_000_000
# GridFS's default chunk size (255 KiB): safely below the 16 MB document limit.
FILE_CHUNK_BYTES = 255 * 1024
# Documents per insert_many call: large round trips, bounded client memory.
WRITE_BATCH = 50_000
READ_BATCH = 100_000
# Update statements per command. FerretDB 1.24 keeps one SQLite connection per
# statement of an update command until the command ends, from a pool of 100:
# a command with ~100 statements that match documents deadlocks the database.
UPDATE_BATCH = 50
DUPLICATE_KEY = 11000

MONGOMOCK_SCHEME = "mongomock://"

_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}
_indexed: set[tuple[int, str, str]] = set()


# --- connections ------------------------------------------------------------


def get_client(url: str | None = None) -> Any:
    """The process's client for ``url`` (default ``settings.MONGO_URL``).

    ``mongomock://`` gives one in-process mongomock client shared by the whole
    process (the demo's web threads and its embedded worker see the same data).
    Real clients are cached per process id: a client must not cross a fork
    (gunicorn and Celery's prefork pool fork after import).
    """
    url = url or settings.MONGO_URL
    key = (0 if url.startswith(MONGOMOCK_SCHEME) else os.getpid(), url)
    with _lock:
        client = _clients.get(key)
        if client is None:
            if url.startswith(MONGOMOCK_SCHEME):
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
    ensure_indexes(db)
    return db


def is_mongomock(db: Database) -> bool:
    return type(db).__module__.startswith("mongomock")


def ensure_indexes(db: Database) -> None:
    key = (os.getpid() if not is_mongomock(db) else 0, str(id(db.client)), db.name)
    if key in _indexed:
        return
    db[STATUS].create_index(
        [("store_id", ASCENDING), ("timestamp_utc", ASCENDING), ("us", ASCENDING)],
        # mongomock checks a unique index by scanning every document on every
        # insert (quadratic); PollWriter finds repeats itself anyway.
        unique=not is_mongomock(db),
        name="poll_key",
    )
    db[STATUS].create_index([("timestamp_utc", ASCENDING), ("us", ASCENDING)], name="poll_time")
    db[POLL_RANGE].create_index([("first_us", ASCENDING)], name="first_poll")
    db[POLL_RANGE].create_index([("last_us", DESCENDING)], name="last_poll")
    db[HOURS].create_index([("store_id", ASCENDING)], name="store")
    db[ZONES].create_index([("store_id", ASCENDING)], name="store")
    db[REPORTS].create_index([("report_id", ASCENDING)], unique=True, name="report_id")
    db[f"{REPORT_BUCKET}.files"].create_index(
        [("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_1_uploadDate_1"
    )
    db[f"{REPORT_BUCKET}.chunks"].create_index(
        [("files_id", ASCENDING), ("n", ASCENDING)], unique=True, name="files_id_1_n_1"
    )
    _indexed.add(key)


def ping(db: Database) -> None:
    """Raise if the server does not answer."""
    db.command("ping")


def server_health() -> str:
    """ "ok", or why the server did not answer (quickly: the health check must not hang)."""
    try:
        with pymongo.timeout(2):
            get_client().admin.command("ping")
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def drop_database(db: Database) -> None:
    db.client.drop_database(db.name)
    _indexed.difference_update({k for k in _indexed if k[2] == db.name})


def collection_counts(db: Database) -> dict[str, int]:
    return {name: db[name].count_documents({}) for name in (STATUS, POLL_RANGE, HOURS, ZONES, REPORTS)}


# --- time helpers -------------------------------------------------------------


def to_utc(ts: pd.Timestamp | dt.datetime | str) -> pd.Timestamp:
    """A tz-aware UTC Timestamp; naive input is taken as UTC."""
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def ts_to_us(ts: pd.Timestamp | dt.datetime) -> int:
    """Microseconds since the epoch (sub-microsecond parts are dropped)."""
    return to_utc(ts).value // 1000


def us_to_ts(us: int) -> pd.Timestamp:
    return pd.Timestamp(int(us), unit="us", tz="UTC")


def us_to_bson_date(us: int) -> dt.datetime:
    """Naive UTC datetime truncated to the millisecond (what BSON stores)."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=(us // 1000) * 1000)


def series_to_us(values: pd.Series) -> np.ndarray:
    """int64 microseconds since the epoch for a tz-aware (or naive UTC) datetime Series."""
    s = values
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[us]").view("int64")


def us_array_to_series(us: np.ndarray, name: str = "timestamp_utc") -> pd.Series:
    return pd.Series(us.astype("int64").view("datetime64[us]"), name=name).dt.tz_localize("UTC")


def utcnow() -> dt.datetime:
    """Naive UTC now, millisecond precision (as BSON stores it)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def iso(value: dt.datetime | pd.Timestamp | None) -> str | None:
    if value is None:
        return None
    return to_utc(value).isoformat()


# --- bulk helpers -----------------------------------------------------------------


# (filter, update, upsert)
Update = tuple[dict[str, Any], dict[str, Any], bool]


def _bulk_update(coll: Collection, ops: list[Update]) -> int:
    """Run update operations as unordered bulk calls; returns modified count.

    mongomock's bulk_write is incompatible with pymongo 4.20's UpdateOne, so
    under mongomock (in-process, no round trips) the updates run one by one.
    """
    if not ops:
        return 0
    if is_mongomock(coll.database):
        return sum(coll.update_one(f, u, upsert=up).modified_count for f, u, up in ops)
    modified = 0
    for batch in _batched(ops, UPDATE_BATCH):
        result = coll.bulk_write([UpdateOne(f, u, upsert=up) for f, u, up in batch], ordered=False)
        modified += result.modified_count
    return modified


def _batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- polls --------------------------------------------------------------------


@dataclass
class PollWrite:
    """Outcome of writing polls."""

    inserted: int = 0
    duplicates: int = 0
    made_inactive: int = 0

    def add(self, other: PollWrite) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.made_inactive += other.made_inactive


def _iter_docs(coll: Collection, filt: dict[str, Any], projection: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Matching documents as lists of decoded documents, in large batches.

    On a real server they arrive as raw BSON batches (few round trips, one
    C-level decode per batch); mongomock has no raw batches.
    """
    if is_mongomock(coll.database):
        yield list(coll.find(filt, projection))
        return
    import bson

    for raw in coll.find_raw_batches(filt, projection, batch_size=READ_BATCH):
        yield bson.decode_all(raw)


def _oid_parts(oids: Sequence[ObjectId]) -> tuple[np.ndarray, np.ndarray]:
    """ObjectIds as two integer arrays (12 bytes per id instead of a Python object)."""
    packed = np.frombuffer(b"".join(o.binary for o in oids), dtype=[("hi", ">u8"), ("lo", ">u4")])
    return packed["hi"].astype(np.uint64), packed["lo"].astype(np.uint32)


def _oid(hi: int, lo: int) -> ObjectId:
    return ObjectId(int(hi).to_bytes(8, "big") + int(lo).to_bytes(4, "big"))


class PollWriter:
    """Writes the polls of one load run, skipping (and counting) the ones already stored.

    Duplicates are found before inserting instead of through the unique index:
    FerretDB (SQLite) answers a batch holding one duplicate by inserting the
    whole batch again one document per transaction, orders of magnitude
    slower. So the writer keeps compact keys (store code, microseconds, status,
    _id; about 30 bytes per poll) of the polls stored before this run (read
    once, and only when a chunk holds a poll inside a store's known range) and
    of the polls this run wrote. "Inactive wins" for a repeated poll becomes an
    update by _id, the one filter FerretDB runs as an index lookup. The unique
    index still guards against a concurrent loader.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.totals = PollWrite()
        self._codes: dict[str, int] = {}
        self._ranges: dict[str, tuple[int, int]] = {
            str(d["_id"]): (int(d["first_us"]), int(d["last_us"]))
            for batch in _iter_docs(db[POLL_RANGE], {}, {"first_us": 1, "last_us": 1})
            for d in batch
        }
        # The ranges as they were before this run: only polls inside them can be stored already.
        self._before = dict(self._ranges)
        self._stored: pd.DataFrame | None = None
        self._written = self._empty_keys()

    @staticmethod
    def _empty_keys() -> pd.DataFrame:
        return pd.DataFrame(
            {
                "code": np.empty(0, np.int64),
                "t": np.empty(0, np.int64),
                "inactive": np.empty(0, bool),
                "hi": np.empty(0, np.uint64),
                "lo": np.empty(0, np.uint32),
            }
        )

    def _encode(self, store_ids: Iterable[str]) -> np.ndarray:
        codes = self._codes
        return np.fromiter((codes.setdefault(s, len(codes)) for s in store_ids), dtype=np.int64)

    def _load_stored(self) -> pd.DataFrame:
        """Keys of every poll stored before this run (one bulk read)."""
        parts = []
        projection = {"_id": 1, "store_id": 1, "timestamp_utc": 1, "us": 1, "status": 1}
        for docs in _iter_docs(self.db[STATUS], {}, projection):
            if not docs:
                continue
            ms = np.array([d["timestamp_utc"] for d in docs], dtype="datetime64[ms]").view(np.int64)
            hi, lo = _oid_parts([d["_id"] for d in docs])
            parts.append(
                pd.DataFrame(
                    {
                        "code": self._encode(d["store_id"] for d in docs),
                        "t": ms * 1000 + np.fromiter((d.get("us", 0) for d in docs), np.int64, len(docs)),
                        "inactive": np.fromiter((d["status"] == "inactive" for d in docs), bool, len(docs)),
                        "hi": hi,
                        "lo": lo,
                    }
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else self._empty_keys()

    def write(self, polls: pd.DataFrame) -> PollWrite:
        """Write a chunk of valid polls (store_id, status, timestamp_utc)."""
        out = PollWrite()
        if polls.empty:
            return out
        store_ids = polls["store_id"].astype(str).to_numpy(dtype=object)
        frame = pd.DataFrame(
            {
                "code": self._encode(store_ids),
                "t": series_to_us(polls["timestamp_utc"]),
                "inactive": (polls["status"] == "inactive").to_numpy(dtype=bool),
            }
        )
        frame["store_id"] = store_ids
        # One row per poll within the chunk; inactive first so it wins.
        frame = frame.sort_values("inactive", ascending=False, kind="stable")
        in_chunk_dups = int(frame.duplicated(["code", "t"]).sum())
        frame = frame.drop_duplicates(["code", "t"]).reset_index(drop=True)
        out.duplicates += in_chunk_dups

        # Ranges first: they may cover a poll not yet written, never miss a written one.
        self._widen_ranges(frame)

        known = np.zeros(len(frame), dtype=bool)
        fixes: list[Update] = []
        maybe = self._inside_before_ranges(frame)
        if maybe.any():
            if self._stored is None:
                self._stored = self._load_stored()
            known |= self._match(frame, maybe, self._stored, fixes)
        if len(self._written):
            known |= self._match(frame, ~known, self._written, fixes)
        out.duplicates += int(known.sum())
        out.made_inactive += _bulk_update(self.db[STATUS], fixes)

        fresh = frame.loc[~known].reset_index(drop=True)
        inserted = self._insert(fresh)
        out.add(inserted)
        self.totals.add(out)
        return out

    def _inside_before_ranges(self, frame: pd.DataFrame) -> np.ndarray:
        if not self._before:
            return np.zeros(len(frame), dtype=bool)
        # Per store code: the range stored before this run (empty range when none).
        first = np.ones(len(self._codes), dtype=np.int64)
        last = np.zeros(len(self._codes), dtype=np.int64)
        for sid, (lo, hi) in self._before.items():
            code = self._codes.get(sid)
            if code is not None:
                first[code], last[code] = lo, hi
        codes = frame["code"].to_numpy()
        t = frame["t"].to_numpy()
        return (first[codes] <= t) & (t <= last[codes])

    @staticmethod
    def _match(frame: pd.DataFrame, rows: np.ndarray, keys: pd.DataFrame, fixes: list[Update]) -> np.ndarray:
        """Mark the rows already in ``keys``; queue "inactive wins" updates for them."""
        found = np.zeros(len(frame), dtype=bool)
        if not rows.any() or keys.empty:
            return found
        probe = frame.loc[rows, ["code", "t", "inactive"]].reset_index(names="row")
        hits = probe.merge(
            keys[["code", "t", "inactive", "hi", "lo"]].reset_index(names="key_row"),
            on=["code", "t"],
            suffixes=("", "_stored"),
        )
        found[hits["row"].to_numpy()] = True
        flip = hits[hits["inactive"] & ~hits["inactive_stored"]]
        if len(flip):
            keys.loc[flip["key_row"].to_numpy(), "inactive"] = True
            fixes.extend(
                ({"_id": _oid(hi, lo)}, {"$set": {"status": "inactive"}}, False)
                for hi, lo in zip(flip["hi"].tolist(), flip["lo"].tolist(), strict=True)
            )
        return found

    def _widen_ranges(self, frame: pd.DataFrame) -> None:
        agg = frame.groupby("store_id", sort=False)["t"].agg(["min", "max"])
        ops: list[Update] = []
        for sid, lo, hi in zip(agg.index.tolist(), agg["min"].tolist(), agg["max"].tolist(), strict=True):
            old = self._ranges.get(sid)
            if old is not None and old[0] <= lo and hi <= old[1]:
                continue
            new = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))
            self._ranges[sid] = new
            ops.append(({"_id": sid}, {"$min": {"first_us": new[0]}, "$max": {"last_us": new[1]}}, True))
        _bulk_update(self.db[POLL_RANGE], ops)

    def _insert(self, fresh: pd.DataFrame) -> PollWrite:
        out = PollWrite()
        if fresh.empty:
            return out
        t_us = fresh["t"].to_numpy()
        ms = t_us // 1000
        rest = (t_us - ms * 1000).tolist()
        dates = ms.astype("datetime64[ms]").astype(object).tolist()
        store_ids = fresh["store_id"].tolist()
        inactive = fresh["inactive"].tolist()
        coll = self.db[STATUS]
        oids: list[ObjectId] = []
        lost: list[int] = []  # rows another loader wrote first
        for start in range(0, len(store_ids), WRITE_BATCH):
            stop = min(start + WRITE_BATCH, len(store_ids))
            docs = [
                {
                    "_id": ObjectId(),
                    "store_id": store_ids[i],
                    "status": "inactive" if inactive[i] else "active",
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
                # Another loader wrote some of these polls meanwhile: count them as duplicates.
                details = exc.details
                errors = details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors) or details.get("writeConcernErrors"):
                    raise
                out.inserted += int(details.get("nInserted", 0))
                out.duplicates += len(errors)
                lost.extend(start + int(e["index"]) for e in errors)
                fixes: list[Update] = [
                    (
                        {
                            "store_id": docs[i]["store_id"],
                            "timestamp_utc": docs[i]["timestamp_utc"],
                            "us": docs[i]["us"],
                            "status": {"$ne": "inactive"},
                        },
                        {"$set": {"status": "inactive"}},
                        False,
                    )
                    for i in (int(e["index"]) for e in errors)
                    if docs[i]["status"] == "inactive"
                ]
                out.made_inactive += _bulk_update(coll, fixes)
        hi, lo = _oid_parts(oids)
        written = fresh[["code", "t", "inactive"]].assign(hi=hi, lo=lo)
        if lost:
            written = written.drop(index=lost)
        self._written = pd.concat([self._written, written], ignore_index=True)
        return out


def insert_polls(db: Database, polls: pd.DataFrame) -> PollWrite:
    """Write one frame of polls (a one-chunk load)."""
    return PollWriter(db).write(polls)


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


def _poll_range_filter(start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    # BSON dates are millisecond-truncated, so compare on the millisecond part
    # here and apply the exact microsecond bounds after reading.
    return {
        "timestamp_utc": {
            "$gte": us_to_bson_date(ts_to_us(start)),
            "$lte": us_to_bson_date(ts_to_us(end)),
        }
    }


_POLL_PROJECTION = {"_id": 0, "store_id": 1, "status": 1, "timestamp_utc": 1, "us": 1}


def _iter_poll_docs(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> Iterator[list[dict[str, Any]]]:
    """The polls in [start, end] (ms precision), in large batches of decoded documents."""
    return _iter_docs(db[STATUS], _poll_range_filter(start, end), _POLL_PROJECTION)


def read_polls(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Polls with start <= timestamp_utc <= end, in the engine's frame shape.

    Columns: store_id (str), status (str), timestamp_utc (datetime64[us, UTC]).
    Built column-wise from bulk batches: one query, no per-store round trips.
    """
    store_ids: list[str] = []
    statuses: list[str] = []
    times: list[np.ndarray] = []
    for docs in _iter_poll_docs(db, start, end):
        if not docs:
            continue
        store_ids.extend([d["store_id"] for d in docs])
        statuses.extend([d["status"] for d in docs])
        ms = np.array([d["timestamp_utc"] for d in docs], dtype="datetime64[ms]").view("int64")
        rest = np.fromiter((d.get("us", 0) for d in docs), dtype="int64", count=len(docs))
        times.append(ms * 1000 + rest)
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
    return read_polls(db, now - pd.Timedelta(days=7), now)


def scan_polls(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Bare bulk read of the polls in [start, end] (the benchmark's floor)."""
    return sum(len(docs) for docs in _iter_poll_docs(db, start, end))


# --- hours and zones ----------------------------------------------------------


def _replace_per_store(db: Database, name: str, docs_by_store: pd.DataFrame, columns: list[str]) -> int:
    """Replace what ``name`` holds for the stores in ``docs_by_store`` (batched)."""
    coll = db[name]
    frame = docs_by_store.reset_index(drop=True)
    store_ids = frame["store_id"].astype(str)
    unique_ids = pd.unique(store_ids).tolist()
    written = 0
    for id_batch in _batched(unique_ids, 5000):
        coll.delete_many({"store_id": {"$in": list(id_batch)}})
        part = frame.loc[store_ids.isin(id_batch), columns]
        records = [
            {col: (val.item() if isinstance(val, np.generic) else val) for col, val in zip(columns, row, strict=True)}
            for row in part.itertuples(index=False, name=None)
        ]
        for doc_batch in _batched(records, WRITE_BATCH):
            coll.insert_many(list(doc_batch), ordered=False)
            written += len(doc_batch)
    return written


def replace_hours(db: Database, hours: pd.DataFrame) -> int:
    """Store parsed hours rows; stores named in ``hours`` lose their old rows."""
    if hours.empty:
        return 0
    frame = pd.DataFrame(
        {
            "store_id": hours["store_id"].astype(str),
            "day_of_week": hours["day_of_week"].astype("int64"),
            "start_seconds": hours["start_seconds"].astype("int64"),
            "end_seconds": hours["end_seconds"].astype("int64"),
        }
    )
    return _replace_per_store(db, HOURS, frame, ["store_id", "day_of_week", "start_seconds", "end_seconds"])


def replace_zones(db: Database, zones: pd.DataFrame) -> int:
    """Store zone rows (file order kept in ``seq``); named stores lose their old rows."""
    if zones.empty:
        return 0
    frame = pd.DataFrame(
        {
            "store_id": zones["store_id"].astype(str),
            "timezone_str": zones["timezone_str"].astype(str),
            "seq": np.arange(len(zones), dtype="int64"),
        }
    )
    return _replace_per_store(db, ZONES, frame, ["store_id", "timezone_str", "seq"])


def read_hours(db: Database) -> pd.DataFrame:
    docs = list(db[HOURS].find({}, {"_id": 0, "store_id": 1, "day_of_week": 1, "start_seconds": 1, "end_seconds": 1}))
    return pd.DataFrame(
        {
            "store_id": pd.Series([d["store_id"] for d in docs], dtype="str"),
            "day_of_week": pd.Series([d["day_of_week"] for d in docs], dtype="int64"),
            "start_seconds": pd.Series([d["start_seconds"] for d in docs], dtype="int64"),
            "end_seconds": pd.Series([d["end_seconds"] for d in docs], dtype="int64"),
        }
    )


def read_zones(db: Database) -> pd.DataFrame:
    docs = list(db[ZONES].find({}, {"_id": 0, "store_id": 1, "timezone_str": 1, "seq": 1}))
    frame = pd.DataFrame(
        {
            "store_id": pd.Series([d["store_id"] for d in docs], dtype="str"),
            "timezone_str": pd.Series([d["timezone_str"] for d in docs], dtype="str"),
            "seq": pd.Series([d.get("seq", 0) for d in docs], dtype="int64"),
        }
    )
    # Duplicate rows of one store keep their file order (a stable sort).
    frame = frame.sort_values("seq", kind="stable").reset_index(drop=True)
    return frame[["store_id", "timezone_str"]]


# --- reports --------------------------------------------------------------------


def create_report(db: Database, report_id: str, now: pd.Timestamp) -> dict[str, Any]:
    now_us = ts_to_us(now)
    doc: dict[str, Any] = {
        # _id is the report id: lookups by _id are the one query FerretDB serves from an index.
        "_id": report_id,
        "report_id": report_id,
        "status": RUNNING,
        "now": us_to_bson_date(now_us),
        "now_us": now_us,
        "created_at": utcnow(),
        "started_at": None,
        "finished_at": None,
        "attempts": 0,
        "worker": None,
        "retries": 0,
        "rows": None,
        "polls_counted": None,
        "error": None,
        "warnings": [],
        "timings": {},
        "file_id": None,
    }
    db[REPORTS].insert_one(doc)
    return doc


def get_report(db: Database, report_id: str) -> dict[str, Any] | None:
    # Callers validate report_id as a plain string before it gets here; the
    # isinstance check keeps operator documents out even if one slips through.
    if not isinstance(report_id, str):
        raise TypeError("report_id must be a string")
    return db[REPORTS].find_one({"_id": report_id}, {"_id": 0})


def report_now(doc: dict[str, Any]) -> pd.Timestamp:
    return us_to_ts(int(doc["now_us"]))


def mark_report_started(
    db: Database, report_id: str, worker: str | None = None, retries: int = 0
) -> dict[str, Any] | None:
    """Record a (re)start; None when the report is no longer Running.

    ``attempts`` counts deliveries that got this far (a redelivery after a lost
    worker adds one); ``worker`` is who runs it now; ``retries`` how many
    retries after MongoDB errors came before this attempt.
    """
    # No projection: FerretDB's findAndModify does not implement "fields".
    doc = db[REPORTS].find_one_and_update(
        {"_id": report_id, "status": RUNNING},
        {"$set": {"started_at": utcnow(), "worker": worker, "retries": retries}, "$inc": {"attempts": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is not None:
        doc.pop("_id", None)
    return doc


def complete_report(
    db: Database,
    report_id: str,
    csv_text: str,
    *,
    rows: int,
    polls_counted: int,
    warnings: list[str],
    timings: dict[str, float],
) -> bool:
    """Store the CSV and mark the report Complete.

    Only a Running report moves to Complete; if another delivery of the task
    finished first, the CSV written here is removed again and False returned.
    """
    file_id = put_file(db, f"report-{report_id}.csv", csv_text.encode("utf-8"), {"report_id": report_id})
    result = db[REPORTS].update_one(
        {"_id": report_id, "status": RUNNING},
        {
            "$set": {
                "status": COMPLETE,
                "file_id": file_id,
                "rows": rows,
                "polls_counted": polls_counted,
                "warnings": warnings,
                "timings": timings,
                "finished_at": utcnow(),
                "error": None,
            }
        },
    )
    if result.matched_count == 0:
        delete_file(db, file_id)
        return False
    return True


def fail_report(db: Database, report_id: str, error: str) -> bool:
    """Mark a Running report Failed with a short message."""
    result = db[REPORTS].update_one(
        {"_id": report_id, "status": RUNNING},
        {"$set": {"status": FAILED, "error": error[:500], "finished_at": utcnow()}},
    )
    return result.matched_count == 1


def fail_if_stale(db: Database, doc: dict[str, Any], max_age_s: int) -> dict[str, Any]:
    """A report Running for longer than ``max_age_s`` is marked Failed (stale)."""
    if doc.get("status") != RUNNING:
        return doc
    created = doc.get("created_at")
    if created is None or (utcnow() - created).total_seconds() <= max_age_s:
        return doc
    message = f"stale: still Running after {max_age_s} s (worker lost or queue stuck)"
    fail_report(db, doc["report_id"], message)
    return get_report(db, doc["report_id"]) or doc


# Finished CSVs per process: a file is written once and never changes, so clients
# polling a Complete report cost one MongoDB lookup (the report) instead of 2 + chunks.
CSV_CACHE_BYTES = 64 * 1024 * 1024
_csv_cache: OrderedDict[tuple[str, str], str] = OrderedDict()
_csv_cache_size = 0
_csv_cache_lock = threading.Lock()


def read_report_csv(db: Database, doc: dict[str, Any]) -> str:
    global _csv_cache_size
    key = (db.name, str(doc["file_id"]))
    with _csv_cache_lock:
        text = _csv_cache.get(key)
        if text is not None:
            _csv_cache.move_to_end(key)
            return text
    text = get_file(db, doc["file_id"]).decode("utf-8")
    if len(text) <= CSV_CACHE_BYTES // 4:
        with _csv_cache_lock:
            if key not in _csv_cache:
                _csv_cache[key] = text
                _csv_cache_size += len(text)
            while _csv_cache_size > CSV_CACHE_BYTES:
                _, dropped = _csv_cache.popitem(last=False)
                _csv_cache_size -= len(dropped)
    return text


# --- files in the GridFS layout ------------------------------------------------------


def put_file(db: Database, filename: str, data: bytes, metadata: dict[str, Any]) -> ObjectId:
    """Write ``data`` as a GridFS file (chunks first, then the files document)."""
    file_id = ObjectId()
    chunks = db[f"{REPORT_BUCKET}.chunks"]
    docs = [
        {
            # GridFS readers find chunks by (files_id, n); the _id derived from
            # them lets this module read a chunk by _id, an index lookup even on FerretDB.
            "_id": _chunk_id(file_id, n),
            "files_id": file_id,
            "n": n,
            "data": Binary(data[offset : offset + FILE_CHUNK_BYTES]),
        }
        for n, offset in enumerate(range(0, len(data), FILE_CHUNK_BYTES))
    ]
    # A chunk is ~255 KiB: insert a few per call to keep messages small.
    for batch in _batched(docs, 32):
        chunks.insert_many(list(batch), ordered=True)
    db[f"{REPORT_BUCKET}.files"].insert_one(
        {
            "_id": file_id,
            "length": len(data),
            "chunkSize": FILE_CHUNK_BYTES,
            "uploadDate": utcnow(),
            "filename": filename,
            "metadata": metadata,
        }
    )
    return file_id


def get_file(db: Database, file_id: ObjectId) -> bytes:
    meta = db[f"{REPORT_BUCKET}.files"].find_one({"_id": file_id})
    if meta is None:
        raise FileNotFoundError(f"report file {file_id} is missing")
    chunks = db[f"{REPORT_BUCKET}.chunks"]
    parts: list[bytes] = []
    for n in range(-(-int(meta["length"]) // int(meta["chunkSize"]))):
        chunk = chunks.find_one({"_id": _chunk_id(file_id, n)})
        if chunk is None:
            raise OSError(f"report file {file_id} is missing chunk {n}")
        parts.append(bytes(chunk["data"]))
    data = b"".join(parts)
    if len(data) != meta["length"]:
        raise OSError(f"report file {file_id} is truncated ({len(data)} of {meta['length']} bytes)")
    return data


def _chunk_id(file_id: ObjectId, n: int) -> str:
    return f"{file_id}-{n:06d}"


def delete_file(db: Database, file_id: ObjectId) -> None:
    db[f"{REPORT_BUCKET}.files"].delete_one({"_id": file_id})
    db[f"{REPORT_BUCKET}.chunks"].delete_many({"files_id": file_id})


def iter_reports(db: Database, status: str | None = None) -> Iterable[dict[str, Any]]:
    query: dict[str, Any] = {} if status is None else {"status": status}
    return db[REPORTS].find(query, {"_id": 0}).sort("created_at", ASCENDING)
