"""Report schedules (``report_schedules``) and their runs (``schedule_runs``).

- ``report_schedules``: one small document per schedule (``_id`` = schedule id), written only by the API
  (create, change, delete): the beat's tick reads them all (a few hundred at most) and never writes them,
  so no update of the tick can race one of the API on FerretDB.
- ``schedule_runs``: one document per run, ``_id`` = ``"<schedule id>:<slot in us>"`` (a cron slot) or
  ``"<schedule id>:manual:<minute in us>"`` (``POST /schedules/<id>/run/``). Inserting it is the run's
  **claim**: a unique ``_id`` insert is the one write FerretDB makes atomic under concurrency, so two beats,
  a duplicated tick or a retried task asking for the same slot make one run. Only the claimant (or a
  finisher, whose writes are idempotent) updates it afterwards; every read of it is an ``_id`` lookup.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from loop.storage.reports import ReportFormat, create_report
from loop.storage.schema import REPORT_SCHEDULES, SCHEDULE_RUNS
from loop.timeutil import utcnow

# --- schedules ------------------------------------------------------------------------------------------


def insert_schedule(db: Database, doc: dict[str, Any]) -> None:
    """``doc`` holds ``schedule_id`` (its ``_id``) and every field."""
    db[REPORT_SCHEDULES].insert_one({"_id": doc["schedule_id"], **doc})


def get_schedule(db: Database, schedule_id: str) -> dict[str, Any] | None:
    if not isinstance(schedule_id, str):  # callers check the shape; this keeps operator documents out
        raise TypeError("schedule_id must be a string")
    return db[REPORT_SCHEDULES].find_one({"_id": schedule_id}, {"_id": 0})


def all_schedules(db: Database) -> list[dict[str, Any]]:
    """Every schedule, oldest first (the collection is small: ``SCHEDULES_MAX``)."""
    return list(db[REPORT_SCHEDULES].find({}, {"_id": 0}).sort([("created_at", 1), ("_id", 1)]))


def count_schedules(db: Database) -> int:
    return db[REPORT_SCHEDULES].count_documents({})


def update_schedule(db: Database, schedule_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Set ``fields`` (and ``updated_at``); the schedule after, or None when it does not exist."""
    db[REPORT_SCHEDULES].update_one({"_id": schedule_id}, {"$set": {**fields, "updated_at": utcnow()}})
    return get_schedule(db, schedule_id)


def note_manual_run(db: Database, schedule_id: str, run_id: str) -> None:
    """Remember the schedule's newest run-now (the tick finishes it should its follow-up be lost)."""
    db[REPORT_SCHEDULES].update_one({"_id": schedule_id}, {"$set": {"last_manual_run": run_id}})


def delete_schedule(db: Database, schedule_id: str) -> bool:
    return db[REPORT_SCHEDULES].delete_one({"_id": schedule_id}).deleted_count == 1


# --- runs -----------------------------------------------------------------------------------------------


def claim_run(db: Database, doc: dict[str, Any]) -> bool:
    """Insert the run ``doc`` (``run_id`` is its ``_id``); False when that run was already claimed."""
    try:
        db[SCHEDULE_RUNS].insert_one({"_id": doc["run_id"], **doc})
    except DuplicateKeyError:
        return False
    return True


def get_run(db: Database, run_id: str) -> dict[str, Any] | None:
    if not isinstance(run_id, str):
        raise TypeError("run_id must be a string")
    return db[SCHEDULE_RUNS].find_one({"_id": run_id}, {"_id": 0})


def update_run(db: Database, run_id: str, fields: dict[str, Any]) -> None:
    db[SCHEDULE_RUNS].update_one({"_id": run_id}, {"$set": {**fields, "updated_at": utcnow()}})


def create_run_report(
    db: Database, report_id: str, now: pd.Timestamp, *, report_format: ReportFormat, max_gap_minutes: int | None
) -> bool:
    """Create a run's report under its derived id; False when it exists already (a resumed run)."""
    try:
        create_report(db, report_id, now, report_format=report_format, max_gap_minutes=max_gap_minutes)
    except DuplicateKeyError:
        return False
    return True


def delete_runs_before(db: Database, before: dt.datetime) -> int:
    """Retention (hourly, off the hot path): runs claimed before ``before``."""
    return db[SCHEDULE_RUNS].delete_many({"claimed_at": {"$lt": before}}).deleted_count
