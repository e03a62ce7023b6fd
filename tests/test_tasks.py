"""The report task: hand-computed results, idempotent redelivery, failures and retries."""

from __future__ import annotations

import datetime as dt
import io
import os
import socket
import sys
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.core.management import call_command
from pymongo.database import Database
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError

from loop import errors, queue, retry, storage, tasks
from loop.ingest import load_sources
from loop.services import reports
from loop.timeutil import utcnow
from loop.utils import generate_report
from myproject.celery import app as celery_app
from tests.support.csv_files import write_dataset
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_NOW, EXAMPLE_POLLS, HEADER

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def example(mdb: Database, tmp_path: Path) -> Database:
    load_sources(write_dataset(tmp_path, EXAMPLE_POLLS, ["mon,0,09:00:00,12:00:00"], ["mon,America/Chicago"]), mdb)
    return mdb


def new_report(db: Database, now: pd.Timestamp, report_id: str = "A" * 32) -> str:
    storage.create_report(db, report_id, now)
    return report_id


def mongo_down(*, report_id: str, retries: int = 0, db: Database | None = None, token: str | None = None) -> str:
    raise AutoReconnect("down")


def test_task_computes_the_worked_example(example: Database) -> None:
    rid = new_report(example, EXAMPLE_NOW)
    assert reports.run_report(report_id=rid) == "complete"
    doc = storage.get_report(example, rid)
    assert doc["status"] == "Complete" and doc["rows"] == 2 and doc["polls_counted"] == 2
    assert storage.read_report_csv(example, doc) == EXAMPLE_CSV
    assert doc["attempts"] == 1 and doc["finished_at"] is not None
    assert set(doc["timings"]) >= {"read_s", "compute_s", "total_s"}


def test_generate_report_defaults_to_the_newest_poll(example: Database) -> None:
    result = generate_report(db=example)
    assert result.now == pd.Timestamp("2024-10-08 12:00:00", tz="UTC")
    # At that now all three stores have a poll at or before now.
    assert result.report["store_id"].tolist() == ["later", "mon", "old"]


def test_redelivered_task_for_a_finished_report_does_nothing(example: Database) -> None:
    rid = new_report(example, EXAMPLE_NOW)
    reports.run_report(report_id=rid)
    first = storage.get_report(example, rid)
    assert reports.run_report(report_id=rid) == "not-running"
    tasks.generate_report_task.apply(args=[rid])
    again = storage.get_report(example, rid)
    assert again == first
    assert example[f"{storage.REPORT_BUCKET}.files"].count_documents({}) == 1


def test_unknown_report_is_a_no_op(mdb: Database) -> None:
    assert reports.run_report(report_id="Z" * 32) == "missing"
    assert mdb[storage.REPORTS].count_documents({}) == 0


def test_engine_error_marks_the_report_failed_with_a_short_message(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kwargs: object) -> None:
        raise ValueError("boom\nsecond line of detail")

    monkeypatch.setattr(reports, "generate_report", boom)
    rid = new_report(example, EXAMPLE_NOW)
    assert reports.run_report(report_id=rid) == "failed"
    doc = storage.get_report(example, rid)
    assert doc["status"] == "Failed" and doc["error"] == "ValueError: boom"
    assert doc["file_id"] is None


