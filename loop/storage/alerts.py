"""Alerts in MongoDB: the open ones in one packed document, every alert's record, claims and acks.

Layout (names in ``loop.storage.schema``):
- ``alert_state`` ``{_id: "open"}``: the open alerts as packed columns, the newest evaluation's ``t`` and a
  short log of evaluations. One document, so ``GET /alerts/?state=open`` and every evaluation read one
  document whatever the fleet size. Written only by an evaluation holding the ``alerts`` lock.
- ``open_alerts`` ``{_id: store_id, alert_id}``: at most one open alert per store, enforced by the
  unique ``_id`` (an insert is the one write FerretDB makes atomic under concurrency), not by the lock.
- ``alerts`` ``{_id: alert_id, ...}``: every alert's record (opened, then resolved), for history.
- ``alert_acks`` ``{_id: alert_id, by, at, note}``: the first ack wins; a second is a no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from bson import Binary
from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from loop.storage.packed import exclusive, pack_strings, unpack_strings
from loop.storage.schema import ALERT_ACKS, ALERT_STATE, ALERTS, OPEN_ALERTS

OPEN_DOC = "open"
EVALUATION_LOG = 50
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class OpenAlerts:
    """The open alerts as columns (one row per alert), and the newest evaluation."""

    alert_id: np.ndarray  # object (str)
    store_id: np.ndarray  # object (str)
    started_us: np.ndarray  # int64, UTC microseconds
    opened_us: np.ndarray  # int64
    muted: np.ndarray  # bool: opened inside a maintenance window, nothing sent yet
    notified_us: np.ndarray  # int64 wall clock of the last message about it (0: none)
    evaluated_us: int | None = None  # the t of the newest evaluation
    stamp: str | None = None  # the data stamp that evaluation saw
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # small flags (the feed's staleness)

    @staticmethod
    def empty() -> OpenAlerts:
        nothing = np.zeros(0, dtype=np.int64)
        return OpenAlerts(
            np.zeros(0, dtype=object), np.zeros(0, dtype=object), nothing, nothing, np.zeros(0, dtype=bool), nothing
        )

    def __len__(self) -> int:
        return len(self.alert_id)

    def take(self, keep: np.ndarray) -> OpenAlerts:
        return replace(
            self,
            alert_id=self.alert_id[keep],
            store_id=self.store_id[keep],
            started_us=self.started_us[keep],
            opened_us=self.opened_us[keep],
            muted=self.muted[keep],
            notified_us=self.notified_us[keep],
        )

    def plus(self, other: OpenAlerts) -> OpenAlerts:
        return replace(
            self,
            alert_id=np.concatenate((self.alert_id, other.alert_id)),
            store_id=np.concatenate((self.store_id, other.store_id)),
            started_us=np.concatenate((self.started_us, other.started_us)),
            opened_us=np.concatenate((self.opened_us, other.opened_us)),
            muted=np.concatenate((self.muted, other.muted)),
            notified_us=np.concatenate((self.notified_us, other.notified_us)),
        )


def _int64(values: np.ndarray) -> Binary:
    return Binary(np.asarray(values, dtype="<i8").tobytes())


def read_open_alerts(db: Database) -> OpenAlerts:
    """The open alerts and the newest evaluation (one document)."""
    doc = db[ALERT_STATE].find_one({"_id": OPEN_DOC})
    if doc is None:
        return OpenAlerts.empty()
    return OpenAlerts(
        alert_id=unpack_strings(doc["alert_id"], doc["alert_id_len"]),
        store_id=unpack_strings(doc["store_id"], doc["store_id_len"]),
        started_us=np.frombuffer(doc["started_us"], dtype="<i8").astype(np.int64),
        opened_us=np.frombuffer(doc["opened_us"], dtype="<i8").astype(np.int64),
        muted=np.frombuffer(doc["muted"], dtype=np.uint8).astype(bool),
        notified_us=np.frombuffer(doc["notified_us"], dtype="<i8").astype(np.int64),
        evaluated_us=doc.get("evaluated_us"),
        stamp=doc.get("stamp"),
        evaluations=list(doc.get("evaluations", [])),
        state=dict(doc.get("state", {})),
    )


def write_open_alerts(db: Database, alerts: OpenAlerts) -> None:
    """Replace the open-alerts document (callers hold ``evaluation_lock``)."""
    alert_id, alert_id_len = pack_strings(alerts.alert_id)
    store_id, store_id_len = pack_strings(alerts.store_id)
    doc = {
        "_id": OPEN_DOC,
        "alert_id": alert_id,
        "alert_id_len": alert_id_len,
        "store_id": store_id,
        "store_id_len": store_id_len,
        "started_us": _int64(alerts.started_us),
        "opened_us": _int64(alerts.opened_us),
        "muted": Binary(np.asarray(alerts.muted, dtype=np.uint8).tobytes()),
        "notified_us": _int64(alerts.notified_us),
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
    docs = [{"_id": store_id, "alert_id": alert_id} for store_id, alert_id in claims]
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
    db: Database,
    *,
    resolved: bool | None,
    store_ids: Sequence[str] | None,
    skip: int,
    limit: int,
    resolved_after: dt.datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of alert records (of these stores only, unless None), newest opened first, and how many match.

    ``resolved_after``: only records resolved at or after it."""
    filt: dict[str, Any] = {}
    if resolved is not None:
        filt["resolved_at"] = {"$ne": None} if resolved else None
    if resolved_after is not None:
        filt["resolved_at"] = {"$gte": resolved_after}
    if store_ids is not None:
        filt["store_id"] = {"$in": list(store_ids)}
    total = db[ALERTS].count_documents(filt)
    cursor = db[ALERTS].find(filt).sort([("opened_at", DESCENDING), ("_id", DESCENDING)]).skip(skip).limit(limit)
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
