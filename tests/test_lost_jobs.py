"""A lost worker (issue 16): heartbeats, the lost rule, the compare-and-set start, the re-queue and the fail-after-N.

The fast half of it: mongomock and the embedded worker. Killed Celery workers are in
tests/integration/test_faults.py.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from loop import queue, storage
from loop.services import imports, jobs, reports
from loop.storage.schema import JOB_CLAIMS
from loop.timeutil import utcnow
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_NOW, load_example

REPORT_ID = "L" * 32
IMPORT_ID = "M" * 32


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """What the services hand to the queue (nothing runs)."""
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(queue, "enqueue_report", lambda job_id: sent.append(("report", job_id)))
    monkeypatch.setattr(queue, "enqueue_import", lambda job_id: sent.append(("import", job_id)))
    return sent


def ago(seconds: float) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=seconds)


def start(db: Database, token: str, *, worker: str = "elsewhere:1", heartbeat_age_s: float = 0) -> None:
    """A report started by attempt ``token`` whose last heartbeat is ``heartbeat_age_s`` old."""
    assert storage.mark_report_started(db, REPORT_ID, worker=worker, retries=0, token=token, live_since=ago(60))
    db[storage.REPORTS].update_one({"_id": REPORT_ID}, {"$set": {"heartbeat_at": ago(heartbeat_age_s)}})


# --- the rule ------------------------------------------------------------------------------------


NOW = dt.datetime(2025, 1, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("doc", "lost"),
    [
        pytest.param({"status": "Running", "heartbeat_at": NOW - dt.timedelta(seconds=59)}, False, id="fresh"),
        pytest.param({"status": "Running", "heartbeat_at": NOW - dt.timedelta(seconds=61)}, True, id="old"),
        pytest.param({"status": "Running", "heartbeat_at": None}, False, id="not-started"),
        pytest.param({"status": "Running"}, False, id="before-heartbeats"),
        pytest.param({"status": "Complete", "heartbeat_at": NOW - dt.timedelta(hours=1)}, False, id="complete"),
        pytest.param({"status": "Failed", "heartbeat_at": NOW - dt.timedelta(hours=1)}, False, id="failed"),
    ],
)
def test_the_lost_rule(doc: dict[str, Any], lost: bool) -> None:
    assert jobs.is_lost(doc, lost_after_s=60, now=NOW) is lost


def test_lost_retries_then_a_failure_with_the_reason(settings) -> None:
    settings.JOB_LOST_RETRIES = 2
    assert jobs.lost_verdict({"lost_attempts": 0}) is None
    assert jobs.lost_verdict({"lost_attempts": 1}) is None
    reason = jobs.lost_verdict({"lost_attempts": 2, "worker": "h:9"})
    assert reason == "worker lost: no heartbeat for 60 s, 3 time(s) (JOB_LOST_RETRIES=2); last worker h:9"


# --- the compare-and-set start -----------------------------------------------------------------------


def test_a_second_start_is_refused_while_the_first_heartbeats(mdb: Database, caplog) -> None:
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    start(mdb, "first", heartbeat_age_s=5)
    assert (
        storage.mark_report_started(mdb, REPORT_ID, worker="w:2", retries=0, token="second", live_since=ago(60)) is None
    )
    # A late delivery of the same report does nothing and says so.
    assert reports.run_report(report_id=REPORT_ID, db=mdb) == "busy"
    doc = storage.get_report(mdb, REPORT_ID)
    assert doc["attempts"] == 1 and doc["attempt_token"] == "first" and doc["phase"] == "queued"
    assert f"report {REPORT_ID} is held by worker elsewhere:1" in caplog.text
    # Its own retry (same token) may take it back at once; another only once the heartbeat is old.
    assert storage.mark_report_started(mdb, REPORT_ID, worker="w:1", retries=1, token="first", live_since=ago(60))
    mdb[storage.REPORTS].update_one({"_id": REPORT_ID}, {"$set": {"heartbeat_at": ago(61)}})
    taken = storage.mark_report_started(mdb, REPORT_ID, worker="w:2", retries=0, token="second", live_since=ago(60))
    assert taken is not None and taken["attempts"] == 3 and taken["attempt_token"] == "second"


def test_of_two_starts_that_read_the_same_free_state_only_one_takes_the_job(
    mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FerretDB's conditional update is not atomic: the claim insert decides. Simulate the race by letting
    # the second start read the job as it was before the first one wrote.
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    before = storage.get_report(mdb, REPORT_ID)
    assert storage.mark_report_started(mdb, REPORT_ID, worker="w:1", retries=0, token="one", live_since=ago(60))
    collection = type(mdb[storage.REPORTS])
    real_find_one = collection.find_one

    real_update = collection.find_one_and_update

    def stale_find_one(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_find_one(self, *args, **kwargs)
        return {**found, "attempt_token": None, "heartbeat_at": None} if self.name == storage.REPORTS else found

    def stale_update(self: Any, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # As on FerretDB: the holder condition judged on the state read before the first start wrote.
        return real_update(self, {k: v for k, v in query.items() if k != "$or"}, *args, **kwargs)

    monkeypatch.setattr(collection, "find_one", stale_find_one)
    monkeypatch.setattr(collection, "find_one_and_update", stale_update)
    assert before is not None and before.get("attempt_token") is None
    assert storage.mark_report_started(mdb, REPORT_ID, worker="w:2", retries=0, token="two", live_since=ago(60)) is None
    monkeypatch.undo()
    assert storage.get_report(mdb, REPORT_ID)["attempt_token"] == "one"


def test_take_over_claims_older_than_a_day_are_removed_by_the_hourly_task(mdb: Database) -> None:
    from django.conf import settings as live

    from loop import tasks

    assert live.CELERY_BEAT_SCHEDULE["remove-old-job-claims"]["task"] == tasks.remove_old_job_claims_task.name
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    assert storage.mark_report_started(mdb, REPORT_ID, worker="w:1", retries=0, token="one", live_since=ago(60))
    claims = mdb[JOB_CLAIMS]
    assert claims.count_documents({}) == 1  # the first start took the job from nobody: one claim
    claims.insert_many(
        [
            {"_id": "reports:old:x:0", "token": "t", "at": ago(86_400 + 60)},
            {"_id": "imports:old:y:1", "token": "t", "at": ago(3 * 86_400)},
            {"_id": "reports:recent:z:0", "token": "t", "at": ago(86_400 - 60)},
        ]
    )
    assert tasks.remove_old_job_claims_task() == 2
    assert sorted(doc["_id"] for doc in claims.find({})) == sorted(
        ["reports:recent:z:0", f"{storage.REPORTS}:{REPORT_ID}:None:0"]
    )
    assert tasks.remove_old_job_claims_task() == 0


def test_a_dead_process_on_this_host_is_replaced_at_once(mdb: Database, tmp_path: Path) -> None:
    load_example(mdb, tmp_path)
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # exited and reaped
    start(mdb, "killed", worker=f"{socket.gethostname()}:{dead_pid}", heartbeat_age_s=1)
    assert reports.run_report(report_id=REPORT_ID, db=mdb) == "complete"
    doc = storage.get_report(mdb, REPORT_ID)
    assert doc["attempts"] == 2 and doc["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert storage.read_report_csv(mdb, doc) == EXAMPLE_CSV
    # A live process (this one's parent) is not replaced before the lost rule says so.
    storage.create_report(mdb, "N" * 32, EXAMPLE_NOW)
    assert storage.mark_report_started(
        mdb, "N" * 32, worker=f"{socket.gethostname()}:{os.getppid()}", retries=0, token="alive", live_since=ago(60)
    )
    assert reports.run_report(report_id="N" * 32, db=mdb) == "busy"


def test_the_heartbeat_is_kept_fresh_while_the_attempt_runs_and_stops_with_it(mdb: Database) -> None:
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    start(mdb, "beating", heartbeat_age_s=30)
    before = storage.get_report(mdb, REPORT_ID)["heartbeat_at"]
    with jobs.heartbeat(lambda: storage.beat_report(mdb, REPORT_ID, "beating"), label="t", interval_s=0.05):
        time.sleep(0.4)
        during = storage.get_report(mdb, REPORT_ID)["heartbeat_at"]
    assert (during - before).total_seconds() > 29
    after = storage.get_report(mdb, REPORT_ID)["heartbeat_at"]
    time.sleep(0.2)
    assert storage.get_report(mdb, REPORT_ID)["heartbeat_at"] == after  # the thread ended with the block
    # Another attempt's heartbeat does not touch it.
    assert storage.beat_report(mdb, REPORT_ID, "someone-else") is False


# --- the re-queue and the fail-after-N --------------------------------------------------------------


def test_a_read_requeues_a_lost_report_once_and_shows_worker_lost(
    api, mdb: Database, queued: list[tuple[str, str]]
) -> None:
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    start(mdb, "lost", heartbeat_age_s=61)
    body = api.get(f"/get_report/{REPORT_ID}/").json()
    assert body["status"] == "Running" and body["phase"] == "worker lost" and body["progress"] == 0
    assert queued == [("report", REPORT_ID)]
    listed = api.get("/reports/").json()["results"]
    assert [(r["report_id"], r["phase"]) for r in listed] == [(REPORT_ID, "worker lost")]
    assert queued == [("report", REPORT_ID)]  # once: it is no longer held, so no longer lost
    doc = storage.get_report(mdb, REPORT_ID)
    assert doc["lost_attempts"] == 1 and doc["attempt_token"] is None and doc["heartbeat_at"] is None


def test_a_report_lost_more_than_job_lost_retries_times_is_failed(
    api, mdb: Database, settings, queued: list[tuple[str, str]]
) -> None:
    settings.JOB_LOST_RETRIES = 1
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    for round_ in range(2):
        start(mdb, f"attempt-{round_}", heartbeat_age_s=61)
        body = api.get(f"/get_report/{REPORT_ID}/").json()
    assert queued == [("report", REPORT_ID)]  # the first loss only
    assert body["status"] == "Failed"
    assert (
        body["error"] == "worker lost: no heartbeat for 60 s, 2 time(s) (JOB_LOST_RETRIES=1); last worker elsewhere:1"
    )
    assert storage.get_report(mdb, REPORT_ID)["lost_attempts"] == 2


def test_the_beat_sweep_finds_lost_reports_and_imports_nobody_reads(
    mdb: Database, queued: list[tuple[str, str]]
) -> None:
    from loop import tasks

    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    start(mdb, "lost", heartbeat_age_s=61)
    storage.create_report(mdb, "F" * 32, EXAMPLE_NOW)  # fresh: left alone
    assert storage.mark_report_started(mdb, "F" * 32, worker="w:1", retries=0, token="ok", live_since=ago(60))
    storage.create_import(mdb, IMPORT_ID, [])
    assert storage.mark_import_started(mdb, IMPORT_ID, worker="w:1", retries=0, token="i", live_since=ago(60))
    mdb[storage.IMPORTS].update_one({"_id": IMPORT_ID}, {"$set": {"heartbeat_at": ago(120)}})
    assert tasks.recover_lost_jobs_task.apply().get() == 2
    assert sorted(queued) == [("import", IMPORT_ID), ("report", REPORT_ID)]
    assert storage.get_import(mdb, IMPORT_ID)["phase"] == "worker lost"
    assert storage.get_report(mdb, "F" * 32)["phase"] == "queued"
    assert tasks.recover_lost_jobs_task.apply().get() == 0  # nothing is lost twice


def test_a_lost_import_reads_worker_lost_then_fails_with_its_files_removed(
    api, mdb: Database, settings, queued: list[tuple[str, str]]
) -> None:
    settings.JOB_LOST_RETRIES = 1
    file_id = storage.put_file(mdb, "store_status.csv", b"x", {}, storage.IMPORT_BUCKET)
    upload = storage.ImportFile(field="store_status", name="store_status.csv", bytes=1, file_id=file_id)
    storage.create_import(mdb, IMPORT_ID, [upload])
    phases = []
    for token in ("a", "b"):
        assert storage.mark_import_started(mdb, IMPORT_ID, worker="w:1", retries=0, token=token, live_since=ago(60))
        mdb[storage.IMPORTS].update_one({"_id": IMPORT_ID}, {"$set": {"heartbeat_at": ago(61)}})
        phases.append(api.get(f"/imports/{IMPORT_ID}/").json())
    assert (phases[0]["status"], phases[0]["phase"]) == ("Running", "worker lost")
    assert [item["phase"] for item in api.get("/imports/").json()["results"]] == ["worker lost"]
    assert (phases[1]["status"], phases[1]["phase"]) == ("Failed", "worker lost")
    assert phases[1]["error"].startswith("worker lost: no heartbeat for 60 s, 2 time(s)")
    assert queued == [("import", IMPORT_ID)]
    assert mdb[f"{storage.IMPORT_BUCKET}.files"].count_documents({}) == 0


def test_embedded_mode_recovers_a_lost_report_on_read_and_computes_it_once(api, mdb: Database, tmp_path: Path) -> None:
    from loop.embedded_worker import wait_embedded_idle

    load_example(mdb, tmp_path)
    storage.create_report(mdb, REPORT_ID, EXAMPLE_NOW)
    start(mdb, "lost", heartbeat_age_s=61)
    assert api.get(f"/get_report/{REPORT_ID}/").json()["phase"] == "worker lost"
    assert wait_embedded_idle(timeout=30)
    body = api.get(f"/get_report/{REPORT_ID}/").json()
    assert body["status"] == "Complete" and body["csv_data"] == EXAMPLE_CSV and "phase" not in body
    # The first message, redelivered by the broker later, finds it Complete.
    assert reports.run_report(report_id=REPORT_ID, db=mdb) == "not-running"
    doc = storage.get_report(mdb, REPORT_ID)
    assert doc["attempts"] == 2 and doc["lost_attempts"] == 1


def test_a_lost_import_requeued_by_a_read_is_loaded_by_the_next_attempt(mdb: Database) -> None:
    # imports.recover_import_if_lost with a real (embedded) queue: the loader runs again from the start.
    storage.create_import(mdb, IMPORT_ID, [])
    assert storage.mark_import_started(mdb, IMPORT_ID, worker="w:1", retries=0, token="a", live_since=ago(60))
    mdb[storage.IMPORTS].update_one({"_id": IMPORT_ID}, {"$set": {"heartbeat_at": ago(61)}})
    imports.get_import(import_id=IMPORT_ID)
    from loop.embedded_worker import wait_embedded_idle

    assert wait_embedded_idle(timeout=30)
    doc = storage.get_import(mdb, IMPORT_ID)
    assert doc["attempts"] == 2 and doc["lost_attempts"] == 1 and doc["status"] == "Complete"
