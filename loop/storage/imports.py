"""Imports of POST /imports/ (``import_table``): one document per upload, and its state machine.

An import is created Running only once its files are wholly stored (``import_files``,
``loop.storage.files``), and moves once, to Complete (with the loader's summary) or to
Failed (with the reason). Every transition is conditional on ``status: Running``, as
for reports (``loop.storage.reports``), so a redelivered task cannot finish it twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypedDict, cast

from bson import ObjectId
from pymongo.database import Database

from loop.storage.files import delete_file
from loop.storage.jobs import WORKER_LOST, beat, settle_lost, silent_jobs, start_attempt
from loop.storage.schema import IMPORT_BUCKET, IMPORT_UPLOADS, IMPORTS
from loop.timeutil import utcnow


class ImportStatus(StrEnum):
    RUNNING = "Running"
    COMPLETE = "Complete"
    FAILED = "Failed"


class ImportPhase(StrEnum):
    """Where an import is: the worker moves it forward; a finished import keeps the phase it ended in."""

    QUEUED = "queued"
    UNPACKING = "unpacking"  # copying the upload out of GridFS, checking and expanding a zip
    LOADING = "loading"  # the loader (hours, zones, then the polls chunk by chunk)
    DONE = "done"
    WORKER_LOST = WORKER_LOST  # its worker stopped heartbeating: queued again (or Failed)


# What the import list shows: what GET /imports/<id>/ shows (the summary is small: at most 20 problems).
SUMMARY_FIELDS = (
    "import_id",
    "status",
    "phase",
    "created_at",
    "updated_at",
    "finished_at",
    "files",
    "progress",
    "summary",
    "error",
    # Not shown, but the list applies the lost rule (loop.services.jobs) to Running imports.
    "heartbeat_at",
    "attempt_token",
    "lost_attempts",
    "worker",
)


class ImportFile(TypedDict):
    field: str  # the form field it came in (loop.services.imports.UPLOAD_FIELDS or ARCHIVE_FIELD)
    name: str  # the client's file name
    bytes: int
    file_id: ObjectId  # in the import_files bucket


class ImportDoc(TypedDict):
    """An ``import_table`` document as the service reads it (``_id`` is the import id)."""

    import_id: str
    status: str  # an ImportStatus value
    phase: str  # an ImportPhase value
    created_at: dt.datetime
    updated_at: dt.datetime  # the last sign of life (creation, start, phase, progress): the stale rule
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int
    worker: str | None
    attempt_token: str | None  # the attempt holding it (loop.storage.jobs); None while none does
    heartbeat_at: dt.datetime | None  # that attempt's last sign of life (not progress: see updated_at)
    lost_attempts: int  # attempts taken back because their worker stopped heartbeating
    retries: int
    files: list[ImportFile]
    progress: dict[str, Any]  # {"rows": int, "file": str | None}
    summary: dict[str, Any] | None
    error: str | None
    timings: dict[str, float]  # unpack_s, load_s, total_s of the attempt that completed it


def create_import(db: Database, import_id: str, files: list[ImportFile]) -> ImportDoc:
    now = utcnow()
    doc = ImportDoc(
        import_id=import_id,
        status=ImportStatus.RUNNING.value,
        phase=ImportPhase.QUEUED.value,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
        attempts=0,
        worker=None,
        attempt_token=None,
        heartbeat_at=None,
        lost_attempts=0,
        retries=0,
        files=files,
        progress={"rows": 0, "file": None},
        summary=None,
        error=None,
        timings={},
    )
    db[IMPORTS].insert_one({"_id": import_id, **doc})
    return doc


def get_import(db: Database, import_id: str) -> ImportDoc | None:
    if not isinstance(import_id, str):  # callers check the shape; this keeps operator documents out
        raise TypeError("import_id must be a string")
    return db[IMPORTS].find_one({"_id": import_id}, {"_id": 0})


def mark_import_started(
    db: Database,
    import_id: str,
    *,
    worker: str,
    retries: int,
    token: str,
    live_since: dt.datetime,
    replaceable: Sequence[str] = (),
) -> ImportDoc | None:
    """Start attempt ``token`` from the beginning (a compare-and-set: ``loop.storage.jobs.start_attempt``);
    None when the import is no longer Running or another attempt holds it with a heartbeat newer than
    ``live_since``."""
    fields = {
        "updated_at": utcnow(),
        "worker": worker,
        "retries": retries,
        "phase": ImportPhase.UNPACKING.value,
        "progress": {"rows": 0, "file": None},
    }
    doc = start_attempt(
        db[IMPORTS], import_id, token=token, replaceable=replaceable, live_since=live_since, fields=fields
    )
    return cast(ImportDoc | None, doc)


def beat_import(db: Database, import_id: str, token: str) -> bool:
    """The heartbeat of attempt ``token`` (not progress: ``updated_at`` stays); False once it is not its."""
    return beat(db[IMPORTS], import_id, token)


def silent_imports(db: Database, *, heartbeat_before: dt.datetime) -> list[ImportDoc]:
    """Running imports whose last heartbeat is older than ``heartbeat_before``."""
    return cast(list[ImportDoc], silent_jobs(db[IMPORTS], heartbeat_before=heartbeat_before))


def requeue_lost_import(db: Database, import_id: str, *, token: str | None, heartbeat_before: dt.datetime) -> bool:
    """Take the import back from lost attempt ``token`` so that a new delivery may start it (phase worker lost);
    its stale clock (``updated_at``) starts again."""
    fields = {"updated_at": utcnow()}
    return settle_lost(db[IMPORTS], import_id, token=token, heartbeat_before=heartbeat_before, fields=fields)


def fail_lost_import(
    db: Database, import_id: str, *, token: str | None, heartbeat_before: dt.datetime, error: str
) -> bool:
    """Mark the import Failed from lost attempt ``token`` (its last allowed one); its files stay for the caller."""
    now = utcnow()
    fields = {"error": error[:500], "finished_at": now, "updated_at": now, "status": ImportStatus.FAILED.value}
    return settle_lost(db[IMPORTS], import_id, token=token, heartbeat_before=heartbeat_before, fields=fields)


def set_import_phase(db: Database, import_id: str, phase: ImportPhase) -> bool:
    result = db[IMPORTS].update_one(
        {"_id": import_id, "status": ImportStatus.RUNNING},
        {"$set": {"phase": phase.value, "updated_at": utcnow()}},
    )
    return result.matched_count == 1


def set_import_progress(db: Database, import_id: str, *, rows: int, file: str | None) -> bool:
    """Rows read so far (and the file being read); only a Running import moves."""
    result = db[IMPORTS].update_one(
        {"_id": import_id, "status": ImportStatus.RUNNING},
        {"$set": {"progress": {"rows": int(rows), "file": file}, "updated_at": utcnow()}},
    )
    return result.matched_count == 1


def complete_import(
    db: Database, import_id: str, *, summary: dict[str, Any], rows: int, timings: dict[str, float] | None = None
) -> bool:
    """Mark a Running import Complete; ``timings`` (unpack, load, total s: for ops and the benchmark) stay
    in the document only."""
    now = utcnow()
    result = db[IMPORTS].update_one(
        {"_id": import_id, "status": ImportStatus.RUNNING},
        {
            # The status last (loop.storage.reports.complete_report says why).
            "$set": {
                "phase": ImportPhase.DONE.value,
                "summary": summary,
                "timings": timings or {},
                "progress": {"rows": int(rows), "file": None},
                "finished_at": now,
                "updated_at": now,
                "error": None,
                "status": ImportStatus.COMPLETE,
            }
        },
    )
    return result.matched_count == 1


def fail_import(db: Database, import_id: str, error: str) -> bool:
    """Mark a Running import Failed with a short reason (the phase it failed in stays)."""
    now = utcnow()
    result = db[IMPORTS].update_one(
        {"_id": import_id, "status": ImportStatus.RUNNING},
        {"$set": {"error": error[:500], "finished_at": now, "updated_at": now, "status": ImportStatus.FAILED}},
    )
    return result.matched_count == 1


def list_imports(
    db: Database, *, status: ImportStatus | None, skip: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, one page of them newest first) with only ``SUMMARY_FIELDS``."""
    query: dict[str, Any] = {} if status is None else {"status": status.value}
    total = db[IMPORTS].count_documents(query)
    cursor = (
        db[IMPORTS]
        .find(query, {"_id": 0, **dict.fromkeys(SUMMARY_FIELDS, 1)})
        .sort([("created_at", -1), ("_id", -1)])
        .skip(skip)
        .limit(limit)
    )
    return total, list(cursor)


