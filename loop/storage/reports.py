"""Reports (``report_table``): one document per report, and its state machine.

A report is created Running and moves once, to Complete (with its CSV in
``loop.storage.files``) or to Failed (with a short error). Every transition is
a conditional update on ``status: Running``, so two deliveries of one task
cannot both finish it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypedDict, cast

import pandas as pd
from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from loop.storage.files import delete_file, get_file, put_file, read_text_file
from loop.storage.jobs import WORKER_LOST, beat, settle_lost, silent_jobs, start_attempt
from loop.storage.schema import REPORT_BUCKET, REPORT_CLAIMS, REPORT_SHARDS, REPORTS
from loop.timeutil import ts_to_us, us_to_bson_date, us_to_ts, utcnow


class ReportStatus(StrEnum):
    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"


class ReportFormat(StrEnum):
    """Which columns a report has: the Loop 7, or those plus the extended 8 (docs/report_rules.md)."""

    LOOP = "loop"
    EXTENDED = "extended"


class ReportPhase(StrEnum):
    """Where a Running report is; the worker moves it forward (``set_report_phase``)."""

    QUEUED = "queued"
    READING = "reading"
    COMPUTING = "computing"
    STORING = "storing"
    SHARDS = "shards"  # a sharded report: its shards are queued or running (progress: shards done)
    JOINING = "joining"  # every shard is done: their parts become the CSV
    WORKER_LOST = WORKER_LOST  # its worker stopped heartbeating: queued again (or Failed)


# Rough share of the work done when each phase begins (reading the week is most of it).
PHASE_PROGRESS = {
    ReportPhase.QUEUED: 0,
    ReportPhase.READING: 10,
    ReportPhase.COMPUTING: 60,
    ReportPhase.STORING: 90,
    ReportPhase.SHARDS: 10,  # and up to 90 as shards finish (``shard_progress``)
    ReportPhase.JOINING: 90,
    ReportPhase.WORKER_LOST: 0,  # the next attempt starts over
}

# The few fields the report list shows: never the CSV, warnings or timings.
SUMMARY_FIELDS = (
    "report_id",
    "status",
    "now_us",
    "created_at",
    "finished_at",
    "rows",
    "phase",
    "progress",
    "format",
    "max_gap_minutes",
    # Not shown, but the list applies the lost rule (loop.services.jobs) to Running reports.
    "heartbeat_at",
    "attempt_token",
    "lost_attempts",
    "worker",
)


class ReportDoc(TypedDict, total=False):
    """A ``report_table`` document as the service reads it (``_id`` is the report id).

    Not total: old reports lack newer fields, and the list reads only ``SUMMARY_FIELDS``.
    """

    report_id: str
    status: str  # a ReportStatus value
    now: dt.datetime  # BSON date (ms); ``now_us`` is exact
    now_us: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int  # deliveries that got as far as starting
    worker: str | None  # host:pid of the process running it now
    attempt_token: str | None  # the attempt holding it (loop.storage.jobs); None while none does
    heartbeat_at: dt.datetime | None  # that attempt's last sign of life
    lost_attempts: int  # attempts taken back because their worker stopped heartbeating
    retries: int  # retries after MongoDB errors before the current attempt
    rows: int | None
    polls_counted: int | None
    error: str | None
    warnings: list[str]
    timings: dict[str, float]
    file_id: ObjectId | None
    phase: str  # a ReportPhase value; meaningful while Running
    progress: int  # 0-100, with the phase
    data_version: int | None  # the data version at trigger time (None: forced, or made before versions)
    format: str  # a ReportFormat value (absent on reports made before formats: loop)
    max_gap_minutes: int | None  # extended reports only
    shards: int  # a sharded report: how many shards (absent: computed in one task)
    shard_bounds: list[str]  # their store-id bounds, pinned at the split (``loop.sharding``)
    shard_token: str | None  # the attempt that queued the shards: they heartbeat for it; a join may take it over


def create_report(
    db: Database,
    report_id: str,
    now: pd.Timestamp,
    data_version: int | None = None,
    report_format: ReportFormat = ReportFormat.LOOP,
    max_gap_minutes: int | None = None,
) -> ReportDoc:
    now_us = ts_to_us(now)
    doc = ReportDoc(
        report_id=report_id,
        status=ReportStatus.RUNNING.value,
        now=us_to_bson_date(now_us),
        now_us=now_us,
        created_at=utcnow(),
        started_at=None,
        finished_at=None,
        attempts=0,
        worker=None,
        attempt_token=None,
        heartbeat_at=None,
        lost_attempts=0,
        retries=0,
        rows=None,
        polls_counted=None,
        error=None,
        warnings=[],
        timings={},
        file_id=None,
        phase=ReportPhase.QUEUED.value,
        progress=PHASE_PROGRESS[ReportPhase.QUEUED],
        data_version=data_version,
        format=report_format.value,
        max_gap_minutes=max_gap_minutes if report_format == ReportFormat.EXTENDED else None,
    )
    # _id is the report id: lookups by _id are the one query FerretDB serves from an index.
    db[REPORTS].insert_one({"_id": report_id, **doc})
    return doc


def get_report(db: Database, report_id: str) -> ReportDoc | None:
    # Callers validate report_id as a plain string before it gets here; the
    # isinstance check keeps operator documents out even if one slips through.
    if not isinstance(report_id, str):
        raise TypeError("report_id must be a string")
    return db[REPORTS].find_one({"_id": report_id}, {"_id": 0})


def report_now(doc: ReportDoc) -> pd.Timestamp:
    return us_to_ts(int(doc["now_us"]))


def report_format(doc: ReportDoc | dict[str, Any]) -> ReportFormat:
    """The report's format; reports stored before formats existed are Loop reports."""
    return ReportFormat(doc.get("format") or ReportFormat.LOOP)


