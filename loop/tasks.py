"""The Celery tasks: thin wrappers that run one attempt of a job (``loop.retry``) or a housekeeping service.

Their names are ``loop.queue``'s: services send by name, so nothing here is imported to enqueue.
"""

from __future__ import annotations

from typing import Any

from celery.app.task import Task

from loop import queue
from loop.retry import Attempt, Retry, RetryPolicy, attempt_import, attempt_report, attempt_report_shard
from loop.services.alerts import evaluate_alerts_paced, remove_old_alerts, send_reminders
from loop.services.deliveries import deliver, send_due_deliveries
from loop.services.imports import recover_lost_imports, remove_abandoned_uploads
from loop.services.ingest import compact_polls, remove_orphan_parts
from loop.services.jobs import remove_old_job_claims
from loop.services.reports import recover_lost_reports, remove_old_reports
from myproject.celery import app

# Bound to the project's app explicitly (not @shared_task): myproject/__init__.py does not
# import Celery, so the offline command starts without it. Both job tasks share these options.
JOB_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "max_retries": None,  # the retry limits come from settings (loop.retry)
}


def _attempt(task: Task, attempt: Attempt, job_id: str, failure: str | None, token: str | None) -> str:
    """One attempt through ``loop.retry``; a ``Retry`` outcome re-queues the task with its countdown
    (and its attempt token, so the retry takes the job back from its own earlier attempt)."""
    outcome = attempt(
        job_id, retries=task.request.retries or 0, failure=failure, policy=RetryPolicy.from_settings(), token=token
    )
    if isinstance(outcome, Retry):
        kwargs = {"failure": outcome.failure, "token": outcome.token}
        raise task.retry(args=(job_id,), kwargs=kwargs, countdown=outcome.countdown)
    return str(outcome)


@app.task(name=queue.REPORT_TASK, **JOB_TASK_OPTIONS)
def generate_report_task(self: Task, report_id: str, failure: str | None = None, token: str | None = None) -> str:
    """Compute the report; retry with backoff while MongoDB is unreachable (``failure``: phase 2)."""
    return _attempt(self, attempt_report, report_id, failure, token)


@app.task(name=queue.REPORT_SHARD_TASK, **JOB_TASK_OPTIONS)
def report_shard_task(
    self: Task, report_id: str, shard: int, now_us: int, failure: str | None = None, token: str | None = None
) -> str:
    """One shard of a sharded report (``services.reports.run_report_shard``); retried like a report. Acked
    late and redelivered when its worker dies: a shard is idempotent (the first stored part wins)."""
    outcome = attempt_report_shard(
        report_id,
        shard,
        now_us,
        retries=self.request.retries or 0,
        failure=failure,
        policy=RetryPolicy.from_settings(),
        token=token,
    )
    if isinstance(outcome, Retry):
        kwargs = {"failure": outcome.failure, "token": outcome.token}
        raise self.retry(args=(report_id, shard, now_us), kwargs=kwargs, countdown=outcome.countdown)
    return str(outcome)


@app.task(name=queue.REPORT_JOIN_TASK, **JOB_TASK_OPTIONS)
def report_join_task(self: Task, report_id: str, failure: str | None = None, token: str | None = None) -> str:
    """Join a sharded report whose shards are all done: an attempt at the report that may take over from
    the split attempt its shards heartbeat for (one join runs: ``loop.storage.jobs.start_attempt``)."""
    return _attempt(self, attempt_report, report_id, failure, token)


@app.task(name=queue.IMPORT_TASK, **JOB_TASK_OPTIONS)
def import_task(self: Task, import_id: str, failure: str | None = None, token: str | None = None) -> str:
    """Load an upload of POST /imports/ (``services.imports.run_import``); retried like a report."""
    return _attempt(self, attempt_import, import_id, failure, token)


@app.task(name=queue.REMOVE_OLD_REPORTS_TASK, ignore_result=True)
def remove_old_reports_task() -> int:
    """Beat (hourly): remove finished reports older than REPORT_RETENTION_DAYS with their CSVs."""
    return remove_old_reports()


