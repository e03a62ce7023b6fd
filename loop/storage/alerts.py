"""Alerts in MongoDB: the open ones in one packed document, every alert's record, claims and acks.

Layout (names in ``loop.storage.schema``):
- ``alert_state`` ``{_id: "open"}``: the open alerts as packed columns, the newest evaluation's ``t`` and a
  short log of evaluations. One document, so ``GET /alerts/?state=open`` and every evaluation read one
  document whatever the fleet size. Written only by an evaluation holding the ``alerts`` lock.
- ``open_alerts`` ``{_id: store_id, alert_id, at}``: at most one open alert per store, enforced by the
  unique ``_id`` (an insert is the one write FerretDB makes atomic under concurrency), not by the lock.
- ``alert_history``: every alert's record (opened, then resolved) in chunks by the UTC day it opened, each
  chunk's rows one compressed BSON blob, and an ``index`` document listing the chunks; its instants are
  int64 UTC microseconds (``*_us``), as exact as the polls (BSON dates keep milliseconds).
- ``alerts`` ``{_id: alert_id, chunk}``: one locator per alert, so one alert is found by ``_id``.
- ``alert_acks`` ``{_id: alert_id, by, at, note}``: the first ack wins; a second is a no-op.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import bson
import numpy as np
from bson import Binary
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from loop.storage.packed import LOCK_SECONDS, exclusive, pack_strings, unpack_strings
from loop.storage.schema import ALERT_ACKS, ALERT_HISTORY, ALERT_STATE, ALERTS, OPEN_ALERTS, PENDING_ACKS

OPEN_DOC = "open"
EVALUATION_LOG = 50
DUPLICATE_KEY = 11000


# The open-alerts document's columns and their kinds: text, int64 or bool.
TEXT, INT, FLAG = "text", "int64", "bool"
COLUMNS: dict[str, str] = {
    "alert_id": TEXT,
    "store_id": TEXT,
    "zone": TEXT,  # the store's effective zone when the alert opened
    "started_us": INT,  # UTC microseconds
    "opened_us": INT,
    "muted": FLAG,  # opened inside a maintenance window and not announced yet
    "notified_us": INT,  # wall clock of the last message about it (0: none)
    "ack_by": TEXT,  # "" while nobody acknowledged it
    "ack_us": INT,  # wall clock of the ack (0: none)
    "chunk": TEXT,  # the history chunk holding its row
}
_DTYPES = {TEXT: object, INT: np.int64, FLAG: bool}


@dataclass(frozen=True)
class OpenAlerts:
    """The open alerts as columns (one row per alert: ``COLUMNS``), and the newest evaluation.

    Everything ``GET /alerts/?state=open`` shows is here, so that list reads this one document.
    """

    alert_id: np.ndarray
    store_id: np.ndarray
    zone: np.ndarray
    started_us: np.ndarray
    opened_us: np.ndarray
    muted: np.ndarray
    notified_us: np.ndarray
    ack_by: np.ndarray
    ack_us: np.ndarray
    chunk: np.ndarray
    evaluated_us: int | None = None  # the t of the newest evaluation
    stamp: str | None = None  # the data stamp that evaluation saw
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # small flags (the feed's staleness)

    @staticmethod
    def rows(**columns: Sequence[Any] | np.ndarray) -> OpenAlerts:
        """New rows; columns not given get their empty value ("" / 0 / False)."""
        n = len(next(iter(columns.values()))) if columns else 0
        fill = {TEXT: "", INT: 0, FLAG: False}
        values: dict[str, Any] = {
            name: np.asarray(columns[name], dtype=_DTYPES[kind])
            if name in columns
            else np.full(n, fill[kind], dtype=_DTYPES[kind])
            for name, kind in COLUMNS.items()
        }
        return OpenAlerts(**values)

    @staticmethod
    def empty() -> OpenAlerts:
        return OpenAlerts.rows()

    def __len__(self) -> int:
        return len(self.alert_id)

    def take(self, keep: np.ndarray) -> OpenAlerts:
        taken: dict[str, Any] = {name: getattr(self, name)[keep] for name in COLUMNS}
        return replace(self, **taken)

    def plus(self, other: OpenAlerts) -> OpenAlerts:
        joined: dict[str, Any] = {name: np.concatenate((getattr(self, name), getattr(other, name))) for name in COLUMNS}
        return replace(self, **joined)


def read_open_alerts(db: Database) -> OpenAlerts:
    """The open alerts and the newest evaluation (one document)."""
    doc = db[ALERT_STATE].find_one({"_id": OPEN_DOC})
    if doc is None:
        return OpenAlerts.empty()
    n = int(doc.get("count", 0))
    values: dict[str, Any] = {}
    for name, kind in COLUMNS.items():
        if name not in doc:  # written before the column existed
            values[name] = getattr(OpenAlerts.rows(alert_id=[""] * n), name)
        elif kind == TEXT:
            values[name] = unpack_strings(doc[name], doc[f"{name}_len"])
        elif kind == INT:
            values[name] = np.frombuffer(doc[name], dtype="<i8").astype(np.int64)
        else:
            values[name] = np.frombuffer(doc[name], dtype=np.uint8).astype(bool)
    return OpenAlerts(
        **values,
        evaluated_us=doc.get("evaluated_us"),
        stamp=doc.get("stamp"),
        evaluations=list(doc.get("evaluations", [])),
        state=dict(doc.get("state", {})),
    )


def write_open_alerts(db: Database, alerts: OpenAlerts) -> None:
    """Replace the open-alerts document (callers hold ``evaluation_lock``)."""
    doc: dict[str, Any] = {"_id": OPEN_DOC}
    for name, kind in COLUMNS.items():
        values = getattr(alerts, name)
        if kind == TEXT:
            doc[name], doc[f"{name}_len"] = pack_strings(values)
        elif kind == INT:
            doc[name] = Binary(np.asarray(values, dtype="<i8").tobytes())
        else:
            doc[name] = Binary(np.asarray(values, dtype=np.uint8).tobytes())
    doc |= {
        "evaluated_us": alerts.evaluated_us,
        "stamp": alerts.stamp,
        "evaluations": alerts.evaluations[-EVALUATION_LOG:],
        "state": alerts.state,
        "count": len(alerts),
    }
    db[ALERT_STATE].replace_one({"_id": OPEN_DOC}, doc, upsert=True)


@contextmanager
def evaluation_lock(db: Database, *, wait: float = 0.0) -> Iterator[bool]:
    """One evaluation (or reminder sweep) at a time changes the open alerts; yields False when busy."""
    with exclusive(db, ALERT_STATE, "alerts", wait=wait) as held:
        yield held


def claim_open_alerts(db: Database, claims: Sequence[tuple[str, str]]) -> set[str]:
    """Insert ``(store_id, alert_id)`` claims; returns the store ids whose claim was taken (no open alert before)."""
    if not claims:
        return set()
    now = time.time()
    docs = [{"_id": store_id, "alert_id": alert_id, "at": now} for store_id, alert_id in claims]
    refused: set[int] = set()
    try:
        db[OPEN_ALERTS].insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        for error in exc.details.get("writeErrors", []):
            if error.get("code") != DUPLICATE_KEY:
                raise
            refused.add(int(error["index"]))
    return {store_id for k, (store_id, _) in enumerate(claims) if k not in refused}


def open_alert_claims(db: Database, store_ids: Sequence[str]) -> dict[str, str]:
    """store_id -> alert_id of the claims held for these stores (to repair the open-alerts document)."""
    found = db[OPEN_ALERTS].find({"_id": {"$in": list(store_ids)}})
    return {str(doc["_id"]): str(doc["alert_id"]) for doc in found}


def claimed_store_ids(db: Database) -> list[str]:
    """Every store with a claim (an open alert)."""
    return [str(doc["_id"]) for doc in db[OPEN_ALERTS].find({}, {"_id": 1})]


def release_claims(db: Database, claims: Sequence[tuple[str, str]], *, unrecorded: bool = False) -> None:
    """Delete these ``(store_id, alert_id)`` claims (not a newer claim of the store). ``unrecorded``: only
    those older than the lock's lease; a younger one may be an evaluation's between its claim and its record."""
    for store_id, alert_id in claims:
        filt: dict[str, Any] = {"_id": store_id, "alert_id": alert_id}
        if unrecorded:  # a claim without "at" predates the field: old
            filt["$or"] = [{"at": {"$lt": time.time() - LOCK_SECONDS}}, {"at": {"$exists": False}}]
        db[OPEN_ALERTS].delete_one(filt)


def release_open_alerts(db: Database, store_ids: Sequence[str]) -> None:
    if store_ids:
        db[OPEN_ALERTS].delete_many({"_id": {"$in": list(store_ids)}})


# --- history: every alert, packed by the UTC day it opened ----------------------------------------------
# A list reads a few large documents, never one per alert (FerretDB filters ~11K-45K documents/s in its
# own process, even ``_id`` $in). ``alerts`` keeps one tiny locator per alert (inserted once) so that one
# alert is found by ``_id``.

HISTORY_INDEX = "index"
# Each evaluation rewrites the chunk its new alerts go into (and those of the alerts it resolves): a
# busy day's one chunk of ~1,700 rows cost 0.11-0.23 s a write on FerretDB (the full 1x benchmark's
# evaluation 0.136 s with chunks of 500, 0.082 s with 200). The index then lists ~15 chunks a busy day.
# An evaluation opening more at once puts them all in one new chunk.
CHUNK_ROWS = 200
_chunk_cache: dict[tuple[int, str, str, int], list[dict[str, Any]]] = {}
_chunk_lock = threading.Lock()


def _history_index(db: Database) -> list[dict[str, Any]]:
    doc = db[ALERT_HISTORY].find_one({"_id": HISTORY_INDEX})
    return [] if doc is None else list(doc["chunks"])


def _write_index(db: Database, chunks: list[dict[str, Any]]) -> None:
    db[ALERT_HISTORY].replace_one({"_id": HISTORY_INDEX}, {"_id": HISTORY_INDEX, "chunks": chunks}, upsert=True)


def _read_chunk(db: Database, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A chunk's rows (kept per process while its version holds: rows must not be changed by callers)."""
    key = (id(db.client), db.name, str(entry["id"]), int(entry["v"]))
    with _chunk_lock:
        cached = _chunk_cache.get(key)
    if cached is not None:
        return cached
    doc = db[ALERT_HISTORY].find_one({"_id": entry["id"]})
    rows = [] if doc is None else _unpack_rows(doc)
    with _chunk_lock:
        if len(_chunk_cache) > 256:
            _chunk_cache.clear()
        _chunk_cache[key] = rows
    return rows


