"""The embedded worker: with ``CELERY_BROKER_URL=memory://`` jobs run on a thread pool in this process.

The embedded mode (the demo of ``make run`` and the unit tests) runs the same
attempts with the same retry policy (``loop.retry``) inside the web process,
so the API behaves the same (202 at once, Running, then Complete) without a broker.

As with the worker kinds of a real deployment (``settings.WORKER_KINDS``), an alert evaluation or delivery
never waits behind a report or an import: those run on the job pool (``EMBEDDED_WORKER_THREADS``), evaluations
and deliveries on a pool of their own (``NOTIFICATION_THREADS``), and poll compactions on timer threads.

Its jobs log as a Celery worker's do (``loop.task_logs``): each runs with the request id of the
request that asked for it (a new one when none did), the task's name and its job's id bound, and
says when it starts and finishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings

from loop import logs, queue
from loop.request_ids import new_request_id
from loop.retry import ATTEMPTS, Retry, RetryPolicy, attempt_report

logger = logging.getLogger(__name__)

# The notifications' own pool: evaluations and deliveries are short; two let one slow webhook not hold the rest.
NOTIFICATION_THREADS = 2

R = TypeVar("R")

# The argument each queued job names (the field its log lines carry), as in the Celery tasks' signatures.
JOB_FIELDS = {
    queue.REPORT_TASK: "report_id",
    queue.REPORT_JOIN_TASK: "report_id",
    queue.IMPORT_TASK: "import_id",
    queue.SEND_DELIVERY_TASK: "delivery_id",
}


def _as_task(task_name: str, fn: Callable[[], R], **fields: Any) -> Callable[[], R]:
    """``fn`` for a pool thread or a timer, logging as a Celery task would: this context's request id
    (or a new one), ``task`` and ``fields`` bound, a line when it starts and one when it finishes."""

    def run() -> R:
        began = time.perf_counter()
        logger.info("task %s started", task_name)
        state = "FAILURE"
        try:
            result = fn()
            state = "SUCCESS"
            return result
        finally:
            duration_ms = round((time.perf_counter() - began) * 1000.0, 1)
            logger.info("task %s finished: %s", task_name, state, extra={"state": state, "duration_ms": duration_ms})

    request_id = logs.bound_fields().get("request_id") or new_request_id()
    return logs.carried(run, request_id=request_id, task=task_name, **fields)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_notification_pool: ThreadPoolExecutor | None = None
_pending: set[Future[str]] = set()


def submit(task_name: str, job_id: str) -> Future[str]:
    """Run the job of ``task_name`` in this process's pool (``loop.queue``'s embedded runner).

    The Future is kept until done: tests wait on the pending ones.
    """
    attempt = ATTEMPTS[task_name]
    job = _as_task(task_name, lambda: run_embedded(job_id, attempt), **{JOB_FIELDS.get(task_name, "job_id"): job_id})
    future = _embedded_pool().submit(job)
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
        timer = _compaction_timers[db.name] = threading.Timer(delay, _as_task(queue.COMPACT_POLLS_TASK, run))
        timer.daemon = True
        timer.start()


def schedule_alert_evaluation() -> None:
    """Evaluate alerts on the notifications' pool (``loop.queue``'s embedded evaluator); concurrent asks coalesce in
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

    future = _notifications_pool().submit(_as_task(queue.EVALUATE_ALERTS_TASK, run))
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
    """Run an alert delivery's due attempt on the notifications' pool ``delay`` seconds from now (``loop.queue``'s
    embedded delivery sender), on the database configured now; tests wait for it as for a report."""
    from loop import storage
    from loop.services.deliveries import deliver

    db = storage.get_db()
    _run_later(
        queue.SEND_DELIVERY_TASK,
        lambda: deliver(delivery_id=delivery_id, db=db),
        # recorded on the delivery where possible
        crash=f"embedded delivery {delivery_id} crashed",
        pool=_notifications_pool,
        delay=delay,
        delivery_id=delivery_id,
    )


def finish_schedule_run(run_id: str, check: int, delay: float) -> None:
    """Look at a scheduled run's report on the pool ``delay`` seconds from now (``loop.queue``'s embedded
    run finisher), on the database configured now; tests wait for it as for a report."""
    from loop import storage
    from loop.services.schedules import finish_run

    db = storage.get_db()
    _run_later(
        queue.FINISH_SCHEDULE_RUN_TASK,
        lambda: finish_run(run_id=run_id, check=check, db=db),
        # the tick's safety net finishes it
        crash=f"embedded finish of scheduled run {run_id} crashed",
        pool=_embedded_pool,
        delay=delay,
        run_id=run_id,
    )


def _run_later(
    task_name: str,
    fn: Callable[[], str],
    *,
    crash: str,
    pool: Callable[[], ThreadPoolExecutor],
    delay: float,
    **fields: Any,
) -> None:
    """``fn`` as task ``task_name`` on ``pool`` ``delay`` seconds from now, counted among the pending jobs
    (``wait_embedded_idle``); a crash is logged, never kills the pool thread."""
    future: Future[str] = Future()
    with _pool_lock:
        _pending.add(future)
    future.add_done_callback(_forget)

    def run() -> None:
        try:
            future.set_result(fn())
        except Exception as exc:
            logger.exception(crash)
            future.set_exception(exc)

    job = _as_task(task_name, run, **fields)
    if delay <= 0:
        pool().submit(job)
        return
    timer = threading.Timer(delay, lambda: pool().submit(job))
    timer.daemon = True
    timer.start()


_ticker_started = threading.Event()


def start_schedule_ticker() -> None:
    """Run the report schedules' tick every SCHEDULE_TICK_SECONDS in a daemon thread: the embedded mode's
    beat for schedules (``make run``; the unit tests call ``run_due_schedules`` themselves). Once per process."""
    if _ticker_started.is_set():
        return
    _ticker_started.set()
    from loop.services.schedules import run_due_schedules

    def tick_forever() -> None:
        while True:
            time.sleep(max(1, settings.SCHEDULE_TICK_SECONDS))
            try:
                # Each tick under an id of its own, as a beat task's (the reports it starts carry it).
                with logs.bound(request_id=new_request_id(), task=queue.RUN_DUE_SCHEDULES_TASK):
                    run_due_schedules()
            except Exception:  # the next tick tries again
                logger.exception("embedded schedule tick failed")

    threading.Thread(target=tick_forever, name="schedule-ticker", daemon=True).start()


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, settings.EMBEDDED_WORKER_THREADS), thread_name_prefix="report-worker"
            )
        return _pool


def _notifications_pool() -> ThreadPoolExecutor:
    global _notification_pool
    with _pool_lock:
        if _notification_pool is None:
            _notification_pool = ThreadPoolExecutor(
                max_workers=NOTIFICATION_THREADS, thread_name_prefix="notifications"
            )
        return _notification_pool


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
