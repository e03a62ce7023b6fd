"""Import use cases (POST /imports/, GET /imports/...): start an uploaded load, read it, run it.

The upload is already in GridFS when ``start_import`` runs (``loop.api.uploads``); the worker
(``run_import``, through ``loop.retry`` on Celery or the embedded pool) copies it to a temporary
folder, expands a zip safely (``loop.ingest.archives``) and runs the one loader of ``load_data``
(``loop.ingest.loader.load_found_sources``), recording rows read so far. The uploaded files are
removed from GridFS once the import has ended (Complete or Failed); a Failed import is repaired
by uploading the same files again (the loader is idempotent).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
from django.conf import settings
from pymongo.database import Database

from loop import metrics, queue, storage
from loop.errors import Conflict, InvalidInput, NotFound, Unavailable, is_transient, short_error
from loop.ids import ID_SHAPE, is_id, new_id
from loop.ingest.archives import ArchiveRefused, unpack_sources
from loop.ingest.loader import LoadStats, load_found_sources
from loop.services import history
from loop.services.alerts import request_evaluation
from loop.services.jobs import (
    JobStore,
    is_stale,
    recover_if_lost,
    recover_lost,
    run_attempt,
)
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.sources.locate import SOURCE_NAMES, CsvSource
from loop.sources.problems import InputFileError
from loop.storage import ImportDoc, ImportFile, ImportPhase, ImportStatus
from loop.storage.legacy import LegacyLayoutError, has_legacy_polls
from loop.timeutil import to_utc_or_none, utcnow

logger = logging.getLogger(__name__)

IMPORT_ID_HELP = f"{ID_SHAPE} (as returned by POST /imports/)."
# POST /imports/: each file field and the kind it carries (the one list of them); or one
# ARCHIVE_FIELD holding a Loop .zip. The upload is stored under the kind's first name.
UPLOAD_FIELDS = {
    "store_status": "status",
    "business_hours": "hours",
    "timezones": "zones",
    "special_hours": "special",
    "stores": "stores",
}
ARCHIVE_FIELD = "archive"
# How many rejected rows an import's summary lists (with file, line and reason).
SUMMARY_PROBLEMS = 20
FILES_HELP = f"send a Loop .zip as {ARCHIVE_FIELD!r}, or at least one of {', '.join(UPLOAD_FIELDS)} as CSV files"


def import_url(import_id: str) -> str:
    return f"/imports/{import_id}/"


@dataclass(frozen=True)
class ImportStarted:
    import_id: str
    status: ImportStatus
    url: str


@dataclass(frozen=True)
class ImportView:
    """An import as clients see it (GET /imports/<id>/ and each item of GET /imports/)."""

    import_id: str
    status: ImportStatus
    phase: str
    created_at: pd.Timestamp | None
    finished_at: pd.Timestamp | None
    files: list[dict[str, Any]]  # [{"name", "bytes"}]
    progress: dict[str, Any]  # {"rows", "file"}
    summary: dict[str, Any] | None
    error: str | None


# --- starting ------------------------------------------------------------------------------


def start_import(*, files: list[ImportFile]) -> ImportStarted:
    """Queue the load of files already stored in ``import_files``; refused files are removed again.

    Either one archive (a Loop .zip) or any of the CSV fields of ``UPLOAD_FIELDS``, none empty.
    A broker that cannot take the task answers Unavailable and leaves the import Failed, its files gone.
    """
    db = storage.get_db()
    try:
        _check_files(files)
        if has_legacy_polls(db):
            raise Conflict(str(LegacyLayoutError()))
    except Exception:
        storage.delete_import_files(db, files)
        raise
    doc = storage.create_import(db, new_id(), files)
    import_id = doc["import_id"]
    storage.adopt_uploads(db, [item["file_id"] for item in files])
    try:
        queue.enqueue_import(import_id)
    except Exception as exc:
        # Nothing will ever run it: fail it now rather than leave it Running, and drop its files.
        storage.fail_import(db, import_id, "could not queue the import: the task broker is unavailable")
        storage.delete_import_files(db, files)
        raise Unavailable("The task broker is unavailable; the import was not started.") from exc
    return ImportStarted(import_id=import_id, status=ImportStatus.RUNNING, url=import_url(import_id))


def _check_files(files: list[ImportFile]) -> None:
    fields = [item["field"] for item in files]
    if not fields:
        raise InvalidInput("files", f"no file: {FILES_HELP}")
    if ARCHIVE_FIELD in fields and len(fields) > 1:
        raise InvalidInput("files", f"{ARCHIVE_FIELD!r} comes alone: {FILES_HELP}")
    for item in files:
        if item["bytes"] == 0:
            raise InvalidInput(item["field"], f"the file {item['name']!r} is empty")


# --- reading -------------------------------------------------------------------------------


def get_import(*, import_id: str) -> ImportView:
    """The import after the lost and stale rules (``settle_import``)."""
    if not is_id(import_id):  # only a plain string of our shape reaches a query
        raise InvalidInput("import_id", f"must be {IMPORT_ID_HELP}")
    db = storage.get_db()
    doc = storage.get_import(db, import_id)
    if doc is None:
        raise NotFound(f"No import with id {import_id}.")
    return _view(settle_import(db=db, doc=doc))


def list_imports(
    *, status: ImportStatus | None = None, page: int = 1, page_size: int = PAGE_SIZE_DEFAULT
) -> Page[ImportView]:
    """One page of the imports, newest first, with the lost and stale rules applied to Running ones."""
    skip = page_skip(page=page, page_size=page_size)
    db = storage.get_db()
    count, docs = storage.list_imports(db, status=status, skip=skip, limit=page_size)
    results = [_view(settle_import(db=db, doc=doc)) for doc in docs]
    if status is not None:
        results = [item for item in results if item.status == status]
    return Page(count=count, page=page, page_size=page_size, results=results)


def settle_import(*, db: Database, doc: ImportDoc | dict[str, Any]) -> dict[str, Any]:
    """What every read applies to a Running import: the lost rule, then the stale rule (the last resort)."""
    return fail_import_if_stale(db=db, doc=recover_import_if_lost(db=db, doc=doc))


def recover_import_if_lost(*, db: Database, doc: ImportDoc | dict[str, Any]) -> dict[str, Any]:
    """``jobs.recover_if_lost`` for an import: queued again (the loader is idempotent), or Failed with its
    files removed after JOB_LOST_RETRIES losses."""
    return dict(recover_if_lost(IMPORT_JOBS, db=db, doc=cast(ImportDoc, doc)))


def recover_lost_imports() -> int:
    """Beat (every 30 s): ``recover_import_if_lost`` on every lost import, polled or not; how many."""
    return recover_lost(IMPORT_JOBS, db=storage.get_db())


def fail_import_if_stale(*, db: Database, doc: ImportDoc | dict[str, Any]) -> dict[str, Any]:
    """The import's stale rule: Running with no sign of life (``updated_at``) for IMPORT_STALE_SECONDS is Failed."""
    max_age_s = settings.IMPORT_STALE_SECONDS
    if not is_stale(doc, since_field="updated_at", max_age_s=max_age_s):
        return dict(doc)
    message = f"stale: no progress for {max_age_s} s (worker lost or queue stuck)"
    failed_now = storage.fail_import(db, doc["import_id"], message)
    current = storage.get_import(db, doc["import_id"])
    if failed_now and current is not None:
        storage.delete_import_files(db, current["files"])
    return dict(current or doc)