def _write_chunk(db: Database, chunk_id: str, rows: list[dict[str, Any]]) -> None:
    packed = Binary(zlib.compress(bson.encode({"rows": rows}), 1))
    db[ALERT_HISTORY].replace_one({"_id": chunk_id}, {"_id": chunk_id, "packed": packed}, upsert=True)


def _unpack_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A chunk's rows: one compressed BSON blob, or (written before packing) a list of subdocuments.

    Packed because an hourly batch at 10x opens and resolves thousands of alerts: rewriting chunks of
    ~3,000 subdocuments cost FerretDB ~0.15-0.5 s each, the same rows as one binary field ~0.03 s."""
    if "packed" in doc:
        return list(bson.decode(zlib.decompress(doc["packed"]))["rows"])
    return list(doc.get("rows", []))


def _cache_written(db: Database, entries: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
    """Keep chunks just written (once their index is): the next write or read in this process skips
    reading back a day's chunk (~40 ms for 1,000 rows on FerretDB)."""
    with _chunk_lock:
        for entry, rows in entries:
            chunk = (id(db.client), db.name, str(entry["id"]))
            for key in [k for k in _chunk_cache if k[:3] == chunk]:  # its older versions are dead
                del _chunk_cache[key]
            if len(_chunk_cache) > 256:
                _chunk_cache.clear()
            _chunk_cache[(*chunk, int(entry["v"]))] = rows


