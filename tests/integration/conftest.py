"""The real stack for the integration tests.

Needs Redis and a MongoDB-wire server (``make services`` starts both on
127.0.0.1:6379 and 127.0.0.1:27017; override with IT_BROKER_URL / IT_MONGO_URL).
Starts a real ``celery -A myproject worker`` and the app under gunicorn on a
free port, each in a subprocess, against a database and a queue of its own
(so a developer's running worker never takes these tasks). Unreachable servers
skip the tests, or fail them when CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
import redis
import requests
from pymongo import MongoClient

from loop.datagen import generate_dataset
from tests.support.polling import http_report, wait_for_report
from tests.support.processes import run_manage, start_celery_worker, start_gunicorn

MONGO_URL = os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017")
BROKER_URL = os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0")
HOW_TO_START = (
    "start them with `make services` (Redis on 127.0.0.1:6379, a MongoDB-wire server on 127.0.0.1:27017), "
    "or point IT_BROKER_URL / IT_MONGO_URL at running servers"
)


def _unreachable() -> str | None:
    problems = []
    try:
        redis.Redis.from_url(BROKER_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:
        problems.append(f"Redis at {BROKER_URL}: {type(exc).__name__}")
    try:
        with MongoClient(MONGO_URL, serverSelectionTimeoutMS=2000) as client:
            client.admin.command("ping")
    except Exception as exc:
        problems.append(f"MongoDB at {MONGO_URL}: {type(exc).__name__}")
    return "; ".join(problems) or None


def skip_or_fail(message: str) -> NoReturn:
    """A missing server skips the test locally, and fails it when CI is set (CI must not skip)."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def servers() -> None:
    problem = _unreachable()
    if problem:
        skip_or_fail(f"integration servers not reachable ({problem}): {HOW_TO_START}")


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    mongo: MongoClient
    db_name: str
    logs: Path

    @property
    def db(self):
        return self.mongo[self.db_name]

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``python manage.py ...`` against this stack's database."""
        return run_manage(self.env, *args, timeout=timeout)

    def trigger(self, body: dict[str, str] | None = None) -> str:
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


@pytest.fixture(scope="session")
def stack(servers: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("stack-logs")
    db_name = f"loop_it_{run_id}"
    queue = f"loop_it_{run_id}"
    env = {
        **os.environ,
        "MONGO_URL": MONGO_URL,
        "MONGO_DB": db_name,
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_QUEUE": queue,
        # Production-like: DEBUG off, so a SECRET_KEY is required.
        "DEBUG": "0",
        "SECRET_KEY": f"integration-{run_id}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SQLITE_PATH": str(logs / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    worker = start_celery_worker(env, None, 1, logs / "worker.log")
    web = start_gunicorn(env, 2, logs / "web.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    stack = Stack(web.url, env, mongo, db_name, logs)
    try:
        web.wait_healthy()
        yield stack
    finally:
        web.stop()
        worker.shutdown()
        mongo.drop_database(db_name)
        mongo.close()
        redis.Redis.from_url(BROKER_URL).delete(queue)


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
    full: Path  # the whole generated export
    old: Path  # the same export cut 36 hours earlier (what was there an update ago)
    full_newest: pd.Timestamp
    old_newest: pd.Timestamp


def _poll_times(path: Path) -> pd.Series:
    """Timestamps of a status file, parsed independently of loop.csv_sources."""
    frame = pd.read_csv(path, dtype=str)
    return pd.to_datetime(frame["timestamp_utc"].str.removesuffix(" UTC"), utc=True, format="ISO8601")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    base = tmp_path_factory.mktemp("data")
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
