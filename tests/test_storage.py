"""loop.storage against mongomock: exact round trips, keys, ranges, reports, files."""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np
import pandas as pd
import pytest
from pymongo.database import Database

from loop import storage
from loop.ingest import PollWriter, insert_polls
from loop.services.reports import fail_report_if_stale
from loop.timeutil import ts_to_us, utcnow


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def polls(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "timestamp_utc": pd.to_datetime([r[2] for r in rows], utc=True, format="ISO8601").as_unit("us"),
        }
    )


def test_polls_round_trip_keeps_microseconds(mdb: Database) -> None:
    written = insert_polls(
        mdb,
        polls(
            [
                ("s1", "active", "2024-10-03 23:33:20.412748"),
                ("s1", "inactive", "2024-10-03 23:33:20.412749"),  # 1 us later: a different poll
                ("007", "active", "2024-10-04 00:00:00"),
            ]
        ),
    )
    assert (written.inserted, written.duplicates) == (3, 0)
    got = storage.read_polls(mdb, ts("2024-10-01"), ts("2024-10-05"))
    got = got.sort_values(["store_id", "timestamp_utc"]).reset_index(drop=True)
    assert got["store_id"].tolist() == ["007", "s1", "s1"]  # ids stay strings ("007", not 7)
    assert got["status"].tolist() == ["active", "active", "inactive"]
    assert [t.isoformat() for t in got["timestamp_utc"]] == [
        "2024-10-04T00:00:00+00:00",
        "2024-10-03T23:33:20.412748+00:00",
        "2024-10-03T23:33:20.412749+00:00",
    ]
    # Stored as int64 microseconds in the day's packed part, zlib-compressed (docs/storage.md).
    head = mdb[storage.STATUS].find_one({"_id": "day:2024-10-03"})
    part = mdb[f"{storage.STATUS}.2024-10-03"].find_one({"_id": f"{head['token']}|0"})
    assert np.frombuffer(zlib.decompress(part["t_us"]), dtype="<i8").tolist() == [1727998400412748, 1727998400412749]


def test_duplicates_are_counted_and_inactive_wins_across_loads(mdb: Database) -> None:
    insert_polls(
        mdb,
        polls([("a", "active", "2024-10-03 10:00:00.5"), ("b", "inactive", "2024-10-03 10:00:00")]),
    )
    again = insert_polls(
        mdb,
        polls(
            [
                ("a", "inactive", "2024-10-03 10:00:00.5"),  # disagrees: inactive wins
                ("b", "active", "2024-10-03 10:00:00"),  # disagrees: stays inactive
                ("c", "active", "2024-10-03 10:00:00"),  # new
            ]
        ),
    )
    assert (again.inserted, again.duplicates, again.made_inactive) == (1, 2, 1)
    stored = storage.read_all_polls(mdb).to_frame()
    assert dict(zip(stored["store_id"].astype(str), stored["status"].astype(str), strict=True)) == {
        "a": "inactive",
        "b": "inactive",
        "c": "active",
    }
    assert len(stored) == 3


def test_one_writer_finds_repeats_in_the_chunk_and_in_earlier_chunks(mdb: Database) -> None:
    writer = PollWriter(mdb)
    writer.write(
        polls(
            [
                ("a", "active", "2024-10-03 10:00:00"),
                ("a", "inactive", "2024-10-03 10:00:00"),  # repeat in the chunk: inactive kept
                ("b", "active", "2024-10-03 10:00:00"),
            ]
        )
    )
    # A repeat of an earlier chunk (inactive wins over its active copy) and a new poll 1 ms later.
    writer.write(polls([("b", "inactive", "2024-10-03 10:00:00"), ("b", "active", "2024-10-03 10:00:00.001")]))
    written = writer.flush()
    assert (written.inserted, written.duplicates) == (3, 2)
    stored = storage.read_all_polls(mdb).to_frame()
    assert sorted(
        zip(
            stored["store_id"].astype(str),
            stored["timestamp_utc"].dt.microsecond,
            stored["status"].astype(str),
            strict=True,
        )
    ) == [("a", 0, "inactive"), ("b", 0, "inactive"), ("b", 1000, "active")]
    assert (writer.totals.inserted, writer.totals.duplicates) == (3, 2)
    # Across loads, the flip of a stored active poll is what "made inactive" counts.
    again = insert_polls(mdb, polls([("b", "inactive", "2024-10-03 10:00:00.001")]))
    assert (again.inserted, again.duplicates, again.made_inactive) == (0, 1, 1)


