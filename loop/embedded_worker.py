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
    retries, failure = 0, None
    while True:
        try:
            outcome = attempt(job_id, retries=retries, failure=failure, policy=policy)
        except Exception:  # never let a worker thread die silently
            logger.exception("embedded job %s crashed", job_id)
            return "failed"
        if not isinstance(outcome, Retry):
            return outcome
        time.sleep(outcome.countdown)
        retries, failure = retries + 1, outcome.failure


_compaction_lock = threading.Lock()
_compaction_timer: threading.Timer | None = None


def schedule_compaction(delay: float) -> None:
    """Fold poll deltas in a background thread ``delay`` seconds from now (``loop.queue``'s embedded
    compactor); requests while one is scheduled join it. The database is the one configured now."""
    global _compaction_timer
    from loop import storage
    from loop.services.ingest import compact_polls

    db = storage.get_db()

    def run() -> None:
        global _compaction_timer
        with _compaction_lock:
            _compaction_timer = None
        try:
            compact_polls(db)
        except Exception:  # the next request or batch tries again; readers are right meanwhile
            logger.exception("embedded poll compaction failed")

    with _compaction_lock:
        if _compaction_timer is not None:
            return
        _compaction_timer = threading.Timer(delay, run)
        _compaction_timer.daemon = True
        _compaction_timer.start()


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