def test_celery_task_retries_while_mongodb_is_down_then_fails(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def unreachable(*, report_id: str, retries: int = 0, db: Database | None = None, token: str | None = None) -> str:
        calls.append(retries)
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(reports, "run_report", unreachable)
    rid = new_report(example, EXAMPLE_NOW)
    tasks.generate_report_task.apply(args=[rid])  # eager: retries run inline
    assert calls == [0, 1, 2] and settings.REPORT_TASK_MAX_RETRIES == 2
    doc = storage.get_report(example, rid)
    assert doc["status"] == "Failed"
    assert doc["error"] == "MongoDB unavailable after 2 retries: AutoReconnect: connection refused"


def test_failure_is_recorded_once_mongodb_is_back(example: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # MongoDB is down for the whole retry window and for the first attempts to
    # record the failure; the task keeps trying (phase 2) and records it later.
    monkeypatch.setattr(reports, "run_report", mongo_down)
    real_fail = storage.fail_report
    fail_calls: list[str] = []

    def fail_while_down(db: Database, report_id: str, error: str) -> bool:
        fail_calls.append(error)
        if len(fail_calls) <= 2:
            raise AutoReconnect("still down")
        return real_fail(db, report_id, error)

    monkeypatch.setattr(storage, "fail_report", fail_while_down)
    rid = new_report(example, EXAMPLE_NOW)
    tasks.generate_report_task.apply(args=[rid])
    assert len(fail_calls) == 3
    doc = storage.get_report(example, rid)
    assert doc["status"] == "Failed" and doc["error"].startswith("MongoDB unavailable after 2 retries")


def test_failure_that_cannot_be_recorded_is_left_to_the_stale_rule(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "run_report", mongo_down)
    attempts: list[str] = []

    def always_down(db: Database, report_id: str, error: str) -> bool:
        attempts.append(error)
        raise AutoReconnect("still down")

    monkeypatch.setattr(storage, "fail_report", always_down)
    rid = new_report(example, EXAMPLE_NOW)
    tasks.generate_report_task.apply(args=[rid])
    # One try when the retries run out, then one per phase-2 retry (2 more): bounded.
    assert len(attempts) == 1 + settings.REPORT_TASK_MAX_RETRIES
    assert storage.get_report(example, rid)["status"] == "Running"
    monkeypatch.undo()
    # The stale rule, with a tiny limit, reports it Failed on the next poll.
    two_seconds_ago = utcnow() - dt.timedelta(seconds=2)
    example[storage.REPORTS].update_one({"_id": rid}, {"$set": {"created_at": two_seconds_ago}})
    settings.REPORT_STALE_SECONDS = 1
    doc = reports.fail_report_if_stale(db=example, report=storage.get_report(example, rid))
    assert doc["status"] == "Failed" and doc["error"].startswith("stale: still Running after 1 s")


def test_retry_backoff_doubles_and_is_capped(settings) -> None:
    settings.REPORT_TASK_RETRY_BACKOFF = 2
    settings.REPORT_TASK_RETRY_BACKOFF_MAX = 20
    settings.REPORT_TASK_MAX_RETRIES = 5
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    assert [retry.RetryPolicy.from_settings().countdown(n) for n in range(5)] == [2, 4, 8, 16, 20]
    assert retry.RetryPolicy.from_settings().window() == 2 + 4 + 8 + 16 + 20
    # A retry held longer than the visibility timeout would be handed to a second worker.
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 10}
    assert [retry.RetryPolicy.from_settings().countdown(n) for n in range(5)] == [2, 4, 5, 5, 5]


def test_transient_errors_are_connection_failures_or_labelled_retryable() -> None:
    assert errors.is_transient(AutoReconnect("x"))
    assert errors.is_transient(ServerSelectionTimeoutError("no server"))
    labelled = OperationFailure("stepdown", code=189, details={"errorLabels": ["RetryableWriteError"]})
    assert errors.is_transient(labelled)
    assert not errors.is_transient(OperationFailure("bad query", code=2))
    assert not errors.is_transient(ValueError("x"))


def test_a_labelled_retryable_error_is_retried_not_failed(example: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    real = reports.generate_report
    calls: list[int] = []

    def stepdown_once(**kwargs: object):
        calls.append(1)
        if len(calls) == 1:
            raise OperationFailure("not primary", code=10107, details={"errorLabels": ["RetryableWriteError"]})
        return real(**kwargs)

    monkeypatch.setattr(reports, "generate_report", stepdown_once)
    rid = new_report(example, EXAMPLE_NOW)
    tasks.generate_report_task.apply(args=[rid])
    doc = storage.get_report(example, rid)
    assert len(calls) == 2 and doc["status"] == "Complete" and doc["retries"] == 1 and doc["attempts"] == 2
    assert storage.read_report_csv(example, doc) == EXAMPLE_CSV


def test_the_report_records_who_ran_it(example: Database) -> None:
    rid = new_report(example, EXAMPLE_NOW)
    assert storage.get_report(example, rid)["worker"] is None
    reports.run_report(report_id=rid, retries=4)
    doc = storage.get_report(example, rid)
    assert doc["worker"] == f"{socket.gethostname()}:{os.getpid()}" and doc["retries"] == 4


def test_embedded_worker_retries_then_succeeds(example: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    real = reports.run_report
    calls: list[tuple[int, str | None]] = []

    def flaky(*, report_id: str, retries: int = 0, db: Database | None = None, token: str | None = None) -> str:
        calls.append((retries, token))
        if len(calls) == 1:
            # The first attempt got as far as starting (its heartbeat is fresh), then lost MongoDB.
            started = storage.mark_report_started(
                example, report_id, worker="elsewhere:1", retries=retries, token=str(token), live_since=utcnow()
            )
            assert started is not None
            raise AutoReconnect("primary stepped down")
        return real(report_id=report_id, retries=retries, token=token)

    monkeypatch.setattr(reports, "run_report", flaky)
    rid = new_report(example, EXAMPLE_NOW)
    assert queue.enqueue_report(rid).result(timeout=30) == "complete"
    # The retry carries the first attempt's token, so it takes the report back despite the live heartbeat.
    assert [retries for retries, _ in calls] == [0, 1] and calls[0][1] and calls[1][1] == calls[0][1]
    doc = storage.get_report(example, rid)
    assert doc["retries"] == 1 and doc["attempts"] == 2
    assert storage.read_report_csv(example, storage.get_report(example, rid)) == EXAMPLE_CSV


def test_a_delivery_that_loses_the_race_leaves_no_orphan_file(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = reports.generate_report

    def other_worker_finishes_first(**kwargs: object):
        result = real(**kwargs)
        storage.fail_report(example, "A" * 32, "finished elsewhere")
        return result

    monkeypatch.setattr(reports, "generate_report", other_worker_finishes_first)
    rid = new_report(example, EXAMPLE_NOW)
    assert reports.run_report(report_id=rid) == "superseded"
    assert storage.get_report(example, rid)["status"] == "Failed"
    assert example[f"{storage.REPORT_BUCKET}.files"].count_documents({}) == 0
    assert example[f"{storage.REPORT_BUCKET}.chunks"].count_documents({}) == 0


def test_database_report_equals_offline_report_on_the_sample_data(mdb: Database) -> None:
    load_sources(ROOT / "data", mdb)
    now = storage.newest_poll_time(mdb)
    rid = new_report(mdb, now)
    assert reports.run_report(report_id=rid) == "complete"
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out  # the offline command writes "-" to sys.stdout
    try:
        call_command(
            "generate_report", csv_dir=str(ROOT / "data"), now=now.isoformat(), output="-", stderr=io.StringIO()
        )
    finally:
        sys.stdout = saved
    offline = out.getvalue()
    assert offline.startswith(HEADER) and offline.count("\n") > 10
    assert storage.read_report_csv(mdb, storage.get_report(mdb, rid)) == offline


def test_worker_settings_keep_a_report_through_a_worker_crash() -> None:
    assert tasks.generate_report_task.acks_late is True
    assert tasks.generate_report_task.reject_on_worker_lost is True
    assert celery_app.conf.worker_prefetch_multiplier == 1
    assert celery_app.conf.task_ignore_result is True
    options = celery_app.conf.broker_transport_options
    # Redelivery of a lost worker's report (visibility timeout + one 10 s sweep) comes
    # well before the stale rule would fail it.
    assert options["visibility_timeout"] == 900 and options["unacked_restore_throttle"] == 1
    assert options["visibility_timeout"] + 10 < settings.REPORT_STALE_SECONDS == 1800


def test_generate_report_command_without_csv_dir_reads_the_database(example: Database) -> None:
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        call_command("generate_report", now=EXAMPLE_NOW.isoformat(), output="-", stderr=io.StringIO())
    finally:
        sys.stdout = saved
    assert out.getvalue() == EXAMPLE_CSV


def test_a_finished_csv_is_read_from_mongodb_once_per_process(example: Database) -> None:
    rid = new_report(example, EXAMPLE_NOW)
    reports.run_report(report_id=rid)
    doc = storage.get_report(example, rid)
    assert storage.read_report_csv(example, doc) == EXAMPLE_CSV
    # A finished file never changes: later polls are served without reading the chunks again.
    example[f"{storage.REPORT_BUCKET}.chunks"].delete_many({})
    assert storage.read_report_csv(example, doc) == EXAMPLE_CSV
    # An uncached file really is read from MongoDB (and its missing chunk noticed).
    other = storage.put_file(example, "other.csv", b"a,b\n", {})
    example[f"{storage.REPORT_BUCKET}.chunks"].delete_many({"files_id": other})
    with pytest.raises(OSError, match="missing chunk"):
        storage.read_report_csv(example, {**doc, "file_id": other})
