"""The report task: hand-computed results, idempotent redelivery, failures and retries."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.core.management import call_command
from pymongo.database import Database
from pymongo.errors import AutoReconnect

from loop import storage, tasks
from loop.ingest import load_sources
from loop.utils import generate_report
from myproject.celery import app as celery_app
from tests.helpers_service import write_dataset

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,"
    "downtime_last_hour,downtime_last_day,downtime_last_week"
)

# The worked example: Chicago store open Monday 09:00-12:00 with polls at
# 10:14 (active) and 11:15 (inactive) local on Monday 2024-10-07 (CDT = UTC-5).
# Midpoint 10:44:30 -> 1 h 44 m 30 s up (1.74 h), 1 h 15 m 30 s down (1.26 h).
# "old" polled only before the week (zeros row); "later" only after now (no row).
EXAMPLE_POLLS = [
    "mon,active,2024-10-07 15:14:00 UTC",
    "mon,inactive,2024-10-07 16:15:00 UTC",
    "old,active,2024-09-20 12:00:00 UTC",
    "later,active,2024-10-08 12:00:00 UTC",
]
EXAMPLE_NOW = pd.Timestamp("2024-10-07 18:00:00", tz="UTC")  # 13:00 local: last hour is closed
EXAMPLE_CSV = (
    f"{HEADER}\n"
    "mon,0.00,1.74,1.74,0.00,1.26,1.26\n"
    "old,0.00,0.00,0.00,0.00,0.00,0.00\n"
)


@pytest.fixture
def example(mdb: Database, tmp_path: Path) -> Database:
    load_sources(write_dataset(tmp_path, EXAMPLE_POLLS, ["mon,0,09:00:00,12:00:00"], ["mon,America/Chicago"]), mdb)
    return mdb


def new_report(db: Database, now: pd.Timestamp, report_id: str = "A" * 32) -> str:
    storage.create_report(db, report_id, now)
    return report_id


def test_task_computes_the_worked_example(example: Database) -> None:
    rid = new_report(example, EXAMPLE_NOW)
    assert tasks.run_report(rid) == "complete"
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
    tasks.run_report(rid)
    first = storage.get_report(example, rid)
    assert tasks.run_report(rid) == "not-running"
    tasks.generate_report_task.apply(args=[rid])
    again = storage.get_report(example, rid)
    assert again == first
    assert example[f"{storage.REPORT_BUCKET}.files"].count_documents({}) == 1


def test_unknown_report_is_a_no_op(mdb: Database) -> None:
    assert tasks.run_report("Z" * 32) == "missing"
    assert mdb[storage.REPORTS].count_documents({}) == 0


def test_engine_error_marks_the_report_failed_with_a_short_message(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(**kwargs: object) -> None:
        raise ValueError("boom\nsecond line of detail")

    monkeypatch.setattr(tasks, "generate_report", boom)
    rid = new_report(example, EXAMPLE_NOW)
    assert tasks.run_report(rid) == "failed"
    doc = storage.get_report(example, rid)
    assert doc["status"] == "Failed" and doc["error"] == "ValueError: boom"
    assert doc["file_id"] is None


def test_celery_task_retries_while_mongodb_is_down_then_fails(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def unreachable(report_id: str, db: Database | None = None) -> str:
        calls.append(report_id)
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(tasks, "run_report", unreachable)
    rid = new_report(example, EXAMPLE_NOW)
    tasks.generate_report_task.apply(args=[rid])  # eager: retries run inline
    assert len(calls) == settings.REPORT_TASK_MAX_RETRIES + 1 == 3
    doc = storage.get_report(example, rid)
    assert doc["status"] == "Failed" and doc["error"].startswith("MongoDB unavailable: AutoReconnect")


def test_embedded_worker_retries_then_succeeds(example: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tasks.run_report
    calls: list[int] = []

    def flaky(report_id: str, db: Database | None = None) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise AutoReconnect("primary stepped down")
        return real(report_id)

    monkeypatch.setattr(tasks, "run_report", flaky)
    rid = new_report(example, EXAMPLE_NOW)
    assert tasks.enqueue_report(rid).result(timeout=30) == "complete"
    assert len(calls) == 2
    assert storage.read_report_csv(example, storage.get_report(example, rid)) == EXAMPLE_CSV


def test_a_delivery_that_loses_the_race_leaves_no_orphan_file(
    example: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tasks.generate_report

    def other_worker_finishes_first(**kwargs: object):
        result = real(**kwargs)
        storage.fail_report(example, "A" * 32, "finished elsewhere")
        return result

    monkeypatch.setattr(tasks, "generate_report", other_worker_finishes_first)
    rid = new_report(example, EXAMPLE_NOW)
    assert tasks.run_report(rid) == "superseded"
    assert storage.get_report(example, rid)["status"] == "Failed"
    assert example[f"{storage.REPORT_BUCKET}.files"].count_documents({}) == 0
    assert example[f"{storage.REPORT_BUCKET}.chunks"].count_documents({}) == 0


def test_database_report_equals_offline_report_on_the_sample_data(mdb: Database) -> None:
    load_sources(ROOT / "data", mdb)
    now = storage.newest_poll_time(mdb)
    rid = new_report(mdb, now)
    assert tasks.run_report(rid) == "complete"
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out  # the offline command writes "-" to sys.stdout
    try:
        call_command("generate_report", csv_dir=str(ROOT / "data"), now=now.isoformat(), output="-",
                     stderr=io.StringIO())
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