def mark_report_started(
    db: Database,
    report_id: str,
    *,
    worker: str,
    retries: int,
    token: str,
    live_since: dt.datetime,
    replaceable: Sequence[str] = (),
) -> ReportDoc | None:
    """Start attempt ``token`` (a compare-and-set: ``loop.storage.jobs.start_attempt``); None when the report
    is no longer Running or another attempt holds it with a heartbeat newer than ``live_since``."""
    fields = {"worker": worker, "retries": retries}
    doc = start_attempt(
        db[REPORTS], report_id, token=token, replaceable=replaceable, live_since=live_since, fields=fields
    )
    return cast(ReportDoc | None, doc)


def beat_report(db: Database, report_id: str, token: str) -> bool:
    """The heartbeat of attempt ``token``; False once the report is not its to run any more, or once its
    split handed it to its shards (``release_report_to_shards``: they beat for it from then on)."""
    result = db[REPORTS].update_one(
        {"_id": report_id, "status": ReportStatus.RUNNING.value, "attempt_token": token, "heartbeat_at": {"$ne": None}},
        {"$set": {"heartbeat_at": utcnow()}},
    )
    return result.matched_count == 1


def beat_report_shards(db: Database, report_id: str, token: str) -> bool:
    """A running shard's heartbeat on its report, for the split attempt ``token`` that queued it; False once
    the report is finished or was taken back from that attempt (its lost shards are queued again)."""
    return beat(db[REPORTS], report_id, token)


def raise_report_progress(db: Database, report_id: str, progress: int) -> None:
    """Move a Running report's progress up to ``progress`` (never down: shards finish in any order)."""
    db[REPORTS].update_one(
        {"_id": report_id, "status": ReportStatus.RUNNING.value}, {"$max": {"progress": int(progress)}}
    )


def silent_reports(db: Database, *, heartbeat_before: dt.datetime) -> list[ReportDoc]:
    """Running reports whose last heartbeat is older than ``heartbeat_before``."""
    return cast(list[ReportDoc], silent_jobs(db[REPORTS], heartbeat_before=heartbeat_before))


def requeue_lost_report(db: Database, report_id: str, *, token: str | None, heartbeat_before: dt.datetime) -> bool:
    """Take the report back from lost attempt ``token`` so that a new delivery may start it (phase worker lost)."""
    fields = {"progress": PHASE_PROGRESS[ReportPhase.WORKER_LOST]}
    return settle_lost(db[REPORTS], report_id, token=token, heartbeat_before=heartbeat_before, fields=fields)


