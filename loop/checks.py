"""The settings' rules, as Django system checks (the one home of what a valid configuration is).

``myproject/settings.py`` only parses the environment; :func:`settings_check` judges the values.
``manage.py`` commands (runserver, migrate, check) run it as a system check; gunicorn and the
Celery worker run none, so ``myproject/wsgi.py``, ``asgi.py`` and ``celery.py`` call
:func:`exit_on_settings_errors` to refuse to start all the same.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from loop.backends import MONGO_SCHEMES
from loop.logs import FORMATS
from loop.rates import parse_rate
from loop.tracing import is_otlp_url

# The tag of the checks below: gunicorn and Celery run only these at start-up.
SETTINGS_TAG = "loop_settings"

# The smallest value each size limit (and job clock) may have: a JSON body under 64 bytes holds nothing useful.
MINIMUMS: dict[str, int] = {
    "API_MAX_BODY_BYTES": 64,
    "INGEST_MAX_BODY_BYTES": 64,
    "IMPORT_MAX_UPLOAD_BYTES": 1,
    "IMPORT_MAX_EXPANDED_BYTES": 1,
    "IMPORT_MAX_COMPRESSION_RATIO": 1,
    # The lost-job clocks: a heartbeat at least every second; 0 lost retries fails a job on its first loss.
    "JOB_HEARTBEAT_SECONDS": 1,
    "JOB_LOST_SECONDS": 2,
    "JOB_LOST_RETRIES": 0,
    # Report shards (loop.sharding): 0 = sized by REPORT_SHARD_STORES; a shard holds at least one store.
    "REPORT_SHARDS": 0,
    "REPORT_SHARD_STORES": 1,
    # 0: a small batch's evaluation and figures are asked for at once.
    "BATCH_FOLLOW_UP_SECONDS": 0,
    # Alerts: D of at least a minute; reminders and staleness in whole minutes; 0 groups every change.
    "ALERT_DOWN_AFTER_MINUTES": 1,
    "ALERT_REPEAT_MINUTES": 1,
    "ALERT_GROUP_THRESHOLD": 0,
    "INGEST_STALE_MINUTES": 1,
    "ALERT_RETENTION_DAYS": 0,
    # Alert deliveries: retried for at least an hour, waits of at least a second, a POST given a second.
    "DELIVERY_MAX_AGE_HOURS": 1,
    "DELIVERY_RETRY_BASE_SECONDS": 1,
    "DELIVERY_RETRY_MAX_SECONDS": 1,
    "DELIVERY_TIMEOUT_SECONDS": 1,
    "EMAIL_PORT": 1,
    # The accounts database: 0 = a connection per request; a connection attempt gets at least a second.
    "DATABASE_CONN_MAX_AGE": 0,
    "DATABASE_CONNECT_TIMEOUT": 1,
    # Dashboard sign-in: a lockout after at least one failure, lasting at least a second.
    "AXES_FAILURE_LIMIT": 1,
    "AXES_COOLOFF_SECONDS": 1,
    # 0 turns the accounts cache off (every request reads the accounts database).
    "ACCOUNTS_CACHE_SECONDS": 0,
    # Scheduled reports: a tick at least every minute's worth of slots, at least one schedule, links a minute.
    "SCHEDULE_TICK_SECONDS": 1,
    "SCHEDULES_MAX": 1,
    "REPORT_LINK_SECONDS": 60,
    "REPORT_EMAIL_GZIP_BYTES": 0,
    "REPORT_EMAIL_MAX_ATTACHMENT_BYTES": 0,
}

NEW_KEY_HINT = (
    "export SECRET_KEY=<a long random string>, e.g. from "
    "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` (or set DEBUG=1 for local development only)."
)


def settings_check(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every rule the configuration must meet, each as one error naming the variable to fix."""
    return [
        *_unparsable_values(),
        *_log_format(),
        *_otlp_endpoint(),
        *_secret_key(),
        *_limits(),
        *_tokens(),
        *_rate_limit(),
        *_mongo_url(),
        *_job_clocks(),
        *_deliveries(),
        *_database_url(),
        *_queues(),
        *_metrics(),
    ]


