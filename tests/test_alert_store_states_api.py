"""What the dashboard's alert pages read: GET /alerts/stores/ (each store's no data / down / ok, latest poll and
its age) and GET /alerts/'s order=longest and resolved_within_hours.

mongomock and the embedded worker, polls through POST /store_status/ as in tests/test_alerts_api.py. Stores
without hours are open 24x7 and in America/Chicago (no zone row: CDT, -05:00 in October); an outage starts
halfway between the last active and the first inactive poll; G = 60 min, D = 30 min. Every expected value is
worked by hand from the polls.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from loop.events import Event
from tests.support.api import assert_json_error
from tests.test_alerts_api import DAY, post


@pytest.fixture(autouse=True)
def no_sends(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    caught: list[Event] = []

    def publish(*, events: list[Event]) -> int:
        caught.extend(events)
        return len(events)

    monkeypatch.setattr("loop.services.deliveries.publish", publish)
    return caught


def get(api: APIClient, path: str, **query: Any) -> dict[str, Any]:
    response = api.get(path, query)
    assert response.status_code == 200, response.content
    return response.json()


def by_store(body: dict[str, Any]) -> dict[str, tuple[str, str, float, str | None]]:
    return {
        r["store_id"]: (r["state"], r["last_poll_utc"], r["last_poll_age_minutes"], r["down_since"])
        for r in body["results"]
    }


def test_store_states_no_data_wins_over_down_and_a_stale_store_is_never_down(api: APIClient) -> None:
    assert get(api, "/alerts/stores/") == {
        "newest_poll_utc": None,
        "evaluated_at": None,
        "max_gap_minutes": 60,
        "count": 0,
        "results": [],
    }
    post(api, ("s1", "active", "10:00"), ("s2", "active", "10:00"), ("s3", "active", "10:00"))
    post(api, ("s1", "inactive", "10:40"), ("s2", "active", "10:40"))
    post(api, ("s1", "inactive", "11:00"), ("s2", "active", "11:00"))
    # At 11:00 s1 is down since 10:20 (40 min >= D); s3's poll is exactly G old: still data.
    body = get(api, "/alerts/stores/")
    assert (body["newest_poll_utc"], body["evaluated_at"], body["count"]) == (f"{DAY}T11:00:00Z",) * 2 + (3,)
    assert by_store(body) == {
        "s1": ("down", f"{DAY}T11:00:00Z", 0.0, f"{DAY}T10:20:00Z"),
        "s2": ("ok", f"{DAY}T11:00:00Z", 0.0, None),
        "s3": ("ok", f"{DAY}T10:00:00Z", 60.0, None),
    }
    alert_id = body["results"][0]["alert_id"]
    assert alert_id == get(api, "/alerts/")["results"][0]["alert_id"]

    # 11:30: s3's latest poll is 90 min old: no data.
    post(api, ("s1", "inactive", "11:30"), ("s2", "active", "11:30"))
    assert by_store(get(api, "/alerts/stores/"))["s3"] == ("no_data", f"{DAY}T10:00:00Z", 90.0, None)

    # 12:40: s1 went silent after 11:30 (70 min): its alert stays open, but the store shows no data.
    post(api, ("s2", "active", "12:40"))
    body = get(api, "/alerts/stores/")
    states = by_store(body)
    assert states["s1"] == ("no_data", f"{DAY}T11:30:00Z", 70.0, f"{DAY}T10:20:00Z")
    assert states["s2"] == ("ok", f"{DAY}T12:40:00Z", 0.0, None)
    assert states["s3"] == ("no_data", f"{DAY}T10:00:00Z", 160.0, None)
    assert body["results"][0]["alert_id"] == alert_id
    assert get(api, "/alerts/")["open"] == 1

    # One store; a store with no poll has no row.
    one = get(api, "/alerts/stores/", store_id="s2")
    assert [r["store_id"] for r in one["results"]] == ["s2"] and one["count"] == 1
    assert get(api, "/alerts/stores/", store_id="nobody")["results"] == []


def test_store_states_refuse_bad_input(api: APIClient) -> None:
    assert "store_id" in assert_json_error(api.get("/alerts/stores/", {"store_id": "a\tb"}), 400)["error"]
    assert "unexpected" in assert_json_error(api.get("/alerts/stores/", {"state": "down"}), 400)["error"]


def test_open_alerts_longest_down_first_and_their_local_start(api: APIClient) -> None:
    post(api, ("s1", "active", "10:00"), ("s4", "active", "10:00"))
    post(api, ("s1", "inactive", "10:40"), ("s4", "active", "10:40"))
    post(api, ("s1", "inactive", "11:00"), ("s4", "active", "11:00"))  # s1 opens, started 10:20
    post(api, ("s1", "inactive", "11:30"), ("s4", "inactive", "11:30"))  # s4 pending since 11:15
    post(api, ("s1", "inactive", "12:00"), ("s4", "inactive", "12:00"))  # s4 opens (45 min), started 11:15
    newest = get(api, "/alerts/")["results"]
    assert [(a["store_id"], a["down_minutes"]) for a in newest] == [("s4", 45.0), ("s1", 100.0)]
    longest = get(api, "/alerts/", order="longest")["results"]
    assert [(a["store_id"], a["started_at"]) for a in longest] == [
        ("s1", f"{DAY}T10:20:00Z"),
        ("s4", f"{DAY}T11:15:00Z"),
    ]
    assert [a["started_at_local"] for a in longest] == [f"{DAY}T05:20:00-05:00", f"{DAY}T06:15:00-05:00"]
    paged = get(api, "/alerts/", order="longest", page=2, page_size=1)
    assert [a["store_id"] for a in paged["results"]] == ["s4"]
    error = assert_json_error(api.get("/alerts/", {"order": "longest", "state": "all"}), 400)["error"]
    assert "state=open" in error


def test_resolved_within_hours_counts_back_from_the_data_clock(api: APIClient) -> None:
    post(api, ("s1", "active", "10:00"), ("s2", "active", "10:00"))
    post(api, ("s1", "inactive", "10:40"), ("s1", "inactive", "11:00"), ("s2", "active", "11:00"))
    post(api, ("s1", "active", "12:00"), ("s2", "active", "12:00"))  # s1 resolves at 12:00
    assert [a["store_id"] for a in get(api, "/alerts/", state="resolved", resolved_within_hours=1)["results"]] == ["s1"]
    # The data clock moves to 13:30: 12:00 is 1.5 h back, outside one hour and inside two.
    post(api, ("s2", "active", "13:30"))
    assert get(api, "/alerts/", state="resolved", resolved_within_hours=1)["count"] == 0
    assert get(api, "/alerts/", state="resolved", resolved_within_hours=2)["count"] == 1
    error = assert_json_error(api.get("/alerts/", {"resolved_within_hours": 2}), 400)["error"]
    assert "state=resolved" in error
    assert_json_error(api.get("/alerts/", {"state": "resolved", "resolved_within_hours": 0}), 400)
