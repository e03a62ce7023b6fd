"""GET /overview/: the dashboard home's freshness figures (mongomock, embedded worker).

Every expected figure is counted by hand from the rows below.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.embedded_worker import wait_embedded_idle
from loop.freshness import data_lag_text

# The newest poll is 00:20 on the 15th, so "the last hour" (23:20 on the 14th, 00:20] spans two UTC days.
ROWS = [
    ("s1", "active", "2024-10-14 23:20:00 UTC"),  # exactly one hour before the newest: the hour before
    ("s1", "inactive", "2024-10-14 23:45:00 UTC"),  # in the hour, inactive
    ("s2", "active", "2024-10-14 23:59:59.500000 UTC"),  # in the hour
    ("s3", "active", "2024-10-15 00:20:00 UTC"),  # the newest, in the hour
    ("s3", "inactive", "2024-10-10 08:00:00 UTC"),  # the oldest
    ("s4", "active", "2024-10-13 12:00:00 UTC"),
]
CSV = "store_id,status,timestamp_utc\n" + "".join(f"{s},{st},{t}\n" for s, st, t in ROWS)


def post_polls(api: APIClient) -> None:
    response = api.post("/store_status/", data=CSV, content_type="text/csv")
    assert response.status_code == 201, response.content


def test_an_empty_database_has_nulls_and_zeros(api: APIClient, mdb: Database) -> None:
    response = api.get("/overview/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "newest_poll_utc": None,
        "oldest_poll_utc": None,
        "stores": 0,
        "polls_last_hour": 0,
        "inactive_polls_last_hour": 0,
        "stores_polled_last_hour": 0,
        "latest_report": None,
        "latest_complete_report": None,
        "data_lag_seconds": None,
        "data_lag_text": "no data yet",
    }


def test_the_lag_is_the_wall_clock_minus_the_newest_poll(api: APIClient, mdb: Database) -> None:
    post_polls(api)
    newest = dt.datetime(2024, 10, 15, 0, 20, tzinfo=dt.UTC)
    before = dt.datetime.now(dt.UTC)
    body = api.get("/overview/").json()
    after = dt.datetime.now(dt.UTC)
    assert (before - newest).total_seconds() - 0.01 <= body["data_lag_seconds"] <= (after - newest).total_seconds()
    # Over 48 h: in days (loop.freshness; tests/test_freshness.py has the rule's boundaries).
    assert body["data_lag_text"] in {data_lag_text(newest, before), data_lag_text(newest, after)}
    assert body["data_lag_text"].startswith("data ends ") and body["data_lag_text"].endswith(" days ago")


def test_freshness_counts_the_hour_ending_at_the_newest_poll(api: APIClient, mdb: Database) -> None:
    post_polls(api)
    body = api.get("/overview/").json()
    assert body["newest_poll_utc"] == "2024-10-15T00:20:00Z"
    assert body["oldest_poll_utc"] == "2024-10-10T08:00:00Z"
    assert body["stores"] == 4
    # 23:45 (s1, inactive), 23:59:59.5 (s2), 00:20 (s3); 23:20 is exactly an hour before: left out.
    assert body["polls_last_hour"] == 3
    assert body["inactive_polls_last_hour"] == 1
    assert body["stores_polled_last_hour"] == 3
    assert body["latest_report"] is None

    # A later batch moves the hour (the figures are kept per process only until the next write).
    more = "store_id,status,timestamp_utc\ns5,inactive,2024-10-15 00:30:00 UTC\ns1,active,2024-10-14 23:40:00 UTC\n"
    assert api.post("/store_status/", data=more, content_type="text/csv").status_code == 201
    body = api.get("/overview/").json()
    assert body["newest_poll_utc"] == "2024-10-15T00:30:00Z"
    assert body["stores"] == 5
    # (23:30, 00:30]: s1 23:40, s1 23:45 (inactive), s2 23:59:59.5, s3 00:20, s5 00:30 (inactive)
    assert (body["polls_last_hour"], body["inactive_polls_last_hour"], body["stores_polled_last_hour"]) == (5, 2, 4)


def test_latest_report_and_latest_complete_report(api: APIClient, mdb: Database, settings) -> None:
    settings.TRIGGER_RATE_LIMIT = ""
    post_polls(api)
    first = api.post("/trigger_report/", data={}, format="json")
    assert first.status_code == 202, first.content
    assert wait_embedded_idle(timeout=60)
    body = api.get("/overview/").json()
    assert body["latest_report"]["report_id"] == first.json()["report_id"]
    assert body["latest_report"]["status"] == "Complete"
    assert body["latest_report"]["rows"] == 4  # one row per store polled at or before now
    assert body["latest_complete_report"] == body["latest_report"]

    # A newer report that failed: the latest is that one, the latest Complete stays the first.
    failed_id = "F" * 32
    storage.create_report(mdb, failed_id, pd.Timestamp("2024-10-15 00:20:00", tz="UTC"))
    storage.fail_report(mdb, failed_id, "boom")
    body = api.get("/overview/").json()
    assert body["latest_report"]["report_id"] == failed_id
    assert body["latest_report"]["status"] == "Failed"
    assert body["latest_complete_report"]["report_id"] == first.json()["report_id"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token"])
def test_the_overview_needs_the_token_when_one_is_set(api: APIClient, mdb: Database, settings, header) -> None:
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN = "right-token-1234567890"
    if header:
        api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/overview/")
    assert response.status_code == 401
    assert "error" in response.json()
    api.credentials(HTTP_AUTHORIZATION="Bearer right-token-1234567890")
    assert api.get("/overview/").status_code == 200


def test_the_overview_is_in_the_schema(api: APIClient) -> None:
    schema = api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/overview/"]["get"]
    assert operation["operationId"] == "overview"
    assert {"200", "401", "503"} <= set(operation["responses"])
