"""What the integration tests share besides fixtures: where the servers are, the skip-or-fail
rule, the session's ``Stack`` handle and the generated ``Dataset``.

Kept out of tests/integration/conftest.py so test modules import plain helpers, never the
conftest (pytest imports that under another name, so importing it again runs it twice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
import redis
import requests
from pymongo import MongoClient
from pymongo.database import Database

from loop.datagen import generate_dataset
from tests.support.polling import http_report, wait_for_report
from tests.support.processes import Web, Worker, run_manage, start_celery_worker, start_gunicorn

MONGO_URL = os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017")
BROKER_URL = os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0")
HOW_TO_START = (
    "start them with `make services` (Redis on 127.0.0.1:6379, a MongoDB-wire server on 127.0.0.1:27017), "
    "or point IT_BROKER_URL / IT_MONGO_URL at running servers"
)


def service_env(base: Mapping[str, str], *, db_name: str, queue: str, secret: str, logs: Path) -> dict[str, str]:
    """A production-like stack's settings (DEBUG off, so a SECRET_KEY) on a database and queues of its own
    (``queue`` is the CELERY_QUEUE prefix: queue.reports, queue.notifications, ...).

    Django's own tables go to a SQLite file of the run (migrated by ``start_gunicorn``), even when the
    caller's environment has a DATABASE_URL (`make test`'s second pass over the account tests).
    """
    return {
        # a WORKER_QUEUES of the caller's shell would narrow every worker of the stack
        **{name: value for name, value in base.items() if name not in ("DATABASE_URL", "WORKER_QUEUES")},
        "MONGO_URL": MONGO_URL,
        "MONGO_DB": db_name,
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_QUEUE": queue,
        "DEBUG": "0",
        "SECRET_KEY": secret,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SQLITE_PATH": str(logs / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
        # Each small batch asks for its own evaluation at once (tests wait for each batch's evaluation);
        # tests/integration/test_batch_follow_ups_http.py runs the default delay.
        "BATCH_FOLLOW_UP_SECONDS": "0",
    }


@contextmanager
def web_and_worker(
    env: Mapping[str, str], logs: Path, *, web_workers: int, concurrency: int
) -> Iterator[tuple[Web, Worker]]:
    """gunicorn and a Celery worker on ``env``'s database and queues (``service_env``), both stopped after,
    the database dropped and the queues emptied."""
    worker = start_celery_worker(env, None, concurrency, logs / "worker.log")
    web = start_gunicorn(env, web_workers, logs / "web.log")
    try:
        web.wait_healthy()
        yield web, worker
    finally:
        web.stop()
        worker.shutdown()
        with MongoClient[dict[str, Any]](MONGO_URL, serverSelectionTimeoutMS=5000) as mongo:
            mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])


def delete_queues(prefix: str) -> None:
    """Remove what a run left in its queues (CELERY_QUEUE=prefix: prefix.reports, ..., and kombu's
    priority lists beside each)."""
    client = redis.Redis.from_url(BROKER_URL)
    keys = [prefix, *client.scan_iter(match=f"{prefix}.*", count=1000)]
    client.delete(*keys)


def unreachable() -> str | None:
    """What is wrong with the servers (None if both answer)."""
    problems = []
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:
        problems.append(f"Redis at {BROKER_URL}: {type(exc).__name__}")
    try:
        with MongoClient[dict[str, Any]](MONGO_URL, serverSelectionTimeoutMS=2000) as client:
            client.admin.command("ping")
    except Exception as exc:
        problems.append(f"MongoDB at {MONGO_URL}: {type(exc).__name__}")
    return "; ".join(problems) or None


def skip_or_fail(message: str) -> NoReturn:
    """A missing server skips the test locally, and fails it when CI is set (CI must not skip)."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Stack:
    """The session's app (gunicorn) and worker: where to reach them, their settings and their database."""

    base_url: str
    env: dict[str, str]
    mongo: MongoClient
    db_name: str
    logs: Path

    @property
    def db(self) -> Database:
        return self.mongo[self.db_name]

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``python manage.py ...`` against this stack's database."""
        return run_manage(self.env, *args, timeout=timeout)

    def trigger(self, body: dict[str, Any] | None = None) -> str:
        # force: each call starts its own report (a plain trigger may reuse an earlier one and answer 200).
        body = {**(body or {}), "force": True}
        response = requests.post(f"{self.base_url}/trigger_report/", json=body, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["report_id"]

    def wait_report(self, report_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll the report over HTTP until it is no longer Running; its final body."""
        return wait_for_report(
            http_report(self.base_url, report_id),
            timeout=timeout,
            label=f"report {report_id}",
            describe_failure=lambda: f"worker log:\n{self.worker_log()}",
        )

    def worker_log(self) -> str:
        path = self.logs / "worker.log"
        return path.read_text()[-4000:] if path.exists() else ""


# Extra rows that exercise the edges on both paths: a store polled only before
# the week (a zero row), a store id a spreadsheet would run as a formula, and one
# poll given twice with different statuses (inactive wins).
SPICE_ROWS = [
    "zz-only-old,active,{old} UTC",
    "=1+2,active,{recent} UTC",
    "=1+2,inactive,{recent2} UTC",
    "=1+2,active,{recent2} UTC",
]


@dataclass
class Dataset:
    """One generated export in two versions, so tests can load the old one and append the rest."""

    full: Path  # the whole generated export
    old: Path  # the same export cut 36 hours earlier (what was there an update ago)
    full_newest: pd.Timestamp
    old_newest: pd.Timestamp


def _poll_times(path: Path) -> pd.Series:
    """Timestamps of a status file, parsed independently of loop.sources."""
    frame = pd.read_csv(path, dtype=str)
    return pd.to_datetime(frame["timestamp_utc"].str.removesuffix(" UTC"), utc=True, format="ISO8601")


def build_dataset(base: Path) -> Dataset:
    """Generate the export under ``base``/full (plus SPICE_ROWS) and its 36-hours-older cut under ``base``/old."""
    full = base / "full"
    generate_dataset(full, stores=40, days=10, seed=11)
    status = full / "store_status.csv"
    times = _poll_times(status)
    newest = times.max()
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    spice = "\n".join(SPICE_ROWS).format(
        old=(newest - pd.Timedelta(days=9)).strftime(fmt),
        recent=(newest - pd.Timedelta(days=2, hours=3)).strftime(fmt),
        recent2=(newest - pd.Timedelta(days=2, hours=2)).strftime(fmt),
    )
    text = status.read_text()
    status.write_text(text + ("" if text.endswith("\n") else "\n") + spice + "\n")

    old = base / "old"
    old.mkdir()
    shutil.copy(full / "menu_hours.csv", old / "menu_hours.csv")
    shutil.copy(full / "timezones.csv", old / "timezones.csv")
    lines = status.read_text().splitlines()
    all_times = _poll_times(status)
    cutoff = newest - pd.Timedelta(hours=36)
    keep = [lines[0]] + [line for line, t in zip(lines[1:], all_times, strict=True) if t <= cutoff]
    (old / "store_status.csv").write_text("\n".join(keep) + "\n")
    old_newest = _poll_times(old / "store_status.csv").max()
    return Dataset(full=full, old=old, full_newest=all_times.max(), old_newest=old_newest)


@contextmanager
def private_app(stack: Stack, name: str, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A worker and a gunicorn (2 processes) of a test module, on a database and queue of their own
    (``loop_it_<name>_<run>``) with ``settings`` over the stack's; both are dropped afterwards."""
    run_id = uuid.uuid4().hex[:10]
    env = {**stack.env, "MONGO_DB": f"loop_it_{name}_{run_id}", "CELERY_QUEUE": f"loop_it_{name}_{run_id}", **settings}
    worker = start_celery_worker(env, None, 1, stack.logs / f"worker-{name}.log")
    web = start_gunicorn(env, 2, stack.logs / f"web-{name}.log")
    try:
        web.wait_healthy()
        yield web.url, env
    finally:
        web.stop()
        worker.shutdown()
        stack.mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])


def offline_report(env: dict[str, str], folder: Path, now: str) -> str:
    """The offline command's report CSV of ``folder`` at ``now`` (what the service must answer)."""
    proc = run_manage(env, "generate_report", "--csv-dir", str(folder), "--now", now, "--output", "-")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
