"""The Celery tasks: ``generate_report_task(report_id)`` and ``import_task(import_id)`` on a worker (Redis broker).

The work is ``loop.services.reports.compute_report`` and ``loop.services.imports.run_import``;
retries follow ``loop.retry`` (the same policy as the embedded worker).
"""

from __future__ import annotations

from collections.abc import Callable

from celery.app.task import Task

from loop.retry import Retry, RetryPolicy, attempt_import, attempt_report
from myproject.celery import app

# Bound to the project's app explicitly (not @shared_task): myproject/__init__.py does not
# import Celery, so the offline command starts without it. Both job tasks share these options.
JOB_TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "max_retries": None,  # the retry limits come from settings (loop.retry)
}


def _attempt(task: Task, attempt: Callable[..., str | Retry], job_id: str, failure: str | None) -> str:
    """One attempt through ``loop.retry``; a ``Retry`` outcome re-queues the task with its countdown."""
    outcome = attempt(job_id, retries=task.request.retries or 0, failure=failure, policy=RetryPolicy.from_settings())
    if isinstance(outcome, Retry):
        raise task.retry(args=[job_id], kwargs={"failure": outcome.failure}, countdown=outcome.countdown)
    return outcome


@app.task(name="loop.tasks.generate_report_task", **JOB_TASK_OPTIONS)
def generate_report_task(self: Task, report_id: str, failure: str | None = None) -> str:
    """Compute the report; retry with backoff while MongoDB is unreachable (``failure``: phase 2)."""
    return _attempt(self, attempt_report, report_id, failure)


@app.task(name="loop.tasks.remove_old_reports_task", ignore_result=True)
def remove_old_reports_task() -> int:
    """Beat (hourly): remove finished reports older than REPORT_RETENTION_DAYS with their CSVs."""
    from loop.services.reports import remove_old_reports

    return remove_old_reports()


@app.task(name="loop.tasks.import_task", **JOB_TASK_OPTIONS)
def import_task(self: Task, import_id: str, failure: str | None = None) -> str:
    """Load an upload of POST /imports/ (``services.imports.run_import``); retried like a report."""
    return _attempt(self, attempt_import, import_id, failure)


@app.task(name="loop.tasks.remove_abandoned_uploads_task", ignore_result=True)
def remove_abandoned_uploads_task() -> int:
    """Beat (hourly): remove uploads a web process died receiving (no import owns them)."""
    from loop.services.imports import remove_abandoned_uploads

    return remove_abandoned_uploads()