def exit_on_settings_errors() -> None:
    """Refuse to start (exit status 3) on any settings error: one line per error, no traceback.

    For processes Django runs no checks in (gunicorn, the Celery worker). Status 3 is gunicorn's
    "worker failed to boot", which stops gunicorn instead of restarting the worker forever.
    """
    errors = [message for message in checks.run_checks(tags=[SETTINGS_TAG]) if message.is_serious()]
    if not errors:
        return
    lines = [f"({error.id}) {error.msg}" + (f" HINT: {error.hint}" if error.hint else "") for error in errors]
    sys.stderr.write("Refusing to start: the configuration has errors.\n" + "\n".join(lines) + "\n")
    sys.stderr.flush()
    raise SystemExit(3)


def _unparsable_values() -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"{name} must be {expected}, got {given!r}",
            hint=f"Fix or unset {name} in the environment.",
            id="loop.E001",
        )
        for name, (expected, given) in settings.UNPARSABLE_ENV.items()
    ]


def _log_format() -> list[checks.CheckMessage]:
    if settings.LOG_FORMAT in FORMATS:
        return []
    return [
        checks.Error(
            f"LOG_FORMAT must be one of {', '.join(FORMATS)}, got {settings.LOG_FORMAT!r}",
            hint="LOG_FORMAT=json for one JSON object a line (compose, log collectors), text for a terminal.",
            id="loop.E015",
        )
    ]


def _otlp_endpoint() -> list[checks.CheckMessage]:
    value = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if not value:
        return []
    if is_otlp_url(value):
        return []
    return [
        checks.Error(
            f"OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (or empty: no tracing), got {value!r}",
            hint="The base URL of an OTLP/HTTP receiver, e.g. http://otel-collector:4318 (spans go to /v1/traces).",
            id="loop.E018",
        )
    ]


def _secret_key() -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []
    try:
        secret_key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to read an empty key
        secret_key = ""
    if not secret_key:
        return [checks.Error("SECRET_KEY must be set when DEBUG is off", hint=NEW_KEY_HINT, id="loop.E002")]
    if secret_key == settings.DEV_SECRET_KEY:
        return [
            checks.Error(
                "SECRET_KEY is the public development key; set a random one when DEBUG is off",
                hint=NEW_KEY_HINT,
                id="loop.E003",
            )
        ]
    return []


def _limits() -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"{name} must be at least {minimum}, got {getattr(settings, name)}",
            hint=f"Set {name} to a number of at least {minimum}, or unset it for the default.",
            id="loop.E004",
        )
        for name, minimum in MINIMUMS.items()
        if getattr(settings, name) < minimum
    ]


def _tokens() -> list[checks.CheckMessage]:
    if settings.API_READ_TOKEN and not settings.API_TOKEN:
        return [
            checks.Error(
                "API_READ_TOKEN needs API_TOKEN too (the full-access token for writes)",
                hint="Set API_TOKEN as well, or unset API_READ_TOKEN.",
                id="loop.E005",
            )
        ]
    return []


def _rate_limit() -> list[checks.CheckMessage]:
    try:
        parse_rate(settings.TRIGGER_RATE_LIMIT)
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), hint="For example TRIGGER_RATE_LIMIT=10/minute.", id="loop.E006")]
    return []


def _mongo_url() -> list[checks.CheckMessage]:
    if settings.MONGO_URL.startswith(MONGO_SCHEMES):
        return []
    scheme = settings.MONGO_URL.partition("://")[0]  # never the whole URL: it may hold a password
    return [
        checks.Error(
            f"MONGO_URL must start with one of {', '.join(MONGO_SCHEMES)}, got the scheme {scheme!r}",
            hint="For example MONGO_URL=mongodb://localhost:27017, or mongomock:// for the in-memory store.",
            id="loop.E007",
        )
    ]


def _job_clocks() -> list[checks.CheckMessage]:
    # A job is lost only after it missed at least one heartbeat: a single late write must not re-queue it.
    heartbeat, lost = settings.JOB_HEARTBEAT_SECONDS, settings.JOB_LOST_SECONDS
    if lost >= 2 * heartbeat:
        return []
    return [
        checks.Error(
            f"JOB_LOST_SECONDS ({lost}) must be at least twice JOB_HEARTBEAT_SECONDS ({heartbeat})",
            hint="For example JOB_HEARTBEAT_SECONDS=10 and JOB_LOST_SECONDS=60 (the defaults).",
            id="loop.E008",
        )
    ]


