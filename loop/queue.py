"""How a background job reaches a worker: the Celery queue by task name, or this process's embedded pool.

Services enqueue through here and nothing here imports a service, so the path
service -> queue -> worker -> service never becomes an import cycle: Celery finds
the task by its name, and the embedded pool (``CELERY_BROKER_URL=memory://``, the demo
of ``make run`` and the unit tests) is handed in once at start-up by ``loop.apps``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future

import redis
from django.conf import settings

from loop.backends import uses_embedded_broker, uses_redis_broker

logger = logging.getLogger(__name__)

REPORT_TASK = "loop.tasks.generate_report_task"
# A sharded report (loop.sharding): one task per shard (report id, shard, pinned now), then one join.
REPORT_SHARD_TASK = "loop.tasks.report_shard_task"
REPORT_JOIN_TASK = "loop.tasks.report_join_task"
IMPORT_TASK = "loop.tasks.import_task"
REMOVE_OLD_REPORTS_TASK = "loop.tasks.remove_old_reports_task"
REMOVE_ABANDONED_UPLOADS_TASK = "loop.tasks.remove_abandoned_uploads_task"
RECOVER_LOST_JOBS_TASK = "loop.tasks.recover_lost_jobs_task"
REMOVE_OLD_JOB_CLAIMS_TASK = "loop.tasks.remove_old_job_claims_task"
REMOVE_ORPHAN_PARTS_TASK = "loop.tasks.remove_orphan_parts_task"
COMPACT_POLLS_TASK = "loop.tasks.compact_polls_task"
EVALUATE_ALERTS_TASK = "loop.tasks.evaluate_alerts_task"
ALERT_REMINDERS_TASK = "loop.tasks.alert_reminders_task"
REMOVE_OLD_ALERTS_TASK = "loop.tasks.remove_old_alerts_task"
SEND_DELIVERY_TASK = "loop.tasks.send_delivery_task"
SEND_DUE_DELIVERIES_TASK = "loop.tasks.send_due_deliveries_task"
RUN_DUE_SCHEDULES_TASK = "loop.tasks.run_due_schedules_task"
FINISH_SCHEDULE_RUN_TASK = "loop.tasks.finish_schedule_run_task"
UPDATE_HISTORY_TASK = "loop.tasks.update_history_task"
# A compaction asked for after a small batch waits this long, so one run folds the whole burst: a fold
# rewrites whole days and the catalog (~3 s of FerretDB's time at 10x), so under a steady stream of
# batches it runs at most about once per this many seconds.
COMPACT_POLLS_DELAY_SECONDS = 10.0

# (task name, job id) -> the Future of its run in this process.
EmbeddedRunner = Callable[[str, str], Future[str]]
_embedded_runner: EmbeddedRunner | None = None


def use_embedded_runner(runner: EmbeddedRunner) -> None:
    """Where jobs go in embedded mode (``loop.apps.LoopConfig.ready`` installs ``loop.embedded_worker.submit``)."""
    global _embedded_runner
    _embedded_runner = runner


def enqueue_report(report_id: str) -> Future[str] | None:
    """Hand a report to a worker; raises if the broker cannot take it (the Future in embedded mode)."""
    return _enqueue(REPORT_TASK, report_id)


def shards_run_inline() -> bool:
    """Embedded mode runs a sharded report's shards one after the other in its own task (same bytes);
    with a broker each shard is a task of its own, for any worker."""
    return uses_embedded_broker()


def enqueue_report_shard(report_id: str, shard: int, now_us: int) -> None:
    """Hand one shard of a report to a worker (raises if the broker cannot take it). The message carries
    only the report id, the shard and the pinned ``now``: the shard reads its bounds from the report."""
    if uses_embedded_broker():
        raise RuntimeError("embedded mode runs shards inline (shards_run_inline)")
    from myproject.celery import app

    app.send_task(REPORT_SHARD_TASK, args=[report_id, shard, now_us], retry=True)


def enqueue_report_join(report_id: str) -> Future[str] | None:
    """Ask for the join of a report whose shards are all done (raises if the broker cannot take it)."""
    return _enqueue(REPORT_JOIN_TASK, report_id)


def enqueue_import(import_id: str) -> Future[str] | None:
    """Hand an import to a worker; raises if the broker cannot take it (the Future in embedded mode)."""
    return _enqueue(IMPORT_TASK, import_id)


# Runs a poll compaction in this process after a delay (embedded mode); installed by ``loop.apps``.
_embedded_compactor: Callable[[float], None] | None = None


def use_embedded_compactor(compactor: Callable[[float], None]) -> None:
    global _embedded_compactor
    _embedded_compactor = compactor


def enqueue_poll_compaction() -> None:
    """Ask for the deltas of small batches to be folded into their days, ``COMPACT_POLLS_DELAY_SECONDS``
    from now (readers never wait for it: it only makes their reads cheaper). Best effort: a lost
    request leaves the deltas to the next one, or to the beat's."""
    if uses_embedded_broker():
        if _embedded_compactor is not None:
            _embedded_compactor(COMPACT_POLLS_DELAY_SECONDS)
        return
    from myproject.celery import app

    app.send_task(COMPACT_POLLS_TASK, countdown=COMPACT_POLLS_DELAY_SECONDS, retry=False)