def _view(doc: dict[str, Any]) -> ImportView:
    progress = doc.get("progress") or {}
    return ImportView(
        import_id=doc["import_id"],
        status=ImportStatus(doc["status"]),
        phase=str(doc.get("phase") or ImportPhase.QUEUED),
        created_at=to_utc_or_none(doc.get("created_at")),
        finished_at=to_utc_or_none(doc.get("finished_at")),
        files=[{"name": item["name"], "bytes": int(item["bytes"])} for item in doc.get("files") or []],
        progress={"rows": int(progress.get("rows") or 0), "file": progress.get("file")},
        summary=doc.get("summary"),
        error=doc.get("error"),
    )


# --- running (the worker) ------------------------------------------------------------------


def run_import(*, import_id: str, retries: int = 0, db: Database | None = None, token: str | None = None) -> str:
    """Load one import from the beginning; returns "complete", "failed", "missing"/"not-running", or "busy"
    (another attempt holds it and its worker still heartbeats: a late redelivery does nothing).

    Unusable input (not a zip, no usable member, a zip bomb, a file without its header) fails it
    with the reason. Transient MongoDB errors are raised so the runner retries (``loop.retry``):
    the loader is idempotent, so a retry repairs whatever the failed attempt left half-done.
    ``token`` is the attempt's (a retry passes its first attempt's).
    """
    db = db if db is not None else storage.get_db()
    return run_attempt(
        IMPORT_JOBS, db=db, job_id=import_id, retries=retries, token=token, work=lambda doc: _load(db, doc)
    )


def _delete_files(db: Database, doc: ImportDoc) -> None:
    storage.delete_import_files(db, doc["files"])


IMPORT_JOBS = JobStore[ImportDoc](
    kind="import",
    id_field="import_id",
    get=storage.get_import,
    mark_started=storage.mark_import_started,
    beat=storage.beat_import,
    silent=storage.silent_imports,
    requeue_lost=storage.requeue_lost_import,
    fail_lost=storage.fail_lost_import,
    enqueue=lambda import_id: queue.enqueue_import(import_id),  # looked up at call time (tests replace it)
    on_failed=_delete_files,
)


