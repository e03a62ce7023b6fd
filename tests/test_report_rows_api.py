"""GET /reports/<id>/stores/: a finished report's rows as JSON with each window's uptime %."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from rest_framework.test import APIClient

from loop.services import reports
from tests.support.api import FULL, READ, VALID_ID, assert_json_error, trigger, wait_done
from tests.support.worked_example import EXAMPLE_NOW

LOOP_COLUMNS = [
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]


def finished_report(api: APIClient, body: dict[str, Any] | None = None) -> str:
    response = trigger(api, body or {"now": EXAMPLE_NOW.isoformat()})
    report_id = response.json()["report_id"]
    assert wait_done(api, report_id)["status"] == "Complete"
    return report_id


def test_rows_carry_the_loop_columns_and_each_windows_uptime_pct(loaded: APIClient) -> None:
    report_id = finished_report(loaded)
    response = loaded.get(f"/reports/{report_id}/stores/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["report_id"] == report_id
    assert body["now"] == "2024-10-07T18:00:00Z"
    assert body["count"] == 2
    mon, old = body["results"]
    # The worked example (tests/support/worked_example.py): "mon" is up 1.74 h and down 1.26 h of its
    # Monday's 3 business hours; the last hour (12:00-13:00 local) is closed.
    assert mon == {
        "store_id": "mon",
        "uptime_last_hour": 0.0,
        "uptime_last_day": 1.74,
        "uptime_last_week": 1.74,
        "downtime_last_hour": 0.0,
        "downtime_last_day": 1.26,
        "downtime_last_week": 1.26,
        "uptime_pct_last_hour": None,  # no business time in the window
        "uptime_pct_last_day": 58.0,  # 100 * 1.74 / 3
        "uptime_pct_last_week": 58.0,
        # No store directory loaded: the profile fields are null.
        "name": None,
        "brand": None,
        "region": None,
    }
    assert old["store_id"] == "old"
    assert [old[c] for c in LOOP_COLUMNS] == [0.0] * 6
    assert [old[f"uptime_pct_last_{w}"] for w in ("hour", "day", "week")] == [None, None, None]


def test_an_extended_report_answers_the_same_loop_columns(loaded: APIClient) -> None:
    report_id = finished_report(loaded, {"now": EXAMPLE_NOW.isoformat(), "format": "extended"})
    mon = loaded.get(f"/reports/{report_id}/stores/").json()["results"][0]
    assert set(mon) == {
        "store_id",
        *LOOP_COLUMNS,
        "uptime_pct_last_hour",
        "uptime_pct_last_day",
        "uptime_pct_last_week",
        "name",
        "brand",
        "region",
    }
    assert mon["uptime_pct_last_week"] == 58.0


def test_store_ids_come_back_as_stored_without_the_csv_apostrophe(api: APIClient) -> None:
    polls = [
        {"store_id": store_id, "status": status, "timestamp_utc": "2024-10-07 17:30:00 UTC"}
        for store_id, status in (
            ("=SUM(A1)", "inactive"),
            ("NA", "active"),
            ("-5", "active"),
            ("=1+2", "active"),
            ("'=1+2", "inactive"),
            ("'quoted", "active"),
        )
    ]
    assert api.post("/store_status/", polls, format="json").status_code == 201
    report_id = finished_report(api, {"now": "2024-10-07T17:30:00Z"})
    csv_ids = [line.split(",")[0] for line in api.get(f"/get_report/{report_id}/csv/").content.decode().splitlines()]
    # The CSV's spreadsheet safety: one apostrophe more on formula ids and on ids that start with one.
    assert sorted(csv_ids[1:]) == sorted(["'=SUM(A1)", "NA", "'-5", "'=1+2", "''=1+2", "''quoted"])
    rows = {row["store_id"]: row for row in api.get(f"/reports/{report_id}/stores/").json()["results"]}
    assert set(rows) == {"=SUM(A1)", "NA", "-5", "=1+2", "'=1+2", "'quoted"}
    assert rows["=1+2"]["uptime_pct_last_hour"] == 100.0
    assert rows["'=1+2"]["uptime_pct_last_hour"] == 0.0
    # 24x7 (no hours): the last hour is all business time, down for the inactive store.
    assert rows["=SUM(A1)"]["uptime_pct_last_hour"] == 0.0
    assert rows["NA"]["uptime_pct_last_hour"] == 100.0


def test_a_running_report_is_409_and_an_unknown_one_404(loaded: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = reports.generate_report

    def held(**kwargs: Any) -> Any:
        assert gate.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(reports, "generate_report", held)
    report_id = trigger(loaded, {"now": EXAMPLE_NOW.isoformat()}).json()["report_id"]
    try:
        assert "still Running" in assert_json_error(loaded.get(f"/reports/{report_id}/stores/"), 409)["error"]
    finally:
        gate.set()
    wait_done(loaded, report_id)
    assert_json_error(loaded.get(f"/reports/{VALID_ID}/stores/"), 404)
    assert "report_id" in assert_json_error(loaded.get("/reports/not-an-id/stores/"), 400)["error"]


def test_the_read_token_may_read_the_rows_and_no_token_may_not(loaded: APIClient, tokens: None) -> None:
    loaded.credentials(HTTP_AUTHORIZATION=f"Bearer {FULL}")
    report_id = finished_report(loaded)
    loaded.credentials(HTTP_AUTHORIZATION=f"Bearer {READ}")
    assert loaded.get(f"/reports/{report_id}/stores/").status_code == 200
    assert_json_error(loaded.delete(f"/reports/{report_id}/stores/"), 405)
    loaded.credentials()
    assert_json_error(loaded.get(f"/reports/{report_id}/stores/"), 401)