def record_transitions(
    db: Database,
    *,
    opened: Sequence[dict[str, Any]] = (),
    day: str = "",
    changes: Sequence[tuple[str, str, dict[str, Any]]] = (),
) -> str:
    """Add ``opened`` alerts (``alert_id`` and their fields) to the history chunk of ``day``, and set fields
    of alerts in their chunks (``changes``: chunk id, alert_id, fields), writing each chunk and the index
    once. Returns the opened alerts' chunk id ("" when none opened).

    Callers hold ``evaluation_lock``: the chunks and their index have one writer at a time."""
    if not opened and not changes:
        return ""
    index = _history_index(db)
    by_id = {str(e["id"]): e for e in index}
    touched: dict[str, list[dict[str, Any]]] = {}

    def rows_of(entry: dict[str, Any]) -> list[dict[str, Any]]:
        if entry["id"] not in touched:
            touched[entry["id"]] = list(_read_chunk(db, entry)) if entry["n"] else []
        return touched[entry["id"]]

    chunk_id = ""
    if opened:
        mine = [e for e in index if str(e["id"]).startswith(f"{day}|")]
        if mine and int(mine[-1]["n"]) + len(opened) <= CHUNK_ROWS:
            entry = mine[-1]
        else:
            entry = {"id": f"{day}|{len(mine):04d}", "n": 0, "resolved": 0, "v": 0}
            index.append(entry)
            index.sort(key=lambda e: str(e["id"]))
            by_id[entry["id"]] = entry
        chunk_id = str(entry["id"])
        rows_of(entry).extend(dict(row, chunk=chunk_id) for row in opened)
        locators = [{"_id": row["alert_id"], "chunk": chunk_id} for row in opened]
        try:
            db[ALERTS].insert_many(locators, ordered=False)
        except BulkWriteError as exc:  # a retried evaluation: the locator is there already
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
                raise
    per_chunk: dict[str, dict[str, dict[str, Any]]] = {}
    for changed_chunk, alert_id, fields in changes:
        per_chunk.setdefault(changed_chunk, {})[alert_id] = fields
    for changed_chunk, fields_of in per_chunk.items():
        found = by_id.get(changed_chunk)
        if found is not None:
            touched[changed_chunk] = [dict(row, **fields_of.get(row["alert_id"], {})) for row in rows_of(found)]
    written: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for changed_chunk, rows in touched.items():
        _write_chunk(db, changed_chunk, rows)
        entry = by_id[changed_chunk]
        resolved = sum(1 for row in rows if row.get("resolved_us") is not None)
        entry.update(n=len(rows), v=int(entry["v"]) + 1, resolved=resolved)
        written.append((entry, rows))
    _write_index(db, index)
    _cache_written(db, written)
    return chunk_id


