"""The report task, and how the API hands a report to a worker.

``generate_report_task(report_id)`` runs on a Celery worker (Redis broker).
With ``CELERY_BROKER_URL=memory://`` (the demo and the unit tests) the same
work runs on a small thread pool inside the web process instead, so the API
behaves the same (202 at once, Running, then Complete) without a broker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, PyMongoError

from loop import storage
from loop.report_engine import report_to_csv
from loop.utils import generate_report

logger = logging.getLogger(__name__)

# Errors worth retrying: the server did not answer (network, failover, restart).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure,)
# Server errors the driver itself labels as safe to retry (e.g. a primary stepping down).
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "ResumableChangeStreamError")


def is_transient(exc: BaseException) -> bool:
    """True for MongoDB errors that a later attempt can get past (the server is away)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, PyMongoError) and any(exc.has_error_label(label) for label in TRANSIENT_LABELS)


def retry_countdown(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped.

    The cap also stays below half the broker's visibility timeout: Redis hands a
    retry that waits longer than that to a second worker while the first still holds it.
    """
    base = max(0.0, float(settings.REPORT_TASK_RETRY_BACKOFF))
    cap = float(getattr(settings, "REPORT_TASK_RETRY_BACKOFF_MAX", 60))
    visibility = float(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600))
    return min(base * (2**retries), cap, max(1.0, visibility / 2))


def retry_window() -> float:
    """Total backoff (without the time each failed attempt takes) before a report is failed."""
    return sum(retry_countdown(n) for n in range(settings.REPORT_TASK_MAX_RETRIES))


def _failure_countdown() -> float:
    # Phase 2 (recording a failure) waits as long as the last retry did.
    return retry_countdown(max(settings.REPORT_TASK_MAX_RETRIES - 1, 0))


def worker_name() -> str:
    """host:pid of this process, stored on the report so ops (and tests) see who ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def short_error(exc: BaseException) -> str:
    """A one-line message for report_table (no stack trace reaches the API)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def run_report(report_id: str, db: Database | None = None, retries: int = 0) -> str:
    """Compute and store one report; returns what happened.

    "missing"/"not-running": nothing to do (a redelivered task for a finished
    report is a no-op); "complete"; "superseded" (another delivery finished
    first); "failed" (the error is stored in the report). Transient MongoDB
    errors are raised so the caller can retry; ``retries`` (how many retries
    came before this attempt) is recorded on the report.
    """
    db = db if db is not None else storage.get_db()
    doc = storage.get_report(db, report_id)
    if doc is None:
        logger.warning("report %s does not exist; nothing to do", report_id)
        return "missing"
    if doc["status"] != storage.RUNNING:
        logger.info("report %s is already %s; nothing to do", report_id, doc["status"])
        return "not-running"
    doc = storage.mark_report_started(db, report_id, worker=worker_name(), retries=retries)
    if doc is None:
        return "not-running"
    _test_delay(report_id)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        result = generate_report(now=storage.report_now(doc), db=db, timings=timings)
        csv_text = report_to_csv(result.report)
    except Exception as exc:  # any other error fails the report, with a short message
        if is_transient(exc):
            raise
        logger.exception("report %s failed", report_id)
        storage.fail_report(db, report_id, short_error(exc))
        return "failed"
    timings["total_s"] = round(time.perf_counter() - started, 3)
    stored = storage.complete_report(
        db,
        report_id,
        csv_text,
        rows=len(result.report),
        polls_counted=result.polls_counted,
        warnings=result.warnings[:50],
        timings=timings,
    )
    logger.info(
        "report %s %s: %d rows in %.2fs",
        report_id,
        "complete" if stored else "superseded",
        len(result.report),
        timings["total_s"],
    )
    return "complete" if stored else "superseded"


def _test_delay(report_id: str) -> None:
    """Test-only hook (REPORT_TEST_DELAY_SECONDS, 0 = off): pause after marking started.

    The fault tests use it to kill a worker or append data while a report is
    known to be in progress; nothing sets it outside those tests.
    """
    delay = float(getattr(settings, "REPORT_TEST_DELAY_SECONDS", 0) or 0)
    if delay > 0:
        logger.warning("report %s: REPORT_TEST_DELAY_SECONDS=%s, sleeping (test hook)", report_id, delay)
        time.sleep(delay)


def record_failure(report_id: str, message: str) -> bool:
    """Mark the report Failed; False when MongoDB cannot be reached to say so."""
    try:
        storage.fail_report(storage.get_db(), report_id, message)
    except Exception as exc:
        if not is_transient(exc):
            raise
        logger.warning("report %s: could not record the failure yet (%s)", report_id, short_error(exc))
        return False
    return True


def _give_up(report_id: str, message: str) -> str:
    try:
        if not record_failure(report_id, message):
            logger.error("report %s: failure not recorded; the stale-report rule will fail it", report_id)
    except Exception:
        logger.exception("could not mark report %s Failed", report_id)
    return "failed"


@shared_task(
    bind=True,
    name="loop.tasks.generate_report_task",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # the retry limits come from settings, checked below
)
def generate_report_task(self: Task, report_id: str, failure: str | None = None) -> str:
    """Celery entry point: retry with backoff while MongoDB is unreachable.

    Phase 1 (``failure`` is None): compute the report; a transient MongoDB
    error retries after ``retry_countdown`` up to REPORT_TASK_MAX_RETRIES times.
    Then the report is marked Failed. If MongoDB is still down at that moment
    the task goes on, in phase 2 (``failure`` holds the message), only trying
    to record the failure, for up to REPORT_TASK_MAX_RETRIES more retries, so
    the report reads Failed soon after MongoDB is back. Past that, the
    stale-report rule (REPORT_STALE_SECONDS) fails it on the next poll.
    """
    retries = self.request.retries or 0
    max_retries = settings.REPORT_TASK_MAX_RETRIES
    if failure is not None:
        if record_failure(report_id, failure):
            return "failed"
        if retries >= 2 * max_retries:
            logger.error(
                "report %s: failure not recorded after %d retries; the stale-report rule will fail it",
                report_id,
                retries,
            )
            return "failed"
        raise self.retry(args=[report_id], kwargs={"failure": failure}, countdown=_failure_countdown())
    try:
        return run_report(report_id, retries=retries)
    except Exception as exc:
        if not is_transient(exc):  # e.g. a server-side error before the work started
            logger.exception("report %s crashed", report_id)
            return _give_up(report_id, short_error(exc))
        if retries >= max_retries:
            message = f"MongoDB unavailable after {retries} retries: {short_error(exc)}"
            logger.error("report %s: %s", report_id, message)
            if record_failure(report_id, message):
                return "failed"
            logger.warning("report %s: recording the failure once MongoDB is back", report_id)
            raise self.retry(args=[report_id], kwargs={"failure": message}, countdown=_failure_countdown()) from exc
        countdown = retry_countdown(retries)
        logger.warning(
            "report %s: MongoDB unreachable (%s); retry %d/%d in %ss",
            report_id,
            short_error(exc),
            retries + 1,
            max_retries,
            countdown,
        )
        raise self.retry(exc=exc, countdown=countdown) from exc


# --- embedded mode (CELERY_BROKER_URL=memory://) -------------------------------------

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def is_embedded() -> bool:
    return settings.CELERY_BROKER_URL.startswith("memory://")


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, settings.EMBEDDED_WORKER_THREADS), thread_name_prefix="report-worker"
            )
        return _pool


def _run_embedded(report_id: str) -> str:
    """The in-process worker: same work and retry policy as the Celery task."""
    for attempt in range(settings.REPORT_TASK_MAX_RETRIES + 1):
        try:
            return run_report(report_id, retries=attempt)
        except Exception as exc:
            if not is_transient(exc):  # never let a worker thread die silently
                logger.exception("embedded report %s crashed", report_id)
                return _give_up(report_id, short_error(exc))
            if attempt >= settings.REPORT_TASK_MAX_RETRIES:
                return _give_up(report_id, f"MongoDB unavailable after {attempt} retries: {short_error(exc)}")
            time.sleep(retry_countdown(attempt))
    return "failed"


_pending: set[Future[str]] = set()


def enqueue_report(report_id: str) -> Future[str] | None:
    """Hand the report to a worker; raises if the broker cannot take it.

    Returns the Future in embedded mode (tests wait on it), None with Celery.
    """
    if is_embedded():
        future = _embedded_pool().submit(_run_embedded, report_id)
        with _pool_lock:
            _pending.add(future)
        future.add_done_callback(_forget)
        return future
    generate_report_task.apply_async(args=[report_id], retry=True)
    return None


def _forget(future: Future[str]) -> None:
    with _pool_lock:
        _pending.discard(future)


def wait_embedded_idle(timeout: float = 60.0) -> bool:
    """Wait until the in-process worker has no report left; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with _pool_lock:
            pending = list(_pending)
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for future in pending:
            try:
                future.result(timeout=remaining)
            except Exception:  # failures are recorded in the report itself
                pass


def broker_health() -> str:
    """ "ok", "embedded", or why the broker did not answer."""
    if is_embedded():
        return "embedded"
    url = settings.CELERY_BROKER_URL
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            try:
                client.ping()
            finally:
                client.close()
        else:
            with generate_report_task.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
