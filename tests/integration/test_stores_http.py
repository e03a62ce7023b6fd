"""Stores over real HTTP: a small data set with holiday hours loaded by ``load_data`` into the
MongoDB-wire server, then GET /stores/, /stores/<id>/ and /stores/<id>/timeline/ through gunicorn,
and a report by the Celery worker. Every expected value is worked out by hand below.

Data: "mon" (America/Chicago, CDT = UTC-5) is open Mondays 09:00-12:00, but its holiday row for
2024-10-07 opens it 10:00-11:30 only; polls 10:14 active and 11:15 inactive local that day.
"tok" (Asia/Tokyo, +09:00) has no hours (open 24x7); polls 10:00Z active and 12:00Z inactive on
2024-10-07, and a later load adds an older poll (2024-10-06 00:00Z). "old" polled on 2024-09-20
only; "later" holds the newest poll, 2024-10-08 12:00Z.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.csv_files import write_csv, write_dataset
from tests.support.integration import Stack, private_app
from tests.support.polling import http_report, wait_for_report
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

POLLS = [
    "mon,active,2024-10-07 15:14:00 UTC",
    "mon,inactive,2024-10-07 16:15:00 UTC",
    "tok,active,2024-10-07 10:00:00 UTC",
    "tok,inactive,2024-10-07 12:00:00 UTC",
    "old,active,2024-09-20 12:00:00 UTC",
    "later,active,2024-10-08 12:00:00 UTC",
]
SPECIAL = [
    "mon,2024-10-07,10:00,11:30",
    "mon,2024-10-14,,",  # closed all day (after the data)
    "mon,2024-13-01,,",  # line 4: no such date, skipped and reported
]


@pytest.fixture(scope="module")
def app(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with private_app(stack, "stores") as app:
        yield app


def load(env: dict[str, str], folder: Path) -> str:
    done = run_manage(env, "load_data", str(folder))
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout + done.stderr


def test_stores_detail_and_timeline_over_http(app: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = app
    folder = write_dataset(
        tmp_path / "first", POLLS, ["mon,0,09:00:00,12:00:00"], ["mon,America/Chicago", "tok,Asia/Tokyo"]
    )
    write_csv(folder / "special_hours.csv", "store_id,date_local,start_time_local,end_time_local", SPECIAL)
    output = load(env, folder)
    assert "special_hours.csv: 3 rows read, 2 loaded for 1 stores, 1 rejected" in output
    assert "special_hours.csv:4: date_local is not a date YYYY-MM-DD: '2024-13-01'" in output
    # An older poll appended afterwards moves tok's first poll, not its last.
    load(env, write_dataset(tmp_path / "second", ["tok,inactive,2024-10-06 00:00:00 UTC"]))

    listed = requests.get(f"{base}/stores/", timeout=30)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "count": 4,
        "page": 1,
        "page_size": 20,
        "results": [
            {
                "store_id": "later",
                "name": None,
                "brand": None,
                "region": None,
                "timezone": "America/Chicago",
                "last_poll_utc": "2024-10-08T12:00:00Z",
                "last_status": "active",
            },
            {
                "store_id": "mon",
                "name": None,
                "brand": None,
                "region": None,
                "timezone": "America/Chicago",
                "last_poll_utc": "2024-10-07T16:15:00Z",
                "last_status": "inactive",
            },
            {
                "store_id": "old",
                "name": None,
                "brand": None,
                "region": None,
                "timezone": "America/Chicago",
                "last_poll_utc": "2024-09-20T12:00:00Z",
                "last_status": "active",
            },
            {
                "store_id": "tok",
                "name": None,
                "brand": None,
                "region": None,
                "timezone": "Asia/Tokyo",
                "last_poll_utc": "2024-10-07T12:00:00Z",
                "last_status": "inactive",
            },
        ],
    }
    searched = requests.get(f"{base}/stores/", params={"search": "O", "page_size": 1, "page": 2}, timeout=30).json()
    assert (searched["count"], [r["store_id"] for r in searched["results"]]) == (3, ["old"])  # mon, old, tok

    tok = requests.get(f"{base}/stores/tok/", timeout=30).json()
    assert tok == {
        "store_id": "tok",
        "name": None,
        "brand": None,
        "region": None,
        "timezone": "Asia/Tokyo",
        "business_hours": [],
        "special_hours": [],
        "first_poll_utc": "2024-10-06T00:00:00Z",
        "last_poll_utc": "2024-10-07T12:00:00Z",
        "last_status": "inactive",
    }
    mon = requests.get(f"{base}/stores/mon/", timeout=30).json()
    assert mon["business_hours"] == [{"dayOfWeek": 0, "start_time_local": "09:00:00", "end_time_local": "12:00:00"}]
    assert mon["special_hours"] == [
        {"date_local": "2024-10-07", "start_time_local": "10:00:00", "end_time_local": "11:30:00"},
        {"date_local": "2024-10-14", "start_time_local": None, "end_time_local": None},
    ]
    missing = requests.get(f"{base}/stores/nope/timeline/", timeout=30)
    assert missing.status_code == 404 and "No store 'nope'" in missing.json()["error"]
    bad = requests.get(f"{base}/stores/mon/timeline/", params={"max_gap_minutes": "0"}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"].startswith("max_gap_minutes:")

    # tok, 09:00Z-13:00Z, open 24x7: up until the midpoint 11:00Z, down after; each poll observes an hour
    # either side, so all is observed; one 120-minute outage; 18:00-22:00 local on 2024-10-07.
    body = requests.get(
        f"{base}/stores/tok/timeline/",
        params={"from": "2024-10-07T09:00:00Z", "to": "2024-10-07T13:00:00Z"},
        timeout=30,
    ).json()
    assert body["summary"] == {
        "uptime_hours": 2.0,
        "downtime_hours": 2.0,
        "unobserved_hours": 0.0,
        "uptime_pct": 50.0,
        "outages": 1,
        "longest_outage_minutes": 120.0,
    }
    assert body["segments"] == [
        {
            "start_utc": "2024-10-07T09:00:00Z",
            "end_utc": "2024-10-07T11:00:00Z",
            "start_local": "2024-10-07T18:00:00+09:00",
            "end_local": "2024-10-07T20:00:00+09:00",
            "status": "up",
            "observed": True,
        },
        {
            "start_utc": "2024-10-07T11:00:00Z",
            "end_utc": "2024-10-07T13:00:00Z",
            "start_local": "2024-10-07T20:00:00+09:00",
            "end_local": "2024-10-07T22:00:00+09:00",
            "status": "down",
            "observed": True,
        },
    ]
    assert body["days"] == [
        {
            "date_local": "2024-10-07",
            "uptime_hours": 2.0,
            "downtime_hours": 2.0,
            "unobserved_hours": 0.0,
            "uptime_pct": 50.0,
        }
    ]

    # mon over the default range, the report week ending at the newest poll (2024-10-08 12:00Z): the holiday
    # row opens it 10:00-11:30 local; up 10:00-10:44:30 (0.74 h), down 10:44:30-11:30 (0.76 h).
    week = requests.get(f"{base}/stores/mon/timeline/", timeout=30).json()
    assert (week["from"], week["to"]) == ("2024-10-01T12:00:00Z", "2024-10-08T12:00:00Z")
    assert (week["summary"]["uptime_hours"], week["summary"]["downtime_hours"]) == (0.74, 0.76)
    assert week["summary"]["outages"] == 1 and week["summary"]["longest_outage_minutes"] == 45.5

    # The worker's report uses the same holiday hours: mon's week columns are the timeline's.
    trigger = requests.post(f"{base}/trigger_report/", json={"force": True}, timeout=30)
    assert trigger.status_code == 202, trigger.text
    done = wait_for_report(http_report(base, trigger.json()["report_id"]), timeout=120)
    assert done["status"] == "Complete", done
    rows = {line.split(",", 1)[0]: line for line in done["csv_data"].splitlines()[1:]}
    assert rows["mon"] == "mon,0.00,0.74,0.74,0.00,0.76,0.76"
