"""Django settings for the store-monitoring service.

Everything that differs between machines comes from the environment (see the
README's configuration table). Django's own tables (users, API keys, sessions,
audit: ``loop.accounts``, ``loop.audit``) live in SQLite, or PostgreSQL when
DATABASE_URL says so; the service's data lives in MongoDB and is reached only
through ``loop.storage``.

This module only parses: whether the values are acceptable is decided by the
system checks in ``loop/checks.py``, which every process runs before it starts.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url

from loop.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# Variables whose text could not be parsed at all: {name: (what was expected, the text given)}.
# The setting keeps its default and loop.checks names each of them (loop.E001).
UNPARSABLE_ENV: dict[str, tuple[str, str]] = {}


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    UNPARSABLE_ENV[name] = ("a boolean (1/0, true/false)", value)
    return default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        UNPARSABLE_ENV[name] = ("an integer", value)
        return default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# DEBUG is on for a developer's checkout; deployments (compose, CI's gunicorn)
# set DEBUG=0, and then a real SECRET_KEY is mandatory (loop.checks refuses the start).
DEBUG = env_bool("DEBUG", True)

DEV_SECRET_KEY = "django-insecure-local-development-only"
# With DEBUG off a missing key stays empty: loop.checks names it, and Django refuses to sign with it.
SECRET_KEY = os.environ.get("SECRET_KEY", "").strip() or (DEV_SECRET_KEY if DEBUG else "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"])


INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's own files, served by WhiteNoise: /api/docs/ needs no CDN (works offline).
    "drf_spectacular_sidecar",
    "loop",
    "loop.accounts",
    # The append-only audit log of every write (docs/audit.md), in Django's own database.
    "loop.audit",
    # Failed dashboard sign-ins counted and locked out (docs/signin.md).
    "axes",
]

MIDDLEWARE = [
    # First: every answer, errors of later middleware included, carries X-Request-ID (loop/request_ids.py).
    "loop.request_ids.RequestIdMiddleware",
    # Requests and their latency by route, method and status for GET /metrics (loop/http_metrics.py).
    "loop.http_metrics.HttpMetricsMiddleware",
    # Server-Timing (auth;dur=...) with SERVER_TIMING on: the bench's view of what authentication costs.
    "loop.api.access.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The dashboard's static files, with DEBUG on or off (gunicorn, compose): see STATIC_* below.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, with a session's user kept per process (loop/accounts/sessions.py, loop/accounts/cache.py).
    "loop.accounts.sessions.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "myproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "myproject.wsgi.application"

# --- Django's own database: users, groups, API keys, sessions, the audit log ---------------------
# DATABASE_URL (postgres://user:password@host:5432/name, or sqlite:////abs/path) selects it; empty means
# SQLite at SQLITE_PATH (`make run`, a single host). A URL that cannot be used keeps SQLite here and is
# named by loop.checks (loop.E012), which refuses the start; the URL itself is never echoed (its password).
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
SQLITE_PATH = env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
# Seconds a connection is kept for the next requests of the same thread (0: one per request; SQLite
# checkpoints its WAL, an fsync, whenever the last connection closes) ...
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 600)
# ... checked before it is reused, so a database restart costs no failed request.
DATABASE_CONN_HEALTH_CHECKS = env_bool("DATABASE_CONN_HEALTH_CHECKS", True)
# PostgreSQL: how long a connection attempt may take before the request answers 503 (libpq's connect_timeout).
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 3)
# The schemes whose driver the image has (psycopg for PostgreSQL; sqlite3 is in Python).
DATABASE_SCHEMES = ("postgres", "postgresql", "sqlite")


def accounts_database(
    *, url: str, sqlite_path: str, conn_max_age: int, health_checks: bool, connect_timeout: int
) -> tuple[dict[str, Any], str]:
    """Django's ``DATABASES["default"]`` for ``url`` (empty: SQLite at ``sqlite_path``), and why ``url``
    cannot be used ("" when it can; the SQLite default is returned when it cannot)."""
    database: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_path}
    problem = ""
    if url:
        parsed, problem = _parse_database_url(url)
        database = parsed or database
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # Several gunicorn processes and threads write (audit rows, sessions): WAL lets readers go on
        # while one writes, and with synchronous=NORMAL a commit needs no fsync (a power cut may lose the
        # last commits, never corrupt the file); a writer waits up to 20 s for the lock instead of failing
        # at once, and IMMEDIATE takes that lock when a transaction starts (no deadlock upgrading a read lock).
        database["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        }
    else:
        database["OPTIONS"] = {"connect_timeout": connect_timeout, **database.get("OPTIONS", {})}
    database["CONN_MAX_AGE"] = conn_max_age
    database["CONN_HEALTH_CHECKS"] = health_checks
    return database, problem


def _parse_database_url(url: str) -> tuple[dict[str, Any] | None, str]:
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in DATABASE_SCHEMES:
        # Only a scheme-like text is echoed: anything else may be part of a password.
        shown = f" {scheme!r}" if separator and scheme.isascii() and scheme.isalnum() else ""
        return None, f"its scheme{shown} is not postgres://, postgresql:// or sqlite:///"
    try:
        parsed = dict(dj_database_url.parse(url))
    except ValueError:
        return None, "it is not a valid URL (quote special characters of the password: @ as %40, / as %2F)"
    if not parsed.get("NAME"):
        return None, "it names no database (postgres://user:password@host:5432/<name>)"
    return parsed, ""


_default_database, DATABASE_URL_PROBLEM = accounts_database(
    url=DATABASE_URL,
    sqlite_path=SQLITE_PATH,
    conn_max_age=DATABASE_CONN_MAX_AGE,
    health_checks=DATABASE_CONN_HEALTH_CHECKS,
    connect_timeout=DATABASE_CONNECT_TIMEOUT,
)
DATABASES = {"default": _default_database}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# WhiteNoise serves the dashboard's files (loop/static/) straight from the app's static folders, so
# `make run`, gunicorn with DEBUG=0 and the compose image need no collectstatic step. The files are
# few and small; they are indexed once when the process starts. STATIC_ROOT only for an operator
# who wants `collectstatic` (e.g. behind another web server).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = os.environ.get("STATIC_ROOT", "").strip() or None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The API takes tiny JSON bodies; anything bigger is refused (413) before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 4096)
# POST /store_status/ (a batch of polls, CSV or JSON) has its own limit: the default, 8 MiB,
# holds an hour of polls of a 50K-store fleet (~50K rows of ~70 bytes). Its parsers read
# the stream themselves, so DATA_UPLOAD_MAX_MEMORY_SIZE does not apply to it.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 8 * 1024 * 1024)
# POST /imports/ (multipart uploads of the Loop CSVs or a .zip, streamed into GridFS, never held in
# memory): the largest body accepted (a larger Content-Length is refused unread, 413). The Loop-2025
# set is ~140 MB of CSVs (~30 MB zipped).
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
# A zip's usable members may expand to at most this many bytes in all (zip bombs), and each at most
# IMPORT_MAX_COMPRESSION_RATIO times its compressed size (CSV compresses ~5-10x; deflate bombs ~1000x).
IMPORT_MAX_EXPANDED_BYTES = env_int("IMPORT_MAX_EXPANDED_BYTES", 2 * 1024 * 1024 * 1024)
IMPORT_MAX_COMPRESSION_RATIO = env_int("IMPORT_MAX_COMPRESSION_RATIO", 100)
# An import Running with no progress recorded for this long is reported as Failed (worker lost).
IMPORT_STALE_SECONDS = env_int("IMPORT_STALE_SECONDS", 30 * 60)
# Where the worker expands an upload while loading it (empty: the system's temporary folder).
IMPORT_TMP_DIR = env_str("IMPORT_TMP_DIR", "")
# Requests that fail the CSRF check (only non-API URLs can) get a JSON 403, not Django's HTML page.
CSRF_FAILURE_VIEW = "loop.api.errors.csrf_failure_view"


# --- MongoDB (all access goes through loop.storage) -------------------------
# MONGO_URL=mongomock:// selects an in-process mongomock client (demo, unit tests).
MONGO_URL = env_str("MONGO_URL", "mongodb://localhost:27017")
MONGO_DB = env_str("MONGO_DB", "store")
MONGO_TIMEOUT_MS = env_int("MONGO_TIMEOUT_MS", 5000)


# --- Celery -----------------------------------------------------------------
# CELERY_BROKER_URL=memory:// is the embedded mode: reports run on a thread pool
# inside the web process, no broker and no separate worker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://localhost:6379/0")
# Report state lives in MongoDB's report_table, so no result backend is needed.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# --- Queues: one per kind of work, so an alert delivery never waits behind a report or an import.
# Workers are started per kind (WORKER_QUEUES below; `make worker`, compose's worker-* services). The
# kinds and what each gets (the one home of routing; tests/test_queues.py checks every task has a kind):
#   reports        the report task and every report_* task (shards, joins): long, CPU-bound
#   imports        POST /imports/ loads: long, I/O- and CPU-bound
#   notifications  alert evaluations, reminders, deliveries and the due-delivery sweep: short, latency-bound
#   maintenance    poll compaction (readers' speed), retention clean-ups, the lost-job sweep; also the
#                  default queue, so a task nobody routed still reaches a worker, never a notification's
WORKER_KINDS = ("reports", "imports", "notifications", "maintenance")
# CELERY_QUEUE names the set: empty (the default) gives the queues reports, imports, notifications and
# maintenance; "x" gives x.reports, x.imports, ... (the tests run each stack on queues of its own this way).
CELERY_QUEUE = env_str("CELERY_QUEUE", "")
CELERY_QUEUE_NAMES = {kind: f"{CELERY_QUEUE}.{kind}" if CELERY_QUEUE else kind for kind in WORKER_KINDS}
# Each queue with an exchange of its own name (what Celery makes for a queue it creates itself); no kombu
# import here, so the offline command stays free of Celery.
CELERY_TASK_QUEUES = {
    name: {"exchange": name, "exchange_type": "direct", "routing_key": name} for name in CELERY_QUEUE_NAMES.values()
}
CELERY_TASK_DEFAULT_QUEUE = CELERY_QUEUE_NAMES["maintenance"]
_TASK_KINDS = {
    "reports": ("loop.tasks.generate_report_task", "loop.tasks.report_*"),
    "imports": ("loop.tasks.import_task",),
    "notifications": (
        "loop.tasks.evaluate_alerts_task",
        "loop.tasks.alert_reminders_task",
        "loop.tasks.send_delivery_task",
        "loop.tasks.send_due_deliveries_task",
    ),
    "maintenance": (
        "loop.tasks.compact_polls_task",
        "loop.tasks.recover_lost_jobs_task",
        "loop.tasks.remove_old_job_claims_task",
        "loop.tasks.remove_orphan_parts_task",
        "loop.tasks.remove_old_reports_task",
        "loop.tasks.remove_abandoned_uploads_task",
        "loop.tasks.remove_old_alerts_task",
        # Report schedules: the tick (claims, starts the reports) and a run's follow-up (its delivery, once
        # the report is done): short, and never behind a report.
        "loop.tasks.run_due_schedules_task",
        "loop.tasks.finish_schedule_run_task",
        # Daily figures (docs/history.md): the changes of writes applied after them; never behind a report.
        "loop.tasks.update_history_task",
    ),
}
# Exact names first, then the globs (Celery's MapRoute).
CELERY_TASK_ROUTES = {
    task: {"queue": CELERY_QUEUE_NAMES[kind]} for kind, tasks in _TASK_KINDS.items() for task in tasks
}
# The kinds a worker started in this environment consumes (comma-separated; empty: every kind). Read by
# myproject/celery.py when a worker starts, instead of Celery's -Q (which takes queue names, not kinds).
WORKER_QUEUES = tuple(kind.strip() for kind in os.environ.get("WORKER_QUEUES", "").split(",") if kind.strip())
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A worker that dies mid-report must not lose it: ack only after the task ends,
# requeue when the worker process is lost, and take one message at a time (per pool process: a worker
# holds at most --concurrency messages, so what it has not started stays in Redis for another worker).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # An unacked message (worker killed) is redelivered after this many seconds; it must
    # come back before the stale rule (REPORT_STALE_SECONDS, 30 min) fails the report.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 15 * 60),
    # Sweep for lost workers' messages every 10 s, not only on every 10th restore call.
    "unacked_restore_throttle": 1,
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
}
# Publishing must fail fast when Redis is down so the API can answer 503.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

# Embedded mode: how many reports run at once in the in-process pool.
EMBEDDED_WORKER_THREADS = env_int("EMBEDDED_WORKER_THREADS", 2)
# Task retries when MongoDB cannot be reached (then the report is marked Failed).
REPORT_TASK_MAX_RETRIES = env_int("REPORT_TASK_MAX_RETRIES", 5)
REPORT_TASK_RETRY_BACKOFF = env_int("REPORT_TASK_RETRY_BACKOFF", 2)
# Cap (seconds) of the exponential backoff while MongoDB is unreachable.
REPORT_TASK_RETRY_BACKOFF_MAX = env_int("REPORT_TASK_RETRY_BACKOFF_MAX", 60)
# A report still Running after this long is reported as Failed (stale).
REPORT_STALE_SECONDS = env_int("REPORT_STALE_SECONDS", 30 * 60)
# A report in shards (loop.sharding, docs/architecture.md): one task per contiguous range of store ids, then a
# join; more workers make a report faster, with the same CSV. 0 = as many as the stores need at
# REPORT_SHARD_STORES per shard (bounded memory per task); 1 = one task per report; N = N shards.
REPORT_SHARDS = env_int("REPORT_SHARDS", 0)
REPORT_SHARD_STORES = env_int("REPORT_SHARD_STORES", 50_000)
# Finished reports (and their CSVs) older than this are removed by the beat task; 0 keeps them forever.
REPORT_RETENTION_DAYS = env_int("REPORT_RETENTION_DAYS", 30)
# A worker running a report or an import writes a heartbeat on it this often (seconds) ...
JOB_HEARTBEAT_SECONDS = env_int("JOB_HEARTBEAT_SECONDS", 10)
# ... and a Running job whose heartbeat is older than this is "worker lost": queued again (not after the
# broker's visibility timeout, 15 min) ...
JOB_LOST_SECONDS = env_int("JOB_LOST_SECONDS", 60)
# ... at most this many times; the next loss fails it (a job that kills its worker every time).
JOB_LOST_RETRIES = env_int("JOB_LOST_RETRIES", 2)

# A small POST /store_status/ batch asks for its alert evaluation and daily figures this many seconds later,
# one request for every batch meanwhile (loop.queue.send_follow_up): under a stream of batches the worker
# evaluates about once per this many seconds instead of after each, and leaves the cores to the batches.
# 0: at once after every batch.
BATCH_FOLLOW_UP_SECONDS = env_int("BATCH_FOLLOW_UP_SECONDS", 2)

# Alerts (docs/alerts.md): a store observed inactive in its business hours this many minutes is down (D) ...
ALERT_DOWN_AFTER_MINUTES = env_int("ALERT_DOWN_AFTER_MINUTES", 30)
# ... an open, unacknowledged alert is sent again this often (wall clock) ...
ALERT_REPEAT_MINUTES = env_int("ALERT_REPEAT_MINUTES", 240)
# ... and an evaluation that opens (or resolves) more alerts than this sends one grouped message instead.
ALERT_GROUP_THRESHOLD = env_int("ALERT_GROUP_THRESHOLD", 20)
# No poll written for this long (wall clock): one ingestion.stale message (and ingestion.resumed after).
INGEST_STALE_MINUTES = env_int("INGEST_STALE_MINUTES", 90)
# Alert history kept this many days before the data clock (whole days, never one with an open alert); 0 keeps all.
ALERT_RETENTION_DAYS = env_int("ALERT_RETENTION_DAYS", 90)
# --- Alert channels (loop/services/deliveries.py) ------------------------------------
# Webhook and Slack URLs whose host resolves to a private, loopback, link-local, reserved or multicast
# address are refused (at creation and at every send) unless this is on (receivers inside our network).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
# A delivery is retried (timeouts, connection errors, 5xx, 429) for this long, then it is failed.
DELIVERY_MAX_AGE_HOURS = env_int("DELIVERY_MAX_AGE_HOURS", 24)
# The wait after failed attempt n is min(DELIVERY_RETRY_MAX_SECONDS, DELIVERY_RETRY_BASE_SECONDS * 2**(n-1)),
# less a random part of up to half of it.
DELIVERY_RETRY_BASE_SECONDS = env_int("DELIVERY_RETRY_BASE_SECONDS", 30)
DELIVERY_RETRY_MAX_SECONDS = env_int("DELIVERY_RETRY_MAX_SECONDS", 3600)
# Connect and read timeout of one webhook or Slack POST (and of the SMTP connection).
DELIVERY_TIMEOUT_SECONDS = env_int("DELIVERY_TIMEOUT_SECONDS", 10)
# E-mail channels: Django's backend (the console backend prints mails to the worker's log).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "").strip()
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "").strip()
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = DELIVERY_TIMEOUT_SECONDS
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "store-monitoring@localhost")

# --- Scheduled reports (docs/schedules.md) ---------------------------------------------------------
# How often beat asks a worker to run the schedules' due slots (seconds); a slot runs at most this late.
SCHEDULE_TICK_SECONDS = env_int("SCHEDULE_TICK_SECONDS", 15)
# How many schedules may exist (the tick reads them all).
SCHEDULES_MAX = env_int("SCHEDULES_MAX", 100)
# How long a delivered report's signed download link works (seconds; default 7 days).
REPORT_LINK_SECONDS = env_int("REPORT_LINK_SECONDS", 7 * 86400)
# E-mail channels get the CSV attached, gzipped when larger than this, and no attachment (the link only)
# when even the gzipped file is larger than REPORT_EMAIL_MAX_ATTACHMENT_BYTES.
REPORT_EMAIL_GZIP_BYTES = env_int("REPORT_EMAIL_GZIP_BYTES", 1024 * 1024)
REPORT_EMAIL_MAX_ATTACHMENT_BYTES = env_int("REPORT_EMAIL_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)

# celery beat (one process: `make beat`, compose's beat service) sends these to the workers. The lost-job
# sweep also runs on every read of a job, so a deployment without beat still recovers its polled jobs.
CELERY_BEAT_SCHEDULE = {
    "remove-old-reports": {"task": "loop.tasks.remove_old_reports_task", "schedule": 3600.0},
    "remove-abandoned-uploads": {"task": "loop.tasks.remove_abandoned_uploads_task", "schedule": 3600.0},
    # Every 30 s; a sweep nobody took within 25 s is dropped (the next one comes anyway).
    "recover-lost-jobs": {"task": "loop.tasks.recover_lost_jobs_task", "schedule": 30.0, "options": {"expires": 25}},
    "remove-old-job-claims": {"task": "loop.tasks.remove_old_job_claims_task", "schedule": 3600.0},
    "remove-orphan-parts": {"task": "loop.tasks.remove_orphan_parts_task", "schedule": 3600.0},
    # Safety net: the web processes ask for a compaction after small batches (loop.queue).
    "compact-polls": {"task": "loop.tasks.compact_polls_task", "schedule": 60.0},
    # Alerts: a safety-net evaluation (a lost request after a write), then reminders and the feed's staleness.
    "evaluate-alerts": {"task": "loop.tasks.evaluate_alerts_task", "schedule": 60.0, "options": {"expires": 55}},
    "alert-reminders": {"task": "loop.tasks.alert_reminders_task", "schedule": 60.0, "options": {"expires": 55}},
    "remove-old-alerts": {"task": "loop.tasks.remove_old_alerts_task", "schedule": 3600.0},
    # Report schedules: the newest due slot of each (a unique claim per slot: two beats make one run).
    "run-due-schedules": {
        "task": "loop.tasks.run_due_schedules_task",
        "schedule": float(max(1, SCHEDULE_TICK_SECONDS)),
        "options": {"expires": max(1, SCHEDULE_TICK_SECONDS - 1)},
    },
    # Daily figures: a safety-net update (a lost request after a write; loop.services.history).
    "update-history": {"task": "loop.tasks.update_history_task", "schedule": 60.0, "options": {"expires": 55}},
    # Alert deliveries whose task was never queued (broker down) or whose retry is due (loop.services.deliveries).
    "send-due-deliveries": {
        "task": "loop.tasks.send_due_deliveries_task",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
}


# --- API ----------------------------------------------------------------------
# Optional static token that may do everything (a bootstrap admin, `token:API_TOKEN`); setting it turns
# AUTH_REQUIRED on by default. Users and API keys are the better way (docs/access.md).
API_TOKEN = os.environ.get("API_TOKEN", "").strip()
# Optional static read token (the read scope: reads and triggers reports; 403 on ingestion, the PUTs and
# the DELETEs). Needs API_TOKEN (someone must write).
API_READ_TOKEN = os.environ.get("API_READ_TOKEN", "").strip()
# POST /trigger_report/ per client address, e.g. "10/minute", "100/hour"; "0" or an
# empty value disables it. Counted in Redis when the broker is Redis (shared by all
# gunicorn workers), in the process otherwise.
TRIGGER_RATE_LIMIT = os.environ.get("TRIGGER_RATE_LIMIT", "60/minute").strip()

# --- Accounts: who may call what (loop/accounts, loop/api/access.py, docs/access.md) ---
# Every API route needs a signed-in user, an API key or a static token; off: the service is open to anyone
# (the `make run` demo). On by default when API_TOKEN is set, as before.
AUTH_REQUIRED = env_bool("AUTH_REQUIRED", bool(API_TOKEN))
# Keys are stored as HMAC-SHA256 keyed with a key derived from this; set it apart from SECRET_KEY to rotate
# SECRET_KEY without voiding every API key.
KEY_HASH_SECRET = os.environ.get("KEY_HASH_SECRET", "").strip() or SECRET_KEY
# A key's last_used_at is written at most this often (seconds): no write per request.
KEY_LAST_USED_INTERVAL = env_int("KEY_LAST_USED_INTERVAL", 300)
# Keys, sessions and their users are kept per process this long at most (seconds; 0: read the database on
# every request). Every change empties them in every process at once through Redis (loop/accounts/cache.py);
# this only bounds an entry's life should that message be lost. Without a Redis broker nothing is kept.
ACCOUNTS_CACHE_SECONDS = env_int("ACCOUNTS_CACHE_SECONDS", 60)
# Answers carry `Server-Timing: auth;dur=<ms>` (time spent authenticating): `make bench-load --auth` sets it.
# Off by default: it tells a client how long its credentials took to check.
SERVER_TIMING = env_bool("SERVER_TIMING", False)

# --- Metrics (GET /metrics, docs/operations.md#metrics) ------------------------------------------
# Off: no request or task is counted (the HTTP middleware and the task signals step aside; `make bench-metrics`
# compares); GET /metrics still answers what is read at scrape time.
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
# GET /metrics needs the read capability (a read key); scrapes whose socket address (never X-Forwarded-For) is in
# these networks need none, e.g. "127.0.0.1/32,::1/128" for a Prometheus on the same host. Empty: a key always.
# Behind a proxy on the same host every request comes from loopback: then leave this empty.
METRICS_OPEN_NETWORKS = env_list("METRICS_OPEN_NETWORKS", [])
# Seconds a web process keeps the figures a scrape reads from MongoDB and Redis (a few _id reads).
METRICS_CACHE_SECONDS = env_int("METRICS_CACHE_SECONDS", 5)
# A Celery worker serves its own /metrics (its main process and its pool) on this port; 0: none. `make worker`
# gives its workers this port and the next ones. Each worker also writes a heartbeat to Redis every
# WORKER_HEARTBEAT_SECONDS (the web's loop_workers_up), with or without a port.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)
# celery beat's /metrics (the periodic tasks it sent); 0: none.
BEAT_METRICS_PORT = env_int("BEAT_METRICS_PORT", 0)
# The address the worker's and beat's exporters listen on (compose: 0.0.0.0, inside its network).
METRICS_BIND_ADDRESS = env_str("METRICS_BIND_ADDRESS", "127.0.0.1")
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 15)

# --- Dashboard sign-in (docs/signin.md) ---------------------------------------------
# Django's login with a session cookie; with AUTH_REQUIRED the dashboard pages send an anonymous visitor here.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTHENTICATION_BACKENDS = [
    # django-axes first: a locked-out attempt is refused before any password is checked.
    "loop.accounts.signin.LoginAttemptBackend",
    # Django's ModelBackend, reading a session's user and role groups in one query (loop/accounts/signin.py).
    "loop.accounts.signin.AccountsBackend",
]
# Django's database sessions, each request's session row read by one plain query (loop/accounts/sessions.py).
SESSION_ENGINE = "loop.accounts.sessions"
AXES_ENABLED = env_bool("AXES_ENABLED", True)
# This many failed sign-ins for one username, or from one client address, lock that username or address
# (each on its own) for AXES_COOLOFF_SECONDS, counted from the failure that locked it.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_SECONDS = env_int("AXES_COOLOFF_SECONDS", 15 * 60)
AXES_COOLOFF_TIME = timedelta(seconds=AXES_COOLOFF_SECONDS)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Tries during a lockout do not extend it: the window ends when it said it would.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client address as the rate limit reads it (X-Forwarded-For only behind NUM_PROXIES trusted proxies).
AXES_CLIENT_IP_CALLABLE = "loop.accounts.signin.client_address"
# The sign-in page again, with "too many attempts" and status 429 (never saying whether the user exists).
AXES_LOCKOUT_CALLABLE = "loop.dashboard.locked_out"
# No start-up banner in every process and command's output (failures and lockouts are still logged).
AXES_VERBOSE = False

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["loop.api.parsers.LimitedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["loop.api.access.PrincipalAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["loop.api.access.CapabilityAccess"],
    "UNAUTHENTICATED_USER": None,
    # Client address for the rate limit: X-Forwarded-For is believed only behind
    # this many trusted proxies (0: use the socket address, which cannot be forged).
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "EXCEPTION_HANDLER": "loop.api.errors.json_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# Where clients reach the API: the schema's `servers` entry (Postman's base URL, Swagger UI's
# "Try it out"). `make run PORT=...` sets it to its own port.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")

SPECTACULAR_SETTINGS = {
    "TITLE": "Loop store monitoring API",
    "DESCRIPTION": (
        "Trigger an uptime/downtime report over all stores, then poll for it; send live polls "
        "(POST /store_status/) and stores' hours and zones, or upload whole CSV files or a Loop .zip "
        "(POST /imports/, multipart; poll GET /imports/<id>/). "
        "Reports are computed by a Celery worker from the polls in MongoDB. "
        "When the server sets AUTH_REQUIRED (on with API_TOKEN), every endpoint except /health/ and these docs "
        "needs `Authorization: Bearer <API key or token>` or a signed-in session; each endpoint needs one "
        "capability (read, ingest, operate, admin) of the caller's role or key scope (docs/access.md), else 403. "
        "POST /trigger_report/ is rate limited per client "
        "(TRIGGER_RATE_LIMIT; 429 with Retry-After)."
    ),
    "VERSION": "1.0.0",
    "SERVERS": [{"url": PUBLIC_BASE_URL, "description": "this service (PUBLIC_BASE_URL)"}],
    # Swagger UI from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # validatorUrl null: no badge image fetched from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SERVE_INCLUDE_SCHEMA": False,
    # Several serializers have a "status" choice field: name each set once in the schema. Literal
    # lists keep settings light; tests/test_schema_enums.py checks they match the rule homes.
    "ENUM_NAME_OVERRIDES": {
        "ReportStatusEnum": ["Running", "Complete", "Failed"],
        "HealthStatusEnum": ["ok", "unavailable"],
        "PollStatusEnum": ["active", "inactive"],
        "ReportFormatEnum": ["loop", "extended"],
        "ReportPhaseEnum": ["queued", "reading", "computing", "storing", "shards", "joining", "worker lost"],
        "ImportPhaseEnum": ["queued", "unpacking", "loading", "done", "worker lost"],
        "DeliveryStatusEnum": ["pending", "delivered", "failed"],
        "ChannelKindEnum": ["webhook", "slack", "email"],
        "WindowKindEnum": ["one_off", "weekly"],
    },
    # The schema and Swagger UI stay readable without the API token.
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# Logs (docs/operations.md#logs): "text" (time LEVEL logger: message [request_id=...]) for a terminal,
# "json" (one object a line: time, level, logger, event, request_id, ...) for compose and the image.
# Anything else keeps text and is refused by loop.checks (loop.E015).
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
# The lines written per request (the access line, loop.access) and per task (sent, started, finished):
# 0 quiets them (warnings and errors still show); `make bench-ops` compares with them and without.
LOG_ACCESS = env_bool("LOG_ACCESS", True)
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"), LOG_ACCESS)

# Tracing (loop/tracing.py, docs/operations.md#tracing): the base URL of an OTLP/HTTP receiver (spans go to
# <url>/v1/traces), e.g. http://otel-collector:4318; empty (the default): off, nothing instrumented.
# An http(s) URL or nothing (loop.E018).
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
