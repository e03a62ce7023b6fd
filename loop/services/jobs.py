"""What reports and imports share as background jobs: who runs an attempt, its heartbeat, and when a Running
one is lost (no heartbeat for JOB_LOST_SECONDS) or stale (the last resort: too old altogether)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from pymongo.database import Database

from loop import storage
from loop.errors import short_error
from loop.storage import ReportStatus
from loop.timeutil import utcnow

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """host:pid of this process, stored on the job so ops (and tests) see who ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_attempt_token() -> str:
    """The id of one attempt at a job: its heartbeats and a retry of the same delivery carry it."""
    return uuid.uuid4().hex


def is_stale(doc: Mapping[str, Any], *, since_field: str, max_age_s: int) -> bool:
    """The stale rule: a Running job whose ``since_field`` instant is more than ``max_age_s`` old is lost.

    Reports count from ``created_at`` (Running too long), imports from ``updated_at`` (no progress for too long).
    """
    if doc["status"] != ReportStatus.RUNNING:  # imports share the statuses' values
        return False
    since = doc.get(since_field) or doc.get("created_at")
    return isinstance(since, dt.datetime) and (utcnow() - since).total_seconds() > max_age_s


def is_lost(doc: Mapping[str, Any], *, lost_after_s: int, now: dt.datetime | None = None) -> bool:
    """The lost rule: a Running job that a worker started (it has a heartbeat) whose heartbeat is more
    than ``lost_after_s`` old. Not yet started, taken back already, or finished: not lost."""
    if doc["status"] != ReportStatus.RUNNING:  # imports share the statuses' values
        return False
    heartbeat = doc.get("heartbeat_at")
    return isinstance(heartbeat, dt.datetime) and ((now or utcnow()) - heartbeat).total_seconds() > lost_after_s


def heartbeat_cutoff() -> dt.datetime:
    """Heartbeats older than this are lost ones (``is_lost`` with JOB_LOST_SECONDS, as a query bound)."""
    return utcnow() - dt.timedelta(seconds=settings.JOB_LOST_SECONDS)


def lost_verdict(doc: Mapping[str, Any]) -> str | None:
    """What to do with a lost job: None re-queues it; else the reason it is Failed with, once it has been
    re-queued JOB_LOST_RETRIES times already (a job that kills its worker must not loop forever)."""
    lost_before = int(doc.get("lost_attempts") or 0)
    if lost_before < settings.JOB_LOST_RETRIES:
        return None
    return (
        f"worker lost: no heartbeat for {settings.JOB_LOST_SECONDS} s, {lost_before + 1} time(s) "
        f"(JOB_LOST_RETRIES={settings.JOB_LOST_RETRIES}); last worker {doc.get('worker')}"
    )