def fail_lost_report(
    db: Database, report_id: str, *, token: str | None, heartbeat_before: dt.datetime, error: str
) -> bool:
    """Mark the report Failed from lost attempt ``token`` (its last allowed one)."""
    fields = {"error": error[:500], "finished_at": utcnow(), "status": ReportStatus.FAILED.value}
    return settle_lost(db[REPORTS], report_id, token=token, heartbeat_before=heartbeat_before, fields=fields)


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
        {"_id": report_id, "status": ReportStatus.RUNNING},
        {
            # The status last: mongomock (make run, unit tests) applies $set field by field, and a reader
            # in another thread that sees Complete must see its file.
            "$set": {
                "file_id": file_id,
                "rows": rows,
                "polls_counted": polls_counted,
                "warnings": warnings,
                "timings": timings,
                "finished_at": utcnow(),
                "error": None,
                "status": ReportStatus.COMPLETE,
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
        {"_id": report_id, "status": ReportStatus.RUNNING},
        {"$set": {"error": error[:500], "finished_at": utcnow(), "status": ReportStatus.FAILED}},  # status last
    )
    return result.matched_count == 1


def read_report_csv(db: Database, doc: ReportDoc | dict[str, Any]) -> str:
    """The CSV of a Complete report."""
    file_id = doc["file_id"]
    if file_id is None:  # only a Complete report has one
        raise FileNotFoundError(f"report {doc.get('report_id')} has no CSV file")
    return read_text_file(db, file_id)


def set_report_phase(db: Database, report_id: str, phase: ReportPhase) -> bool:
    """Record the worker's phase (and its progress); only a Running report moves, so a late call is a no-op."""
    result = db[REPORTS].update_one(
        {"_id": report_id, "status": ReportStatus.RUNNING},
        {"$set": {"phase": phase.value, "progress": PHASE_PROGRESS[phase]}},
    )
    return result.matched_count == 1


def list_reports(db: Database, *, status: ReportStatus | None, skip: int, limit: int) -> tuple[int, list[ReportDoc]]:
    """(how many match, one page of them newest first) with only ``SUMMARY_FIELDS``: no CSV is read."""
    query: dict[str, Any] = {} if status is None else {"status": status.value}
    total = db[REPORTS].count_documents(query)
    cursor = (
        db[REPORTS]
        .find(query, {"_id": 0, **dict.fromkeys(SUMMARY_FIELDS, 1)})
        .sort([("created_at", -1), ("_id", -1)])
        .skip(skip)
        .limit(limit)
    )
    return total, list(cursor)


def delete_finished_report(db: Database, report_id: str) -> bool:
    """Remove a Complete or Failed report and then its CSV; False when there is no such finished report.

    The status condition is in the delete itself, so a Running report is never removed.
    """
    doc = db[REPORTS].find_one_and_delete({"_id": report_id, "status": {"$ne": ReportStatus.RUNNING.value}})
    if doc is None:
        return False
    if doc.get("file_id") is not None:
        delete_file(db, doc["file_id"])
    if doc.get("shards"):
        delete_shard_results(db, report_id, int(doc["shards"]))
    return True


def delete_finished_reports_before(db: Database, before: dt.datetime) -> int:
    """Remove Complete and Failed reports created before ``before`` with their CSVs, and older claims.

    Each goes through ``delete_finished_report`` (conditional on the status), so a Running one is never
    removed; a claim older than ``before`` names a report that is gone or about to be.
    """
    old = db[REPORTS].find({"created_at": {"$lt": before}, "status": {"$ne": ReportStatus.RUNNING.value}}, {"_id": 1})
    removed = sum(delete_finished_report(db, doc["_id"]) for doc in list(old))
    db[REPORT_CLAIMS].delete_many({"claimed_at": {"$lt": before}})
    return removed


# --- reuse: one canonical report per (now, data version) ---------------------------------


def _claim_key(now_us: int, data_version: int, variant: str) -> str:
    # Loop reports keep the key they had before formats existed; other variants append theirs.
    return f"{now_us}:{data_version}" + (f":{variant}" if variant else "")


def canonical_report_id(db: Database, now_us: int, data_version: int, variant: str = "") -> str | None:
    """The report that answers triggers at (``now_us``, ``data_version``, ``variant``), if one was claimed.

    ``variant`` tells report kinds apart (format and its options; "" for the Loop report), so a trigger
    of one kind never reuses a report of another.
    """
    doc = db[REPORT_CLAIMS].find_one({"_id": _claim_key(now_us, data_version, variant)})
    return None if doc is None else str(doc["report_id"])


def claim_canonical_report(
    db: Database, now_us: int, data_version: int, report_id: str, replacing: str | None, variant: str = ""
) -> bool:
    """Make ``report_id`` the canonical report of the pair; False when another trigger got there first.

    ``replacing`` None: only if there is none yet (the unique ``_id`` lets exactly one insert win).
    Otherwise only if the claim still names ``replacing`` (a compare-and-set on one document).
    """
    key = _claim_key(now_us, data_version, variant)
    if replacing is None:
        try:
            db[REPORT_CLAIMS].insert_one({"_id": key, "report_id": report_id, "claimed_at": utcnow()})
        except DuplicateKeyError:
            return False
        return True
    result = db[REPORT_CLAIMS].update_one(
        {"_id": key, "report_id": replacing}, {"$set": {"report_id": report_id, "claimed_at": utcnow()}}
    )
    return result.matched_count == 1


def discard_unqueued_report(db: Database, report_id: str) -> None:
    """Remove a report that lost its claim before it was ever queued (no worker or file knows of it)."""
    db[REPORTS].delete_one({"_id": report_id, "status": ReportStatus.RUNNING, "attempts": 0})


# --- sharded reports (loop.sharding) -------------------------------------------------------


def shard_progress(done: int, shards: int) -> int:
    """Percent done of a report whose ``done`` of ``shards`` shards are finished (phase shards)."""
    start, end = PHASE_PROGRESS[ReportPhase.SHARDS], PHASE_PROGRESS[ReportPhase.JOINING]
    return start + (end - start) * done // max(1, shards)


def pin_report_shards(db: Database, report_id: str, *, shards: int, bounds: list[str], token: str) -> ReportDoc | None:
    """Split attempt ``token`` of a Running report: pin its shards and their bounds unless pinned already
    (a redelivery keeps the first split's), and name ``token`` the shards' attempt (``shard_token``), in
    phase shards. The document after it; None when the report is no longer this attempt's to run."""
    collection = db[REPORTS]
    holder = {"_id": report_id, "status": ReportStatus.RUNNING.value, "attempt_token": token}
    collection.update_one(
        {**holder, "shards": {"$exists": False}}, {"$set": {"shards": shards, "shard_bounds": bounds}}
    )
    result = collection.update_one(
        holder,
        {
            "$set": {
                "shard_token": token,
                "phase": ReportPhase.SHARDS.value,
                "progress": PHASE_PROGRESS[ReportPhase.SHARDS],
            }
        },
    )
    if result.matched_count == 0:
        return None
    return get_report(db, report_id)


def release_report_to_shards(db: Database, report_id: str, token: str) -> bool:
    """Once the shards are queued the split attempt ends: no heartbeat until a shard beats for it (a queued
    shard, like a queued report, is not lost); the attempt stays the holder, so a second split waits."""
    result = db[REPORTS].update_one(
        {"_id": report_id, "status": ReportStatus.RUNNING.value, "attempt_token": token},
        {"$set": {"heartbeat_at": None}},
    )
    return result.matched_count == 1


def _shard_key(report_id: str, shard: int) -> str:
    return f"{report_id}:{shard}"


def record_shard_result(
    db: Database,
    report_id: str,
    shard: int,
    csv_text: str,
    *,
    rows: int,
    polls_counted: int,
    warnings: list[str],
    timings: dict[str, float],
    worker: str,
) -> bool:
    """Store a finished shard: its CSV part in GridFS, then its document (a unique ``_id`` insert, the one
    write FerretDB makes atomic). False when that shard was stored already (a duplicate delivery): this
    part is removed again and the first one stands."""
    file_id = put_file(
        db, f"report-{report_id}-shard-{shard}.csv", csv_text.encode("utf-8"), {"report_id": report_id, "shard": shard}
    )
    try:
        db[REPORT_SHARDS].insert_one(
            {
                "_id": _shard_key(report_id, shard),
                "report_id": report_id,
                "shard": shard,
                "file_id": file_id,
                "rows": rows,
                "polls_counted": polls_counted,
                "warnings": warnings,
                "timings": timings,
                "worker": worker,
                "done_at": utcnow(),
            }
        )
    except DuplicateKeyError:
        delete_file(db, file_id)
        return False
    return True


def shard_results(db: Database, report_id: str, shards: int) -> dict[int, dict[str, Any]]:
    """The finished shards of a report, by shard number (one query over the few unjoined shards)."""
    keys = [_shard_key(report_id, shard) for shard in range(shards)]
    return {int(doc["shard"]): doc for doc in db[REPORT_SHARDS].find({"_id": {"$in": keys}})}


def shard_done(db: Database, report_id: str, shard: int) -> bool:
    return db[REPORT_SHARDS].find_one({"_id": _shard_key(report_id, shard)}, {"_id": 1}) is not None


def read_shard_csv(db: Database, result: dict[str, Any]) -> str:
    """A finished shard's CSV part (never cached: it is read once, by the join)."""
    return get_file(db, result["file_id"]).decode("utf-8")


def delete_shard_results(db: Database, report_id: str, shards: int) -> None:
    """Remove a report's shard parts: the recorded ones, and any a shard killed between writing its part and
    recording it left behind (found by the files' metadata)."""
    keys = [_shard_key(report_id, shard) for shard in range(shards)]
    for doc in list(db[REPORT_SHARDS].find({"_id": {"$in": keys}}, {"file_id": 1})):
        delete_file(db, doc["file_id"])
    db[REPORT_SHARDS].delete_many({"_id": {"$in": keys}})
    files = db[f"{REPORT_BUCKET}.files"]
    for doc in list(files.find({"metadata.report_id": report_id, "metadata.shard": {"$exists": True}}, {"_id": 1})):
        delete_file(db, doc["_id"])
