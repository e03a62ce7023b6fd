"""Faults against the real stack: killed workers, Redis or MongoDB down, stale and concurrent reports.

The module runs its own servers so it can stop them without touching anyone
else's: a private ``redis-server`` and a private MongoDB-wire server (FerretDB,
or ``mongod`` when that is what the machine has) on free loopback ports, two
gunicorn apps (the normal one, and one with a 3-second stale limit whose queue
no worker reads) and, per test, the real ``celery worker`` processes the test
needs (started in their own process group, so a SIGKILL reaches exactly them).

Short timeouts come from the environment: MongoDB server selection 0.5 s, Redis
visibility timeout 10 s, retries after 1 s and 2 s, a job heartbeat every second and a
worker lost after JOB_LOST_SECONDS (the read-side sweep; no beat runs here). A worker started with
``report_delay_s`` (through tests/support/delayed_worker.py, no production hook)
pauses right after it marks a report started, before it reads the polls, so a test
can act while the report is known to be in progress.
Every finished report is compared with the offline command for the same ``now``.
The tests run in file order; the last one appends polls.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
import requests
from django.core.management import call_command
from pymongo import MongoClient
from pymongo.database import Database

from tests.support.integration import Dataset, skip_or_fail
from tests.support.polling import http_report, wait_for_report, wait_until
from tests.support.processes import (
    MissingServer,
    Server,
    Web,
    Worker,
    private_mongo,
    private_redis,
    run_manage,
    start_celery_worker,
    start_gunicorn,
)

pytestmark = pytest.mark.integration

VISIBILITY_TIMEOUT_S = 10
HEARTBEAT_S = 1
# A killed worker's report reads "worker lost" this long after its last heartbeat. Longer than the
# brief's 5 s on purpose: the MongoDB-down test's outage (~5-10 s) must not look like a lost worker.
LOST_AFTER_S = 15
STALE_LIMIT_S = 3
MAX_RETRIES = 2  # retries after 1 s, then 2 s (REPORT_TASK_RETRY_BACKOFF=1, cap 2)


@dataclass
class FaultStack:
    env: dict[str, str]
    redis: Server
    mongo: Server
    web_url: str
    stale_url: str
    logs: Path
    db_name: str
    client: MongoClient[dict[str, Any]]
    workers: list[Worker] = field(default_factory=list)

    @property
    def db(self) -> Database[dict[str, Any]]:
        return self.client[self.db_name]

    def start_worker(self, name: str, concurrency: int = 1, report_delay_s: float = 0, **extra_env: str) -> Worker:
        """A worker on this stack's broker and database, ready to take tasks; stopped after the test.

        ``report_delay_s`` > 0: each report pauses that long once marked started (delayed_worker).
        """
        number = len(self.workers)
        log = self.logs / f"worker-{name}-{number}.log"
        worker = start_celery_worker(
            self.env, f"{name}-{number}", concurrency, log, extra_env, report_delay_s=report_delay_s
        )
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def trigger(self, body: dict[str, Any] | None = None, url: str | None = None) -> str:
        # force: each call starts its own report (a plain trigger may reuse an earlier one and answer 200).
        body = {**(body or {}), "force": True}
        response = requests.post(f"{url or self.web_url}/trigger_report/", json=body, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["report_id"]

    def get(self, report_id: str, url: str | None = None) -> requests.Response:
        return requests.get(f"{url or self.web_url}/get_report/{report_id}/", timeout=30)

    def wait_report(self, report_id: str, timeout: float = 90) -> dict[str, Any]:
        """Poll the report on the normal app until it is no longer Running; its final body."""
        return wait_for_report(
            http_report(self.web_url, report_id),
            timeout=timeout,
            label=f"report {report_id}",
            describe_failure=lambda: "worker logs:\n" + "\n".join(w.text()[-2000:] for w in self.workers),
        )

    def doc(self, report_id: str) -> dict[str, Any]:
        doc = self.db["report_table"].find_one({"_id": report_id})
        assert doc is not None
        return doc

    def wait_started(self, report_id: str, attempts: int = 1, timeout: float = 60) -> dict[str, Any]:
        wait_until(lambda: self.doc(report_id)["attempts"] >= attempts, timeout, f"report started {attempts}x")
        return self.doc(report_id)


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory, dataset: Dataset) -> Iterator[FaultStack]:
    base = tmp_path_factory.mktemp("faults")
    try:
        redis_server, mongo_server = private_redis(base), private_mongo(base)
    except MissingServer as missing:
        skip_or_fail(f"fault tests need {missing}: run `make services` (it installs Redis and builds FerretDB)")
    db_name = "loop_faults"
    env = {
        **os.environ,
        "MONGO_URL": f"mongodb://127.0.0.1:{mongo_server.port}",
        "MONGO_DB": db_name,
        "MONGO_TIMEOUT_MS": "500",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "CELERY_QUEUE": "faults",
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "REPORT_TASK_MAX_RETRIES": str(MAX_RETRIES),
        "REPORT_TASK_RETRY_BACKOFF": "1",
        "REPORT_TASK_RETRY_BACKOFF_MAX": "2",
        "REPORT_STALE_SECONDS": "1800",
        "JOB_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
        "JOB_LOST_SECONDS": str(LOST_AFTER_S),
        "TRIGGER_RATE_LIMIT": "1000/minute",  # the Redis-backed limiter stays on, out of the way
        "API_TOKEN": "",
        "DEBUG": "0",
        "SECRET_KEY": "fault-tests-" + os.urandom(8).hex(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SQLITE_PATH": str(base / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    webs: list[Web] = []
    client: MongoClient[dict[str, Any]] | None = None
    stack: FaultStack | None = None
    try:
        redis_server.start()
        mongo_server.start()
        # The normal app, and one with a tiny stale limit whose queue no worker reads.
        webs.append(start_gunicorn(env, 2, base / "web.log"))
        stale_env = {**env, "REPORT_STALE_SECONDS": str(STALE_LIMIT_S), "CELERY_QUEUE": "faults-nobody"}
        webs.append(start_gunicorn(stale_env, 1, base / "stale-web.log"))
        for web in webs:
            web.wait_healthy()
        client = MongoClient(env["MONGO_URL"], serverSelectionTimeoutMS=5000)
        stack = FaultStack(env, redis_server, mongo_server, webs[0].url, webs[1].url, base, db_name, client)
        _load(stack, dataset.old)
        yield stack
    finally:
        for worker in stack.workers if stack else []:
            worker.stop()
        for web in webs:
            web.stop()
        if client is not None:
            client.close()
        mongo_server.stop()
        redis_server.stop()


@pytest.fixture
def stack(fault_stack: FaultStack) -> Iterator[FaultStack]:
    """The module's stack, with this test's workers stopped afterwards and both servers up."""
    yield fault_stack
    for worker in fault_stack.workers:
        worker.stop()
    fault_stack.workers.clear()
    for server in (fault_stack.redis, fault_stack.mongo):
        if server.proc is None or server.proc.poll() is not None:
            server.start()
    # The private broker starts the next test empty: nothing a failed test left queued
    # (or unacknowledged) reaches the next test's workers.
    redis.Redis(port=fault_stack.redis.port).flushdb()


def _load(stack: FaultStack, folder: Path) -> None:
    proc = run_manage(stack.env, "load_data", str(folder))
    assert proc.returncode == 0, proc.stdout + proc.stderr


_offline_cache: dict[tuple[str, str], str] = {}
_offline_lock = threading.Lock()


def offline_report(folder: Path, now: str, tmp: Path) -> str:
    """The offline command (``generate_report --csv-dir``, no database) for ``now``, in-process."""
    key = (str(folder), pd.Timestamp(now).isoformat())
    with _offline_lock:
        if key not in _offline_cache:
            out = tmp / f"offline-{len(_offline_cache)}.csv"
            call_command("generate_report", csv_dir=str(folder), now=key[1], output=str(out), stderr=io.StringIO())
            _offline_cache[key] = out.read_text()
        return _offline_cache[key]


def pid_of(doc: dict[str, Any]) -> int:
    """The pid from the report's ``worker`` field ("host:pid" of the process that ran it)."""
    return int(doc["worker"].rsplit(":", 1)[1])


