"""The service for real: load_data -> HTTP trigger -> Celery worker -> MongoDB -> HTTP poll.

Every report is compared byte for byte with the offline command
(``generate_report --csv-dir``) on the same files and the same ``now``.
The tests run in file order: the last one appends newer polls.
"""

from __future__ import annotations

import re

import gridfs
import pandas as pd
import pytest
import requests

from tests.support.integration import Dataset, Stack

pytestmark = pytest.mark.integration


def offline_report(stack: Stack, folder, now: str) -> str:
    proc = stack.manage("generate_report", "--csv-dir", str(folder), "--now", now, "--output", "-")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def load(stack: Stack, folder) -> str:
    proc = stack.manage("load_data", str(folder))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def counts(stack: Stack) -> dict[str, int]:
    """Stored polls, day heads, hours and zones (reports left out: the tests trigger some)."""
    from loop import storage

    stored = storage.collection_counts(stack.db)
    return {name: stored[name] for name in ("polls", "store_status", "business_hours", "timezones")}


@pytest.fixture(scope="module")
def loaded(stack: Stack, dataset: Dataset) -> str:
    return load(stack, dataset.old)


def test_health_over_http(stack: Stack) -> None:
    body = requests.get(f"{stack.base_url}/health/", timeout=10).json()
    assert body == {"status": "ok", "mongo": "ok", "broker": "ok", "accounts": "ok"}


def test_report_over_http_equals_the_offline_report(stack: Stack, dataset: Dataset, loaded: str) -> None:
    assert re.search(r"store_status\.csv: \d+ rows read, \d+ inserted", loaded)
    report_id = stack.trigger()
    body = stack.wait_report(report_id)
    assert body["status"] == "Complete", body
    assert pd.Timestamp(body["now"]) == dataset.old_newest
    offline = offline_report(stack, dataset.old, body["now"])
    assert body["csv_data"] == offline
    assert body["rows"] == offline.count("\n") - 1

    rows = {line.split(",")[0]: line for line in offline.splitlines()[1:]}
    assert rows["zz-only-old"] == "zz-only-old,0.00,0.00,0.00,0.00,0.00,0.00"
    assert "'=1+2" in rows  # neutralised formula

    by_query = requests.get(f"{stack.base_url}/get_report/", params={"report_id": report_id}, timeout=30)
    assert by_query.json()["csv_data"] == offline
    download = requests.get(f"{stack.base_url}/get_report/{report_id}/csv/", timeout=30)
    assert download.headers["Content-Type"].startswith("text/csv") and download.text == offline

    # The CSV is a genuine GridFS file: pymongo's own GridFS reads it back.
    doc = stack.db["report_table"].find_one({"report_id": report_id})
    stored = gridfs.GridFSBucket(stack.db, bucket_name="report_files").open_download_stream(doc["file_id"]).read()
    assert stored.decode() == offline


def test_explicit_now_over_http(stack: Stack, dataset: Dataset, loaded: str) -> None:
    now = (dataset.old_newest - pd.Timedelta(hours=30, minutes=17, microseconds=123)).isoformat()
    body = stack.wait_report(stack.trigger({"now": now}))
    assert body["status"] == "Complete" and pd.Timestamp(body["now"]) == pd.Timestamp(now)
    assert body["csv_data"] == offline_report(stack, dataset.old, now)


def test_extended_report_over_http_equals_the_offline_report(stack: Stack, dataset: Dataset, loaded: str) -> None:
    body = stack.wait_report(stack.trigger({"format": "extended", "max_gap_minutes": 45}))
    assert body["status"] == "Complete", body
    assert (body["format"], body["max_gap_minutes"]) == ("extended", 45)
    args = ("--csv-dir", str(dataset.old), "--now", body["now"], "--format", "extended", "--max-gap-minutes", "45")
    proc = stack.manage("generate_report", *args, "--output", "-")
    assert proc.returncode == 0, proc.stderr
    assert body["csv_data"] == proc.stdout
    assert proc.stdout.splitlines()[0].endswith(",outages_last_week,longest_outage_last_week")
    bad = requests.post(f"{stack.base_url}/trigger_report/", json={"format": "wide"}, timeout=10)
    assert bad.status_code == 400 and "format" in bad.json()["error"]


