"""The service's own Prometheus metrics: their names, labels and the helpers the services call.

No Django, no MongoDB: services call the small functions below where the work happens (a batch stored,
an evaluation done, a delivery attempted, a report or an import finished), so the pure modules stay
pure and a metric's name lives in one place. What is read at scrape time instead (queue lengths,
workers up, the data clock, open alerts) is ``loop/api/metrics.py``'s; HTTP metrics are counted by
``loop/http_metrics.py``, Celery tasks by ``loop/worker_metrics.py``. docs/operations.md#metrics lists them.

Several processes: a process that shares its metrics with others (gunicorn's workers, a Celery worker's
pool) has ``PROMETHEUS_MULTIPROC_DIR`` set before this module is first imported (gunicorn.conf.py,
``loop.worker_metrics.use_own_directory``); prometheus-client then keeps every value in a file of
that directory per process, and a scrape adds them up (``MultiProcessCollector``). A process alone
(``make run``, a command, the tests) keeps them in memory.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

# Seconds: requests and short tasks (ms to a few s) ...
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# ... and jobs (reports, imports: seconds to tens of minutes).
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    """Every metric of this process, made on first use (``made()``): a process that never counts anything (the
    offline report, a command) never imports prometheus_client, and a Celery worker makes them only once its
    multi-process directory is set (loop.worker_metrics)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram, disable_created_metrics

        # No `*_created` series: nothing here reads them, and the multi-process scrape has none either.
        disable_created_metrics()

        # --- HTTP (loop.http_metrics.HttpMetricsMiddleware) -----------------------------------------------
        self.HTTP_REQUESTS = Counter(
            "loop_http_requests",
            "HTTP requests answered, by route (the URL pattern, never the raw path), method and status code.",
            ["route", "method", "status"],
        )
        self.HTTP_DURATION = Histogram(
            "loop_http_request_duration_seconds",
            "Time from the request reaching the app to its answer, by route, method and status code.",
            ["route", "method", "status"],
            buckets=FAST_BUCKETS,
        )

        # --- Celery tasks (loop.worker_metrics) -----------------------------------------------------------
        self.TASK_EVENTS = Counter(
            "loop_celery_tasks",
            "Celery tasks by task name and event: started, succeeded, failed, retried.",
            ["task", "event"],
        )
        self.TASK_RUNTIME = Histogram(
            "loop_celery_task_runtime_seconds",
            "Run time of a Celery task (one attempt), by task name and outcome (succeeded, failed, retried).",
            ["task", "outcome"],
            buckets=(*FAST_BUCKETS[:-1], 60.0, 300.0, 900.0, 1800.0),
        )
        self.BEAT_SENT = Counter("loop_beat_sent", "Periodic tasks celery beat sent, by task name.", ["task"])

        # --- Domain (called by loop.services) -------------------------------------------------------------
        self.POLLS_INGESTED = Counter(
            "loop_polls_ingested",
            "Valid poll rows received (before de-duplication), by source: api (POST /store_status/), load (files).",
            ["source"],
        )
        self.POLLS_STORED = Counter(
            "loop_polls_stored", "Polls new to the store (after de-duplication), by source.", ["source"]
        )
        self.ROWS_REJECTED = Counter("loop_poll_rows_rejected", "Poll rows rejected as invalid, by source.", ["source"])
        self.EVALUATION_DURATION = Histogram(
            "loop_alert_evaluation_duration_seconds",
            "Time of one alert evaluation that ran (a skipped one, with no new data, is not counted).",
            buckets=FAST_BUCKETS,
        )
        self.ALERT_CHANGES = Counter("loop_alerts_changed", "Alerts opened and resolved by evaluations.", ["change"])
        self.DELIVERY_ATTEMPTS = Counter(
            "loop_delivery_attempts",
            "Alert delivery attempts by channel kind (webhook, slack, email; unknown: channel deleted) and outcome: "
            "delivered, retrying (a later attempt is due), failed (given up, refused or gone).",
            ["kind", "outcome"],
        )
        self.REPORTS = Counter(
            "loop_reports", "Reports finished by a worker, by status (complete, failed).", ["status"]
        )
        self.REPORT_DURATION = Histogram(
            "loop_report_duration_seconds",
            "Time of one report attempt that finished (computed and stored, or failed), by status.",
            ["status"],
            buckets=JOB_BUCKETS,
        )
        self.REPORT_ROWS = Counter("loop_report_rows", "Rows (stores) of the reports completed.")
        self.IMPORTS = Counter(
            "loop_imports", "Imports finished by a worker, by status (complete, failed).", ["status"]
        )
        self.IMPORT_DURATION = Histogram(
            "loop_import_duration_seconds",
            "Time of one import attempt that finished, by status.",
            ["status"],
            buckets=JOB_BUCKETS,
        )
        self.SCHEDULE_RUNS_MISSED = Counter(
            "loop_schedule_runs_missed", "Scheduled runs that did not happen at their time (report schedules)."
        )

        # Label values known in advance are created with the metrics, so every series reads 0 before its first event
        # (a rule on rate() or a missing series would otherwise stay silent until the first failure).
        for _source in ("api", "load"):
            self.POLLS_INGESTED.labels(_source)
            self.POLLS_STORED.labels(_source)
            self.ROWS_REJECTED.labels(_source)
        for _status in ("complete", "failed"):
            self.REPORTS.labels(_status)
            self.IMPORTS.labels(_status)
        for _kind in ("webhook", "slack", "email"):
            for _outcome in ("delivered", "retrying", "failed"):
                self.DELIVERY_ATTEMPTS.labels(_kind, _outcome)
        for _change in ("opened", "resolved"):
            self.ALERT_CHANGES.labels(_change)