@app.task(name=queue.REMOVE_ABANDONED_UPLOADS_TASK, ignore_result=True)
def remove_abandoned_uploads_task() -> int:
    """Beat (hourly): remove uploads a web process died receiving (no import owns them)."""
    return remove_abandoned_uploads()


@app.task(name=queue.REMOVE_OLD_JOB_CLAIMS_TASK, ignore_result=True)
def remove_old_job_claims_task() -> int:
    """Beat (hourly): remove the lost-job take-over claims nothing can race for any more."""
    return remove_old_job_claims()


@app.task(name=queue.REMOVE_ORPHAN_PARTS_TASK, ignore_result=True)
def remove_orphan_parts_task() -> int:
    """Beat (hourly): delete the day parts a killed merge or compaction left."""
    return remove_orphan_parts()


@app.task(name=queue.RECOVER_LOST_JOBS_TASK, ignore_result=True)
def recover_lost_jobs_task() -> int:
    """Beat (every 30 s): re-queue (or fail) reports and imports whose worker stopped heartbeating."""
    return recover_lost_reports() + recover_lost_imports()


@app.task(name=queue.COMPACT_POLLS_TASK, ignore_result=True)
def compact_polls_task() -> int:
    """After small batches (and from beat, every minute, as a safety net): fold poll deltas into their days."""
    return compact_polls()


@app.task(name=queue.EVALUATE_ALERTS_TASK, ignore_result=True)
def evaluate_alerts_task() -> int:
    """After each write of polls (and from beat, every minute): open and resolve alerts at the newest poll."""
    queue.follow_up_started(queue.EVALUATE_ALERTS_TASK)
    result = evaluate_alerts_paced()
    return 0 if result is None else result.opened + result.resolved


@app.task(name=queue.ALERT_REMINDERS_TASK, ignore_result=True)
def alert_reminders_task() -> int:
    """Beat (every minute): reminders of unacknowledged alerts, and the feed's staleness (wall clock)."""
    return send_reminders()


@app.task(name=queue.SEND_DELIVERY_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def send_delivery_task(delivery_id: str) -> str:
    """One due attempt of an alert delivery (claimed by a unique insert: a duplicate message sends nothing)."""
    return deliver(delivery_id=delivery_id)


@app.task(name=queue.SEND_DUE_DELIVERIES_TASK, ignore_result=True)
def send_due_deliveries_task() -> int:
    """Beat (every 30 s): queue the pending alert deliveries that are overdue (broker was down, long retries)."""
    return send_due_deliveries()


@app.task(name=queue.REMOVE_OLD_ALERTS_TASK, ignore_result=True)
def remove_old_alerts_task() -> int:
    """Beat (hourly): remove alert history older than ALERT_RETENTION_DAYS (data clock)."""
    return remove_old_alerts()


@app.task(name=queue.RUN_DUE_SCHEDULES_TASK, ignore_result=True)
def run_due_schedules_task() -> int:
    """Beat (every SCHEDULE_TICK_SECONDS): run each schedule's newest due slot once (a unique claim per slot)."""
    from loop.services.schedules import run_due_schedules

    return run_due_schedules()


@app.task(name=queue.FINISH_SCHEDULE_RUN_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def finish_schedule_run_task(run_id: str, check: int = 0) -> str:
    """A scheduled run's report finished? Deliver it (one delivery per channel, by derived ids), else look later."""
    from loop.services.schedules import finish_run

    return finish_run(run_id=run_id, check=check)


@app.task(name=queue.UPDATE_HISTORY_TASK, ignore_result=True)
def update_history_task() -> int:
    """After writes of polls, hours, holiday hours or zones (and from beat, every minute): apply their changes
    to the daily figures (builds them when none exist yet)."""
    from loop.services.history import update_history

    queue.follow_up_started(queue.UPDATE_HISTORY_TASK)
    result = update_history(build_if_missing=True)
    return 0 if result is None else result.rows