def test_read_polls_bounds_are_inclusive_to_the_microsecond(mdb: Database) -> None:
    start, end = ts("2024-10-07 12:00:00.000500"), ts("2024-10-14 12:00:00.000500")
    insert_polls(
        mdb,
        polls(
            [
                ("s", "active", "2024-10-07 12:00:00.000499"),  # 1 us before start: out
                ("s", "active", "2024-10-07 12:00:00.000500"),  # start: in
                ("s", "active", "2024-10-14 12:00:00.000500"),  # end: in
                ("s", "active", "2024-10-14 12:00:00.000501"),  # 1 us after end: out
            ]
        ),
    )
    got = storage.read_polls(mdb, start, end)
    assert sorted(t.isoformat() for t in got["timestamp_utc"]) == [
        "2024-10-07T12:00:00.000500+00:00",
        "2024-10-14T12:00:00.000500+00:00",
    ]
    assert str(got["timestamp_utc"].dtype) == "datetime64[us, UTC]"


def test_week_polls_reads_exactly_the_seven_days_up_to_now(mdb: Database) -> None:
    now = ts("2024-10-14 23:00:00")
    insert_polls(
        mdb,
        polls(
            [
                ("s", "active", "2024-10-07 22:59:59.999999"),  # just older than a week
                ("s", "active", "2024-10-07 23:00:00"),
                ("s", "inactive", "2024-10-14 23:00:00"),
                ("s", "active", "2024-10-14 23:00:01"),  # after now
            ]
        ),
    )
    got = storage.week_polls(mdb, now)
    assert sorted(got["timestamp_utc"].dt.strftime("%d %H:%M:%S")) == ["07 23:00:00", "14 23:00:00"]


def test_poll_ranges_answer_newest_and_stores_polled_through(mdb: Database) -> None:
    assert storage.newest_poll_time(mdb) is None
    first = polls([("a", "active", "2024-10-01 00:00:00"), ("b", "active", "2024-10-10 00:00:00.25")])
    insert_polls(mdb, first)
    later = polls([("a", "active", "2024-09-01 00:00:00"), ("c", "active", "2024-10-12 00:00:00.000001")])
    insert_polls(mdb, later)

    assert storage.newest_poll_time(mdb) == ts("2024-10-12 00:00:00.000001")
    assert sorted(storage.store_ids_polled_through(mdb, ts("2024-10-10 00:00:00.25"))) == ["a", "b"]
    assert sorted(storage.store_ids_polled_through(mdb, ts("2024-10-10 00:00:00.249999"))) == ["a"]
    assert storage.store_ids_polled_through(mdb, ts("2024-08-31")) == []
    _, ids, first = storage.read_catalog(mdb)
    # The second load moved a's first poll earlier.
    assert dict(zip(ids.tolist(), first.tolist(), strict=True))["a"] == ts_to_us(ts("2024-09-01"))


def test_replacing_hours_and_zones_touches_only_the_named_stores(mdb: Database) -> None:
    hours = pd.DataFrame(
        {
            "store_id": ["a", "a", "b"],
            "day_of_week": [0, 1, 2],
            "start_seconds": [0, 3600, 60],
            "end_seconds": [100, 7200, 120],
        }
    )
    assert storage.replace_hours(mdb, hours) == 3
    storage.replace_hours(
        mdb, pd.DataFrame({"store_id": ["a"], "day_of_week": [6], "start_seconds": [10], "end_seconds": [20]})
    )
    got = storage.read_hours(mdb).sort_values(["store_id", "day_of_week"]).reset_index(drop=True)
    assert got.to_dict("records") == [
        {"store_id": "a", "day_of_week": 6, "start_seconds": 10, "end_seconds": 20},
        {"store_id": "b", "day_of_week": 2, "start_seconds": 60, "end_seconds": 120},
    ]
    assert str(got["day_of_week"].dtype) == "int64"

    storage.replace_zones(
        mdb, pd.DataFrame({"store_id": ["x", "y", "x"], "timezone_str": ["America/Denver", "Asia/Tokyo", "UTC"]})
    )
    storage.replace_zones(mdb, pd.DataFrame({"store_id": ["y"], "timezone_str": ["Europe/Paris"]}))
    zones = storage.read_zones(mdb)
    # x's two rows come back in file order (the engine keeps the last one).
    assert zones[zones.store_id == "x"]["timezone_str"].tolist() == ["America/Denver", "UTC"]
    assert zones[zones.store_id == "y"]["timezone_str"].tolist() == ["Europe/Paris"]


