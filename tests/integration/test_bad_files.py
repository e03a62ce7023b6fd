"""Messy exports against the real MongoDB-wire server: bad rows reported, good rows loaded.

One status file carries every kind of damage issue 4 lists; ``load_data`` must
load exactly the good rows, name each bad one by file and line, and the
database report must equal the offline report of the same files.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pymongo import MongoClient

from tests.support.integration import MONGO_URL
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

LONG = "y" * 100_000
STATUS = (
    b"\xef\xbb\xbfstore_id,status,timestamp_utc,source\r\n"  # 1: BOM, CRLF, extra column
    b"s1,active,2024-10-07 15:14:00 UTC,a\r\n"  # 2 good
    b'"s1","inactive","2024-10-07 16:15:00 UTC","quoted, with comma"\r\n'  # 3 good, quoted
    b"s1,active,yesterday,a\r\n"  # 4 bad timestamp
    b"s1,active,2023-13-45 99:00:00 UTC,a\r\n"  # 5 impossible timestamp
    b"s1,active,,a\r\n"  # 6 empty timestamp
    b"s2,online,2024-10-07 15:00:00 UTC,a\r\n"  # 7 bad status
    b",active,2024-10-07 15:00:00 UTC,a\r\n"  # 8 blank store id
    b"s\xe9\xff3,active,2024-10-07 15:00:00 UTC,a\r\n"  # 9 not UTF-8
    + LONG.encode()
    + b",active,2024-10-07 15:00:00 UTC,a\r\n"  # 10 absurdly long id
    b"s2,active,2024-10-07 15:30:00 UTC,a\r\n"  # 11 good
    b"s2,active,2024-10-07 15:30:00 UTC,a\r\n"  # 12 duplicate row
    b"s2,inactive,2024-10-07 23:00:00 UTC,a\r\n"  # 13 good
    b"s2,active,2024-10-07 23:00:00 UTC,a"  # 14 same poll, disagrees (inactive wins); no newline
)
HOURS = (
    "store_id,dayOfWeek,start_time_local,end_time_local\n"
    "s1,0,09:00:00,12:00:00\n"  # 2 good
    "s1,7,09:00:00,12:00:00\n"  # 3 day out of range
    "s1,Monday,09:00:00,12:00:00\n"  # 4 not a number
    "s1,1,25:00:00,12:00:00\n"  # 5 impossible clock
    "s1,2,09:00:00,noon\n"  # 6 not a clock
)
ZONES = "store_id,timezone_str\ns1,America/Chicago\ns2,Atlantis/Capital\n"
GOOD_POLLS = {
    ("s1", "active", "2024-10-07 15:14:00"),
    ("s1", "inactive", "2024-10-07 16:15:00"),
    ("s2", "active", "2024-10-07 15:30:00"),
    ("s2", "inactive", "2024-10-07 23:00:00"),
}


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    folder = tmp_path / "messy"
    folder.mkdir()
    (folder / "store_status.csv").write_bytes(STATUS)
    (folder / "menu_hours.csv").write_text(HOURS)
    (folder / "timezones.csv").write_text(ZONES)
    return folder


@pytest.fixture
def database(servers: None) -> Iterator[tuple[dict[str, str], MongoClient, str]]:
    name = f"loop_bad_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "MONGO_URL": MONGO_URL, "MONGO_DB": name, "DEBUG": "1"}
    client = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    try:
        yield env, client, name
    finally:
        client.drop_database(name)
        client.close()


def stored_polls(client: MongoClient, name: str) -> set[tuple[str, str, str]]:
    from loop import storage

    polls = storage.read_all_polls(client[name]).to_frame()
    return set(
        zip(
            polls["store_id"].astype(str),
            polls["status"].astype(str),
            polls["timestamp_utc"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            strict=True,
        )
    )


def test_messy_files_load_good_rows_and_report_bad_ones(messy: Path, database) -> None:
    env, client, name = database
    done = run_manage(env, "load_data", str(messy), timeout=180)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    for line in (4, 5, 6):
        assert f"store_status.csv:{line}: timestamp_utc is not a valid timestamp" in out
    assert "store_status.csv:7: status is not active or inactive: 'online'" in out
    assert "store_status.csv:8: store_id is blank" in out
    assert "store_status.csv:9: store_id is not valid UTF-8" in out
    assert "store_status.csv:10: store_id is longer than" in out
    assert "menu_hours.csv:3: dayOfWeek" in out and "menu_hours.csv:4: dayOfWeek" in out
    assert "menu_hours.csv:5: start_time_local" in out and "menu_hours.csv:6: end_time_local" in out
    assert "timezones.csv:3: timezone_str is not a known time zone" in out and "Atlantis/Capital" in out
    assert "13 rows read, 4 inserted, 2 duplicates" in out

    assert stored_polls(client, name) == GOOD_POLLS
    from loop import storage

    hours = storage.read_hours(client[name])
    assert list(zip(hours["store_id"], hours["day_of_week"], strict=True)) == [("s1", 0)]

    # Loading the same messy files again changes nothing.
    again = run_manage(env, "load_data", str(messy), timeout=180)
    assert again.returncode == 0, again.stderr
    assert "0 inserted" in again.stdout
    assert stored_polls(client, name) == GOOD_POLLS

    # The database path and the offline path agree on the messy input.
    now = "2024-10-08T00:00:00Z"
    from_db = run_manage(env, "generate_report", "--now", now, "--output", "-", timeout=180)
    offline = run_manage(env, "generate_report", "--csv-dir", str(messy), "--now", now, "--output", "-", timeout=180)
    assert from_db.returncode == 0 and offline.returncode == 0, from_db.stderr + offline.stderr
    assert from_db.stdout == offline.stdout
    report = pd.read_csv(io.StringIO(offline.stdout), dtype={"store_id": str}).set_index("store_id")
    # The worked example: Monday 09:00-12:00 Chicago, polls 10:14 active and 11:15 inactive.
    assert report.loc["s1", "uptime_last_week"] == 1.74
    assert report.loc["s1", "downtime_last_week"] == 1.26


def test_strict_load_writes_nothing(messy: Path, database) -> None:
    env, client, name = database
    done = run_manage(env, "load_data", str(messy), "--strict", timeout=180)
    assert done.returncode == 1
    assert "store_status.csv:4" in done.stderr and "nothing was written" in done.stderr
    assert client[name]["store_status"].count_documents({}) == 0
    assert client[name]["business_hours"].count_documents({}) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "missing file"), (b"", "empty"), (b"store_id,status\ns1,active\n", "timestamp_utc")],
)
def test_unusable_status_file_exits_2_and_writes_nothing(
    messy: Path, database, content: bytes | None, message: str
) -> None:
    env, client, name = database
    status = messy / "store_status.csv"
    if content is None:
        status.unlink()
    else:
        status.write_bytes(content)
    done = run_manage(env, "load_data", str(messy), timeout=180)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert client[name]["store_status"].count_documents({}) == 0
    assert client[name]["business_hours"].count_documents({}) == 0
    assert client[name]["timezones"].count_documents({}) == 0