# Runs an alert evaluation on this process's pool (embedded mode); installed by ``loop.apps``.
_embedded_evaluator: Callable[[], None] | None = None


def use_embedded_evaluator(evaluator: Callable[[], None]) -> None:
    global _embedded_evaluator
    _embedded_evaluator = evaluator


def enqueue_alert_evaluation(*, delay: int = 0) -> None:
    """Ask for an alert evaluation after a write of polls (evaluations coalesce: ``services.alerts``);
    ``delay``: a follow-up (``send_follow_up``)."""
    if uses_embedded_broker():
        if _embedded_evaluator is not None:
            _embedded_evaluator()
        return
    send_follow_up(EVALUATE_ALERTS_TASK, delay=delay)


# How long past its delay a follow-up's mark stands when no task cleared it (lost, or no worker running):
# then the next write asks again.
FOLLOW_UP_MARK_SLACK_SECONDS = 60
_redis_clients: dict[int, redis.Redis] = {}


def _broker_redis() -> redis.Redis:
    pid = os.getpid()  # one client per process: connections must not cross a fork
    if pid not in _redis_clients:
        _redis_clients[pid] = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1
        )
    return _redis_clients[pid]


def _follow_up_mark(task_name: str) -> str:
    # Per queue set: stacks sharing one Redis (CELERY_QUEUE) do not cover each other's writes.
    return f"{settings.CELERY_QUEUE}:follow-up:{task_name}"


def send_follow_up(task_name: str, *, delay: int) -> None:
    """Send ``task_name`` ``delay`` seconds from now unless one is waiting already, which covers the
    caller's write: its task clears the mark (``follow_up_started``) before it reads. So a stream of
    small batches costs the worker one run per ``delay`` seconds, not one per batch (a SET NX on the
    broker's Redis per call). At once when ``delay`` is 0, and without Redis."""
    from myproject.celery import app

    mark = _follow_up_mark(task_name)
    if delay > 0 and uses_redis_broker():
        try:
            if not _broker_redis().set(mark, "1", nx=True, ex=delay + FOLLOW_UP_MARK_SLACK_SECONDS):
                return
        except redis.RedisError as exc:  # the send below fails the same way, or goes through unmarked
            logger.warning("could not mark a follow-up of %s (%s)", task_name, exc)
        try:
            app.send_task(task_name, countdown=delay, retry=False)
        except Exception:
            _clear_mark(mark)  # nothing is waiting: the next write asks again
            raise
        return
    app.send_task(task_name, retry=False)