def test_report_lifecycle_and_large_csv_in_chunks(mdb: Database) -> None:
    now = ts("2024-10-14 23:55:18.727055")
    storage.create_report(mdb, "r" * 32, now)
    doc = storage.get_report(mdb, "r" * 32)
    assert doc["status"] == "Running" and storage.report_now(doc) == now
    started = storage.mark_report_started(
        mdb, "r" * 32, worker="here:1", retries=0, token="t1", live_since=dt.datetime(2000, 1, 1)
    )
    assert started is not None and started["attempts"] == 1 and started["attempt_token"] == "t1"

    # ~1.3 MB: several GridFS chunks of 255 KiB, reassembled byte for byte.
    csv_text = "store_id,x\n" + "".join(f"store-{i:07d},{i % 97}.00\n" for i in range(80_000))
    assert storage.complete_report(
        mdb, "r" * 32, csv_text, rows=80_000, polls_counted=5, warnings=[], timings={"total_s": 1.0}
    )
    doc = storage.get_report(mdb, "r" * 32)
    assert doc["status"] == "Complete" and doc["rows"] == 80_000
    chunks = list(mdb[f"{storage.REPORT_BUCKET}.chunks"].find({"files_id": doc["file_id"]}))
    assert len(chunks) == -(-len(csv_text.encode()) // (255 * 1024))
    assert all(len(c["data"]) <= 255 * 1024 for c in chunks)
    assert storage.read_report_csv(mdb, doc) == csv_text

    # A finished report cannot be completed or failed again; the extra file is removed.
    assert not storage.complete_report(mdb, "r" * 32, "other", rows=1, polls_counted=0, warnings=[], timings={})
    assert not storage.fail_report(mdb, "r" * 32, "late failure")
    assert mdb[f"{storage.REPORT_BUCKET}.files"].count_documents({}) == 1
    assert storage.read_report_csv(mdb, storage.get_report(mdb, "r" * 32)) == csv_text


def test_a_finished_jobs_status_is_set_after_its_other_fields(mdb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # mongomock (make run, unit tests) applies $set field by field: a reader in another thread that sees
    # Complete must already see the CSV's file (a GET once answered 500 "has no CSV file").
    sets: list[list[str]] = []
    collection = type(mdb[storage.REPORTS])
    real = collection.update_one

    def spy(self, query, update, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "status" in update.get("$set", {}):
            sets.append(list(update["$set"]))
        return real(self, query, update, *args, **kwargs)

    monkeypatch.setattr(collection, "update_one", spy)
    for job_id in ("c" * 32, "f" * 32):
        storage.create_report(mdb, job_id, ts("2024-10-14"))
        assert storage.mark_report_started(mdb, job_id, worker="w:1", retries=0, token="t", live_since=utcnow())
    assert storage.complete_report(mdb, "c" * 32, "a\n", rows=0, polls_counted=0, warnings=[], timings={})
    assert storage.fail_report(mdb, "f" * 32, "broken")
    mdb[storage.IMPORTS].insert_many([{"_id": job_id, "status": "Running"} for job_id in ("i" * 32, "j" * 32)])
    imports_collection = mdb[storage.IMPORTS]
    assert type(imports_collection) is collection
    assert storage.complete_import(mdb, "i" * 32, summary={}, rows=0)
    assert storage.fail_import(mdb, "j" * 32, "broken")
    assert len(sets) == 4
    assert sets and all(fields[-1] == "status" and len(fields) > 1 for fields in sets), sets


def test_stale_running_report_is_failed(mdb: Database, settings) -> None:
    settings.REPORT_STALE_SECONDS = 1800
    storage.create_report(mdb, "s" * 32, ts("2024-10-14"))
    mdb[storage.REPORTS].update_one(
        {"report_id": "s" * 32}, {"$set": {"created_at": utcnow() - dt.timedelta(minutes=31)}}
    )
    storage.create_report(mdb, "f" * 32, ts("2024-10-14"))
    assert fail_report_if_stale(db=mdb, report=storage.get_report(mdb, "f" * 32))["status"] == "Running"
    stale = fail_report_if_stale(db=mdb, report=storage.get_report(mdb, "s" * 32))
    assert stale["status"] == "Failed" and stale["error"].startswith("stale")


def test_get_report_refuses_anything_but_a_string(mdb: Database) -> None:
    storage.create_report(mdb, "a" * 32, ts("2024-10-14"))
    with pytest.raises(TypeError):
        storage.get_report(mdb, {"$ne": "x"})  # type: ignore[arg-type]
    assert storage.get_report(mdb, "b" * 32) is None
