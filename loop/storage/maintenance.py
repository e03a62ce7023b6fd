"""Maintenance windows (``maintenance_windows``): one small document per window, few in all.

A window is written once, by a unique ``_id`` insert (the one write FerretDB makes atomic under
concurrency), and only ever deleted after: no document is updated, so no update can race.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from loop.maintenance import OneOff, Weekly, Window
from loop.storage.schema import MAINTENANCE_WINDOWS
from loop.timeutil import to_utc, ts_to_us, us_to_ts

ONE_OFF = "one_off"
WEEKLY = "weekly"


def _to_doc(window: Window, created_at: dt.datetime) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": window.window_id,
        "store_ids": None if window.store_ids is None else list(window.store_ids),
        "note": window.note,
        "created_at": created_at,
    }
    schedule = window.schedule
    if isinstance(schedule, OneOff):
        # Microseconds, not BSON dates: an instant reads back exactly as it was given.
        doc.update(kind=ONE_OFF, start_us=ts_to_us(schedule.start), end_us=ts_to_us(schedule.end))
    else:
        doc.update(kind=WEEKLY, weekday=schedule.weekday, start_s=schedule.start_s, end_s=schedule.end_s)
    return doc


def _from_doc(doc: dict[str, Any]) -> Window:
    schedule: OneOff | Weekly
    if doc["kind"] == ONE_OFF:
        schedule = OneOff(start=us_to_ts(doc["start_us"]), end=us_to_ts(doc["end_us"]))
    else:
        schedule = Weekly(weekday=int(doc["weekday"]), start_s=int(doc["start_s"]), end_s=int(doc["end_s"]))
    ids = doc.get("store_ids")
    return Window(
        window_id=str(doc["_id"]),
        store_ids=None if ids is None else tuple(ids),
        schedule=schedule,
        note=str(doc.get("note") or ""),
        created_at=to_utc(doc["created_at"]),
    )


def insert_maintenance_window(db: Database, window: Window, *, created_at: dt.datetime) -> Window:
    """Store a new window (its id is new: a duplicate key is a bug, not a race to handle)."""
    doc = _to_doc(window, created_at)
    db[MAINTENANCE_WINDOWS].insert_one(doc)
    return _from_doc(doc)


def get_maintenance_window(db: Database, window_id: str) -> Window | None:
    doc = db[MAINTENANCE_WINDOWS].find_one({"_id": window_id})
    return None if doc is None else _from_doc(doc)


def list_maintenance_windows(db: Database, *, skip: int, limit: int) -> tuple[int, list[Window]]:
    """Newest first (by ``created_at``, then id); how many there are in all."""
    total = db[MAINTENANCE_WINDOWS].count_documents({})
    cursor = (
        db[MAINTENANCE_WINDOWS].find({}).sort([("created_at", DESCENDING), ("_id", ASCENDING)]).skip(skip).limit(limit)
    )
    return total, [_from_doc(doc) for doc in cursor]


def maintenance_windows_at(db: Database, at_us: int) -> list[Window]:
    """The windows that may hold the instant: every weekly one (that depends on the zone) and the one-off
    windows with start <= at < end. Oldest first."""
    query = {"$or": [{"kind": WEEKLY}, {"kind": ONE_OFF, "start_us": {"$lte": at_us}, "end_us": {"$gt": at_us}}]}
    cursor = db[MAINTENANCE_WINDOWS].find(query).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
    return [_from_doc(doc) for doc in cursor]


def delete_maintenance_window(db: Database, window_id: str) -> bool:
    """True when the window was there (and is now gone)."""
    return db[MAINTENANCE_WINDOWS].delete_one({"_id": window_id}).deleted_count == 1