def record_opened(db: Database, rows: Sequence[dict[str, Any]], *, day: str) -> str:
    """``record_transitions`` of opened alerts only."""
    return record_transitions(db, opened=rows, day=day)


def record_changes(db: Database, changes: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
    """``record_transitions`` of changed fields only."""
    record_transitions(db, changes=changes)


def remove_history_before(db: Database, day: str) -> int:
    """Remove the history chunks of days before ``day`` whose alerts are all resolved, with their locators
    and acks; returns the alerts removed (callers hold ``evaluation_lock``)."""
    index = _history_index(db)
    old = [e for e in index if str(e["id"]).split("|")[0] < day and int(e["resolved"]) == int(e["n"])]
    if not old:
        return 0
    alert_ids = [str(row["alert_id"]) for e in old for row in _read_chunk(db, e)]
    gone = {str(e["id"]) for e in old}
    _write_index(db, [e for e in index if str(e["id"]) not in gone])  # readers stop seeing them first
    for chunk_id in gone:
        db[ALERT_HISTORY].delete_one({"_id": chunk_id})
    db[ALERTS].delete_many({"chunk": {"$in": sorted(gone)}})
    db[ALERT_ACKS].delete_many({"_id": {"$in": alert_ids}})
    return len(alert_ids)


def read_alert(db: Database, alert_id: str) -> dict[str, Any] | None:
    """One alert's row (its locator, then its chunk), or None."""
    locator = db[ALERTS].find_one({"_id": alert_id})
    if locator is None:
        return None
    entry = next((e for e in _history_index(db) if e["id"] == locator["chunk"]), None)
    if entry is None:
        return None
    return next((row for row in _read_chunk(db, entry) if row["alert_id"] == alert_id), None)


def read_alerts(db: Database, alert_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Rows of a few alerts (each by its locator)."""
    found = {}
    for alert_id in alert_ids:
        row = read_alert(db, alert_id)
        if row is not None:
            found[alert_id] = row
    return found


def history(db: Database, *, resolved: bool | None) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The history chunks newest first: (rows matching ``resolved`` in the chunk, its rows)."""
    for entry in sorted(_history_index(db), key=lambda e: str(e["id"]), reverse=True):
        n, done = int(entry["n"]), int(entry["resolved"])
        matching = n if resolved is None else done if resolved else n - done
        yield matching, _read_chunk(db, entry) if matching else []


def add_ack(db: Database, alert_id: str, *, by: str, at: dt.datetime, note: str) -> bool:
    """Record an ack; False when the alert was acknowledged already (the first ack stays)."""
    try:
        db[ALERT_ACKS].insert_one({"_id": alert_id, "by": by, "at": at, "note": note})
    except DuplicateKeyError:
        return False
    return True


def get_ack(db: Database, alert_id: str) -> dict[str, Any] | None:
    return db[ALERT_ACKS].find_one({"_id": alert_id})


def add_pending_ack(db: Database, alert_id: str) -> None:
    """An ack the open-alerts document does not show yet (the lock was busy): the next sweep copies it."""
    db[PENDING_ACKS].replace_one({"_id": alert_id}, {"_id": alert_id}, upsert=True)


def take_pending_acks(db: Database) -> dict[str, dict[str, Any]]:
    """The acks waiting to be copied (a small collection), removed as they are taken."""
    ids = [str(doc["_id"]) for doc in db[PENDING_ACKS].find({})]
    acks = {alert_id: ack for alert_id in ids if (ack := get_ack(db, alert_id)) is not None}
    if ids:
        db[PENDING_ACKS].delete_many({"_id": {"$in": ids}})
    return acks
