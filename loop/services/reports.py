"""Report use cases: trigger, read (with the stale rule), compute.

Views, the Celery task, the embedded worker and the management commands call
these; none of them touches report documents or the queue directly.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, replace

import pandas as pd
from django.conf import settings
from pymongo.database import Database

from loop import metrics, queue, storage
from loop.errors import Conflict, InvalidInput, NotFound, Unavailable, is_transient, short_error
from loop.ids import ID_SHAPE, is_id, new_id
from loop.report_engine import report_from_csv, report_to_csv
from loop.rules import DEFAULT_MAX_GAP_MINUTES, gap_problem, merge_warnings, uptime_pct
from loop.services.directory import store_profiles
from loop.services.jobs import (
    JobStore,
    heartbeat,
    is_stale,
    recover_if_lost,
    recover_lost,
    run_attempt,
    worker_name,
)
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.sharding import join_csv, shard_bounds, shard_count, shard_limits
from loop.sources.validate import PROFILE_TEXT_COLUMNS
from loop.storage import ReportDoc, ReportFormat, ReportPhase, ReportStatus
from loop.storage.legacy import LegacyLayoutError, has_legacy_polls
from loop.timeutil import to_utc_or_none, ts_to_us, utcnow
from loop.utils import generate_report

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportView:
    """What a client may see of a report (the API's answer to GET /get_report/<id>/)."""

    report_id: str
    status: ReportStatus
    now: pd.Timestamp
    created_at: pd.Timestamp | None
    finished_at: pd.Timestamp | None = None
    rows: int | None = None
    csv_data: str | None = None
    error: str | None = None
    format: ReportFormat = ReportFormat.LOOP
    max_gap_minutes: int | None = None
    phase: str | None = None  # Running only
    progress: int | None = None  # Running only
    shards: int | None = None  # Running sharded reports only: how many shards ...
    shards_done: int | None = None  # ... and how many of them are done


@dataclass(frozen=True)
class ReportSummary:
    """One report of GET /reports/: no CSV, and progress only while Running."""

    report_id: str
    status: ReportStatus
    now: pd.Timestamp
    created_at: pd.Timestamp | None
    finished_at: pd.Timestamp | None
    rows: int | None
    phase: str | None
    progress: int | None
    format: ReportFormat = ReportFormat.LOOP
    max_gap_minutes: int | None = None


REPORT_ID_HELP = f"{ID_SHAPE} (as returned by POST /trigger_report/)."


@dataclass(frozen=True)
class TriggerResult:
    """The answer to a trigger: the report to poll, and whether it was an existing one."""

    report_id: str
    reused: bool


# How often a trigger re-reads the claim when other triggers keep changing it (each round is a few queries).
CLAIM_ATTEMPTS = 20


def trigger_report(
    *,
    now: pd.Timestamp | None = None,
    force: bool = False,
    report_format: ReportFormat = ReportFormat.LOOP,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
) -> TriggerResult:
    """Pin ``now`` (default: the newest poll; never after it) and answer with a report computing it.

    Without ``force``, a Running or Complete report of the same ``now``, format (and, for the
    extended format, ``max_gap_minutes``) triggered at the same data version (nothing written
    since) is reused; concurrent triggers converge on one report through the claim of
    (now, version, variant) in storage. ``force`` always starts a new one. ``max_gap_minutes``
    is ignored by the Loop format.
    """
    problem = gap_problem(max_gap_minutes)
    if problem is not None:
        raise InvalidInput("max_gap_minutes", problem)
    extended = report_format == ReportFormat.EXTENDED
    gap = max_gap_minutes if extended else None
    variant = f"{report_format.value}:{max_gap_minutes}" if extended else ""
    db = storage.get_db()
    if has_legacy_polls(db):
        raise Conflict(str(LegacyLayoutError()))
    newest, version = storage.data_state(db)
    if newest is None:
        raise Conflict("No polls are loaded yet: run `python manage.py load_data` first.")
    if now is None:
        now = newest
    elif now > newest:
        raise InvalidInput("now", f"{now.isoformat()} lies after the newest poll ({newest.isoformat()})")
    if force:
        doc = storage.create_report(db, new_id(), now, report_format=report_format, max_gap_minutes=gap)
        _enqueue(db, doc["report_id"])
        return TriggerResult(report_id=doc["report_id"], reused=False)
    now_us = ts_to_us(now)
    for _ in range(CLAIM_ATTEMPTS):
        current = storage.canonical_report_id(db, now_us, version, variant)
        if current is not None:
            existing = storage.get_report(db, current)
            if existing is not None:
                existing = settle_report(db=db, report=existing)
                if existing["status"] in (ReportStatus.RUNNING, ReportStatus.COMPLETE):
                    return TriggerResult(report_id=current, reused=True)
        # None yet, or it failed or was deleted: offer a new one. Its document exists before the
        # claim, so whoever reads a claim finds its report.
        doc = storage.create_report(
            db, new_id(), now, data_version=version, report_format=report_format, max_gap_minutes=gap
        )
        if storage.claim_canonical_report(db, now_us, version, doc["report_id"], replacing=current, variant=variant):
            _enqueue(db, doc["report_id"])
            return TriggerResult(report_id=doc["report_id"], reused=False)
        storage.discard_unqueued_report(db, doc["report_id"])  # another trigger won: go round and reuse its report
    raise Unavailable("Too many concurrent triggers for this report; try again.")


def _enqueue(db: Database, report_id: str) -> None:
    try:
        queue.enqueue_report(report_id)
    except Exception as exc:
        # Nothing will ever run it: fail it now rather than leave it Running (a later trigger replaces it).
        storage.fail_report(db, report_id, "could not queue the report: the task broker is unavailable")
        raise Unavailable("The task broker is unavailable; the report was not started.") from exc


def get_report(*, report_id: str) -> ReportDoc:
    """The report after the lost and stale rules (``settle_report``)."""
    if not is_id(report_id):  # only a plain string of our shape reaches a query
        raise InvalidInput("report_id", f"must be {REPORT_ID_HELP}")
    db = storage.get_db()
    doc = storage.get_report(db, report_id)
    if doc is None:
        raise NotFound(f"No report with id {report_id}.")
    return settle_report(db=db, report=doc)


def settle_report(*, db: Database, report: ReportDoc) -> ReportDoc:
    """What every read applies to a Running report: the lost rule, then the stale rule (the last resort)."""
    return fail_report_if_stale(db=db, report=recover_report_if_lost(db=db, report=report))


def recover_report_if_lost(*, db: Database, report: ReportDoc) -> ReportDoc:
    """``jobs.recover_if_lost`` for a report: queued again, or Failed after JOB_LOST_RETRIES losses."""
    return recover_if_lost(REPORT_JOBS, db=db, doc=report)


def recover_lost_reports() -> int:
    """Beat (every 30 s): ``recover_report_if_lost`` on every lost report, polled or not; how many."""
    return recover_lost(REPORT_JOBS, db=storage.get_db())


def fail_report_if_stale(*, db: Database, report: ReportDoc) -> ReportDoc:
    """The report's stale rule: Running for longer than REPORT_STALE_SECONDS since it was created is Failed."""
    max_age_s = settings.REPORT_STALE_SECONDS
    if not is_stale(report, since_field="created_at", max_age_s=max_age_s):
        return report
    message = f"stale: still Running after {max_age_s} s (worker lost or queue stuck)"
    storage.fail_report(db, report["report_id"], message)
    return storage.get_report(db, report["report_id"]) or report


def list_reports(
    *, status: ReportStatus | None = None, page: int = 1, page_size: int = PAGE_SIZE_DEFAULT
) -> Page[ReportSummary]:
    """One page of the reports, newest first (by ``created_at``), with the lost and stale rules applied."""
    skip = page_skip(page=page, page_size=page_size)
    db = storage.get_db()
    count, docs = storage.list_reports(db, status=status, skip=skip, limit=page_size)
    results = [_summary(settle_report(db=db, report=doc)) for doc in docs]
    # A report the stale (or lost) rule just failed no longer matches a Running filter: drop it from that page.
    if status is not None:
        results = [item for item in results if item.status == status]
    return Page(count=count, page=page, page_size=page_size, results=results)


def _summary(doc: ReportDoc) -> ReportSummary:
    status = ReportStatus(doc["status"])
    running = status == ReportStatus.RUNNING
    return ReportSummary(
        report_id=doc["report_id"],
        status=status,
        now=storage.report_now(doc),
        created_at=to_utc_or_none(doc.get("created_at")),
        finished_at=to_utc_or_none(doc.get("finished_at")),
        rows=doc.get("rows") if status == ReportStatus.COMPLETE else None,
        # Reports created before phases existed have none: they read as queued.
        phase=str(doc.get("phase") or ReportPhase.QUEUED) if running else None,
        progress=int(doc.get("progress") or 0) if running else None,
        format=storage.report_format(doc),
        max_gap_minutes=doc.get("max_gap_minutes"),
    )


def delete_report(*, report_id: str) -> None:
    """Remove a finished report and its CSV; a Running one is a Conflict (its worker would still write)."""
    doc = get_report(report_id=report_id)  # shape check, NotFound, and the lost and stale rules
    if doc["status"] == ReportStatus.RUNNING:
        raise Conflict(f"Report {report_id} is still Running; delete it once it is Complete or Failed.")
    if not storage.delete_finished_report(storage.get_db(), report_id):
        raise NotFound(f"No report with id {report_id}.")  # deleted by a concurrent request


def remove_old_reports(*, retention_days: int | None = None) -> int:
    """Retention: remove finished reports (and CSVs) created more than ``retention_days`` ago (0: keep all).

    Never a Running one (a worker may still write it); a lost one goes once a read has applied the stale
    rule to it. Returns how many went.
    """
    days = settings.REPORT_RETENTION_DAYS if retention_days is None else retention_days
    if days <= 0:
        return 0
    removed = storage.delete_finished_reports_before(storage.get_db(), utcnow() - dt.timedelta(days=days))
    logger.info("retention: removed %d report(s) older than %d day(s)", removed, days)
    return removed


def report_view(*, report_id: str) -> ReportView:
    """The report as clients see it: status, pinned ``now``, and the CSV once Complete."""
    doc = get_report(report_id=report_id)
    status = ReportStatus(doc["status"])
    view = ReportView(
        report_id=report_id,
        status=status,
        now=storage.report_now(doc),
        created_at=to_utc_or_none(doc.get("created_at")),
        format=storage.report_format(doc),
        max_gap_minutes=doc.get("max_gap_minutes"),
    )
    finished_at = to_utc_or_none(doc.get("finished_at"))
    if status == ReportStatus.COMPLETE:
        csv_data = storage.read_report_csv(storage.get_db(), doc)
        return replace(view, csv_data=csv_data, rows=doc.get("rows"), finished_at=finished_at)
    if status == ReportStatus.FAILED:
        return replace(view, error=doc.get("error") or "unknown error", finished_at=finished_at)
    view = replace(view, phase=str(doc.get("phase") or ReportPhase.QUEUED), progress=int(doc.get("progress") or 0))
    shards = int(doc.get("shards") or 0)
    if not shards:
        return view
    done = len(storage.shard_results(storage.get_db(), report_id, shards))
    progress = view.progress or 0
    if view.phase == ReportPhase.SHARDS:
        progress = max(progress, storage.shard_progress(done, shards))
    return replace(view, shards=shards, shards_done=done, progress=progress)


def report_csv(*, report_id: str) -> str:
    """The CSV of a Complete report; Conflict while it is Running or when it Failed."""
    doc = get_report(report_id=report_id)
    if doc["status"] != ReportStatus.COMPLETE:
        detail = "is still Running" if doc["status"] == ReportStatus.RUNNING else f"failed: {doc.get('error')}"
        raise Conflict(f"Report {report_id} {detail}.")
    return storage.read_report_csv(storage.get_db(), doc)


def run_report(*, report_id: str, retries: int = 0, db: Database | None = None, token: str | None = None) -> str:
    """Compute and store one report; returns what happened.

    "missing"/"not-running": nothing to do (a redelivered task for a finished
    report is a no-op); "busy": another attempt holds it and its worker still
    heartbeats (a late redelivery; nothing is computed twice); "complete";
    "superseded" (another delivery finished first); "failed" (the error is stored
    in the report); "sharded" (its shards are queued: ``run_report_shard``, then
    this again as the join). Transient MongoDB errors are raised so the runner can retry
    (``loop.retry``); ``retries`` (how many came before this attempt) is recorded on
    the report, and ``token`` is the attempt's (a retry passes its first attempt's).
    """
    db = db if db is not None else storage.get_db()
    return run_attempt(
        REPORT_JOBS,
        db=db,
        job_id=report_id,
        retries=retries,
        token=token,
        work=lambda doc: _compute(db, doc),
        also_replaceable=lambda doc: _finished_shards_attempt(db, doc),
    )


REPORT_JOBS = JobStore[ReportDoc](
    kind="report",
    id_field="report_id",
    get=storage.get_report,
    mark_started=storage.mark_report_started,
    beat=storage.beat_report,
    silent=storage.silent_reports,
    requeue_lost=storage.requeue_lost_report,
    fail_lost=storage.fail_lost_report,
    enqueue=lambda report_id: queue.enqueue_report(report_id),  # looked up at call time (tests replace it)
)


def _compute(db: Database, doc: ReportDoc) -> str:
    plan = _shard_plan(db, doc)
    if plan is None:
        return _compute_whole(db, doc)
    return _run_sharded(db, doc, *plan)


def _shard_plan(db: Database, doc: ReportDoc) -> tuple[int, list[str]] | None:
    """The report's shards and their bounds: pinned ones (a redelivery, the join), or new ones from
    REPORT_SHARDS / REPORT_SHARD_STORES over the report's stores; None: one task computes it all."""
    if doc.get("shards"):
        return int(doc["shards"]), [str(bound) for bound in doc.get("shard_bounds") or []]
    if settings.REPORT_SHARDS == 1:
        return None
    store_ids = sorted(storage.store_ids_polled_through(db, storage.report_now(doc)))
    shards = shard_count(len(store_ids), shards=settings.REPORT_SHARDS, shard_stores=settings.REPORT_SHARD_STORES)
    if shards <= 1:
        return None
    return shards, shard_bounds(store_ids, shards)


def _run_sharded(db: Database, doc: ReportDoc, shards: int, bounds: list[str]) -> str:
    """The split (pin the bounds, queue the shards not done yet) or, once every shard is done, the join."""
    report_id, token = doc["report_id"], str(doc.get("attempt_token"))
    pinned = storage.pin_report_shards(db, report_id, shards=shards, bounds=bounds, token=token)
    if pinned is None:
        return "superseded"  # taken back (lost) or finished meanwhile
    shards = int(pinned["shards"])
    if queue.shards_run_inline():
        # Embedded mode: the shards one after the other in this attempt (under its heartbeat), then the join.
        for shard in range(shards):
            if not storage.shard_done(db, report_id, shard) and _compute_shard(db, pinned, shard) == "failed":
                return "failed"
        return _join(db, pinned)
    done = storage.shard_results(db, report_id, shards)
    if len(done) == shards:
        return _join(db, pinned)
    for shard in range(shards):
        if shard not in done:
            queue.enqueue_report_shard(report_id, shard, int(pinned["now_us"]))
    storage.raise_report_progress(db, report_id, storage.shard_progress(len(done), shards))
    storage.release_report_to_shards(db, report_id, token)
    logger.info("report %s: %d of %d shard(s) queued", report_id, shards - len(done), shards)
    return "sharded"


def _finished_shards_attempt(db: Database, doc: ReportDoc) -> list[str]:
    """The split attempt a join may take over: the one the shards beat for, once all of them are done."""
    token, shards = doc.get("shard_token"), doc.get("shards")
    if not token or not shards or doc.get("attempt_token") != token:
        return []
    return [str(token)] if len(storage.shard_results(db, doc["report_id"], int(shards))) == int(shards) else []


def run_report_shard(
    *, report_id: str, shard: int, now_us: int, db: Database | None = None, retries: int = 0, token: str | None = None
) -> str:
    """Compute one shard of a sharded report and store its part; returns what happened.

    "missing"/"not-running"/"ignored" (not this report's shard or ``now``): nothing to do; "done-before":
    a redelivery of a shard already stored; "done"; "failed" (a permanent error: the report is Failed with
    it). Whoever sees every shard done queues the join (``run_report`` again: it joins). Idempotent: a
    duplicate delivery computes again at worst, and its part loses to the first (a unique insert).
    Transient MongoDB errors are raised for ``loop.retry`` (``retries``/``token`` as ``run_report``'s).
    """
    del retries, token  # shards hold no attempt: any number may run, the first stored part wins
    db = db if db is not None else storage.get_db()
    doc = storage.get_report(db, report_id)
    if doc is None:
        return "missing"
    if doc["status"] != ReportStatus.RUNNING:
        return "not-running"
    shards = int(doc.get("shards") or 0)
    if int(doc["now_us"]) != int(now_us) or not 0 <= shard < shards:
        logger.warning("report %s: no shard %s at now_us %s; nothing to do", report_id, shard, now_us)
        return "ignored"
    outcome = "done-before"
    if not storage.shard_done(db, report_id, shard):
        shard_token = doc.get("shard_token")

        def beat() -> bool:
            return bool(shard_token) and storage.beat_report_shards(db, report_id, str(shard_token))

        beat()
        with heartbeat(beat, label=f"report {report_id} shard {shard}"):
            outcome = _compute_shard(db, doc, shard)
        if outcome == "failed":
            return outcome
    done = len(storage.shard_results(db, report_id, shards))
    storage.raise_report_progress(db, report_id, storage.shard_progress(done, shards))
    if done == shards:
        try:
            queue.enqueue_report_join(report_id)
        except Exception as exc:  # the lost rule queues the report again, and that run joins
            logger.error("report %s: could not queue the join (%s)", report_id, short_error(exc))
    return outcome


def _compute_shard(db: Database, doc: ReportDoc, shard: int) -> str:
    """Compute shard ``shard`` (its store range only) and store its part: "done", or "failed" (stored)."""
    report_id, shards = doc["report_id"], int(doc["shards"])
    started = time.perf_counter()
    timings: dict[str, float] = {}
    lo, hi = shard_limits([str(bound) for bound in doc.get("shard_bounds") or []], shard)
    try:
        result = generate_report(
            now=storage.report_now(doc),
            db=db,
            extended=storage.report_format(doc) == ReportFormat.EXTENDED,
            max_gap_minutes=int(doc.get("max_gap_minutes") or DEFAULT_MAX_GAP_MINUTES),
            timings=timings,
            store_range=storage.StoreRange(lo, hi),
        )
        csv_text = report_to_csv(result.report)
    except Exception as exc:
        if is_transient(exc):
            raise
        logger.exception("report %s shard %d failed", report_id, shard)
        if storage.fail_report(db, report_id, f"shard {shard + 1} of {shards} failed: {short_error(exc)}"):
            metrics.report_finished(status="failed", seconds=_since_created(doc))
        return "failed"
    timings["total_s"] = round(time.perf_counter() - started, 3)
    stored = storage.record_shard_result(
        db,
        report_id,
        shard,
        csv_text,
        rows=len(result.report),
        polls_counted=result.polls_counted,
        warnings=result.warnings,
        timings=timings,
        worker=worker_name(),
    )
    logger.info(
        "report %s shard %d/%d %s: %d rows in %.2fs",
        report_id,
        shard + 1,
        shards,
        "done" if stored else "done (a duplicate: the first part stands)",
        len(result.report),
        timings["total_s"],
    )
    return "done"


def _join(db: Database, doc: ReportDoc) -> str:
    """Every shard is done: their parts in shard (= store id) order become the report's CSV."""
    report_id, shards = doc["report_id"], int(doc["shards"])
    started = time.perf_counter()
    storage.set_report_phase(db, report_id, ReportPhase.JOINING)
    results = storage.shard_results(db, report_id, shards)
    if len(results) != shards:  # never: the caller saw them all, and parts go only with a finished report
        raise RuntimeError(f"only {len(results)} of {shards} shards are stored")
    parts = [results[shard] for shard in range(shards)]
    csv_text = join_csv([storage.read_shard_csv(db, part) for part in parts])
    timings = {
        "shards": float(shards),
        **{key: round(sum(float(p["timings"].get(key, 0)) for p in parts), 3) for key in ("read_s", "compute_s")},
        "polls_read": float(sum(float(p["timings"].get("polls_read", 0)) for p in parts)),
        "join_s": round(time.perf_counter() - started, 3),
    }
    rows = sum(int(part["rows"]) for part in parts)
    stored = storage.complete_report(
        db,
        report_id,
        csv_text,
        rows=rows,
        polls_counted=sum(int(part["polls_counted"]) for part in parts),
        warnings=merge_warnings([part.get("warnings") or [] for part in parts])[:50],
        timings=timings,
    )
    storage.delete_shard_results(db, report_id, shards)
    outcome = "complete" if stored else "superseded"
    if stored:
        metrics.report_finished(status="complete", seconds=_since_created(doc), rows=rows)
    logger.info("report %s %s: %d rows joined from %d shards", report_id, outcome, rows, shards)
    return outcome


def _compute_whole(db: Database, doc: ReportDoc) -> str:
    report_id = doc["report_id"]
    started = time.perf_counter()
    timings: dict[str, float] = {}
    storage.set_report_phase(db, report_id, ReportPhase.READING)
    extended = storage.report_format(doc) == ReportFormat.EXTENDED
    try:
        result = generate_report(
            now=storage.report_now(doc),
            db=db,
            extended=extended,
            max_gap_minutes=int(doc.get("max_gap_minutes") or DEFAULT_MAX_GAP_MINUTES),
            timings=timings,
            on_computing=lambda: storage.set_report_phase(db, report_id, ReportPhase.COMPUTING),
        )
        csv_text = report_to_csv(result.report)
    except Exception as exc:  # any other error fails the report, with a short message
        if is_transient(exc):
            raise
        logger.exception("report %s failed", report_id)
        if storage.fail_report(db, report_id, short_error(exc)):
            metrics.report_finished(status="failed", seconds=_since_created(doc))
        return "failed"
    timings["total_s"] = round(time.perf_counter() - started, 3)
    storage.set_report_phase(db, report_id, ReportPhase.STORING)
    stored = storage.complete_report(
        db,
        report_id,
        csv_text,
        rows=len(result.report),
        polls_counted=result.polls_counted,
        warnings=result.warnings[:50],
        timings=timings,
    )
    outcome = "complete" if stored else "superseded"
    if stored:
        metrics.report_finished(status="complete", seconds=_since_created(doc), rows=len(result.report))
    logger.info("report %s %s: %d rows in %.2fs", report_id, outcome, len(result.report), timings["total_s"])
    return outcome


def _since_created(doc: ReportDoc) -> float:
    """Seconds from the trigger to now (what the caller waited: queue, shards and join included)."""
    created = doc.get("created_at")
    return max(0.0, (utcnow() - created).total_seconds()) if created is not None else 0.0


def fail_report(*, report_id: str, message: str) -> None:
    """Mark a Running report Failed (raises when MongoDB cannot be reached)."""
    storage.fail_report(storage.get_db(), report_id, message)


@dataclass(frozen=True)
class ReportRows:
    """A Complete report's Loop columns per store, with each window's uptime % (GET /reports/<id>/stores/)."""

    report_id: str
    now: pd.Timestamp
    rows: list[dict[str, str | float | None]]


# Each window's uptime % and the Loop columns it comes from.
UPTIME_PCT_COLUMNS = {
    f"uptime_pct_last_{window}": (f"uptime_last_{window}", f"downtime_last_{window}")
    for window in ("hour", "day", "week")
}


def report_rows(*, report_id: str) -> ReportRows:
    """The stored CSV's Loop columns as rows, plus ``UPTIME_PCT_COLUMNS`` (None without business time) and
    each store's name, brand and region (``services.directory``; None when unknown); the store ids as
    stored, without the CSV's spreadsheet-safety apostrophe."""
    text = report_csv(report_id=report_id)
    now = storage.report_now(get_report(report_id=report_id))
    frame = report_from_csv(text)
    for pct, (up, down) in UPTIME_PCT_COLUMNS.items():
        frame[pct] = uptime_pct(frame[up].to_numpy(), frame[down].to_numpy())
    # Plain lists, NaN as None: a few times faster than DataFrame.to_dict on thousands of rows.
    columns = list(frame.columns)
    values = [[None if v != v else v for v in frame[column].tolist()] for column in columns]
    # Each store's directory entry (null when unknown), so pages can show names beside the ids.
    store_ids = [str(store_id) for store_id in values[columns.index("store_id")]]
    profiles = store_profiles(store_ids=store_ids)
    for field in PROFILE_TEXT_COLUMNS:
        columns.append(field)
        values.append([getattr(profiles[store_id], field) for store_id in store_ids])
    rows = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
    return ReportRows(report_id=report_id, now=now, rows=rows)
