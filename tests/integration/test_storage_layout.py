"""Packed day parts on a real MongoDB-wire server: migration, hourly appends, concurrent loads and reports.

Each test uses a database of its own on the server of ``make services`` (FerretDB here,
``mongod`` where installed), so it never disturbs the session's stack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from loop import storage
from loop.ingest import load_sources
from loop.report_engine import report_to_csv
from loop.utils import generate_report
from tests.support.csv_files import STATUS_HEADER
from tests.support.integration import MONGO_URL, Dataset

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(servers: None) -> Iterator[Database]:
    name = f"loop_layout_{uuid.uuid4().hex[:10]}"
    database = storage.get_db(name, MONGO_URL)
    yield database
    MongoClient(MONGO_URL).drop_database(name)


def manage(db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGO_URL": MONGO_URL, "MONGO_DB": db.name, "CELERY_BROKER_URL": "memory://"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def offline(folder: Path, now: pd.Timestamp, tmp_path: Path) -> str:
    out = tmp_path / f"offline-{uuid.uuid4().hex[:6]}.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "generate_report",
            "--csv-dir",
            str(folder),
            "--now",
            now.isoformat(),
            "--output",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def polls_as_rows(db: Database) -> list[tuple[str, bool, int]]:
    columns = storage.read_all_polls(db)
    return sorted(
        zip(columns.store_ids[columns.store].tolist(), columns.inactive.tolist(), columns.t_us.tolist(), strict=True)
    )


def split_status(folder: Path, out: Path, parts: int, by_hour: bool = False) -> list[Path]:
    """The status file of ``folder`` cut into folders (hours and zones copied into the first only)."""
    lines = (folder / "store_status.csv").read_text().splitlines()[1:]
    stamps = pd.to_datetime(
        pd.Series(lines).str.rsplit(",", n=1).str[1].str.removesuffix(" UTC"), utc=True, format="ISO8601"
    )
    key = stamps.dt.floor("h") if by_hour else pd.Series(range(len(lines))) % parts
    folders = []
    for i, value in enumerate(sorted(key.unique())):
        target = out / f"part{i:04d}"
        target.mkdir(parents=True)
        chosen = [line for line, k in zip(lines, key, strict=True) if k == value]
        (target / "store_status.csv").write_text("\n".join([STATUS_HEADER, *chosen]) + "\n")
        for name in ("menu_hours.csv", "timezones.csv"):
            text = (folder / name).read_text() if i == 0 else (folder / name).read_text().splitlines()[0] + "\n"
            (target / name).write_text(text)
        folders.append(target)
    return folders


def test_hourly_appends_store_what_one_load_stores_and_the_report_matches(
    db: Database, dataset: Dataset, tmp_path: Path
) -> None:
    load_sources(dataset.old, db)
    newer = tmp_path / "newer"
    newer.mkdir()
    old_lines = set((dataset.old / "store_status.csv").read_text().splitlines())
    new_lines = [
        line for line in (dataset.full / "store_status.csv").read_text().splitlines()[1:] if line not in old_lines
    ]
    (newer / "store_status.csv").write_text("\n".join([STATUS_HEADER, *new_lines]) + "\n")
    for name in ("menu_hours.csv", "timezones.csv"):
        (newer / name).write_text((dataset.full / name).read_text())
    hours = split_status(newer, tmp_path / "hours", 0, by_hour=True)
    assert len(hours) >= 30  # the last 36 hours, hour by hour
    for folder in hours:
        load_sources(folder, db)

    reference = storage.get_db(f"{db.name}_once", MONGO_URL)
    try:
        load_sources(dataset.full, reference)
        assert polls_as_rows(db) == polls_as_rows(reference)
        assert storage.stored_day_counts(db) == storage.stored_day_counts(reference)
    finally:
        MongoClient(MONGO_URL).drop_database(reference.name)
    result = generate_report(db=db)
    assert result.now == dataset.full_newest
    assert report_to_csv(result.report) == offline(dataset.full, result.now, tmp_path)


def test_two_loads_at_once_lose_nothing(db: Database, dataset: Dataset, tmp_path: Path) -> None:
    halves = split_status(dataset.full, tmp_path / "halves", 2)
    errors: list[BaseException] = []

    def load(folder: Path) -> None:
        try:
            load_sources(folder, storage.get_db(db.name, MONGO_URL))
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(folder,)) for folder in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    reference = storage.get_db(f"{db.name}_once", MONGO_URL)
    try:
        load_sources(dataset.full, reference)
        assert polls_as_rows(db) == polls_as_rows(reference)
    finally:
        MongoClient(MONGO_URL).drop_database(reference.name)


def test_a_load_during_a_report_changes_neither(db: Database, dataset: Dataset, tmp_path: Path) -> None:
    load_sources(dataset.old, db)
    now = dataset.old_newest
    reports: list[str] = []
    loading = threading.Thread(target=load_sources, args=(dataset.full, storage.get_db(db.name, MONGO_URL)))
    loading.start()
    while loading.is_alive() or not reports:  # reports computed while the load runs, and one after
        reports.append(report_to_csv(generate_report(now=now, db=storage.get_db(db.name, MONGO_URL)).report))
    loading.join()
    expected = offline(dataset.old, now, tmp_path)
    assert len(reports) >= 2 and all(report == expected for report in reports)
    assert storage.newest_poll_time(db) == dataset.full_newest


def test_migrate_polls_converts_the_old_layout_and_the_report_stays_the_same(
    db: Database, dataset: Dataset, tmp_path: Path
) -> None:
    load_sources(dataset.old, db)
    before = manage(db, "generate_report", "--output", "-")
    assert before.returncode == 0, before.stderr
    columns = storage.read_all_polls(db)
    # Rewrite the polls as the service stored them before day parts: one document per poll.
    ids = columns.store_ids[columns.store]
    ms = columns.t_us // 1000
    legacy = [
        {
            "store_id": str(s),
            "status": "inactive" if i else "active",
            "timestamp_utc": pd.Timestamp(int(m), unit="ms").to_pydatetime(),
            "us": int(t % 1000),
        }
        for s, i, m, t in zip(ids.tolist(), columns.inactive.tolist(), ms.tolist(), columns.t_us.tolist(), strict=True)
    ]
    hours, zones = storage.read_hours(db), storage.read_zones(db)
    for name in [
        n for n in db.list_collection_names() if n.split(".")[0] in (storage.STATUS, storage.HOURS, storage.ZONES)
    ]:
        db.drop_collection(name)
    # Hours and zones as stored before packed tables too: one document per row, a store index.
    db[storage.HOURS].insert_many(
        [{k: (int(v) if k != "store_id" else v) for k, v in row.items()} for row in hours.to_dict("records")]
    )
    db[storage.ZONES].insert_many([{**row, "seq": i} for i, row in enumerate(zones.to_dict("records"))])
    for name in (storage.HOURS, storage.ZONES):
        db[name].create_index([("store_id", 1)], name="store")
    db[storage.STATUS].create_index([("store_id", 1), ("timestamp_utc", 1), ("us", 1)], unique=True, name="poll_key")
    db[storage.STATUS].insert_many(legacy)

    refused = manage(db, "generate_report", "--output", "-")
    assert refused.returncode == 2 and "migrate_polls" in refused.stderr and "Traceback" not in refused.stderr
    migrated = manage(db, "migrate_polls")
    assert migrated.returncode == 0, migrated.stderr
    assert f"{len(legacy)} old poll documents read: {len(legacy)} polls stored" in migrated.stdout
    after = manage(db, "generate_report", "--output", "-")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert db[storage.STATUS].count_documents({"store_id": {"$exists": True}}) == 0
    again = manage(db, "migrate_polls")
    assert "0 old poll documents read" in again.stdout