def _load(db: Database, doc: ImportDoc) -> str:
    import_id = doc["import_id"]
    workdir = Path(tempfile.mkdtemp(prefix=f"import-{import_id[:8]}-", dir=settings.IMPORT_TMP_DIR or None))
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        found = _unpack(db, doc, workdir)
        timings["unpack_s"] = round(time.perf_counter() - clock, 3)
        storage.set_import_phase(db, import_id, ImportPhase.LOADING)

        def on_rows(name: str, rows: int) -> None:
            storage.set_import_progress(db, import_id, rows=rows, file=name)

        stats = load_found_sources(found, db, on_rows=on_rows)
    except (ArchiveRefused, InputFileError) as exc:
        metrics.import_finished(status="failed", seconds=time.perf_counter() - clock)
        return _finish_failed(db, doc, str(exc))
    except Exception as exc:
        if is_transient(exc):
            raise
        logger.exception("import %s failed", import_id)
        metrics.import_finished(status="failed", seconds=time.perf_counter() - clock)
        return _finish_failed(db, doc, short_error(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    timings["load_s"] = round(stats.seconds, 3)
    timings["total_s"] = round(time.perf_counter() - clock, 3)
    summary = import_summary(stats)
    storage.complete_import(db, import_id, summary=summary, rows=stats.status_rows_read, timings=timings)
    storage.delete_import_files(db, doc["files"])
    metrics.import_finished(status="complete", seconds=time.perf_counter() - clock)
    request_evaluation()
    history.build_after_load(db, tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us)
    logger.info("import %s complete: %s", import_id, "; ".join(summary["lines"][:3]))
    return "complete"


def fail_import(*, import_id: str, message: str) -> None:
    """Mark a Running import Failed and drop its files (raises when MongoDB cannot be reached)."""
    db = storage.get_db()
    doc = storage.get_import(db, import_id)
    if doc is not None and storage.fail_import(db, import_id, message):
        storage.delete_import_files(db, doc["files"])


def _finish_failed(db: Database, doc: ImportDoc, message: str) -> str:
    storage.fail_import(db, doc["import_id"], message)
    storage.delete_import_files(db, doc["files"])
    return "failed"


def _unpack(db: Database, doc: ImportDoc, workdir: Path) -> dict[str, CsvSource]:
    """Copy the upload out of GridFS (all its files in one pass) and name the sources after what the client sent."""
    targets = {
        item["file_id"]: workdir / ("upload.zip" if item["field"] == ARCHIVE_FIELD else _target_name(item["field"]))
        for item in doc["files"]
    }
    outputs = {file_id: open(path, "wb") for file_id, path in targets.items()}  # noqa: SIM115 - closed below
    try:
        for file_id, data in storage.iter_files_chunks(db, list(targets), storage.IMPORT_BUCKET):
            outputs[file_id].write(data)
    finally:
        for out in outputs.values():
            out.close()
    found: dict[str, CsvSource] = {}
    for item in doc["files"]:
        path = targets[item["file_id"]]
        if item["field"] == ARCHIVE_FIELD:
            expanded = unpack_sources(
                path,
                workdir,
                max_expanded_bytes=settings.IMPORT_MAX_EXPANDED_BYTES,
                max_ratio=settings.IMPORT_MAX_COMPRESSION_RATIO,
                display_name=item["name"],
            )
            path.unlink()
            for kind, (member_path, name) in expanded.items():
                found[kind] = _source(member_path, name)
        else:
            found[UPLOAD_FIELDS[item["field"]]] = _source(path, item["name"])
    return found


def _target_name(field: str) -> str:
    return SOURCE_NAMES[UPLOAD_FIELDS[field]][0]


def _source(path: Path, name: str) -> CsvSource:
    return CsvSource(name, lambda: open(path, "rb"))


def import_summary(stats: LoadStats) -> dict[str, Any]:
    """What ``load_data`` prints, as its lines and as fields, with the first rejected rows."""
    problems = [
        {"file": example.file, "line": example.line, "reason": example.reason}
        for rows in stats.problems.values()
        for example in rows.examples
    ][:SUMMARY_PROBLEMS]
    return {
        "lines": stats.summary_lines(),
        "status_rows_read": stats.status_rows_read,
        "polls_inserted": stats.polls_inserted,
        "polls_duplicates": stats.polls_duplicates,
        "polls_made_inactive": stats.polls_made_inactive,
        "hours_rows_read": stats.hours_rows_read,
        "hours_rows_loaded": stats.hours_rows_loaded,
        "hours_stores": stats.hours_stores,
        "zones_rows_read": stats.zones_rows_read,
        "zones_rows_loaded": stats.zones_rows_loaded,
        "zones_stores": stats.zones_stores,
        "special_rows_read": stats.special_rows_read,
        "special_rows_loaded": stats.special_rows_loaded,
        "special_stores": stats.special_stores,
        "stores_rows_read": stats.stores_rows_read,
        "stores_profiles_loaded": stats.stores_profiles_loaded,
        "rejected": stats.rejected,
        "seconds": round(stats.seconds, 3),
        "problems": problems,
    }


def remove_abandoned_uploads(*, older_than_s: int | None = None) -> int:
    """Beat (hourly): remove uploads no import owns, started more than ``older_than_s`` ago.

    Default IMPORT_STALE_SECONDS (30 min): far longer than any upload may take (gunicorn's
    worker timeout, 300 s, ends a request before that).
    """
    age = settings.IMPORT_STALE_SECONDS if older_than_s is None else older_than_s
    removed = storage.remove_abandoned_uploads(storage.get_db(), utcnow() - dt.timedelta(seconds=age))
    if removed:
        logger.info("removed %d abandoned upload(s) older than %d s", removed, age)
    return removed
