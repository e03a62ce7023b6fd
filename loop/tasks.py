"""The report task, and how the API hands a report to a worker.

``generate_report_task(report_id)`` runs on a Celery worker (Redis broker).
With ``CELERY_BROKER_URL=memory://`` (the demo and the unit tests) the same
work runs on a small thread pool inside the web process instead, so the API
behaves the same (202 at once, Running, then Complete) without a broker.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from celery import shared_task
from celery.app.task import Task
from django.conf import settings
from pymongo.database import Database
from pymongo.errors import ConnectionFailure

from loop import storage
from loop.report_engine import report_to_csv
from loop.utils import generate_report

logger = logging.getLogger(__name__)

# Errors worth retrying: the server did not answer (network, failover, restart).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure,)


def short_error(exc: BaseException) -> str:
    """A one-line message for report_table (no stack trace reaches the API)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def run_report(report_id: str, db: Database | None = None) -> str:
    """Compute and store one report; returns what happened.

    "missing"/"not-running": nothing to do (a redelivered task for a finished
    report is a no-op); "complete"; "superseded" (another delivery finished
    first); "failed" (the error is stored in the report). Transient MongoDB
    errors are raised so the caller can retry.
    """
    db = db if db is not None else storage.get_db()
    doc = storage.get_report(db, report_id)
    if doc is None:
        logger.warning("report %s does not exist; nothing to do", report_id)
        return "missing"
    if doc["status"] != storage.RUNNING:
        logger.info("report %s is already %s; nothing to do", report_id, doc["status"])
        return "not-running"
    doc = storage.mark_report_started(db, report_id)
    if doc is None:
        return "not-running"
    started = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        result = generate_report(now=storage.report_now(doc), db=db, timings=timings)
        csv_text = report_to_csv(result.report)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # any other error fails the report, with a short message
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
    logger.info("report %s %s: %d rows in %.2fs", report_id, "complete" if stored else "superseded",
                len(result.report), timings["total_s"])
    return "complete" if stored else "superseded"


def _give_up(report_id: str, message: str) -> str:
    try:
        storage.fail_report(storage.get_db(), report_id, message)
    except Exception:  # MongoDB still down: the stale check fails it later
        logger.exception("could not mark report %s Failed", report_id)
    return "failed"


@shared_task(
    bind=True,
    name="loop.tasks.generate_report_task",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # the retry limit is REPORT_TASK_MAX_RETRIES, checked below
)
def generate_report_task(self: Task, report_id: str) -> str:
    """Celery entry point: retry with backoff while MongoDB is unreachable."""
    try:
        return run_report(report_id)
    except TRANSIENT_ERRORS as exc:
        retries = self.request.retries or 0
        if retries >= settings.REPORT_TASK_MAX_RETRIES:
            logger.error("report %s: MongoDB unreachable after %d retries", report_id, retries)
            return _give_up(report_id, f"MongoDB unavailable: {short_error(exc)}")
        countdown = settings.REPORT_TASK_RETRY_BACKOFF * (2**retries)
        logger.warning("report %s: MongoDB unreachable (%s); retry in %ss", report_id, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:  # e.g. a server-side error before the work started
        logger.exception("report %s crashed", report_id)
        return _give_up(report_id, short_error(exc))


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
            return run_report(report_id)
        except TRANSIENT_ERRORS as exc:
            if attempt >= settings.REPORT_TASK_MAX_RETRIES:
                return _give_up(report_id, f"MongoDB unavailable: {short_error(exc)}")
            time.sleep(settings.REPORT_TASK_RETRY_BACKOFF * (2**attempt))
        except Exception as exc:  # never let a worker thread die silently
            logger.exception("embedded report %s crashed", report_id)
            return _give_up(report_id, short_error(exc))
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
    """"ok", "embedded", or why the broker did not answer."""
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
