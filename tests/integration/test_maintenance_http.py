"""Maintenance windows over real HTTP: gunicorn (DEBUG=0) and the MongoDB-wire server (FerretDB or mongod).

Creates a one-off and a weekly window, reads and lists them, checks the stored documents, asks the
service which stores are muted (against the same database), and deletes them.
"""

from __future__ import annotations

import pandas as pd
import pytest
import requests

from tests.support.integration import Stack

pytestmark = pytest.mark.integration


def test_create_list_and_delete_windows_over_http(stack: Stack) -> None:
    base = stack.base_url
    one_off = requests.post(
        f"{base}/maintenance/",
        json={"store_ids": ["it-a"], "start": "2024-10-07T10:00:00Z", "end": "2024-10-07T12:00:00Z", "note": "it"},
        timeout=30,
    )
    assert one_off.status_code == 201, one_off.text
    weekly = requests.post(
        f"{base}/maintenance/",
        json={"all": True, "weekday": 0, "local_start": "22:00", "local_end": "02:00"},
        timeout=30,
    )
    assert weekly.status_code == 201, weekly.text
    one_off_id, weekly_id = one_off.json()["window_id"], weekly.json()["window_id"]

    detail = requests.get(f"{base}/maintenance/{one_off_id}/", timeout=30)
    assert detail.status_code == 200
    assert (detail.json()["start"], detail.json()["end"]) == ("2024-10-07T10:00:00Z", "2024-10-07T12:00:00Z")
    listed = requests.get(f"{base}/maintenance/", timeout=30).json()
    assert [w["window_id"] for w in listed["results"]] == [weekly_id, one_off_id]
    # Tue 2024-10-08 05:30Z is 00:30 CDT (America/Chicago, the zone of a store without a zone row):
    # inside the Monday 22:00-02:00 window.
    active = requests.get(f"{base}/maintenance/", params={"active_at": "2024-10-08T05:30:00Z"}, timeout=30).json()
    assert [w["window_id"] for w in active["results"]] == [weekly_id]

    # One document per window, as the service wrote it through the wire protocol.
    doc = stack.db["maintenance_windows"].find_one({"_id": one_off_id})
    assert doc is not None
    assert (doc["kind"], doc["store_ids"], doc["start_us"]) == ("one_off", ["it-a"], 1728295200000000)

    # A misspelt weekday is a JSON 400; unknown ids are 404.
    bad = requests.post(
        f"{base}/maintenance/", json={"all": True, "weekday": 7, "local_start": "1:00", "local_end": "2:00"}, timeout=30
    )
    assert bad.status_code == 400 and "weekday" in bad.json()["error"]

    for window_id in (one_off_id, weekly_id):
        assert requests.delete(f"{base}/maintenance/{window_id}/", timeout=30).status_code == 204
        gone = requests.get(f"{base}/maintenance/{window_id}/", timeout=30)
        assert gone.status_code == 404 and gone.json()["error"].startswith("No maintenance window")
    assert requests.get(f"{base}/maintenance/", timeout=30).json()["count"] == 0


def test_the_service_reads_the_windows_from_the_wire_server(stack: Stack, settings) -> None:
    from loop.services.maintenance import create_window, delete_window, muted_store_ids

    settings.MONGO_URL = stack.env["MONGO_URL"]
    settings.MONGO_DB = stack.db_name
    window = create_window(store_ids=["it-b"], all_stores=None, start="2024-10-07T10:00Z", end="2024-10-07T12:00Z")
    try:
        t = pd.Timestamp("2024-10-07T11:00Z")
        zones = ["America/New_York", "America/New_York"]
        assert muted_store_ids(store_ids=["it-a", "it-b"], zones=zones, t=t) == {"it-b"}
        assert muted_store_ids(store_ids=["it-a", "it-b"], zones=zones, t=pd.Timestamp("2024-10-07T12:00Z")) == set()
    finally:
        delete_window(window_id=window.window_id)