_made: list[Metrics] = []
_lock = threading.Lock()


def made() -> Metrics:
    """This process's metrics, made (and registered with prometheus_client's registry) on the first call."""
    if not _made:
        with _lock:
            if not _made:
                _made.append(Metrics())
    return _made[0]


def __getattr__(name: str) -> Any:
    """``loop.metrics.HTTP_REQUESTS`` and the like: the metric of ``made()``."""
    if name.isupper() and not name.startswith("_"):
        metric = getattr(made(), name, None)
        if metric is not None:
            return metric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def polls_received(*, source: str, valid: int, stored: int, rejected: int) -> None:
    """A batch or a load: ``valid`` rows read, ``stored`` of them new, ``rejected`` invalid rows."""
    made().POLLS_INGESTED.labels(source).inc(valid)
    made().POLLS_STORED.labels(source).inc(stored)
    made().ROWS_REJECTED.labels(source).inc(rejected)


def evaluation_done(*, seconds: float, opened: int, resolved: int) -> None:
    made().EVALUATION_DURATION.observe(seconds)
    made().ALERT_CHANGES.labels("opened").inc(opened)
    made().ALERT_CHANGES.labels("resolved").inc(resolved)


def delivery_attempted(*, kind: str, outcome: str) -> None:
    made().DELIVERY_ATTEMPTS.labels(kind or "unknown", outcome).inc()


def report_finished(*, status: str, seconds: float, rows: int = 0) -> None:
    made().REPORTS.labels(status).inc()
    made().REPORT_DURATION.labels(status).observe(seconds)
    if rows:
        made().REPORT_ROWS.inc(rows)


def import_finished(*, status: str, seconds: float) -> None:
    made().IMPORTS.labels(status).inc()
    made().IMPORT_DURATION.labels(status).observe(seconds)


def schedule_run_missed(count: int = 1) -> None:
    """For the report schedules (loop/services/schedules.py): runs that did not happen at their time."""
    made().SCHEDULE_RUNS_MISSED.inc(count)


# --- Workers up: each Celery worker keeps a key in Redis alive (loop.worker_metrics), the web counts them ----
WORKER_KEY_PREFIX = "loop:workers:"


def worker_key(queue_prefix: str, hostname: str) -> str:
    """The heartbeat key of worker ``hostname`` of the deployment whose queues carry ``queue_prefix``."""
    return f"{WORKER_KEY_PREFIX}{queue_prefix or '-'}:{hostname}"


def worker_key_pattern(queue_prefix: str) -> str:
    return f"{WORKER_KEY_PREFIX}{queue_prefix or '-'}:*"


def empty_directory(*, variable: str, prefix: str) -> tuple[str, bool]:
    """A multi-process metrics directory with no values in it: the one the environment variable names
    (its value files removed), else a new temporary one; (path, whether it was made here)."""
    path = os.environ.get(variable, "").strip()
    if not path:
        return tempfile.mkdtemp(prefix=prefix), True
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    return path, False