def _deliveries() -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if settings.DELIVERY_RETRY_BASE_SECONDS > settings.DELIVERY_RETRY_MAX_SECONDS:
        problems.append(
            checks.Error(
                f"DELIVERY_RETRY_BASE_SECONDS ({settings.DELIVERY_RETRY_BASE_SECONDS}) must not exceed "
                f"DELIVERY_RETRY_MAX_SECONDS ({settings.DELIVERY_RETRY_MAX_SECONDS})",
                hint="For example DELIVERY_RETRY_BASE_SECONDS=30 and DELIVERY_RETRY_MAX_SECONDS=3600 (the defaults).",
                id="loop.E009",
            )
        )
    if settings.EMAIL_PORT > 65535:
        problems.append(
            checks.Error(
                f"EMAIL_PORT must be a port number (1-65535), got {settings.EMAIL_PORT}",
                hint="For example EMAIL_PORT=587 with EMAIL_USE_TLS=1.",
                id="loop.E010",
            )
        )
    if settings.EMAIL_USE_TLS and settings.EMAIL_USE_SSL:
        problems.append(
            checks.Error(
                "EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive",
                hint="STARTTLS (usually port 587): EMAIL_USE_TLS=1; implicit TLS (usually port 465): EMAIL_USE_SSL=1.",
                id="loop.E011",
            )
        )
    return problems


def _database_url() -> list[checks.CheckMessage]:
    # settings.accounts_database judged the URL (and kept SQLite meanwhile); the URL is never shown.
    if not settings.DATABASE_URL_PROBLEM:
        return []
    return [
        checks.Error(
            f"DATABASE_URL cannot be used: {settings.DATABASE_URL_PROBLEM}",
            hint="For example DATABASE_URL=postgres://loop:<password>@localhost:5432/loop, or unset it for SQLite.",
            id="loop.E012",
        )
    ]


# A queue-name prefix: what Redis keys, Celery's comma-separated queue lists and log lines all take as is.
QUEUE_PREFIX = re.compile(r"[A-Za-z0-9_.:-]+")


def _queues() -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    if settings.CELERY_QUEUE and not QUEUE_PREFIX.fullmatch(settings.CELERY_QUEUE):
        problems.append(
            checks.Error(
                f"CELERY_QUEUE may hold only letters, digits and _ . : -, got {settings.CELERY_QUEUE!r}",
                hint="For example CELERY_QUEUE=staging (queues staging.reports, ...), or unset it (reports, ...).",
                id="loop.E013",
            )
        )
    unknown = [kind for kind in settings.WORKER_QUEUES if kind not in settings.WORKER_KINDS]
    if unknown:
        problems.append(
            checks.Error(
                f"WORKER_QUEUES names unknown kinds {', '.join(map(repr, unknown))}; "
                f"the kinds are {', '.join(settings.WORKER_KINDS)}",
                hint="For example WORKER_QUEUES=reports, or notifications,maintenance (empty: every kind).",
                id="loop.E014",
            )
        )
    return problems


def _metrics() -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    for item in settings.METRICS_OPEN_NETWORKS:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            problems.append(
                checks.Error(
                    f"METRICS_OPEN_NETWORKS holds {item!r}, which is not an address or a network",
                    hint="For example METRICS_OPEN_NETWORKS=127.0.0.1/32,::1/128 (empty: /metrics needs a read key).",
                    id="loop.E016",
                )
            )
    for name in ("WORKER_METRICS_PORT", "BEAT_METRICS_PORT"):
        port = getattr(settings, name)
        if not 0 <= port <= 65535:
            problems.append(
                checks.Error(
                    f"{name} must be a port number (0: none), got {port}",
                    hint=f"For example {name}=9100.",
                    id="loop.E017",
                )
            )
    return problems


def open_access_check(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A deployment (DEBUG off) that lets anyone call every endpoint is allowed, but said out loud."""
    if settings.DEBUG or settings.AUTH_REQUIRED:
        return []
    return [
        checks.Warning(
            "AUTH_REQUIRED is off with DEBUG off: anyone who reaches the service may read, change and delete data",
            hint="Set AUTH_REQUIRED=1 (or API_TOKEN) and sign in with users and API keys (docs/access.md).",
            id="loop.W001",
        )
    ]
