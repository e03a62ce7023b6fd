"""Alerts in MongoDB: the open ones in one packed document, every alert's record, claims and acks.

Layout (names in ``loop.storage.schema``):
- ``alert_state`` ``{_id: "open"}``: the open alerts as packed columns, the newest evaluation's ``t`` and a
  short log of evaluations. One document, so ``GET /alerts/?state=open`` and every evaluation read one
  document whatever the fleet size. Written only by an evaluation holding the ``alerts`` lock.
- ``open_alerts`` ``{_id: store_id, alert_id, at}``: at most one open alert per store, enforced by the
  unique ``_id`` (an insert is the one write FerretDB makes atomic under concurrency), not by the lock.
- ``alerts`` ``{_id: alert_id, ...}``: every alert's record (opened, then resolved), for history; its instants
  are int64 UTC microseconds (``*_us``), as exact as the polls (BSON dates keep milliseconds).
- ``alert_acks`` ``{_id: alert_id, by, at, note}``: the first ack wins; a second is a no-op.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from bson import Binary
from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from loop.storage.packed import LOCK_SECONDS, exclusive, pack_strings, unpack_strings
from loop.storage.schema import ALERT_ACKS, ALERT_STATE, ALERTS, OPEN_ALERTS

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


def insert_alert_records(db: Database, records: Sequence[dict[str, Any]]) -> None:
    """Each opened alert's record (``_id`` = alert_id); a record already there (a retried evaluation) stays."""
    if not records:
        return
    try:
        db[ALERTS].insert_many(list(records), ordered=False)
    except BulkWriteError as exc:
        if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise


def resolve_alert_records(db: Database, resolutions: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Set each resolved alert's resolution fields (only the evaluation writes a record after its insert)."""
    for alert_id, fields in resolutions:
        db[ALERTS].update_one({"_id": alert_id}, {"$set": fields})


def get_alert_record(db: Database, alert_id: str) -> dict[str, Any] | None:
    return db[ALERTS].find_one({"_id": alert_id})


def alert_records(db: Database, alert_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {str(doc["_id"]): doc for doc in db[ALERTS].find({"_id": {"$in": list(alert_ids)}})}


def list_alert_records(
    db: Database, *, resolved: bool | None, store_ids: Sequence[str] | None, skip: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of alert records (of these stores only, unless None), newest opened first, and how many match."""
    filt: dict[str, Any] = {}
    if resolved is not None:
        filt["resolved_us"] = {"$ne": None} if resolved else None
    if store_ids is not None:
        filt["store_id"] = {"$in": list(store_ids)}
    total = db[ALERTS].count_documents(filt)
    cursor = db[ALERTS].find(filt).sort([("opened_us", DESCENDING), ("_id", DESCENDING)]).skip(skip).limit(limit)
    return list(cursor), total


def add_ack(db: Database, alert_id: str, *, by: str, at: dt.datetime, note: str) -> bool:
    """Record an ack; False when the alert was acknowledged already (the first ack stays)."""
    try:
        db[ALERT_ACKS].insert_one({"_id": alert_id, "by": by, "at": at, "note": note})
    except DuplicateKeyError:
        return False
    return True


def read_acks(db: Database, alert_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not alert_ids:
        return {}
    return {str(doc["_id"]): doc for doc in db[ALERT_ACKS].find({"_id": {"$in": list(alert_ids)}})}
