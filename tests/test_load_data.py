"""``load_data``: streaming, validation, idempotence, appends, replacement, exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pymongo.database import Database

from loop import storage
from tests.support.csv_files import write_csv, write_dataset
from tests.support.stored import stored_poll_rows

ROOT = Path(__file__).resolve().parent.parent

POLLS = [
    "s1,active,2024-10-03 23:33:20.412748 UTC",
    "s1,inactive,2024-10-04 00:33:20 UTC",
    "s2,active,2024-10-03T10:00:00Z",
    "007,active,2024-10-04 01:00:00.5 UTC",
]
HOURS = ["s1,0,09:00:00,12:00:00", "s1,1,22:00,02:00", "s2,6,00:00:00,00:00:00"]
ZONES = ["s1,America/New_York", "s2,America/Denver"]


def load(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("load_data", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_loads_three_files_and_prints_a_summary(mdb: Database, tmp_path: Path) -> None:
    output = load(write_dataset(tmp_path, POLLS, HOURS, ZONES))
    assert "4 rows read, 4 inserted, 0 duplicates" in output
    assert "3 rows read, 3 loaded for 2 stores" in output
    assert "status rows/s" in output
    # The zero-padded id stays a string; microseconds survive.
    assert stored_poll_rows(mdb) == [
        ("007", "active", "2024-10-04T01:00:00.500000+00:00"),
        ("s1", "active", "2024-10-03T23:33:20.412748+00:00"),
        ("s1", "inactive", "2024-10-04T00:33:20+00:00"),
        ("s2", "active", "2024-10-03T10:00:00+00:00"),
    ]
    hours = {
        (d["store_id"], d["day_of_week"], d["start_seconds"], d["end_seconds"])
        for d in storage.read_hours(mdb).to_dict("records")
    }
    assert hours == {("s1", 0, 9 * 3600, 12 * 3600), ("s1", 1, 22 * 3600, 2 * 3600), ("s2", 6, 0, 0)}
    zones = {(d["store_id"], d["timezone_str"]) for d in storage.read_zones(mdb).to_dict("records")}
    assert zones == {("s1", "America/New_York"), ("s2", "America/Denver")}
    assert storage.newest_poll_time(mdb).isoformat() == "2024-10-04T01:00:00.500000+00:00"


def test_reloading_the_same_files_changes_nothing(mdb: Database, tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, POLLS, HOURS, ZONES)
    load(folder)
    before = storage.collection_counts(mdb)
    snapshot = stored_poll_rows(mdb)
    output = load(folder)
    assert "4 rows read, 0 inserted, 4 duplicates" in output
    assert storage.collection_counts(mdb) == before
    assert stored_poll_rows(mdb) == snapshot


def test_a_newer_export_adds_only_the_new_polls(mdb: Database, tmp_path: Path) -> None:
    load(write_dataset(tmp_path / "old", POLLS, HOURS, ZONES))
    newer = [*POLLS, "s1,active,2024-10-05 00:00:00 UTC", "s3,inactive,2024-10-05 01:00:00 UTC"]
    output = load(write_dataset(tmp_path / "new", newer, HOURS, ZONES))
    assert "6 rows read, 2 inserted, 4 duplicates" in output
    assert len(stored_poll_rows(mdb)) == 6
    assert storage.newest_poll_time(mdb).isoformat() == "2024-10-05T01:00:00+00:00"


def test_inactive_wins_for_a_poll_repeated_in_a_file_and_across_loads(mdb: Database, tmp_path: Path) -> None:
    polls = [
        "a,active,2024-10-03 10:00:00 UTC",
        "a,inactive,2024-10-03 10:00:00 UTC",  # same poll in the same file
        "b,active,2024-10-03 11:00:00 UTC",
        "c,inactive,2024-10-03 12:00:00 UTC",
    ]
    # chunk_rows=1 puts every row in its own chunk: the in-file duplicate meets the stored one.
    load(write_dataset(tmp_path / "one", polls), "--chunk-rows", "1")
    again = ["b,inactive,2024-10-03 11:00:00 UTC", "c,active,2024-10-03 12:00:00 UTC"]
    output = load(write_dataset(tmp_path / "two", again))
    assert "(1 set inactive)" in output
    got = {store_id: status for store_id, status, _ in stored_poll_rows(mdb)}
    assert got == {"a": "inactive", "b": "inactive", "c": "inactive"}


def test_bad_rows_are_skipped_and_reported_good_rows_kept(mdb: Database, tmp_path: Path) -> None:
    polls = [
        "s1,active,2024-10-03 10:00:00 UTC",
        "s1,sleeping,2024-10-03 11:00:00 UTC",  # line 3
        ",active,2024-10-03 12:00:00 UTC",  # line 4
        "s1,active,yesterday",  # line 5
        "s2,inactive,2024-10-03 13:00:00 UTC",
    ]
    hours = ["s1,7,09:00,10:00", "s1,0,25:00:00,10:00", "s1,1,09:00,10:00"]
    folder = write_dataset(tmp_path, polls, hours, ["s1,Mars/Olympus_Mons"])
    output = load(folder)
    assert "5 rows read, 2 inserted, 0 duplicates" in output and "3 rejected" in output
    assert "store_status.csv:3: status is not active or inactive" in output
    assert "store_status.csv:4: store_id is blank" in output
    assert "store_status.csv:5: timestamp_utc is not a valid timestamp" in output
    assert "menu_hours.csv:2: dayOfWeek" in output
    assert "menu_hours.csv:3: start_time_local" in output
    assert "timezones.csv:2" in output
    assert [store_id for store_id, _, _ in stored_poll_rows(mdb)] == ["s1", "s2"]
    assert [(d["day_of_week"], d["start_seconds"]) for d in storage.read_hours(mdb).to_dict("records")] == [
        (1, 9 * 3600)
    ]
    assert storage.read_zones(mdb).empty


def test_reloaded_hours_and_zones_replace_only_the_stores_named(mdb: Database, tmp_path: Path) -> None:
    load(write_dataset(tmp_path / "one", POLLS, HOURS, ZONES))
    load(write_dataset(tmp_path / "two", POLLS, ["s1,3,10:00,11:00"], ["s2,Asia/Tokyo"]))
    hours = sorted((d["store_id"], d["day_of_week"]) for d in storage.read_hours(mdb).to_dict("records"))
    assert hours == [("s1", 3), ("s2", 6)]  # s1 replaced, s2 kept
    zones = sorted((d["store_id"], d["timezone_str"]) for d in storage.read_zones(mdb).to_dict("records"))
    assert zones == [("s1", "America/New_York"), ("s2", "Asia/Tokyo")]


def test_loads_a_loop_zip(mdb: Database, tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "src", POLLS, HOURS, ZONES)
    archive = tmp_path / "loop.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("store_status.csv", "menu_hours.csv", "timezones.csv"):
            zf.write(folder / name, f"export/{name}")
    assert "4 inserted" in load(archive)
    assert len(stored_poll_rows(mdb)) == 4


def test_unusable_files_exit_2_and_write_nothing(mdb: Database, tmp_path: Path) -> None:
    with pytest.raises(CommandError) as missing:
        load(tmp_path / "nowhere")
    assert missing.value.returncode == 2

    # Hours and zones are fine but the status header lacks a column: nothing at all is written.
    folder = write_dataset(tmp_path / "bad", [], HOURS, ZONES)
    write_csv(folder / "store_status.csv", "store_id,timestamp_utc", ["s1,2024-10-03 10:00:00 UTC"])
    with pytest.raises(CommandError) as no_column:
        load(folder)
    assert no_column.value.returncode == 2 and "status" in str(no_column.value)
    assert storage.collection_counts(mdb) == {name: 0 for name in storage.collection_counts(mdb)}


def test_strict_refuses_any_bad_row_and_writes_nothing(mdb: Database, tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [*POLLS, "s9,maybe,2024-10-03 10:00:00 UTC"], HOURS, ZONES)
    with pytest.raises(CommandError) as err:
        load(folder, "--strict")
    assert err.value.returncode == 1
    assert storage.collection_counts(mdb) == {name: 0 for name in storage.collection_counts(mdb)}
    clean = write_dataset(tmp_path / "clean", POLLS, HOURS, ZONES)
    assert "4 inserted" in load(clean, "--strict")


def test_exit_code_of_the_real_command(tmp_path: Path) -> None:
    env = {**os.environ, "MONGO_URL": "mongomock://", "CELERY_BROKER_URL": "memory://"}
    proc = subprocess.run(
        [sys.executable, "manage.py", "load_data", str(tmp_path / "missing")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "missing" in proc.stderr and "Traceback" not in proc.stderr


def test_ids_the_paths_refuse_are_rejected_in_every_file(mdb: Database, tmp_path: Path) -> None:
    polls = [
        "s1,active,2024-10-03 10:00:00 UTC",
        "a/b,active,2024-10-03 10:00:00 UTC",
        "nul\x00,active,2024-10-03 10:00:00 UTC",
    ]
    hours = ["s1,0,09:00,10:00", "zero\u200bwidth,0,09:00,10:00"]
    zones = ["s1,America/Denver", "right\u202eleft,America/Denver"]
    output = load(write_dataset(tmp_path, polls, hours, zones))
    assert "3 rows read, 1 inserted, 0 duplicates" in output and "2 rejected" in output
    assert "store_status.csv:3: store_id contains '/' (a path segment cannot carry it): 'a/b'" in output
    assert "store_status.csv:4: store_id has a character that is not printable" in output
    assert "menu_hours.csv:3: store_id has a character that is not printable" in output
    assert "timezones.csv:3: store_id has a character that is not printable" in output
    assert [store_id for store_id, _, _ in stored_poll_rows(mdb)] == ["s1"]
    assert list(storage.read_hours(mdb)["store_id"]) == ["s1"]
    assert list(storage.read_zones(mdb)["store_id"]) == ["s1"]
