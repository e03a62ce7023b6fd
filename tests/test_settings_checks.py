"""The settings' system checks (loop/checks.py), from the environment a process starts with.

Settings are read once per process, so each case runs ``manage.py check`` in a subprocess with a
chosen environment: the path a deployment takes (environment -> settings -> check).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import environment_without_config

ROOT = Path(__file__).resolve().parent.parent
# A production-like configuration that every check accepts; each case changes one thing.
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "a-private-key-" + "x" * 40, "ALLOWED_HOSTS": "monitor.example"}
KEY_HINT = "export SECRET_KEY=<a long random string>"


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = environment_without_config()
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def loop_messages(env: dict[str, str]) -> list[str]:
    proc = manage(env, "check", "--tag", "loop_settings")
    lines = [line.removeprefix("?: ") for line in proc.stderr.splitlines() if line.startswith("?: (loop.")]
    assert (proc.returncode != 0) == any(line.startswith("(loop.E") for line in lines), proc.stderr
    return lines


def test_a_production_configuration_passes() -> None:
    assert loop_messages(PRODUCTION) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"DEBUG": "maybe"}, "DEBUG must be a boolean (1/0, true/false), got 'maybe'", id="bool"),
        pytest.param({"API_MAX_BODY_BYTES": "big"}, "API_MAX_BODY_BYTES must be an integer, got 'big'", id="int"),
        pytest.param(
            {"INGEST_MAX_BODY_BYTES": "8MB"}, "INGEST_MAX_BODY_BYTES must be an integer, got '8MB'", id="unit"
        ),
        pytest.param(
            {"REPORT_STALE_SECONDS": "30min"}, "REPORT_STALE_SECONDS must be an integer, got '30min'", id="any-int"
        ),
    ],
)
def test_e001_a_value_that_cannot_be_parsed(change: dict[str, str], message: str) -> None:
    assert loop_messages({**PRODUCTION, **change}) == [f"(loop.E001) {message}"]


@pytest.mark.parametrize("key", [None, "   "])
def test_e002_debug_off_needs_a_secret_key(key: str | None) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    if key is not None:
        env["SECRET_KEY"] = key
    assert loop_messages(env) == ["(loop.E002) SECRET_KEY must be set when DEBUG is off"]
    assert KEY_HINT in manage(env, "check").stderr


def test_e002_debug_on_without_a_key_uses_the_development_key() -> None:
    assert loop_messages({"DEBUG": "1"}) == []


def test_e003_debug_off_refuses_the_public_development_key() -> None:
    env = {**PRODUCTION, "SECRET_KEY": "django-insecure-local-development-only"}
    assert loop_messages(env) == [
        "(loop.E003) SECRET_KEY is the public development key; set a random one when DEBUG is off"
    ]


@pytest.mark.parametrize(
    ("name", "value", "minimum"),
    [
        ("API_MAX_BODY_BYTES", "63", 64),
        ("INGEST_MAX_BODY_BYTES", "10", 64),
        ("IMPORT_MAX_UPLOAD_BYTES", "0", 1),
        ("IMPORT_MAX_EXPANDED_BYTES", "0", 1),
        ("IMPORT_MAX_COMPRESSION_RATIO", "-5", 1),
        ("JOB_HEARTBEAT_SECONDS", "0", 1),
        ("JOB_LOST_RETRIES", "-1", 0),
        ("REPORT_SHARDS", "-1", 0),
        ("REPORT_SHARD_STORES", "0", 1),
        ("DELIVERY_MAX_AGE_HOURS", "0", 1),
        ("DELIVERY_TIMEOUT_SECONDS", "0", 1),
        ("EMAIL_PORT", "0", 1),
        ("DATABASE_CONNECT_TIMEOUT", "0", 1),
        ("DATABASE_CONN_MAX_AGE", "-1", 0),
        ("AXES_FAILURE_LIMIT", "0", 1),
        ("AXES_COOLOFF_SECONDS", "0", 1),
    ],
)
def test_e004_limits_below_their_minimum(name: str, value: str, minimum: int) -> None:
    assert loop_messages({**PRODUCTION, name: value}) == [f"(loop.E004) {name} must be at least {minimum}, got {value}"]
    assert loop_messages({**PRODUCTION, name: str(minimum)}) == []


def test_e005_a_read_token_needs_the_full_token() -> None:
    assert loop_messages({**PRODUCTION, "API_READ_TOKEN": "reader"}) == [
        "(loop.E005) API_READ_TOKEN needs API_TOKEN too (the full-access token for writes)"
    ]
    assert loop_messages({**PRODUCTION, "API_READ_TOKEN": "reader", "API_TOKEN": "writer"}) == []


def test_e006_trigger_rate_limit_syntax() -> None:
    assert loop_messages({**PRODUCTION, "TRIGGER_RATE_LIMIT": "lots"}) == [
        "(loop.E006) TRIGGER_RATE_LIMIT must look like '10/minute' (or 0 to disable), got 'lots'"
    ]
    assert loop_messages({**PRODUCTION, "TRIGGER_RATE_LIMIT": "0"}) == []


def test_e007_mongo_url_scheme_without_its_password() -> None:
    messages = loop_messages({**PRODUCTION, "MONGO_URL": "http://user:s3cret@db:27017"})
    assert messages == [
        "(loop.E007) MONGO_URL must start with one of mongodb://, mongodb+srv://, mongomock://, got the scheme 'http'"
    ]
    assert loop_messages({**PRODUCTION, "MONGO_URL": "mongodb+srv://user:pw@cluster.example/"}) == []


def test_e008_a_job_is_lost_only_after_a_missed_heartbeat() -> None:
    assert loop_messages({**PRODUCTION, "JOB_HEARTBEAT_SECONDS": "10", "JOB_LOST_SECONDS": "15"}) == [
        "(loop.E008) JOB_LOST_SECONDS (15) must be at least twice JOB_HEARTBEAT_SECONDS (10)"
    ]
    assert loop_messages({**PRODUCTION, "JOB_HEARTBEAT_SECONDS": "1", "JOB_LOST_SECONDS": "2"}) == []


def test_e001_webhook_allow_private_is_a_boolean() -> None:
    assert loop_messages({**PRODUCTION, "WEBHOOK_ALLOW_PRIVATE": "maybe"}) == [
        "(loop.E001) WEBHOOK_ALLOW_PRIVATE must be a boolean (1/0, true/false), got 'maybe'"
    ]
    assert loop_messages({**PRODUCTION, "WEBHOOK_ALLOW_PRIVATE": "1"}) == []


def test_e009_the_retry_base_does_not_exceed_its_cap() -> None:
    env = {**PRODUCTION, "DELIVERY_RETRY_BASE_SECONDS": "600", "DELIVERY_RETRY_MAX_SECONDS": "60"}
    assert loop_messages(env) == [
        "(loop.E009) DELIVERY_RETRY_BASE_SECONDS (600) must not exceed DELIVERY_RETRY_MAX_SECONDS (60)"
    ]
    assert loop_messages({**env, "DELIVERY_RETRY_MAX_SECONDS": "600"}) == []


def test_e010_e011_email_port_and_tls() -> None:
    assert loop_messages({**PRODUCTION, "EMAIL_PORT": "70000"}) == [
        "(loop.E010) EMAIL_PORT must be a port number (1-65535), got 70000"
    ]
    assert loop_messages({**PRODUCTION, "EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}) == [
        "(loop.E011) EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive"
    ]
    assert loop_messages({**PRODUCTION, "EMAIL_PORT": "587", "EMAIL_USE_TLS": "1"}) == []


def test_e012_a_database_url_that_cannot_be_used_is_named_without_its_password() -> None:
    # every reason is in tests/test_accounts_db_settings.py; here the path from the environment to the refusal
    env = {**PRODUCTION, "DATABASE_URL": "mysql://loop:s3cret@db/loop"}
    proc = manage(env, "check")
    assert proc.returncode != 0
    assert (
        "?: (loop.E012) DATABASE_URL cannot be used: its scheme 'mysql' is not postgres://, postgresql:// or sqlite:///"
        in (proc.stderr)
    )
    assert "s3cret" not in proc.stdout + proc.stderr
    # `check` opens no connection: a PostgreSQL URL passes without a server behind it
    assert loop_messages({**PRODUCTION, "DATABASE_URL": "postgres://loop:pw@db:5432/loop"}) == []


def test_e015_log_format_is_text_or_json() -> None:
    assert loop_messages({**PRODUCTION, "LOG_FORMAT": "JSON"}) == []  # read in any case
    assert loop_messages({**PRODUCTION, "LOG_FORMAT": "xml"}) == [
        "(loop.E015) LOG_FORMAT must be one of text, json, got 'xml'"
    ]


def test_e001_log_access_is_a_boolean() -> None:
    assert loop_messages({**PRODUCTION, "LOG_ACCESS": "0"}) == []
    assert loop_messages({**PRODUCTION, "LOG_ACCESS": "quiet"}) == [
        "(loop.E001) LOG_ACCESS must be a boolean (1/0, true/false), got 'quiet'"
    ]


def test_e018_the_otlp_endpoint_is_an_http_url_or_empty() -> None:
    assert loop_messages({**PRODUCTION, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}) == []
    assert loop_messages({**PRODUCTION, "OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4318"}) == [
        "(loop.E018) OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (or empty: no tracing), "
        "got 'otel-collector:4318'"
    ]


def test_every_error_is_reported_at_once() -> None:
    env = {"DEBUG": "0", "API_READ_TOKEN": "reader", "INGEST_MAX_BODY_BYTES": "1", "TRIGGER_RATE_LIMIT": "x"}
    ids = [message.split(")")[0] + ")" for message in loop_messages(env)]
    assert ids == ["(loop.E002)", "(loop.E004)", "(loop.E005)", "(loop.E006)"]


def test_check_deploy_passes_on_a_production_configuration() -> None:
    proc = manage({**PRODUCTION, "AUTH_REQUIRED": "1"}, "check", "--deploy")
    assert proc.returncode == 0, proc.stderr
    assert "loop." not in proc.stderr + proc.stdout


def test_check_deploy_warns_when_anyone_may_call_the_api() -> None:
    proc = manage(PRODUCTION, "check", "--deploy")  # DEBUG off, no API_TOKEN, AUTH_REQUIRED unset: open
    assert proc.returncode == 0, proc.stderr  # a warning, not a refusal
    assert "(loop.W001) AUTH_REQUIRED is off with DEBUG off" in proc.stderr
    assert "loop.W001" not in manage({**PRODUCTION, "API_TOKEN": "t" * 30}, "check", "--deploy").stderr