def running_reports(stack: FaultStack) -> list[str]:
    return [d["_id"] for d in stack.db["report_table"].find({"status": "Running"}, {"_id": 1})]


# --- 1. a worker killed mid-report ------------------------------------------------------------------


def test_sigkill_of_the_pool_process_mid_report_requeues_the_report(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    worker = stack.start_worker("pool", report_delay_s=4)
    report_id = stack.trigger()
    started = stack.wait_started(report_id)
    pid = pid_of(started)
    assert worker.owns(pid) and pid != worker.proc.pid  # the pool process, mid-report (in the test delay)
    os.kill(pid, signal.SIGKILL)
    assert stack.doc(report_id)["status"] == "Running", "the report finished before the kill: machine too slow"

    body = stack.wait_report(report_id, timeout=60)
    assert body["status"] == "Complete", body
    doc = stack.doc(report_id)
    # reject_on_worker_lost put the message back at once; a fresh pool process saw that the holder's
    # process on this host is gone and took the report over without waiting for the lost rule.
    assert doc["attempts"] == 2 and doc["worker"] != started["worker"] and worker.owns(pid_of(doc))
    assert doc["lost_attempts"] == 0
    assert pd.Timestamp(body["now"]) == dataset.old_newest
    assert body["csv_data"] == offline_report(dataset.old, body["now"], tmp_path)


def test_sigkill_of_the_whole_worker_reads_worker_lost_and_the_report_is_computed_once(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    doomed = stack.start_worker("doomed", report_delay_s=60)
    report_id = stack.trigger()
    first = stack.wait_started(report_id)
    assert doomed.owns(pid_of(first))
    doomed.kill_all()
    killed = time.monotonic()
    assert stack.doc(report_id)["status"] == "Running"

    # No heartbeat any more: a read notices it after JOB_LOST_SECONDS (not the broker's visibility
    # timeout) and queues the report again; it reads "worker lost" until a worker starts it.
    bodies: list[dict[str, Any]] = []
    wait_until(
        lambda: bodies.append(stack.get(report_id).json()) or bodies[-1].get("phase") == "worker lost",
        60,
        "the report to read worker lost",
        interval=0.5,
    )
    noticed_s = time.monotonic() - killed
    assert LOST_AFTER_S - HEARTBEAT_S <= noticed_s < 60, noticed_s
    assert bodies[-1]["status"] == "Running" and {b.get("phase") for b in bodies[:-1]} <= {"queued", "reading"}
    assert stack.doc(report_id)["lost_attempts"] == 1
    assert running_reports(stack) == [report_id]

    # A new worker gets both the re-queued message and, after its visibility timeout, the first one.
    # Two at once, each pausing 8 s before computing: one computes, the other finds it held or done.
    survivor = stack.start_worker("survivor", concurrency=2, report_delay_s=8)
    body = stack.wait_report(report_id, timeout=120 - (time.monotonic() - killed))
    assert body["status"] == "Complete", body
    assert time.monotonic() - killed < 120
    assert body["csv_data"] == offline_report(dataset.old, body["now"], tmp_path)
    held = f"report {report_id} is held by worker"
    done = f"report {report_id} is already Complete; nothing to do"
    wait_until(
        lambda: held in survivor.text() or done in survivor.text(),
        VISIBILITY_TIMEOUT_S + 45,
        "the redelivered first message to do nothing",
        details=lambda: survivor.text()[-3000:],
    )
    doc = stack.doc(report_id)
    assert doc["attempts"] == 2 and survivor.owns(pid_of(doc)) and doc["lost_attempts"] == 1
    assert survivor.text().count("test delay: sleeping") == 1  # computed once


# --- 2. Redis down ----------------------------------------------------------------------------------


def test_redis_down_trigger_answers_503_and_leaves_no_report_running(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    stack.start_worker("redis")
    done_id = stack.trigger()
    done = stack.wait_report(done_id)
    assert done["status"] == "Complete"
    before = stack.db["report_table"].count_documents({})

    stack.redis.crash()
    clock = time.monotonic()
    response = requests.post(f"{stack.web_url}/trigger_report/", json={"force": True}, timeout=60)
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert "broker is unavailable" in response.json()["error"]
    assert time.monotonic() - clock < 15  # fails fast, does not hang on the broker
    health = requests.get(f"{stack.web_url}/health/", timeout=30)
    assert health.status_code == 503 and health.json()["broker"].startswith("error")
    # Reading finished reports needs MongoDB only.
    assert stack.get(done_id).json() == done

    # The entry created for the refused trigger is Failed, not Running.
    assert stack.db["report_table"].count_documents({}) == before + 1
    refused = stack.db["report_table"].find_one({}, sort=[("created_at", -1)])
    assert refused["status"] == "Failed" and "broker is unavailable" in refused["error"]
    assert running_reports(stack) == []

    # Redis back (empty): the same web and worker processes work again.
    stack.redis.start()
    again = stack.wait_report(stack.trigger(), timeout=90)
    assert again["status"] == "Complete"
    assert again["csv_data"] == offline_report(dataset.old, again["now"], tmp_path)


# --- 3. MongoDB down ---------------------------------------------------------------------------------


def test_mongodb_down_api_answers_503_and_the_task_retries_until_it_is_back(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    # More retries than the other cases: MongoDB is started again after the second retry is logged,
    # and the retries still to come (2 s apart) must outlast its start-up on a loaded machine.
    retries_allowed = 10
    worker = stack.start_worker("mongo-retry", report_delay_s=3, REPORT_TASK_MAX_RETRIES=str(retries_allowed))
    report_id = stack.trigger()
    stack.wait_started(report_id)
    stack.mongo.crash()  # while the task pauses, before it reads the polls

    for response in (
        stack.get(report_id),
        requests.post(f"{stack.web_url}/trigger_report/", json={}, timeout=30),
        requests.get(f"{stack.web_url}/get_report/{report_id}/csv/", timeout=30),
    ):
        assert response.status_code == 503, response.text
        assert response.json() == {"error": "The database is unavailable; try again later."}
    health = requests.get(f"{stack.web_url}/health/", timeout=30)
    assert health.status_code == 503 and health.json()["mongo"].startswith("error")

    worker.wait_log(f"retry 2/{retries_allowed} in")  # two failed attempts, backing off
    stack.mongo.start()
    body = stack.wait_report(report_id, timeout=60)
    assert body["status"] == "Complete", body
    # The outage was shorter than JOB_LOST_SECONDS: the attempt kept the report (no lost attempt).
    assert stack.doc(report_id)["lost_attempts"] == 0
    doc = stack.doc(report_id)
    # The attempt that got through came after two or more retries; the failed ones never reached MongoDB.
    assert 2 <= doc["retries"] < retries_allowed and doc["attempts"] == 2
    log = worker.text()
    assert f"retry 1/{retries_allowed} in 1.0s" in log and f"retry 2/{retries_allowed} in 2.0s" in log
    assert body["csv_data"] == offline_report(dataset.old, body["now"], tmp_path)


def test_mongodb_down_for_the_whole_retry_window_fails_the_report_once_it_is_back(stack: FaultStack) -> None:
    report_id = stack.trigger()  # no worker yet: the report waits in the queue
    stack.mongo.crash()
    worker = stack.start_worker("mongo-fail")
    worker.wait_log("recording the failure once MongoDB is back")
    stack.mongo.start()
    body = stack.wait_report(report_id, timeout=60)
    assert body["status"] == "Failed"
    assert body["error"].startswith(f"MongoDB unavailable after {MAX_RETRIES} retries: ServerSelectionTimeoutError")
    assert stack.doc(report_id)["attempts"] == 0 and running_reports(stack) == []


def test_a_failure_that_cannot_be_recorded_is_caught_by_the_stale_rule(stack: FaultStack) -> None:
    report_id = stack.trigger()
    stack.mongo.crash()
    worker = stack.start_worker("mongo-stale")
    worker.wait_log("failure not recorded after", timeout=90)  # MongoDB down through both phases
    stack.mongo.start()
    # The default limit (30 min) has not passed: still Running on the normal app ...
    assert stack.get(report_id).json()["status"] == "Running"
    # ... while the app with a 3 s limit (long passed) reports it Failed (stale) and records that.
    stale = stack.get(report_id, url=stack.stale_url).json()
    assert stale["status"] == "Failed" and stale["error"].startswith(f"stale: still Running after {STALE_LIMIT_S} s")
    assert stack.get(report_id).json()["status"] == "Failed"


# --- 4. stale reports ---------------------------------------------------------------------------------


def test_a_report_running_longer_than_the_limit_reads_failed_stale(stack: FaultStack) -> None:
    # The stale app's queue has no worker: its report stays Running.
    report_id = stack.trigger(url=stack.stale_url)
    assert stack.get(report_id, url=stack.stale_url).json()["status"] == "Running"
    time.sleep(STALE_LIMIT_S + 0.5)
    body = stack.get(report_id, url=stack.stale_url).json()
    assert body["status"] == "Failed"
    assert body["error"] == f"stale: still Running after {STALE_LIMIT_S} s (worker lost or queue stuck)"
    assert stack.doc(report_id)["status"] == "Failed"
    csv = requests.get(f"{stack.stale_url}/get_report/{report_id}/csv/", timeout=30)
    assert csv.status_code == 409

    # A worker that finally takes the queued task leaves the Failed report alone.
    late = stack.start_worker("late", CELERY_QUEUE="faults-nobody")
    late.wait_log("is already Failed; nothing to do", timeout=30)
    assert stack.get(report_id).json() == body


def test_the_default_stale_limit_is_thirty_minutes(stack: FaultStack) -> None:
    from loop import storage
    from loop.timeutil import utcnow

    for minutes, expected in ((29, "Running"), (31, "Failed")):
        report_id = f"stale{minutes}".ljust(32, "x")
        storage.create_report(stack.db, report_id, pd.Timestamp("2024-10-07", tz="UTC"))
        created = utcnow() - dt.timedelta(minutes=minutes)
        stack.db["report_table"].update_one({"_id": report_id}, {"$set": {"created_at": created}})
        assert stack.get(report_id).json()["status"] == expected
    assert running_reports(stack) == ["stale29".ljust(32, "x")]
    stack.db["report_table"].delete_one({"_id": "stale29".ljust(32, "x")})


# --- 5. many reports at once ----------------------------------------------------------------------------


def test_twenty_reports_triggered_at_once_all_complete(stack: FaultStack, dataset: Dataset, tmp_path: Path) -> None:
    stack.start_worker("many", concurrency=2)
    nows = [(dataset.old_newest - pd.Timedelta(minutes=53 * i, microseconds=7 * i)).isoformat() for i in range(20)]
    barrier = threading.Barrier(len(nows))

    def trigger(now: str) -> str:
        barrier.wait()
        return stack.trigger({"now": now})

    with ThreadPoolExecutor(len(nows)) as pool:
        ids = list(pool.map(trigger, nows))
    assert len(set(ids)) == 20
    bodies = [stack.wait_report(report_id, timeout=180) for report_id in ids]
    assert [b["status"] for b in bodies] == ["Complete"] * 20
    for now, body in zip(nows, bodies, strict=True):
        assert pd.Timestamp(body["now"]) == pd.Timestamp(now)
        assert body["csv_data"] == offline_report(dataset.old, now, tmp_path)
    assert len({b["csv_data"] for b in bodies}) > 10  # the nows really differ in what they report


# --- 5b. a report in shards (REPORT_SHARDS: the split is the worker's, so only the workers set it) -----------


def test_a_sharded_report_survives_mongodb_restarted_between_shards(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    retries_allowed = 10
    worker = stack.start_worker(
        "shards-mongo", report_delay_s=3, REPORT_SHARDS="3", REPORT_TASK_MAX_RETRIES=str(retries_allowed)
    )
    report_id = stack.trigger()
    wait_until(
        lambda: stack.db["report_shards"].count_documents({"report_id": report_id}) >= 1,
        60,
        "a first shard stored",
        interval=0.2,
    )
    stack.mongo.crash()  # the next shard pauses before it reads: it meets MongoDB down, and retries
    worker.wait_log(f"retry 1/{retries_allowed} in")
    stack.mongo.start()
    body = stack.wait_report(report_id, timeout=90)
    assert body["status"] == "Complete", body
    assert body["csv_data"] == offline_report(dataset.old, body["now"], tmp_path)
    doc = stack.doc(report_id)
    assert doc["shards"] == 3 and doc["lost_attempts"] == 0
    # The join removes the parts just after it marks the report Complete.
    wait_until(
        lambda: stack.db["report_shards"].count_documents({"report_id": report_id}) == 0,
        15,
        "the shard parts removed after the join",
        interval=0.1,
    )


def test_a_sharded_report_whose_worker_vanished_mid_shard_has_its_missing_shards_queued_again(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    doomed = stack.start_worker("shards-doomed", report_delay_s=60, REPORT_SHARDS="3")
    report_id = stack.trigger()
    doomed.wait_log("test delay: sleeping")  # the first shard, mid-shard (beating for the report)
    wait_until(lambda: stack.doc(report_id).get("heartbeat_at") is not None, 30, "a shard's heartbeat")
    doomed.kill_all()  # the whole worker: no redelivery until the visibility timeout, no more heartbeats
    assert stack.doc(report_id)["status"] == "Running"
    # The lost rule (a read, after JOB_LOST_SECONDS) queues the report again ...
    wait_until(lambda: stack.get(report_id).json().get("phase") == "worker lost", 60, "worker lost", interval=0.5)
    assert stack.doc(report_id)["shards"] == 3  # the bounds stay pinned
    # ... and its re-run queues the shards that are not done; another worker computes them and joins.
    stack.start_worker("shards-survivor", concurrency=2, REPORT_SHARDS="3")
    body = stack.wait_report(report_id, timeout=120)
    assert body["status"] == "Complete", body
    assert body["csv_data"] == offline_report(dataset.old, body["now"], tmp_path)
    doc = stack.doc(report_id)
    assert doc["shards"] == 3 and doc["lost_attempts"] == 1


# --- 6. data appended while a report runs -----------------------------------------------------------------


def test_data_appended_while_a_report_runs_does_not_change_it(
    stack: FaultStack, dataset: Dataset, tmp_path: Path
) -> None:
    delay = 6
    stack.start_worker("append", report_delay_s=delay)
    report_id = stack.trigger()
    started = stack.wait_started(report_id)
    from loop import storage

    polls_before = storage.collection_counts(stack.db)["polls"]
    _load(stack, dataset.full)  # newer polls arrive while the report pauses
    assert storage.collection_counts(stack.db)["polls"] > polls_before
    elapsed = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - started["started_at"]).total_seconds()
    assert elapsed < delay - 0.5, f"the append took too long ({elapsed:.1f}s) to land before the report read"

    body = stack.wait_report(report_id, timeout=60)
    assert body["status"] == "Complete"
    assert pd.Timestamp(body["now"]) == dataset.old_newest < dataset.full_newest
    assert body["csv_data"] == offline_report(dataset.old, body["now"], tmp_path)
    # What the appended data gives at its own newest poll differs: the pinned now mattered.
    assert body["csv_data"] != offline_report(dataset.full, dataset.full_newest.isoformat(), tmp_path)
