"""The embedded worker: with ``CELERY_BROKER_URL=memory://`` jobs run on a thread pool in this process.

The embedded mode (the demo of ``make run`` and the unit tests) runs the same
attempts with the same retry policy (``loop.retry``) inside the web process,
so the API behaves the same (202 at once, Running, then Complete) without a broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings

from loop.retry import ATTEMPTS, Retry, RetryPolicy, attempt_report

logger = logging.getLogger(__name__)

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pending: set[Future[str]] = set()


def submit(task_name: str, job_id: str) -> Future[str]:
    """Run the job of ``task_name`` in this process's pool (``loop.queue``'s embedded runner).

    The Future is kept until done: tests wait on the pending ones.
    """
    future = _embedded_pool().submit(run_embedded, job_id, ATTEMPTS[task_name])
    with _pool_lock:
        _pending.add(future)
    future.add_done_callback(_forget)
    return future


def run_embedded(job_id: str, attempt: Callable[..., str | Retry] = attempt_report) -> str:
    """Attempts of one report (or import) in this thread, sleeping between retries as the Celery task would."""
    policy = RetryPolicy.from_settings()
    retries, failure, token = 0, None, None
    while True:
        try:
            outcome = attempt(job_id, retries=retries, failure=failure, policy=policy, token=token)
        except Exception:  # never let a worker thread die silently
            logger.exception("embedded job %s crashed", job_id)
            return "failed"
        if not isinstance(outcome, Retry):
            return outcome
        time.sleep(outcome.countdown)
        retries, failure, token = retries + 1, outcome.failure, outcome.token


_compaction_lock = threading.Lock()
# One pending compaction per database (name): requests for it while it waits join it.
_compaction_timers: dict[str, threading.Timer] = {}


def schedule_compaction(delay: float) -> None:
    """Fold poll deltas in a background thread ``delay`` seconds from now (``loop.queue``'s embedded
    compactor), on the database configured now; requests while one waits for that database join it."""
    from loop import storage
    from loop.services.ingest import compact_polls

    db = storage.get_db()

    def run() -> None:
        with _compaction_lock:
            _compaction_timers.pop(db.name, None)
        try:
            compact_polls(db)
        except Exception:  # the next batch or request tries again; readers are right meanwhile
            logger.exception("embedded poll compaction failed")

    with _compaction_lock:
        if db.name in _compaction_timers:
            return
        timer = _compaction_timers[db.name] = threading.Timer(delay, run)
        timer.daemon = True
        timer.start()


def schedule_alert_evaluation() -> None:
    """Evaluate alerts on the pool (``loop.queue``'s embedded evaluator); concurrent asks coalesce in
    ``services.alerts.evaluate_alerts`` itself. Tests wait for it with ``wait_embedded_idle``."""
    from loop import storage
    from loop.services.alerts import evaluate_alerts

    db = storage.get_db()

    def run() -> str:
        try:
            evaluate_alerts(db=db)
        except Exception:  # the next write or the beat's evaluation tries again
            logger.exception("embedded alert evaluation failed")
        return "done"

    future = _embedded_pool().submit(run)
    with _pool_lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def schedule_history_update() -> None:
    """Apply the pending changes of the daily figures on the pool (``loop.queue``'s embedded updater)."""
    from loop import storage
    from loop.services.history import update_history

    db = storage.get_db()

    def run() -> str:
        try:
            update_history(db=db)
        except Exception:  # the next write tries again
            logger.exception("embedded history update failed")
        return "done"

    future = _embedded_pool().submit(run)
    with _pool_lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def send_delivery(delivery_id: str, delay: float) -> None:
    """Run an alert delivery's due attempt on the pool ``delay`` seconds from now (``loop.queue``'s embedded
    delivery sender), on the database configured now; tests wait for it as for a report."""
    from loop import storage
    from loop.services.deliveries import deliver

    db = storage.get_db()
    future: Future[str] = Future()
    with _pool_lock:
        _pending.add(future)
    future.add_done_callback(_forget)

    def run() -> None:
        try:
            future.set_result(deliver(delivery_id=delivery_id, db=db))
        except Exception as exc:  # recorded on the delivery where possible; never kill the pool thread
            logger.exception("embedded delivery %s crashed", delivery_id)
            future.set_exception(exc)

    if delay <= 0:
        _embedded_pool().submit(run)
        return
    timer = threading.Timer(delay, lambda: _embedded_pool().submit(run))
    timer.daemon = True
    timer.start()


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, settings.EMBEDDED_WORKER_THREADS), thread_name_prefix="report-worker"
            )
        return _pool


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