def delete_import_files(db: Database, files: list[ImportFile] | list[dict[str, Any]]) -> None:
    """Remove an import's uploaded files (once it has ended; removing one already gone is a no-op)."""
    for item in files:
        delete_uploaded_file(db, item["file_id"])


def delete_uploaded_file(db: Database, file_id: ObjectId) -> None:
    """Remove one uploaded file (and its in-progress note, if any)."""
    delete_file(db, file_id, IMPORT_BUCKET)
    db[IMPORT_UPLOADS].delete_one({"_id": file_id})


# --- uploads in progress: what a dead web process leaves behind ------------------------------


def note_upload_started(db: Database, file_id: ObjectId) -> None:
    """Written before the first chunk of an upload: until an import owns the file, it may be abandoned."""
    db[IMPORT_UPLOADS].insert_one({"_id": file_id, "started_at": utcnow()})


def adopt_uploads(db: Database, file_ids: list[ObjectId]) -> None:
    """The import document now names these files: they are no longer abandoned if the request dies."""
    for file_id in file_ids:
        db[IMPORT_UPLOADS].delete_one({"_id": file_id})


def remove_abandoned_uploads(db: Database, before: dt.datetime) -> int:
    """Remove the chunks (and files document) of uploads started before ``before`` that no import owns.

    A web process killed mid-upload (gunicorn's worker timeout, OOM) never runs its own clean-up.
    The notes collection is small (uploads in flight), so this reads little.
    """
    stale = [doc["_id"] for doc in db[IMPORT_UPLOADS].find({"started_at": {"$lt": before}}, {"_id": 1})]
    for file_id in stale:
        delete_uploaded_file(db, file_id)
    return len(stale)
