"""A report in shards (loop.sharding, services.reports): the same bytes as one task and as the offline command.

Expected values: the hand-worked bounds, joins and warnings below; for whole reports, the CSV of the
unsharded path and of the offline ``generate_report --csv-dir`` (a separate process reading the CSV
files), never the sharded code's own output. The distributed protocol (split, shard tasks, join) runs
here on mongomock with the queue replaced by a recorder; tests/integration/test_report_shards_http.py
runs it with real Celery workers, Redis and a MongoDB-wire server.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pymongo.database import Database
from pymongo.errors import AutoReconnect

from loop import queue, storage
from loop.datagen import generate_dataset
from loop.embedded_worker import wait_embedded_idle
from loop.ids import new_id
from loop.ingest import load_sources
from loop.retry import Retry, RetryPolicy, attempt_report_shard
from loop.rules import merge_warnings, zone_warnings
from loop.services import reports
from loop.sharding import join_csv, shard_bounds, shard_count, shard_limits
from loop.storage import ReportPhase, ReportStatus, StoreRange
from loop.storage.packed import head_parts
from loop.storage.schema import REPORT_FILES, REPORT_SHARDS, REPORTS
from tests.support.csv_files import write_csv, write_dataset
from tests.support.processes import run_generate_report
from tests.support.worked_example import EXAMPLE_HOURS, EXAMPLE_NOW, EXAMPLE_POLLS, EXAMPLE_ZONES

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"
# Several thousand stores over 8 days: ~68K polls a day, so every day has 14 parts of 5,000 polls and a
# shard of 1/7 of the stores reads only 2-3 of them. (A "10x" set is too slow for every run: see
# docs/benchmarks.md for the full-size runs.)
GENERATED_STORES = 8000
GENERATED_END = pd.Timestamp("2024-10-14 23:00:00", tz="UTC")


# --- the pure rules ---------------------------------------------------------------------------


def test_shard_count_auto_fixed_and_clamped() -> None:
    assert shard_count(120_000, shards=0, shard_stores=50_000) == 3  # ceil(120,000 / 50,000)
    assert shard_count(100_000, shards=0, shard_stores=50_000) == 2
    assert shard_count(10, shards=0, shard_stores=50_000) == 1
    assert shard_count(10, shards=7, shard_stores=50_000) == 7
    assert shard_count(4, shards=7, shard_stores=50_000) == 4  # never more shards than stores
    assert shard_count(0, shards=7, shard_stores=50_000) == 1


def test_bounds_cut_equal_counts_and_limits_are_half_open() -> None:
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    # 7 ids in 3 shards: ranks 7*1//3 = 2 ("c") and 7*2//3 = 4 ("e"): [a, b], [c, d], [e, f, g].
    assert shard_bounds(ids, 3) == ["c", "e"]
    assert shard_bounds(ids, 1) == []
    assert shard_limits(["c", "e"], 0) == (None, "c")
    assert shard_limits(["c", "e"], 1) == ("c", "e")
    assert shard_limits(["c", "e"], 2) == ("e", None)
    with pytest.raises(ValueError):
        shard_limits(["c", "e"], 3)
    middle = StoreRange("c", "e")
    assert middle.mask(np.array(["b", "c", "d", "e"], dtype=object)).tolist() == [False, True, True, False]
    # A part holding b..c overlaps [c, e); one holding e..f does not.
    assert middle.overlaps("b", "c") and not middle.overlaps("e", "f") and not middle.overlaps("a", "b")


def test_join_keeps_one_header_and_the_rows_in_shard_order() -> None:
    parts = ["h1,h2\na,1\nb,2\n", "h1,h2\n", "h1,h2\nc,3\n"]
    assert join_csv(parts) == "h1,h2\na,1\nb,2\nc,3\n"
    with pytest.raises(ValueError):
        join_csv(["h1,h2\na,1\n", "other\nb,2\n"])


def test_shard_warnings_merge_into_the_whole_reports() -> None:
    # Stores 1-3 in shard 0, 4-6 in shard 1; "Mars/X" given to stores 1, 4 and 5, "Moon" to 3.
    first = zone_warnings(np.array(["Mars/X", "", "Moon"], dtype=object))
    second = zone_warnings(np.array(["Mars/X", "Mars/X", ""], dtype=object))
    assert merge_warnings([first, second]) == [
        "unknown time zone 'Mars/X' for 3 store(s); using America/Chicago",
        "unknown time zone 'Moon' for 1 store(s); using America/Chicago",
    ]
    assert merge_warnings([[], ["something else"], ["something else"]]) == ["something else"]


# --- whole reports: sharded == unsharded == offline --------------------------------------------


def _generated_set(folder: Path, stores: int = GENERATED_STORES) -> Path:
    generate_dataset(folder, stores=stores, days=8, seed=11, end=GENERATED_END, real_dir=SAMPLE)
    # Holidays (closed all day, or other hours) for a few stores spread across the shards.
    ids = pd.read_csv(folder / "timezones.csv", dtype=str)["store_id"].tolist()
    picked = sorted(ids)[:: stores // 9]
    write_csv(
        folder / "special_hours.csv",
        "store_id,date_local,start_time_local,end_time_local",
        [
            f"{sid},2024-10-1{k % 4},," if k % 2 else f"{sid},2024-10-1{k % 4},10:00:00,14:00:00"
            for k, sid in enumerate(picked)
        ],
    )
    return folder


def _worked_example_set(folder: Path) -> Path:
    return write_dataset(folder, EXAMPLE_POLLS, EXAMPLE_HOURS, EXAMPLE_ZONES)


DATA_SETS = {
    "sample": (lambda folder: SAMPLE, None),
    "worked_example": (_worked_example_set, EXAMPLE_NOW),
    "generated": (_generated_set, GENERATED_END - pd.Timedelta(minutes=7)),
}


def _offline(folder: Path, now: pd.Timestamp | None, extended: bool) -> str:
    args = ["--csv-dir", str(folder), "--output", "-"]
    if now is not None:
        args += ["--now", now.isoformat()]
    if extended:
        args += ["--format", "extended"]
    done = run_generate_report(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _report(settings: Any, db: Database, shards: int, now: pd.Timestamp | None, extended: bool) -> dict[str, Any]:
    settings.REPORT_SHARDS = shards
    fmt = storage.ReportFormat.EXTENDED if extended else storage.ReportFormat.LOOP
    triggered = reports.trigger_report(now=now, force=True, report_format=fmt)
    assert wait_embedded_idle(timeout=60)
    doc = storage.get_report(db, triggered.report_id)
    assert doc is not None and doc["status"] == ReportStatus.COMPLETE, doc
    return {**doc, "csv": reports.report_csv(report_id=triggered.report_id)}


@pytest.mark.parametrize("extended", [False, True], ids=["loop", "extended"])
@pytest.mark.parametrize("name", list(DATA_SETS))
def test_sharded_csv_equals_unsharded_and_offline(
    settings: Any, mdb: Database, tmp_path: Path, name: str, extended: bool
) -> None:
    make, now = DATA_SETS[name]
    folder = make(tmp_path / name)
    load_sources(folder, mdb)
    whole = _report(settings, mdb, 1, now, extended)
    assert "shards" not in whole
    assert whole["csv"] == _offline(folder, now, extended)
    for shards in (3, 7):
        sharded = _report(settings, mdb, shards, now, extended)
        stores = whole["rows"]
        assert sharded["shards"] == min(shards, stores)
        assert sharded["csv"] == whole["csv"], f"{shards} shards"
        assert (sharded["rows"], sharded["polls_counted"]) == (whole["rows"], whole["polls_counted"])
        assert sharded["warnings"] == whole["warnings"]
        assert mdb[REPORT_SHARDS].count_documents({}) == 0  # the parts went with the join


def test_a_shard_reads_only_the_day_parts_of_its_stores(settings: Any, mdb: Database, tmp_path: Path) -> None:
    load_sources(_generated_set(tmp_path / "g"), mdb)
    day = "2024-10-12"
    head = storage.read_day_head(mdb, day)
    assert head is not None
    parts = head_parts(head)
    assert len(parts) >= 10
    # A range inside the 4th part's [first, last] needs that part alone.
    inner = StoreRange(parts[3]["first"], parts[3]["last"])
    columns = storage.read_poll_columns(
        mdb, pd.Timestamp(f"{day} 00:00", tz="UTC"), pd.Timestamp(f"{day} 23:59", tz="UTC"), store_range=inner
    )
    ids = columns.store_ids[columns.store]
    assert len(ids) and all(parts[3]["first"] <= sid < parts[3]["last"] for sid in ids)
    # Which parts were fetched: the day collection's lookups.
    seen: list[Any] = []
    collection = mdb[f"store_status.{day}"]
    original = type(collection).find_one

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == collection.name:
            seen.append(args[0] if args else kwargs.get("filter"))
        return original(self, *args, **kwargs)

    import mongomock

    mp = pytest.MonkeyPatch()
    mp.setattr(mongomock.collection.Collection, "find_one", spy)
    try:
        storage.read_day(mdb, day, store_ids=inner)
    finally:
        mp.undo()
    token = f"{head['token']}|"
    read = sorted(str(q["_id"]) for q in seen if isinstance(q, dict) and str(q.get("_id")).startswith(token))
    # The 4th part, and a neighbour only where one store's polls continue across the cut.
    wanted = [
        f"{token}{part['k']}"
        for part in parts
        if part["first"] < parts[3]["last"] and part["last"] >= parts[3]["first"]
    ]
    assert read == sorted(wanted) and f"{token}{parts[3]['k']}" in read and len(read) <= 3 < len(parts)


# --- the distributed protocol, with the queue recorded --------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.shards: list[tuple[str, int, int]] = []
        self.joins: list[str] = []
        self.reports: list[str] = []


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, settings: Any, mdb: Database, tmp_path: Path) -> Recorder:
    """A smaller generated set loaded; shards and joins recorded instead of queued (as with a broker)."""
    load_sources(_generated_set(tmp_path / "g", stores=1500), mdb)
    rec = Recorder()
    monkeypatch.setattr(queue, "shards_run_inline", lambda: False)
    monkeypatch.setattr(
        queue, "enqueue_report_shard", lambda rid, shard, now_us: rec.shards.append((rid, shard, now_us))
    )
    monkeypatch.setattr(queue, "enqueue_report_join", lambda rid: rec.joins.append(rid))
    monkeypatch.setattr(queue, "enqueue_report", lambda rid: rec.reports.append(rid))
    return rec


def _new_report(db: Database, now: pd.Timestamp) -> str:
    report_id = new_id()
    storage.create_report(db, report_id, now)
    return report_id


def _unsharded_csv(settings: Any, db: Database, now: pd.Timestamp) -> str:
    settings.REPORT_SHARDS = 1
    report_id = _new_report(db, now)
    assert reports.run_report(report_id=report_id, db=db) == "complete"
    return reports.report_csv(report_id=report_id)


NOW = GENERATED_END - pd.Timedelta(minutes=7)


def test_split_shards_in_any_order_with_duplicates_then_one_join(
    settings: Any, mdb: Database, recorded: Recorder
) -> None:
    expected = _unsharded_csv(settings, mdb, NOW)
    settings.REPORT_SHARDS = 3
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    now_us = storage.get_report(mdb, report_id)["now_us"]  # type: ignore[index]
    # One message per shard, carrying the report id, the shard and the pinned now: nothing else.
    assert recorded.shards == [(report_id, 0, now_us), (report_id, 1, now_us), (report_id, 2, now_us)]
    doc = storage.get_report(mdb, report_id)
    assert doc is not None
    assert doc["phase"] == ReportPhase.SHARDS and doc["heartbeat_at"] is None and len(doc["shard_bounds"]) == 2
    # A redelivered split while the shards wait: no new bounds (even with another setting), the same shards again.
    settings.REPORT_SHARDS = 7
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    assert storage.get_report(mdb, report_id)["shard_bounds"] == doc["shard_bounds"]  # type: ignore[index]
    assert recorded.shards[3:] == recorded.shards[:3]

    assert reports.run_report_shard(report_id=report_id, shard=2, now_us=now_us, db=mdb) == "done"
    view = reports.report_view(report_id=report_id)
    assert (view.status, view.phase, view.shards, view.shards_done) == (ReportStatus.RUNNING, "shards", 3, 1)
    assert view.progress == 10 + 80 * 1 // 3
    assert reports.run_report_shard(report_id=report_id, shard=2, now_us=now_us, db=mdb) == "done-before"
    assert reports.run_report_shard(report_id=report_id, shard=0, now_us=now_us + 1, db=mdb) == "ignored"
    assert reports.run_report_shard(report_id=report_id, shard=3, now_us=now_us, db=mdb) == "ignored"
    assert reports.run_report_shard(report_id=report_id, shard=0, now_us=now_us, db=mdb) == "done"
    assert recorded.joins == []
    assert reports.run_report_shard(report_id=report_id, shard=1, now_us=now_us, db=mdb) == "done"
    assert recorded.joins == [report_id]
    # The join is an attempt at the report: it takes over from the split attempt the shards beat for.
    assert reports.run_report(report_id=report_id, db=mdb) == "complete"
    assert reports.report_csv(report_id=report_id) == expected
    # A late duplicate of the join or of a shard does nothing.
    assert reports.run_report(report_id=report_id, db=mdb) == "not-running"
    assert reports.run_report_shard(report_id=report_id, shard=1, now_us=now_us, db=mdb) == "not-running"
    assert mdb[REPORT_SHARDS].count_documents({}) == 0
    assert mdb[REPORT_FILES].count_documents({"metadata.shard": {"$exists": True}}) == 0


def test_a_second_join_waits_while_the_first_holds_the_report(settings: Any, mdb: Database, recorded: Recorder) -> None:
    settings.REPORT_SHARDS = 2
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    for _, shard, now_us in recorded.shards:
        reports.run_report_shard(report_id=report_id, shard=shard, now_us=now_us, db=mdb)
    doc = storage.get_report(mdb, report_id)
    assert doc is not None
    # The first join's start (as run_attempt does it), then a second delivery of the join: busy.
    started = storage.mark_report_started(
        mdb,
        report_id,
        worker="elsewhere:1",
        retries=0,
        token="join-1",
        live_since=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=60),
        replaceable=[str(doc["shard_token"])],
    )
    assert started is not None
    assert reports.run_report(report_id=report_id, db=mdb) == "busy"


def test_a_shard_failing_fails_the_report_with_its_error(
    settings: Any, mdb: Database, recorded: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REPORT_SHARDS = 3
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    real = reports.generate_report

    def broken(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("store_range") is not None and kwargs["store_range"].lo is not None and kwargs["store_range"].hi:
            raise ValueError("the middle shard's input is broken")
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "generate_report", broken)
    outcomes = [reports.run_report_shard(report_id=report_id, shard=s, now_us=n, db=mdb) for _, s, n in recorded.shards]
    assert outcomes == ["done", "failed", "not-running"]
    doc = storage.get_report(mdb, report_id)
    assert doc is not None
    assert doc["status"] == ReportStatus.FAILED
    assert doc["error"] == "shard 2 of 3 failed: ValueError: the middle shard's input is broken"
    assert recorded.joins == []
    # Deleting it removes its parts.
    reports.delete_report(report_id=report_id)
    assert mdb[REPORT_SHARDS].count_documents({}) == 0
    assert mdb[REPORT_FILES].count_documents({"metadata.report_id": report_id}) == 0


def test_lost_shards_are_queued_again_by_the_lost_sweep(settings: Any, mdb: Database, recorded: Recorder) -> None:
    expected = _unsharded_csv(settings, mdb, NOW)
    settings.REPORT_SHARDS = 3
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    _, _, now_us = recorded.shards[0]
    assert reports.run_report_shard(report_id=report_id, shard=0, now_us=now_us, db=mdb) == "done"
    # Shard 1 started on a machine that then vanished: its heartbeat is old, and its message is not coming back.
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=settings.JOB_LOST_SECONDS + 5)
    mdb[REPORTS].update_one({"_id": report_id}, {"$set": {"heartbeat_at": old}})
    assert reports.recover_lost_reports() == 1
    assert recorded.reports == [report_id]
    recorded.shards.clear()
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    assert [shard for _, shard, _ in recorded.shards] == [1, 2]  # not shard 0: it is done
    for _, shard, now_us in recorded.shards:
        reports.run_report_shard(report_id=report_id, shard=shard, now_us=now_us, db=mdb)
    assert reports.run_report(report_id=report_id, db=mdb) == "complete"
    assert reports.report_csv(report_id=report_id) == expected
    assert storage.get_report(mdb, report_id)["lost_attempts"] == 1  # type: ignore[index]


def test_a_part_left_by_a_shard_killed_before_recording_it_goes_with_the_join(
    settings: Any, mdb: Database, recorded: Recorder
) -> None:
    settings.REPORT_SHARDS = 2
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    storage.put_file(mdb, "orphan.csv", b"x", {"report_id": report_id, "shard": 0})
    for _, shard, now_us in recorded.shards:
        reports.run_report_shard(report_id=report_id, shard=shard, now_us=now_us, db=mdb)
    assert reports.run_report(report_id=report_id, db=mdb) == "complete"
    assert mdb[REPORT_FILES].count_documents({"metadata.shard": {"$exists": True}}) == 0


def test_get_report_shows_shards_done_while_running(api: Any, settings: Any, mdb: Database, recorded: Recorder) -> None:
    settings.REPORT_SHARDS = 3
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    _, shard, now_us = recorded.shards[1]
    reports.run_report_shard(report_id=report_id, shard=shard, now_us=now_us, db=mdb)
    body = api.get(f"/get_report/{report_id}/").json()
    assert body["status"] == "Running"
    assert (body["phase"], body["shards"], body["shards_done"], body["progress"]) == ("shards", 3, 1, 36)
    assert "csv_data" not in body
    # Unsharded reports answer as before: no shard fields.
    settings.REPORT_SHARDS = 1
    other = _new_report(mdb, NOW)
    body = api.get(f"/get_report/{other}/").json()
    assert "shards" not in body and "shards_done" not in body


def test_mongodb_away_during_a_shard_retries_it_then_fails_the_report_with_the_shards_error(
    settings: Any, mdb: Database, recorded: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REPORT_SHARDS = 2
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    (_, _, now_us) = recorded.shards[0]
    real = reports.generate_report
    outage = {"left": 1}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if outage["left"]:
            outage["left"] -= 1
            raise AutoReconnect("connection refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "generate_report", flaky)
    policy = RetryPolicy(max_retries=2, backoff_s=0, backoff_max_s=0, visibility_timeout_s=60)
    first = attempt_report_shard(report_id, 0, now_us, retries=0, failure=None, policy=policy)
    assert isinstance(first, Retry)  # MongoDB away: the shard is tried again, the report still Running
    assert storage.get_report(mdb, report_id)["status"] == ReportStatus.RUNNING  # type: ignore[index]
    assert attempt_report_shard(report_id, 0, now_us, retries=1, failure=None, policy=policy) == "done"
    # Shard 1 never gets past the outage: after the retries the report is Failed with the shard's error.
    outage["left"] = 10
    outcome: str | Retry = Retry(0)
    retries = 0
    while isinstance(outcome, Retry):
        outcome = attempt_report_shard(report_id, 1, now_us, retries=retries, failure=outcome.failure, policy=policy)
        retries += 1
    assert outcome == "failed"
    doc = storage.get_report(mdb, report_id)
    assert doc is not None and doc["status"] == ReportStatus.FAILED
    assert doc["error"] == "shard 2 failed: MongoDB unavailable after 2 retries: AutoReconnect: connection refused"
    assert recorded.joins == []


def test_a_join_killed_mid_join_is_taken_over_by_its_redelivery(
    settings: Any, mdb: Database, recorded: Recorder
) -> None:
    expected = _unsharded_csv(settings, mdb, NOW)
    settings.REPORT_SHARDS = 3
    report_id = _new_report(mdb, NOW)
    assert reports.run_report(report_id=report_id, db=mdb) == "sharded"
    for _, shard, now_us in recorded.shards:
        reports.run_report_shard(report_id=report_id, shard=shard, now_us=now_us, db=mdb)
    doc = storage.get_report(mdb, report_id)
    assert doc is not None
    # A join started in a pool process of this host that was then SIGKILLed (its pid is gone), mid-join.
    proc = subprocess.Popen(["true"])
    proc.wait()
    started = storage.mark_report_started(
        mdb,
        report_id,
        worker=f"{socket.gethostname()}:{proc.pid}",
        retries=0,
        token="killed-join",
        live_since=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=60),
        replaceable=[str(doc["shard_token"])],
    )
    assert started is not None
    storage.set_report_phase(mdb, report_id, ReportPhase.JOINING)
    # Celery gives the message back at once (reject_on_worker_lost): the redelivery takes the report over.
    assert reports.run_report(report_id=report_id, db=mdb) == "complete"
    assert reports.report_csv(report_id=report_id) == expected
