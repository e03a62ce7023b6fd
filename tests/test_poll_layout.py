"""Polls stored as packed day parts (docs/storage.md), against mongomock: bounds, versions, appends, migration."""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.ingest import insert_polls, load_sources
from loop.ingest.dedup import PollWriter
from loop.ingest.migrate import migrate_legacy_polls
from loop.storage import polls as polls_storage
from loop.storage.legacy import LegacyLayoutError
from loop.storage.packed import DeltaLog, head_parts
from loop.storage.polls import PART_POLLS, PollColumns, concat_columns, forget_cached_heads
from tests.support.csv_files import write_dataset
from tests.support.stored import stored_poll_rows


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "timestamp_utc": pd.to_datetime([r[2] for r in rows], utc=True, format="ISO8601").as_unit("us"),
        }
    )


def frame_columns(rows: list[tuple[str, str, str]]) -> PollColumns:
    polls = frame(rows)
    ids, store = np.unique(polls["store_id"].to_numpy(dtype=object), return_inverse=True)
    t_us = (polls["timestamp_utc"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    return PollColumns(ids, store.astype(np.int64), t_us.to_numpy(np.int64), (polls["status"] == "inactive").to_numpy())


def day_parts(db: Database, day: str) -> list[dict]:
    head = db[storage.STATUS].find_one({"_id": f"day:{day}"})
    return [db[f"{storage.STATUS}.{day}"].find_one({"_id": f"{head['token']}|{p['k']}"}) for p in head_parts(head)]


def test_a_day_is_one_head_and_packed_parts_with_exact_microseconds(mdb: Database) -> None:
    insert_polls(
        mdb,
        frame(
            [
                ("s1", "active", "2024-10-03 23:33:20.412748"),
                ("s1", "inactive", "2024-10-03 23:33:20.412749"),
                ("007", "active", "2024-10-03 00:00:00"),
                ("s1", "active", "2024-10-04 00:00:00"),  # the next UTC day
            ]
        ),
    )
    assert storage.stored_day_counts(mdb) == {"2024-10-03": 3, "2024-10-04": 1}
    head = mdb[storage.STATUS].find_one({"_id": "day:2024-10-03"})
    assert head["version"] == 1 and head["n"] == 3
    # The part list is one JSON string (cheap for FerretDB to pass over): [first, last, rows] per part.
    assert head["parts"] == '[["007","s1",3]]'
    assert head_parts(head) == [{"k": 0, "first": "007", "last": "s1", "n": 3}]
    (part,) = day_parts(mdb, "2024-10-03")
    assert part["codec"] == "zlib"

    def array(name: str) -> bytes:
        return zlib.decompress(part[name])

    # Sorted by (store id, time): 007 first; microseconds since the epoch, worked out by hand.
    assert np.frombuffer(array("t_us"), dtype="<i8").tolist() == [
        1727913600000000,  # 2024-10-03 00:00:00
        1727998400412748,  # 23:33:20.412748 = 84800.412748 s later
        1727998400412749,
    ]
    assert array("store_ids") == b"007s1"
    assert np.frombuffer(array("store_counts"), dtype="<i4").tolist() == [1, 2]
    assert np.unpackbits(np.frombuffer(array("inactive"), dtype=np.uint8))[:3].tolist() == [0, 0, 1]


def test_parts_written_before_compression_still_read(mdb: Database) -> None:
    rows = [("s1", "active", "2024-10-03 10:00:00"), ("s2", "inactive", "2024-10-03 11:00:00.5")]
    insert_polls(mdb, frame(rows))
    (part,) = day_parts(mdb, "2024-10-03")
    # Rewrite the part as the earlier code stored it: the same arrays, uncompressed, no codec.
    raw = {
        name: zlib.decompress(part[name])
        for name in ("store_ids", "store_id_lengths", "store_counts", "t_us", "inactive")
    }
    mdb[f"{storage.STATUS}.2024-10-03"].update_one({"_id": part["_id"]}, {"$set": raw, "$unset": {"codec": ""}})
    forget_cached_heads(mdb)
    polls = storage.read_polls(mdb, pd.Timestamp("2024-10-03", tz="UTC"), pd.Timestamp("2024-10-04", tz="UTC"))
    assert polls["store_id"].astype(str).tolist() == ["s1", "s2"]
    assert polls["status"].astype(str).tolist() == ["active", "inactive"]
    assert polls["timestamp_utc"].tolist() == [
        pd.Timestamp("2024-10-03 10:00:00", tz="UTC"),
        pd.Timestamp("2024-10-03 11:00:00.5", tz="UTC"),
    ]


def test_heads_written_with_a_list_of_parts_still_read(mdb: Database) -> None:
    rows = [("a", "active", "2024-10-03 10:00:00"), ("z", "inactive", "2024-10-03 11:00:00")]
    insert_polls(mdb, frame(rows))
    hours = pd.DataFrame({"store_id": ["a", "z"], "day_of_week": 3, "start_seconds": 0, "end_seconds": 60})
    storage.replace_hours(mdb, hours)
    # The heads as the earlier code wrote them: one sub-document per part.
    mdb[storage.STATUS].update_one(
        {"_id": "day:2024-10-03"}, {"$set": {"parts": [{"k": 0, "first": "a", "last": "z", "n": 2}]}}
    )
    mdb[storage.HOURS].update_one({"_id": "table"}, {"$set": {"parts": [{"k": 0, "first": "a", "last": "z", "n": 2}]}})
    forget_cached_heads(mdb)
    polls = storage.read_polls(mdb, pd.Timestamp("2024-10-03", tz="UTC"), pd.Timestamp("2024-10-04", tz="UTC"))
    assert polls["store_id"].astype(str).tolist() == ["a", "z"]
    assert polls["status"].astype(str).tolist() == ["active", "inactive"]
    one = storage.read_store_polls(mdb, "z", pd.Timestamp("2024-10-03", tz="UTC"), pd.Timestamp("2024-10-04", tz="UTC"))
    assert one["status"].astype(str).tolist() == ["inactive"]
    assert storage.read_hours(mdb, "z")["day_of_week"].tolist() == [3]
    # The next write of the day stores the string form again.
    insert_polls(mdb, frame([("m", "active", "2024-10-03 12:00:00")]))
    assert mdb[storage.STATUS].find_one({"_id": "day:2024-10-03"})["parts"] == '[["a","z",3]]'


def test_deltas_stored_beside_the_parts_before_are_read_folded_and_removed(
    mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = "2024-10-03"
    insert_polls(mdb, frame([("a", "active", f"{day} 10:00:00")]))
    # The heads and deltas as the earlier code wrote them: no DELTA_LOG, deltas beside the parts.
    for head_id in (f"day:{day}", "catalog"):
        mdb[storage.STATUS].update_one({"_id": head_id}, {"$unset": {"delta_log": "", "legacy_deltas_through": ""}})
    legacy_day = DeltaLog(f"{storage.STATUS}.{day}", "d")
    delta = polls_storage._pack_part(frame_columns([("b", "inactive", f"{day} 11:00:00")]), "", 0, day)
    del delta["token"]
    legacy_day.append(mdb, {**delta, "first": "b", "last": "b"}, 1)
    legacy_catalog = DeltaLog(polls_storage.CATALOG_PARTS, "c")
    b_us = 1727953200000000  # 2024-10-03 11:00:00
    catalog_row = {"store_id": ["b"], "first_us": [b_us], "last_us": [b_us], "last_inactive": [1]}
    legacy_catalog.append(mdb, catalog_row, 1)
    forget_cached_heads(mdb)
    whole_day = (pd.Timestamp(day, tz="UTC"), pd.Timestamp(f"{day} 23:59:59", tz="UTC"))

    def stored() -> list[tuple[str, str]]:
        polls = storage.read_polls(mdb, *whole_day)
        return list(zip(polls["store_id"].astype(str), polls["status"].astype(str), strict=True))

    assert stored() == [("a", "active"), ("b", "inactive")]  # read where the earlier code put it
    assert storage.read_store_catalog(mdb).store_ids.tolist() == ["a", "b"]

    # A small batch moves the day and the catalog first (their pending deltas folded), then appends apart.
    writer = PollWriter(mdb, deltas_up_to=1000)
    writer.write(frame([("c", "active", f"{day} 12:00:00")]))
    assert writer.flush().inserted == 1
    head = mdb[storage.STATUS].find_one({"_id": f"day:{day}"})
    assert head["delta_log"] is True and head["deltas_through"] == 1 and head["legacy_deltas_through"] == 1
    assert mdb[polls_storage.DELTAS].find_one({"_id": f"{day}|d|2"}) is not None
    assert mdb[storage.STATUS].find_one({"_id": "catalog"})["delta_log"] is True
    assert mdb[polls_storage.DELTAS].find_one({"_id": "catalog|c|2"}) is not None
    assert stored() == [("a", "active"), ("b", "inactive"), ("c", "active")]
    assert storage.read_store_catalog(mdb).store_ids.tolist() == ["a", "b", "c"]

    # Compacted, then past the grace period: every delta goes, from where each was stored.
    monkeypatch.setattr(polls_storage, "DELTA_GRACE_SECONDS", -1)
    storage.compact_deltas(mdb)
    storage.compact_deltas(mdb)
    assert mdb[f"{storage.STATUS}.{day}"].count_documents({"_id": {"$regex": "^d\\|"}}) == 0
    assert mdb[polls_storage.CATALOG_PARTS].count_documents({"_id": {"$regex": "^c\\|"}}) == 0
    assert mdb[polls_storage.DELTAS].count_documents({}) == 0
    assert stored() == [("a", "active"), ("b", "inactive"), ("c", "active")]
    assert storage.read_store_catalog(mdb).last_inactive.tolist() == [0, 1, 0]


def test_parts_are_bounded_whatever_the_poll_rate(mdb: Database) -> None:
    # One store polled every 5 seconds for a whole day: 17,280 polls, then a second store.
    times = pd.date_range("2024-10-03", periods=17_280, freq="5s", tz="UTC").as_unit("us")
    busy = pd.DataFrame({"store_id": "busy", "status": "active", "timestamp_utc": times})
    quiet = frame([("zz", "inactive", "2024-10-03 12:00:00")])
    insert_polls(mdb, pd.concat([busy, quiet], ignore_index=True))
    head = mdb[storage.STATUS].find_one({"_id": "day:2024-10-03"})
    assert [p["n"] for p in head_parts(head)] == [5000, 5000, 5000, 2281]
    assert [(p["first"], p["last"]) for p in head_parts(head)] == [("busy", "busy")] * 3 + [("busy", "zz")]
    assert all(part["n"] <= PART_POLLS for part in day_parts(mdb, "2024-10-03"))
    got = storage.read_store_polls(mdb, "busy", pd.Timestamp("2024-10-03", tz="UTC"), times[-1])
    assert len(got) == 17_280 and got["timestamp_utc"].is_monotonic_increasing
    only = storage.read_store_polls(mdb, "zz", pd.Timestamp("2024-10-03", tz="UTC"), times[-1])
    assert only["status"].astype(str).tolist() == ["inactive"]
    assert only["store_id"].cat.categories.tolist() == ["zz"]  # not every id of the part it came from


def test_loading_the_same_polls_again_writes_nothing(mdb: Database) -> None:
    rows = [("a", "active", "2024-10-03 10:00:00"), ("a", "inactive", "2024-10-04 10:00:00")]
    insert_polls(mdb, frame(rows))
    again = insert_polls(mdb, frame(rows))
    assert (again.inserted, again.duplicates, again.made_inactive) == (0, 2, 0)
    heads = {d["_id"]: d["version"] for d in mdb[storage.STATUS].find({"kind": "day"})}
    assert heads == {"day:2024-10-03": 1, "day:2024-10-04": 1}  # not rewritten
    assert stored_poll_rows(mdb) == [
        ("a", "active", "2024-10-03T10:00:00+00:00"),
        ("a", "inactive", "2024-10-04T10:00:00+00:00"),
    ]


def test_hourly_appends_leave_exactly_what_one_load_leaves(mdb: Database) -> None:
    rng = np.random.default_rng(7)
    base = pd.Timestamp("2024-10-03 20:00", tz="UTC")
    rows = [
        (
            f"s{rng.integers(0, 40)}",
            "inactive" if rng.random() < 0.2 else "active",
            str(base + pd.Timedelta(microseconds=int(rng.integers(0, 8 * 3600 * 10**6)))).replace("+00:00", ""),
        )
        for _ in range(600)
    ]
    rows += rows[:50]  # repeats across hours
    every = frame(rows)
    hour = (every["timestamp_utc"] - base) // pd.Timedelta(hours=1)
    for h in sorted(hour.unique()):
        insert_polls(mdb, every[hour == h])
    appended = {
        day: [(p["n"], bytes(p["t_us"]), bytes(p["inactive"])) for p in day_parts(mdb, day)]
        for day in storage.stored_day_counts(mdb)
    }
    appended_rows = stored_poll_rows(mdb)

    storage.drop_database(mdb)
    one_load = insert_polls(storage.get_db(), every)
    assert one_load.inserted == len(set((r[0], r[2]) for r in rows))
    again = {
        day: [(p["n"], bytes(p["t_us"]), bytes(p["inactive"])) for p in day_parts(mdb, day)]
        for day in storage.stored_day_counts(mdb)
    }
    assert appended == again and appended_rows == stored_poll_rows(mdb)
    assert list(again) == ["2024-10-03", "2024-10-04"]  # 20:00 + 8 h crosses midnight


def test_a_writer_that_loses_the_race_changes_nothing_and_leaves_no_parts(mdb: Database) -> None:
    insert_polls(mdb, frame([("a", "active", "2024-10-03 10:00:00")]))
    head, stored = storage.read_day(mdb, "2024-10-03")
    insert_polls(mdb, frame([("b", "active", "2024-10-03 11:00:00")]))  # another writer wins meanwhile
    late = PollColumns(np.array(["c"], dtype=object), np.array([0]), np.array([1727953200000000]), np.array([False]))
    assert storage.replace_day(mdb, "2024-10-03", head, late) is False
    assert [r[0] for r in stored_poll_rows(mdb)] == ["a", "b"]
    assert mdb[f"{storage.STATUS}.2024-10-03"].count_documents({}) == 1  # only the winner's part


def test_one_writer_retries_on_the_winners_version(mdb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers of a day hold its lock; the compare-and-set behind it still retries on the winner's
    version (a writer that bypassed the lock: here a direct replace_day)."""
    from loop.storage import polls

    insert_polls(mdb, frame([("a", "active", "2024-10-03 10:00:00")]))
    real_read = polls.read_day_full
    calls = []

    def read_then_lose(db: Database, day: str, *args, **kwargs):
        result = real_read(db, day, *args, **kwargs)
        if not calls:  # first read: another writer replaces the day right after it
            calls.append(day)
            other = polls.merge_polls(result.columns, frame_columns([("b", "inactive", "2024-10-03 11:00:00")]))[0]
            assert polls.replace_day(db, day, result.head, other)
        return result

    monkeypatch.setattr(polls, "read_day_full", read_then_lose)
    written = insert_polls(
        mdb, frame([("a", "inactive", "2024-10-03 10:00:00"), ("c", "active", "2024-10-03 12:00:00")])
    )
    monkeypatch.undo()
    assert (written.inserted, written.made_inactive) == (1, 1)
    assert stored_poll_rows(mdb) == [
        ("a", "inactive", "2024-10-03T10:00:00+00:00"),
        ("b", "inactive", "2024-10-03T11:00:00+00:00"),
        ("c", "active", "2024-10-03T12:00:00+00:00"),
    ]


def test_a_reader_whose_parts_were_replaced_reads_the_new_version(mdb: Database) -> None:
    insert_polls(mdb, frame([("a", "active", "2024-10-03 10:00:00")]))
    old_head = mdb[storage.STATUS].find_one({"_id": "day:2024-10-03"})
    insert_polls(mdb, frame([("b", "active", "2024-10-03 11:00:00")]))  # old parts are deleted
    head, columns = storage.read_day(mdb, "2024-10-03", head=old_head)
    assert head["version"] == 2 and columns.store_ids[columns.store].tolist() == ["a", "b"]


def test_the_catalog_answers_stores_polled_through(mdb: Database) -> None:
    assert (
        storage.newest_poll_time(mdb) is None and storage.store_ids_polled_through(mdb, pd.Timestamp.now("UTC")) == []
    )
    insert_polls(mdb, frame([("a", "active", "2024-10-01 00:00:00"), ("b", "active", "2024-10-10 00:00:00.25")]))
    insert_polls(mdb, frame([("a", "active", "2024-09-01 00:00:00"), ("c", "active", "2024-10-12 00:00:00.000001")]))
    assert storage.newest_poll_time(mdb) == pd.Timestamp("2024-10-12 00:00:00.000001", tz="UTC")
    _, ids, first = storage.read_catalog(mdb)
    assert ids.tolist() == ["a", "b", "c"]
    assert first.tolist() == [1725148800000000, 1728518400250000, 1728691200000001]  # a moved earlier


# --- the old layout ----------------------------------------------------------------------------


def write_legacy(db: Database, rows: list[tuple[str, str, str]], *, unique: bool = True) -> None:
    """Polls as the service stored them before day parts: one document each, ms date + us remainder."""
    docs = []
    for store_id, status, text in rows:
        stamp = pd.Timestamp(text)
        docs.append(
            {
                "store_id": store_id,
                "status": status,
                "timestamp_utc": dt.datetime(*stamp.timetuple()[:6], stamp.microsecond // 1000 * 1000),
                "us": stamp.microsecond % 1000,
            }
        )
    # mongomock checks a unique index by scanning the collection on every insert: small sets only.
    db[storage.STATUS].create_index([("store_id", 1), ("timestamp_utc", 1), ("us", 1)], unique=unique, name="poll_key")
    db[storage.STATUS].insert_many(docs)
    db["store_poll_range"].insert_one({"_id": "x", "first_us": 0, "last_us": 1})


LEGACY_ROWS = [
    ("a", "active", "2024-10-03 10:00:00.123456"),
    ("a", "inactive", "2024-10-04 11:00:00.000001"),
    ("b", "active", "2024-10-04 12:00:00"),
]


def test_an_old_layout_database_is_refused_until_migrated(mdb: Database, api: APIClient, tmp_path: Path) -> None:
    write_legacy(mdb, LEGACY_ROWS)
    with pytest.raises(LegacyLayoutError):
        load_sources(write_dataset(tmp_path, ["c,active,2024-10-05 00:00:00 UTC"]), mdb)
    with pytest.raises(CommandError, match="migrate_polls"):
        call_command("load_data", str(tmp_path))
    response = api.post("/trigger_report/")
    assert response.status_code == 409 and "migrate_polls" in response.json()["error"]

    done = migrate_legacy_polls(mdb)
    assert (done.old_documents, done.written.inserted, done.old_documents_deleted) == (3, 3, 3)
    assert stored_poll_rows(mdb) == [
        ("a", "active", "2024-10-03T10:00:00.123456+00:00"),
        ("a", "inactive", "2024-10-04T11:00:00.000001+00:00"),
        ("b", "active", "2024-10-04T12:00:00+00:00"),
    ]
    assert "store_poll_range" not in mdb.list_collection_names()
    assert "poll_key" not in mdb[storage.STATUS].index_information()
    again = migrate_legacy_polls(mdb)
    assert (again.old_documents, again.written.inserted) == (0, 0)
    assert api.post("/trigger_report/").status_code == 202


def test_the_report_is_the_same_before_and_after_migration(mdb: Database, tmp_path: Path) -> None:
    from loop.report_engine import report_to_csv
    from loop.utils import generate_report

    sample = Path(__file__).resolve().parents[1] / "data"
    load_sources(sample, mdb)
    before = report_to_csv(generate_report(db=mdb).report)
    rows = stored_poll_rows(mdb)
    storage.drop_database(mdb)
    db = storage.get_db()
    write_legacy(db, [(s, st, t.replace("T", " ").replace("+00:00", "")) for s, st, t in rows], unique=False)
    write_legacy_hours_and_zones(db, sample)
    done = migrate_legacy_polls(db)
    assert done.hours_rows > 0 and done.zone_rows > 0
    assert report_to_csv(generate_report(db=db).report) == before
    assert db[storage.HOURS].count_documents({"store_id": {"$exists": True}}) == 0
    assert "store" not in db[storage.ZONES].index_information()


def write_legacy_hours_and_zones(db: Database, folder: Path) -> None:
    """Hours and zones as stored before packed tables: one document per row, a store index."""
    from loop.sources.locate import locate_sources
    from loop.sources.problems import RowProblems
    from loop.sources.read import read_hours, read_zones

    sources = locate_sources(folder)
    hours = read_hours(sources.hours, RowProblems())
    zones = read_zones(sources.zones, RowProblems())
    db[storage.HOURS].insert_many(
        [{k: (int(v) if k != "store_id" else v) for k, v in row.items()} for row in hours.to_dict("records")]
    )
    db[storage.ZONES].insert_many([{**row, "seq": i} for i, row in enumerate(zones.to_dict("records"))])
    for name in (storage.HOURS, storage.ZONES):
        db[name].create_index([("store_id", 1)], name="store")


def test_hours_and_zones_are_packed_tables_replaced_per_store(mdb: Database) -> None:
    from loop.storage.stores import HOURS_TABLE

    rows = HOURS_TABLE.part_rows
    hours = pd.DataFrame(
        {
            "store_id": [f"s{i:05d}" for i in range(rows + 10)],
            "day_of_week": 1,
            "start_seconds": 3600,
            "end_seconds": 7200,
        }
    )
    assert storage.replace_hours(mdb, hours) == rows + 10
    head = mdb[storage.HOURS].find_one({"_id": "table"})
    assert [(p["first"], p["last"], p["n"]) for p in head_parts(head)] == [
        ("s00000", f"s{rows - 1:05d}", rows),
        (f"s{rows:05d}", f"s{rows + 9:05d}", 10),
    ]
    one = storage.read_hours(mdb, f"s{rows + 3:05d}")
    assert one.to_dict("records") == [
        {"store_id": f"s{rows + 3:05d}", "day_of_week": 1, "start_seconds": 3600, "end_seconds": 7200}
    ]
    # A later file naming one store replaces only its rows.
    storage.replace_hours(
        mdb, pd.DataFrame({"store_id": ["s00001"] * 2, "day_of_week": [2, 3], "start_seconds": 0, "end_seconds": 60})
    )
    assert storage.read_hours(mdb, "s00001")["day_of_week"].tolist() == [2, 3]
    assert len(storage.read_hours(mdb)) == rows + 11
    # A writer holding an older head loses, and leaves no parts behind.
    stale_head = {**mdb[storage.HOURS].find_one({"_id": "table"}), "version": 1}
    assert HOURS_TABLE.replace(mdb, stale_head, HOURS_TABLE.empty()) is False
    live = mdb[storage.HOURS].find_one({"_id": "table"})
    assert mdb[f"{storage.HOURS}.parts"].count_documents({}) == len(head_parts(live))


def test_cached_day_heads_follow_every_write(mdb: Database) -> None:
    day = (pd.Timestamp("2024-10-03", tz="UTC"), pd.Timestamp("2024-10-03 23:59:59", tz="UTC"))
    insert_polls(mdb, frame([("a", "active", "2024-10-03 10:00:00")]))
    assert len(storage.read_store_polls(mdb, "a", *day)) == 1  # the day's head is cached now
    insert_polls(mdb, frame([("a", "inactive", "2024-10-03 11:00:00")]))  # replaces the day: new token
    assert storage.read_store_polls(mdb, "a", *day)["status"].astype(str).tolist() == ["active", "inactive"]
    # A day that had no head when cached, written later, is seen too.
    later = (pd.Timestamp("2024-10-05", tz="UTC"), pd.Timestamp("2024-10-05 23:00", tz="UTC"))
    assert storage.read_store_polls(mdb, "a", *later).empty
    insert_polls(mdb, frame([("a", "active", "2024-10-05 09:00:00")]))
    assert len(storage.read_store_polls(mdb, "a", *later)) == 1


def test_parts_a_stopped_writer_left_are_removed_once_old_and_nothing_else(mdb: Database) -> None:
    import time

    from loop.tasks import remove_orphan_parts_task

    insert_polls(mdb, frame([("a", "active", "2024-10-03 10:00:00"), ("b", "inactive", "2024-10-03 11:00:00")]))
    storage.append_delta(mdb, "2024-10-03", frame_columns([("c", "active", "2024-10-03 12:00:00")]), 1)
    parts = mdb[f"{storage.STATUS}.2024-10-03"]
    live = {doc["_id"] for doc in parts.find({})}
    hour = 3600
    # A merge killed after inserting its parts (never published), an hour and a minute ago, and one
    # writing now: only the old one is an orphan.
    for token, at in (("0dead0", time.time() - hour - 60), ("0busy0", time.time())):
        parts.insert_one({"_id": f"{token}|0", "token": token, "day": "2024-10-03", "n": 1, "at": at})
    before = stored_poll_rows(mdb)
    assert remove_orphan_parts_task() == 1
    assert {doc["_id"] for doc in parts.find({})} == live | {"0busy0|0"}  # the live parts and the delta stay
    assert stored_poll_rows(mdb) == before
    assert [r[0] for r in before] == ["a", "b", "c"]
    # A day whose lock a writer holds now is left for the next run.
    parts.update_one({"_id": "0busy0|0"}, {"$set": {"at": time.time() - 2 * hour}})
    with storage.polls._lock_day(mdb, "2024-10-03"):
        assert remove_orphan_parts_task() == 0
    assert remove_orphan_parts_task() == 1
    # The store catalog's parts the same way.
    catalog = mdb[f"{storage.STATUS}.catalog"]
    kept = {doc["_id"] for doc in catalog.find({})}
    catalog.insert_one({"_id": "0dead1|0", "token": "0dead1", "n": 1, "at": time.time() - 2 * hour})
    assert remove_orphan_parts_task() == 1
    assert {doc["_id"] for doc in catalog.find({})} == kept
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE["remove-orphan-parts"]["task"] == remove_orphan_parts_task.name


@pytest.mark.parametrize(
    "id_lists",
    [
        [["a", "b", "c"], ["c", "d"], ["e"]],  # a day's parts: in order, one store across two parts
        [["b", "d", "f"], ["a", "b", "c", "f"], ["e"]],  # several days: the same stores again, out of order
        [["x"], []],
    ],
)
def test_joined_columns_share_one_sorted_store_space(id_lists: list[list[str]]) -> None:
    parts = [
        PollColumns(
            np.array(ids, dtype=object),
            np.arange(len(ids), dtype=np.int64),
            np.arange(len(ids), dtype=np.int64) + 10 * k,
            np.zeros(len(ids), dtype=bool),
        )
        for k, ids in enumerate(id_lists)
    ]
    joined = concat_columns(parts)
    every = [s for ids in id_lists for s in ids]
    assert joined.store_ids.tolist() == sorted(set(every))
    assert joined.store_ids[joined.store].tolist() == every
    assert joined.t_us.tolist() == [t + 10 * k for k, ids in enumerate(id_lists) for t in range(len(ids))]
