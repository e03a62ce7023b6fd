"""A report in shards on the real stack: gunicorn, real Celery workers, Redis and the MongoDB-wire server.

Each test runs an app of its own (database and queue ``loop_it_shards_<run>``) with REPORT_SHARDS=3, so
every report is split into three shard tasks and a join. Every finished CSV is compared with two
references computed without shards: ``manage.py generate_report`` on the same database (one process,
the unsharded path) and the offline ``generate_report --csv-dir`` on the loaded files. The SIGKILL test
uses tests/support/delayed_worker.py (no production hook): each shard pauses before it reads, so the
pool process running one can be killed mid-shard.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from bson.binary import Binary

from tests.support.integration import BROKER_URL, Dataset, Stack, offline_report
from tests.support.polling import http_report, wait_for_report, wait_until
from tests.support.processes import Web, Worker, run_manage, start_celery_worker, start_gunicorn

pytestmark = pytest.mark.integration

SHARDS = 3


@dataclass
class ShardedApp:
    stack: Stack
    env: dict[str, str]
    web: Web
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def db(self) -> Any:
        return self.stack.mongo[self.env["MONGO_DB"]]

    def start_worker(self, concurrency: int = 1, report_delay_s: float = 0) -> Worker:
        log = self.logs / f"worker-shards-{self.env['MONGO_DB']}-{len(self.workers)}.log"
        worker = start_celery_worker(
            self.env, f"shards-{len(self.workers)}", concurrency, log, report_delay_s=report_delay_s
        )
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def trigger(self, body: dict[str, Any] | None = None) -> str:
        response = requests.post(f"{self.web.url}/trigger_report/", json={**(body or {}), "force": True}, timeout=30)
        assert response.status_code == 202, response.text
        return str(response.json()["report_id"])

    def wait_report(self, report_id: str, timeout: float = 120) -> dict[str, Any]:
        return wait_for_report(
            http_report(self.web.url, report_id),
            timeout=timeout,
            label=f"report {report_id}",
            describe_failure=lambda: "worker logs:\n" + "\n".join(w.text()[-3000:] for w in self.workers),
        )

    def unsharded_csv(self, now: str) -> str:
        """The report at ``now`` from this database in one process: the path without shards."""
        done = run_manage(self.env, "generate_report", "--now", now, "--output", "-")
        assert done.returncode == 0, done.stderr
        return done.stdout


@contextmanager
def sharded_app(stack: Stack, dataset: Dataset) -> Iterator[ShardedApp]:
    run_id = uuid.uuid4().hex[:10]
    env = {
        **stack.env,
        "MONGO_DB": f"loop_it_shards_{run_id}",
        "CELERY_QUEUE": f"loop_it_shards_{run_id}",
        "REPORT_SHARDS": str(SHARDS),
        "JOB_HEARTBEAT_SECONDS": "1",
        "JOB_LOST_SECONDS": "15",
    }
    loaded = run_manage(env, "load_data", str(dataset.full))
    assert loaded.returncode == 0, loaded.stderr
    web = start_gunicorn(env, 1, stack.logs / f"web-shards-{run_id}.log", migrate=False)
    app = ShardedApp(stack, env, web, stack.logs)
    try:
        web.wait_healthy()
        yield app
    finally:
        web.stop()
        for worker in app.workers:
            worker.stop()
        stack.mongo.drop_database(env["MONGO_DB"])
        redis.Redis.from_url(BROKER_URL).delete(env["CELERY_QUEUE"])


def pool_children(worker: Worker) -> list[int]:
    """The worker's pool processes: the processes whose parent is its main process."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker.proc.pid:
            children.append(int(entry))
    return children


def assert_equal_to_unsharded(app: ShardedApp, dataset: Dataset, report_id: str, body: dict[str, Any]) -> None:
    assert body["status"] == "Complete", body
    assert body["csv_data"] == app.unsharded_csv(body["now"])
    assert body["csv_data"] == offline_report(app.env, dataset.full, body["now"])
    doc = app.db["report_table"].find_one({"_id": report_id})
    assert doc["shards"] == SHARDS and len(doc["shard_bounds"]) == SHARDS - 1
    # The parts go with the join, just after it marks the report Complete.
    wait_until(
        lambda: (
            app.db["report_shards"].count_documents({}) == 0
            and app.db["report_files.files"].count_documents({"metadata.shard": {"$exists": True}}) == 0
        ),
        15,
        "the shard parts removed after the join",
    )


def test_a_shard_worker_killed_mid_shard_is_redone_and_the_report_equals_the_unsharded_one(
    stack: Stack, dataset: Dataset
) -> None:
    with sharded_app(stack, dataset) as app:
        worker = app.start_worker(concurrency=1, report_delay_s=4)
        report_id = app.trigger()
        worker.wait_log("test delay: sleeping", timeout=60)  # a shard is in progress (the split reads no polls)
        children = pool_children(worker)
        assert len(children) == 1, children
        doc = app.db["report_table"].find_one({"_id": report_id})
        assert doc["status"] == "Running" and doc["phase"] == "shards"
        assert app.db["report_shards"].count_documents({}) == 0  # mid-shard: no part stored yet
        os.kill(children[0], signal.SIGKILL)

        body = app.wait_report(report_id, timeout=120)
        assert_equal_to_unsharded(app, dataset, report_id, body)
        text = worker.text()
        assert "SIGKILL" in text or "signal 9" in text, text[-3000:]
        # Three shards, one of them twice (the killed one, redelivered at once by reject_on_worker_lost).
        assert text.count("test delay: sleeping") == SHARDS + 1
        assert pool_children(worker) and pool_children(worker)[0] != children[0]


def test_two_sharded_reports_at_once_both_complete_equal(stack: Stack, dataset: Dataset) -> None:
    with sharded_app(stack, dataset) as app:
        app.start_worker(concurrency=2)
        app.start_worker(concurrency=1)
        first = app.trigger()
        second = app.trigger({"now": dataset.old_newest.isoformat()})
        bodies = [app.wait_report(first), app.wait_report(second)]
        for report_id, body in zip((first, second), bodies, strict=True):
            assert_equal_to_unsharded(app, dataset, report_id, body)
        assert bodies[0]["csv_data"] != bodies[1]["csv_data"]  # two different reports, not one twice


def test_a_shard_that_fails_permanently_fails_the_report_with_its_error(stack: Stack, dataset: Dataset) -> None:
    with sharded_app(stack, dataset) as app:
        # A day part the week reads is corrupt (its bytes do not decompress): not a MongoDB outage, so no retry.
        newest_day = dataset.full_newest.strftime("%Y-%m-%d")
        parts = app.db[f"store_status.{newest_day}"]
        part = next(doc for doc in parts.find({}) if not str(doc["_id"]).startswith("d|"))  # a part, not a delta
        parts.update_one({"_id": part["_id"]}, {"$set": {"t_us": Binary(b"not zlib at all")}})
        app.start_worker(concurrency=2)
        report_id = app.trigger()
        body = app.wait_report(report_id, timeout=90)
        assert body["status"] == "Failed", body
        assert body["error"].startswith("shard ") and f" of {SHARDS} failed: " in body["error"], body["error"]
        assert "csv_data" not in body
        # Nothing joins it later: the split and every shard task end ("succeeded": each returns its outcome).
        wait_until(
            lambda: sum(w.text().count(" succeeded in ") for w in app.workers) >= 1 + SHARDS,
            30,
            "the other shards to end",
            interval=0.5,
        )
        assert app.db["report_table"].find_one({"_id": report_id})["status"] == "Failed"
