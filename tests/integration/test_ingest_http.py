"""Ingestion over real HTTP: gunicorn (DEBUG=0), a Celery worker, Redis and a MongoDB-wire server.

The module runs its own app and worker on a database and queue of its own, with
both tokens set, so what it posts never meets the other modules' data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
import requests

from tests.support.integration import Dataset, Stack, offline_report, private_app
from tests.support.polling import http_report, wait_for_report
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

FULL = "it-full-token-5a4b3c2d1e"
READ = "it-read-token-9f8e7d6c5b"


@dataclass
class Ingest:
    base_url: str
    env: dict[str, str]

    def headers(self, token: str, content_type: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        return headers


@pytest.fixture(scope="module")
def ingest(stack: Stack) -> Iterator[Ingest]:
    settings = {"API_TOKEN": FULL, "API_READ_TOKEN": READ, "INGEST_MAX_BODY_BYTES": str(1024 * 1024)}
    with private_app(stack, "ingest", **settings) as (url, env):
        yield Ingest(url, env)


def test_a_csv_batch_posted_over_http_gives_the_offline_report(ingest: Ingest, dataset: Dataset) -> None:
    # Hours, zones and the older polls come from load_data; the full status file arrives over HTTP.
    proc = run_manage(ingest.env, "load_data", str(dataset.old))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    body = (dataset.full / "store_status.csv").read_bytes()
    assert len(body) > 64 * 1024  # over Django's own upload limit
    url = f"{ingest.base_url}/store_status/"

    refused = requests.post(url, data=body, headers=ingest.headers(READ, "text/csv"), timeout=60)
    assert refused.status_code == 403 and "may only read" in refused.json()["error"]

    posted = requests.post(url, data=body, headers=ingest.headers(FULL, "text/csv"), timeout=120)
    assert posted.status_code == 201, posted.text[:500]
    first = posted.json()
    rows = body.decode().count("\n") - 1  # the file ends with a newline; the header is not a row
    assert first["read"] == rows and first["rejected"] == 0
    assert first["inserted"] > 0 and first["inserted"] + first["duplicates"] == rows

    # The read token may trigger; without `now` the report is pinned to the newest poll just posted.
    trigger = requests.post(
        f"{ingest.base_url}/trigger_report/", json={"force": True}, headers=ingest.headers(READ), timeout=30
    )
    assert trigger.status_code == 202, trigger.text
    done = wait_for_report(
        http_report(ingest.base_url, trigger.json()["report_id"], headers=ingest.headers(READ)), timeout=120
    )
    assert done["status"] == "Complete", done
    assert pd.Timestamp(done["now"]) == dataset.full_newest
    assert done["csv_data"] == offline_report(ingest.env, dataset.full, done["now"])

    again = requests.post(url, data=body, headers=ingest.headers(FULL, "text/csv"), timeout=120)
    assert again.status_code == 200
    assert again.json() == {"read": rows, "inserted": 0, "duplicates": rows, "rejected": 0, "problems": []}


def test_the_ingest_limit_and_bad_input_over_http(ingest: Ingest) -> None:
    url = f"{ingest.base_url}/store_status/"
    full = ingest.headers(FULL, "text/csv")
    big = b"store_id,status,timestamp_utc\n" + b"s1,active,2024-10-08 11:00:00 UTC\n" * 40_000  # ~1.4 MB
    too_big = requests.post(url, data=big, headers=full, timeout=60)
    assert too_big.status_code == 413 and too_big.headers["Content-Type"] == "application/json"
    assert too_big.json() == {"error": "Request body is larger than 1048576 bytes (INGEST_MAX_BODY_BYTES)."}
    wrong_type = requests.post(url, data=b"x", headers=ingest.headers(FULL, "text/plain"), timeout=30)
    assert wrong_type.status_code == 415
    strict = requests.post(
        f"{url}?strict=1", data=b"store_id,status,timestamp_utc\ns1,up,x\n", headers=full, timeout=30
    )
    assert strict.status_code == 400 and "line 2: status is not active or inactive: 'up'" in strict.json()["error"]
    hours = f"{ingest.base_url}/stores/%7B%22%24ne%22%3A1%7D/business_hours/"  # {"$ne":1}
    week = [{"dayOfWeek": 0, "start_time_local": "09:00", "end_time_local": "17:00"}]
    assert requests.put(hours, json=week, headers=ingest.headers(READ), timeout=30).status_code == 403
    assert requests.put(hours, json=week, headers=ingest.headers(FULL), timeout=30).status_code == 200
    got = requests.get(hours, headers=ingest.headers(READ), timeout=30)
    assert got.json() == [{"dayOfWeek": 0, "start_time_local": "09:00:00", "end_time_local": "17:00:00"}]