def replaceable_attempts(doc: Mapping[str, Any]) -> list[str]:
    """Attempts a new start may take over at once, heartbeat or not: one whose process on this host is gone
    (a pool process killed mid-job, its message given back by Celery at once). Others wait for the lost rule."""
    token, holder = doc.get("attempt_token"), doc.get("worker")
    if not token or not holder:
        return []
    host, _, pid_text = str(holder).rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return []
    try:
        os.kill(int(pid_text), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return [str(token)]
    except PermissionError:  # it exists (another user's)
        return []
    return []


@contextmanager
def heartbeat(beat: Callable[[], bool], *, label: str, interval_s: float | None = None) -> Iterator[None]:
    """Call ``beat`` every JOB_HEARTBEAT_SECONDS from a daemon thread while the block runs.

    The thread ends with the block, or once ``beat`` says the job is no longer this attempt's; a beat
    that fails (MongoDB away) is logged and tried again next time.
    """
    interval = settings.JOB_HEARTBEAT_SECONDS if interval_s is None else interval_s
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            try:
                if not beat():
                    return
            except Exception as exc:
                logger.warning("%s: heartbeat not recorded (%s)", label, short_error(exc))

    thread = threading.Thread(target=run, name=f"heartbeat {label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


Doc = TypeVar("Doc", bound=Mapping[str, Any])


@dataclass(frozen=True)
class JobStore(Generic[Doc]):
    """How one kind of job (report, import) is read, started and kept alive in storage."""

    kind: str  # "report" / "import", in log lines
    id_field: str  # "report_id" / "import_id"
    get: Callable[[Database, str], Doc | None]
    mark_started: Callable[..., Doc | None]  # storage.mark_*_started: the compare-and-set start
    beat: Callable[[Database, str, str], bool]  # storage.beat_*: False once the job is not this attempt's
    silent: Callable[..., list[Doc]]  # storage.silent_*: Running jobs whose heartbeat is older than a bound
    requeue_lost: Callable[..., bool]  # storage.requeue_lost_*: compare-and-set on the lost attempt
    fail_lost: Callable[..., bool]  # storage.fail_lost_*: the same, to Failed
    enqueue: Callable[[str], object]  # loop.queue.enqueue_*
    on_failed: Callable[[Database, Doc], None] | None = None  # what a failed job leaves to clean up


def run_attempt(
    jobs: JobStore[Doc],
    *,
    db: Database,
    job_id: str,
    retries: int,
    token: str | None,
    work: Callable[[Doc], str],
    also_replaceable: Callable[[Doc], list[str]] | None = None,
) -> str:
    """Start one attempt at a Running job and do ``work`` under its heartbeat; what happened, as a word.

    "missing"/"not-running": nothing to do (a redelivered task for a finished job is a no-op); "busy":
    another attempt holds it and its worker still heartbeats (a late redelivery: nothing runs twice);
    otherwise what ``work`` returns. ``token`` is the attempt's (a retry passes its first attempt's).
    ``also_replaceable``: more attempts known to be over (a sharded report's join takes over from the
    split attempt its finished shards heartbeat for).
    """
    doc = jobs.get(db, job_id)
    if doc is None:
        logger.warning("%s %s does not exist; nothing to do", jobs.kind, job_id)
        return "missing"
    if doc["status"] != ReportStatus.RUNNING:  # imports share the statuses' values
        logger.info("%s %s is already %s; nothing to do", jobs.kind, job_id, doc["status"])
        return "not-running"
    attempt = token or new_attempt_token()
    started = jobs.mark_started(
        db,
        job_id,
        worker=worker_name(),
        retries=retries,
        token=attempt,
        live_since=heartbeat_cutoff(),
        replaceable=replaceable_attempts(doc) + (also_replaceable(doc) if also_replaceable else []),
    )
    if started is None:
        return _refused_start(jobs, db, job_id)
    with heartbeat(lambda: jobs.beat(db, job_id, attempt), label=f"{jobs.kind} {job_id}"):
        return work(started)


def _refused_start(jobs: JobStore[Any], db: Database, job_id: str) -> str:
    doc = jobs.get(db, job_id)
    if doc is None or doc["status"] != ReportStatus.RUNNING:
        return "not-running"
    logger.warning(
        "%s %s is held by worker %s (heartbeat at %s); this delivery does nothing",
        jobs.kind,
        job_id,
        doc.get("worker"),
        doc.get("heartbeat_at"),
    )
    return "busy"


def recover_if_lost(jobs: JobStore[Doc], *, db: Database, doc: Doc) -> Doc:
    """The lost rule's consequence: a job whose worker stopped heartbeating is queued again (phase
    ``worker lost`` until a worker starts it), or Failed once it was lost JOB_LOST_RETRIES times before.
    Compare-and-set on the lost attempt, so of concurrent sweeps (reads, beat) one acts."""
    if not is_lost(doc, lost_after_s=settings.JOB_LOST_SECONDS):
        return doc
    job_id, token, cutoff = doc[jobs.id_field], doc.get("attempt_token"), heartbeat_cutoff()
    failure = lost_verdict(doc)
    if failure is not None:
        if jobs.fail_lost(db, job_id, token=token, heartbeat_before=cutoff, error=failure):
            logger.error("%s %s failed: %s", jobs.kind, job_id, failure)
            if jobs.on_failed is not None:
                jobs.on_failed(db, doc)
    elif jobs.requeue_lost(db, job_id, token=token, heartbeat_before=cutoff):
        settled = jobs.get(db, job_id)  # as the sweep left it: the next attempt may start at once
        logger.warning(
            "%s %s: worker %s stopped heartbeating (over %d s); queued again",
            jobs.kind,
            job_id,
            doc.get("worker"),
            settings.JOB_LOST_SECONDS,
        )
        try:
            jobs.enqueue(job_id)
        except Exception as exc:
            # The broker's own redelivery of the first message (or the stale rule) still ends it.
            logger.error("%s %s: could not queue it again (%s)", jobs.kind, job_id, short_error(exc))
        return settled or doc
    return jobs.get(db, job_id) or doc


def recover_lost(jobs: JobStore[Any], *, db: Database) -> int:
    """Beat (every 30 s): ``recover_if_lost`` on every lost job of the kind, polled or not; how many."""
    lost = jobs.silent(db, heartbeat_before=heartbeat_cutoff())
    for doc in lost:
        recover_if_lost(jobs, db=db, doc=doc)
    return len(lost)


# A take-over claim (loop.storage.jobs.start_attempt) only settles deliveries of one job racing to take
# over the same lost attempt, seconds apart; the next take-over names another claim. A day is far past that.
JOB_CLAIM_KEEP = dt.timedelta(days=1)


def remove_old_job_claims() -> int:
    """Beat (hourly): remove take-over claims older than JOB_CLAIM_KEEP; how many went."""
    removed = storage.delete_claims_before(storage.get_db(), utcnow() - JOB_CLAIM_KEEP)
    if removed:
        logger.info("removed %d job take-over claim(s) older than %s", removed, JOB_CLAIM_KEEP)
    return removed
