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

from prometheus_client import Counter, Histogram, disable_created_metrics

# No `*_created` series: nothing here reads them, and the multi-process scrape has none either.
disable_created_metrics()

# Seconds: requests and short tasks (ms to a few s) ...
FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# ... and jobs (reports, imports: seconds to tens of minutes).
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

# --- HTTP (loop.http_metrics.HttpMetricsMiddleware) -----------------------------------------------
HTTP_REQUESTS = Counter(
    "loop_http_requests",
    "HTTP requests answered, by route (the URL pattern, never the raw path), method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "loop_http_request_duration_seconds",
    "Time from the request reaching the app to its answer, by route, method and status code.",
    ["route", "method", "status"],
    buckets=FAST_BUCKETS,
)

# --- Celery tasks (loop.worker_metrics) -----------------------------------------------------------
TASK_EVENTS = Counter(
    "loop_celery_tasks",
    "Celery tasks by task name and event: started, succeeded, failed, retried.",
    ["task", "event"],
)
TASK_RUNTIME = Histogram(
    "loop_celery_task_runtime_seconds",
    "Run time of a Celery task (one attempt), by task name and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
    buckets=(*FAST_BUCKETS[:-1], 60.0, 300.0, 900.0, 1800.0),
)
BEAT_SENT = Counter("loop_beat_sent", "Periodic tasks celery beat sent, by task name.", ["task"])

# --- Domain (called by loop.services) -------------------------------------------------------------
POLLS_INGESTED = Counter(
    "loop_polls_ingested",
    "Valid poll rows received (before de-duplication), by source: api (POST /store_status/), load (files).",
    ["source"],
)
POLLS_STORED = Counter("loop_polls_stored", "Polls new to the store (after de-duplication), by source.", ["source"])
ROWS_REJECTED = Counter("loop_poll_rows_rejected", "Poll rows rejected as invalid, by source.", ["source"])
EVALUATION_DURATION = Histogram(
    "loop_alert_evaluation_duration_seconds",
    "Time of one alert evaluation that ran (a skipped one, with no new data, is not counted).",
    buckets=FAST_BUCKETS,
)
ALERT_CHANGES = Counter("loop_alerts_changed", "Alerts opened and resolved by evaluations.", ["change"])
DELIVERY_ATTEMPTS = Counter(
    "loop_delivery_attempts",
    "Alert delivery attempts by channel kind (webhook, slack, email; unknown: channel deleted) and outcome: "
    "delivered, retrying (a later attempt is due), failed (given up, refused or gone).",
    ["kind", "outcome"],
)
REPORTS = Counter("loop_reports", "Reports finished by a worker, by status (complete, failed).", ["status"])
REPORT_DURATION = Histogram(
    "loop_report_duration_seconds",
    "Time of one report attempt that finished (computed and stored, or failed), by status.",
    ["status"],
    buckets=JOB_BUCKETS,
)
REPORT_ROWS = Counter("loop_report_rows", "Rows (stores) of the reports completed.")
IMPORTS = Counter("loop_imports", "Imports finished by a worker, by status (complete, failed).", ["status"])
IMPORT_DURATION = Histogram(
    "loop_import_duration_seconds",
    "Time of one import attempt that finished, by status.",
    ["status"],
    buckets=JOB_BUCKETS,
)
SCHEDULE_RUNS_MISSED = Counter(
    "loop_schedule_runs_missed", "Scheduled runs that did not happen at their time (report schedules)."
)

# Label values known in advance are created at import, so every series reads 0 before its first event
# (a rule on rate() or a missing series would otherwise stay silent until the first failure).
for _source in ("api", "load"):
    POLLS_INGESTED.labels(_source)
    POLLS_STORED.labels(_source)
    ROWS_REJECTED.labels(_source)
for _status in ("complete", "failed"):
    REPORTS.labels(_status)
    IMPORTS.labels(_status)
for _kind in ("webhook", "slack", "email"):
    for _outcome in ("delivered", "retrying", "failed"):
        DELIVERY_ATTEMPTS.labels(_kind, _outcome)
for _change in ("opened", "resolved"):
    ALERT_CHANGES.labels(_change)


def polls_received(*, source: str, valid: int, stored: int, rejected: int) -> None:
    """A batch or a load: ``valid`` rows read, ``stored`` of them new, ``rejected`` invalid rows."""
    POLLS_INGESTED.labels(source).inc(valid)
    POLLS_STORED.labels(source).inc(stored)
    ROWS_REJECTED.labels(source).inc(rejected)


def evaluation_done(*, seconds: float, opened: int, resolved: int) -> None:
    EVALUATION_DURATION.observe(seconds)
    ALERT_CHANGES.labels("opened").inc(opened)
    ALERT_CHANGES.labels("resolved").inc(resolved)


def delivery_attempted(*, kind: str, outcome: str) -> None:
    DELIVERY_ATTEMPTS.labels(kind or "unknown", outcome).inc()


def report_finished(*, status: str, seconds: float, rows: int = 0) -> None:
    REPORTS.labels(status).inc()
    REPORT_DURATION.labels(status).observe(seconds)
    if rows:
        REPORT_ROWS.inc(rows)


def import_finished(*, status: str, seconds: float) -> None:
    IMPORTS.labels(status).inc()
    IMPORT_DURATION.labels(status).observe(seconds)


def schedule_run_missed(count: int = 1) -> None:
    """For the report schedules (loop/services/schedules.py): runs that did not happen at their time."""
    SCHEDULE_RUNS_MISSED.inc(count)


# --- Workers up: each Celery worker keeps a key in Redis alive (loop.worker_metrics), the web counts them ----
WORKER_KEY_PREFIX = "loop:workers:"


def worker_key(queue_prefix: str, hostname: str) -> str:
    """The heartbeat key of worker ``hostname`` of the deployment whose queues carry ``queue_prefix``."""
    return f"{WORKER_KEY_PREFIX}{queue_prefix or '-'}:{hostname}"


def worker_key_pattern(queue_prefix: str) -> str:
    return f"{WORKER_KEY_PREFIX}{queue_prefix or '-'}:*"