def follow_up_started(task_name: str) -> None:
    """First thing in a follow-up task (or the beat's run of it): writes from now on may come after its
    reads, so they ask again."""
    if uses_redis_broker():
        _clear_mark(_follow_up_mark(task_name))


def _clear_mark(mark: str) -> None:
    try:
        _broker_redis().delete(mark)
    except redis.RedisError as exc:  # the mark expires (FOLLOW_UP_MARK_SLACK_SECONDS)
        logger.warning("could not clear the follow-up mark %s (%s)", mark, exc)


def _enqueue(task_name: str, job_id: str) -> Future[str] | None:
    if uses_embedded_broker():
        if _embedded_runner is None:
            raise RuntimeError("no embedded worker is installed (loop.apps.LoopConfig.ready installs it)")
        return _embedded_runner(task_name, job_id)
    # Celery is imported only by processes that send to a broker (not the offline command).
    from myproject.celery import app

    app.send_task(task_name, args=[job_id], retry=True)
    return None


# (delivery id, delay in seconds) -> runs that delivery's due attempt in this process (embedded mode).
EmbeddedDeliverySender = Callable[[str, float], None]
_embedded_delivery_sender: EmbeddedDeliverySender | None = None


def use_embedded_delivery_sender(sender: EmbeddedDeliverySender) -> None:
    global _embedded_delivery_sender
    _embedded_delivery_sender = sender


def enqueue_delivery(delivery_id: str, countdown: float = 0) -> None:
    """Send an alert delivery's due attempt ``countdown`` seconds from now; raises if the broker cannot
    take it (the delivery is stored first, and the beat's sweep sends it then)."""
    if uses_embedded_broker():
        if _embedded_delivery_sender is None:
            raise RuntimeError("no embedded delivery sender is installed (loop.apps.LoopConfig.ready installs it)")
        _embedded_delivery_sender(delivery_id, countdown)
        return
    from myproject.celery import app

    app.send_task(SEND_DELIVERY_TASK, args=[delivery_id], countdown=countdown or None, retry=True)


# (run id, check number, delay in seconds) -> looks at a scheduled run's report in this process (embedded mode).
EmbeddedRunFinisher = Callable[[str, int, float], None]
_embedded_run_finisher: EmbeddedRunFinisher | None = None


def use_embedded_run_finisher(finisher: EmbeddedRunFinisher) -> None:
    global _embedded_run_finisher
    _embedded_run_finisher = finisher


def enqueue_run_finish(run_id: str, check: int, countdown: float) -> None:
    """Look at a scheduled run's report ``countdown`` seconds from now (``services.schedules.finish_run``:
    deliver it once finished, else look again later); raises if the broker cannot take it (the tick's
    safety net finishes the newest run of each schedule then)."""
    if uses_embedded_broker():
        if _embedded_run_finisher is None:
            raise RuntimeError("no embedded run finisher is installed (loop.apps.LoopConfig.ready installs it)")
        _embedded_run_finisher(run_id, check, countdown)
        return
    from myproject.celery import app

    app.send_task(FINISH_SCHEDULE_RUN_TASK, args=[run_id, check], countdown=countdown or None, retry=True)


# Applies the pending changes of the daily figures on this process's pool (embedded mode); installed by ``loop.apps``.
_embedded_history_updater: Callable[[], None] | None = None


def use_embedded_history_updater(updater: Callable[[], None]) -> None:
    global _embedded_history_updater
    _embedded_history_updater = updater


def enqueue_history_update(*, delay: int = 0) -> None:
    """Ask for the pending changes of the daily figures to be applied (updates coalesce: ``services.history``);
    ``delay``: a follow-up (``send_follow_up``)."""
    if uses_embedded_broker():
        if _embedded_history_updater is not None:
            _embedded_history_updater()
        return
    send_follow_up(UPDATE_HISTORY_TASK, delay=delay)