def test_bad_requests_are_json_4xx_over_http(stack: Stack, loaded: str) -> None:
    base = stack.base_url
    cases = [
        requests.get(f"{base}/get_report/{'a' * 32}/", timeout=10),
        requests.get(f"{base}/get_report/not-an-id/", timeout=10),
        requests.get(f"{base}/get_report/?report_id[$ne]=x", timeout=10),
        requests.post(
            f"{base}/trigger_report/", data=b'{"now":', headers={"Content-Type": "application/json"}, timeout=10
        ),
        requests.post(f"{base}/trigger_report/", json={"now": {"$gt": ""}}, timeout=10),
        requests.put(f"{base}/trigger_report/", timeout=10),
        requests.get(f"{base}/nothing/here/", timeout=10),
    ]
    assert [r.status_code for r in cases] == [404, 400, 400, 400, 400, 405, 404]
    for response in cases:
        assert response.headers["Content-Type"] == "application/json" and response.json()["error"]


def test_reloading_the_same_files_is_idempotent(stack: Stack, dataset: Dataset, loaded: str) -> None:
    before = counts(stack)
    first = stack.wait_report(stack.trigger())
    output = load(stack, dataset.old)
    assert re.search(r"store_status\.csv: (\d+) rows read, 0 inserted, \1 duplicates", output), output
    assert counts(stack) == before
    again = stack.wait_report(stack.trigger())
    assert again["now"] == first["now"] and again["csv_data"] == first["csv_data"]


def test_appending_newer_polls_moves_now(stack: Stack, dataset: Dataset, loaded: str) -> None:
    before = counts(stack)["polls"]
    output = load(stack, dataset.full)
    inserted = int(re.search(r"store_status\.csv: \d+ rows read, (\d+) inserted", output).group(1))

    # Distinct polls of each export, counted here with plain pandas.
    def distinct_polls(folder) -> int:
        frame = pd.read_csv(folder / "store_status.csv", dtype=str)
        return len(frame.drop_duplicates(["store_id", "timestamp_utc"]))

    assert inserted == distinct_polls(dataset.full) - distinct_polls(dataset.old) > 0
    assert counts(stack)["polls"] == before + inserted

    body = stack.wait_report(stack.trigger())
    assert body["status"] == "Complete"
    assert pd.Timestamp(body["now"]) == dataset.full_newest > dataset.old_newest
    assert body["csv_data"] == offline_report(stack, dataset.full, body["now"])


def test_a_report_bigger_than_a_bson_document_is_stored(stack: Stack) -> None:
    # Storage in-process against the real server: 20 MB would not fit in one 16 MB document.
    from loop import storage

    db = storage.get_client(stack.env["MONGO_URL"])[stack.db_name]
    data = b"".join(b"%032d,0.00,1.00,2.00,3.00,4.00,5.00\n" % i for i in range(400_000))
    assert len(data) > 20 * 1024 * 1024
    file_id = storage.put_file(db, "big.csv", data, {"report_id": "big"})
    try:
        assert storage.get_file(db, file_id) == data
    finally:
        storage.delete_file(db, file_id)


def test_a_load_of_hundreds_of_stores_on_an_earlier_day_updates_the_catalog(stack: Stack) -> None:
    # The catalog (each store's first poll) is rewritten as a whole when a load moves first polls earlier.
    from pymongo import MongoClient

    from loop import storage
    from loop.ingest import insert_polls

    client = MongoClient(stack.env["MONGO_URL"], socketTimeoutMS=60_000)
    db = client[f"{stack.db_name}_catalog"]
    try:

        def frame(day: str) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "store_id": [f"store-{i:04d}" for i in range(300)],
                    "status": ["active"] * 300,
                    "timestamp_utc": pd.Series(pd.Timestamp(day, tz="UTC"), index=range(300)),
                }
            )

        insert_polls(db, frame("2024-10-10"))
        assert storage.store_ids_polled_through(db, pd.Timestamp("2024-10-01", tz="UTC")) == []
        written = insert_polls(db, frame("2024-10-01"))  # every store's first poll moves earlier
        assert written.inserted == 300
        assert sorted(storage.store_ids_polled_through(db, pd.Timestamp("2024-10-01", tz="UTC"))) == [
            f"store-{i:04d}" for i in range(300)
        ]
        assert storage.stored_day_counts(db) == {"2024-10-01": 300, "2024-10-10": 300}
    finally:
        client.drop_database(db.name)
        client.close()
