"""GET /stores/<id>/timeline/ (mongomock, in-process client): figures by hand, the range rules, errors.

America/Chicago is CDT (UTC-5) in October 2024. The worked example: open Monday
09:00-12:00, polls at 10:14 (active) and 11:15 (inactive) local on 2024-10-07.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop.datagen import generate_dataset
from loop.ingest import load_sources
from loop.utils import generate_report
from tests.support.api import FULL, READ, assert_json_error
from tests.support.csv_files import write_csv
from tests.support.query_spy import MARK, strings_in

URL = "/stores/mon/timeline/"
WEEK_END = "2024-10-07T18:00:00Z"  # the worked example's report instant (13:00 local)


def get(api: APIClient, query: str = "", url: str = URL) -> dict[str, Any]:
    response = api.get(f"{url}?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_worked_example_by_hand(loaded: APIClient) -> None:
    body = get(loaded, f"to={WEEK_END}")
    assert (body["store_id"], body["timezone"], body["max_gap_minutes"]) == ("mon", "America/Chicago", 60)
    assert (body["from"], body["to"]) == ("2024-09-30T18:00:00Z", WEEK_END)
    # Up 09:00-10:44:30 (1 h 44.5 min), down 10:44:30-12:00 (1 h 15.5 min); 09:00-09:14 is more than
    # 60 min from the 10:14 poll: 14 min unobserved. 104.5 / 180 = 58.06 %.
    assert body["summary"] == {
        "uptime_hours": 1.74,
        "downtime_hours": 1.26,
        "unobserved_hours": 0.23,
        "uptime_pct": 58.06,
        "outages": 1,
        "longest_outage_minutes": 75.5,
    }
    assert body["segments"] == [
        {
            "start_utc": "2024-10-07T14:00:00Z",
            "end_utc": "2024-10-07T14:14:00Z",
            "start_local": "2024-10-07T09:00:00-05:00",
            "end_local": "2024-10-07T09:14:00-05:00",
            "status": "up",
            "observed": False,
        },
        {
            "start_utc": "2024-10-07T14:14:00Z",
            "end_utc": "2024-10-07T15:44:30Z",
            "start_local": "2024-10-07T09:14:00-05:00",
            "end_local": "2024-10-07T10:44:30-05:00",
            "status": "up",
            "observed": True,
        },
        {
            "start_utc": "2024-10-07T15:44:30Z",
            "end_utc": "2024-10-07T17:00:00Z",
            "start_local": "2024-10-07T10:44:30-05:00",
            "end_local": "2024-10-07T12:00:00-05:00",
            "status": "down",
            "observed": True,
        },
    ]
    outage = {k: v for k, v in body["segments"][2].items() if k not in ("status", "observed")}
    assert body["outages"] == [{**outage, "minutes": 75.5}]
    assert body["open_intervals"] == [
        {
            "start_utc": "2024-10-07T14:00:00Z",
            "end_utc": "2024-10-07T17:00:00Z",
            "start_local": "2024-10-07T09:00:00-05:00",
            "end_local": "2024-10-07T12:00:00-05:00",
        }
    ]
    # 2024-09-30 13:00 local to 2024-10-07 13:00 local touches eight local dates; only Monday 10-07 is open.
    assert [d["date_local"] for d in body["days"]] == [
        f"2024-{d}" for d in ("09-30", *(f"10-0{i}" for i in range(1, 8)))
    ]
    assert body["days"][-1] == {
        "date_local": "2024-10-07",
        "uptime_hours": 1.74,
        "downtime_hours": 1.26,
        "unobserved_hours": 0.23,
        "uptime_pct": 58.06,
    }
    assert body["days"][0] == {
        "date_local": "2024-09-30",
        "uptime_hours": 0.0,
        "downtime_hours": 0.0,
        "unobserved_hours": 0.0,
        "uptime_pct": None,
    }


def test_the_default_range_is_the_week_ending_at_the_newest_poll(loaded: APIClient) -> None:
    body = get(loaded)
    # The newest poll of the whole data set is store "later"'s, 2024-10-08 12:00Z.
    assert (body["from"], body["to"]) == ("2024-10-01T12:00:00Z", "2024-10-08T12:00:00Z")
    assert body["summary"]["uptime_hours"] == 1.74
    # Only `from`: to is still the newest poll.
    assert get(loaded, "from=2024-10-07T00:00:00Z")["to"] == "2024-10-08T12:00:00Z"
    # Only `to`: from is a week before it.
    assert get(loaded, "to=2024-10-07T17:00:00%2B01:00")["from"] == "2024-09-30T16:00:00Z"


def test_a_smaller_gap_leaves_more_time_unobserved(loaded: APIClient) -> None:
    # G = 10 min: the 10:14 poll observes 10:04-10:24 of 09:00-10:44:30 (64 + 20.5 min unobserved), the
    # 11:15 poll 11:05-11:25 of 10:44:30-12:00 (20.5 + 35 min): 140 min = 2.33 h.
    summary = get(loaded, f"to={WEEK_END}&max_gap_minutes=10")["summary"]
    assert summary["unobserved_hours"] == 2.33
    assert (summary["uptime_hours"], summary["downtime_hours"]) == (1.74, 1.26)


def test_holiday_hours_replace_the_weekly_hours_of_their_date(loaded: APIClient) -> None:
    put = loaded.put(
        "/stores/mon/special_hours/",
        [{"date_local": "2024-10-07", "start_time_local": "10:00", "end_time_local": "11:30"}],
        format="json",
    )
    assert put.status_code == 200
    # Open 10:00-11:30 only (both polls inside): up 10:00-10:44:30 (44.5 min), down 10:44:30-11:30
    # (45.5 min); 44.5 / 90 = 49.44 %; each poll observes an hour either side, so all is observed.
    body = get(loaded, f"to={WEEK_END}")
    assert body["summary"] == {
        "uptime_hours": 0.74,
        "downtime_hours": 0.76,
        "unobserved_hours": 0.0,
        "uptime_pct": 49.44,
        "outages": 1,
        "longest_outage_minutes": 45.5,
    }
    assert [(s["start_local"], s["end_local"], s["status"]) for s in body["segments"]] == [
        ("2024-10-07T10:00:00-05:00", "2024-10-07T10:44:30-05:00", "up"),
        ("2024-10-07T10:44:30-05:00", "2024-10-07T11:30:00-05:00", "down"),
    ]
    # Closed all day: no business time at all in the week.
    loaded.put(
        "/stores/mon/special_hours/",
        [{"date_local": "2024-10-07", "start_time_local": None, "end_time_local": None}],
        format="json",
    )
    body = get(loaded, f"to={WEEK_END}")
    assert body["summary"] == {
        "uptime_hours": 0.0,
        "downtime_hours": 0.0,
        "unobserved_hours": 0.0,
        "uptime_pct": None,
        "outages": 0,
        "longest_outage_minutes": 0.0,
    }
    assert body["segments"] == body["outages"] == body["open_intervals"] == []


def test_over_the_report_week_the_totals_equal_the_reports_week_columns(
    mdb: Database, api: APIClient, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    generate_dataset(folder, stores=25, days=9, seed=11)
    stores = sorted(pd.read_csv(folder / "store_status.csv", dtype=str)["store_id"].unique().tolist())
    # Holiday hours on a few stores: closed a day, a short day, an overnight interval.
    end = pd.read_csv(folder / "store_status.csv", dtype=str)["timestamp_utc"].str.removesuffix(" UTC").max()
    last_day = pd.Timestamp(end).normalize()
    days = [(last_day - pd.Timedelta(days=k)).strftime("%Y-%m-%d") for k in (1, 2, 3)]
    write_csv(
        folder / "special_hours.csv",
        "store_id,date_local,start_time_local,end_time_local",
        [f"{stores[0]},{days[0]},,", f"{stores[1]},{days[1]},10:00,14:00", f"{stores[2]},{days[2]},22:00,03:00"],
    )
    load_sources(folder, mdb)
    result = generate_report(db=mdb)
    report, report_now = result.report.set_index("store_id"), result.now
    assert len(report) == 25
    for store_id in report.index:
        body = get(api, url=f"/stores/{quote(store_id, safe='')}/timeline/")
        assert body["to"] == report_now.tz_localize(None).isoformat() + "Z"
        row = report.loc[store_id]
        got = (body["summary"]["uptime_hours"], body["summary"]["downtime_hours"])
        assert got == (row["uptime_last_week"], row["downtime_last_week"]), store_id
    # The holiday rows reached both: the store closed on days[0] has no business time that local date.
    closed = get(api, url=f"/stores/{quote(stores[0], safe='')}/timeline/")
    day = next(d for d in closed["days"] if d["date_local"] == days[0])
    assert day["uptime_hours"] == day["downtime_hours"] == day["unobserved_hours"] == 0.0
    assert not [s for s in closed["segments"] if s["start_local"].startswith(days[0])]


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("from=2024-10-07T18:00:00Z&to=2024-10-07T18:00:00Z", "from: must lie before to"),
        ("from=2024-10-07T18:00:01Z&to=2024-10-07T18:00:00Z", "from: must lie before to"),
        ("from=2024-09-06T17:59:59Z&to=2024-10-07T18:00:00Z", "to: the range may be at most 31 days"),
        ("from=yesterday", "from: not an ISO-8601 timestamp"),
        ("to=2024-13-45", "to: not an ISO-8601 timestamp"),
        ("to=9999-01-01T00:00:00Z", "to: outside the supported range"),
        ("to=" + "1" * 65, "to: Ensure this field has no more than 64 characters."),
        ("max_gap_minutes=0", "max_gap_minutes: must be between 1 and 1440"),
        ("max_gap_minutes=1441", "max_gap_minutes: must be between 1 and 1440"),
        ("max_gap_minutes=x", "max_gap_minutes: A valid integer is required."),
        ("max_gap_minutes=1.5", "max_gap_minutes: A valid integer is required."),
        ("gap=5", "unexpected field(s): gap"),
        ("from[$gt]=x", "unexpected field(s): from[$gt]"),
    ],
)
def test_bad_parameters_are_400_json(loaded: APIClient, query: str, fragment: str) -> None:
    error = assert_json_error(loaded.get(f"{URL}?{query}"), 400)["error"]
    assert fragment in error, error


@pytest.mark.parametrize(
    "query",
    [
        "from=2024-09-06T18:00:00Z&to=2024-10-07T18:00:00Z",  # exactly 31 days
        "max_gap_minutes=1",
        "max_gap_minutes=1440",
        "from=2024-10-07 14:00:00 UTC&to=2024-10-07T12:00:00-05:00",  # Loop's spelling; an offset
    ],
)
def test_edges_of_the_rules_are_accepted(loaded: APIClient, query: str) -> None:
    get(loaded, query)


def test_an_unknown_store_is_404_and_a_bad_id_400(loaded: APIClient) -> None:
    assert "No store 'nope'" in assert_json_error(loaded.get("/stores/nope/timeline/"), 404)["error"]
    error = assert_json_error(loaded.get(f"/stores/{quote(' x', safe='')}/timeline/"), 400)["error"]
    assert "store_id: must be 1-128 characters" in error


def test_a_store_without_polls_in_the_range_is_all_unobserved(loaded: APIClient) -> None:
    # "old" polled only on 2024-09-20 and has no hours: open 24x7, so the whole day is unobserved.
    body = get(loaded, "from=2024-10-01T00:00:00Z&to=2024-10-02T00:00:00Z", url="/stores/old/timeline/")
    assert body["summary"]["unobserved_hours"] == 24.0
    assert body["summary"]["uptime_pct"] is None and body["segments"] == []


def test_without_polls_the_default_range_is_a_409(api: APIClient, mdb: Database) -> None:
    assert api.put("/stores/z/timezone/", {"timezone_str": "UTC"}, format="json").status_code == 200
    assert "give both from and to" in assert_json_error(api.get("/stores/z/timeline/"), 409)["error"]
    body = get(api, "from=2024-10-01T00:00:00Z&to=2024-10-01T06:00:00Z", url="/stores/z/timeline/")
    assert body["summary"]["unobserved_hours"] == 6.0
    assert body["segments"] == [] and body["timezone"] == "UTC"


@pytest.mark.parametrize("store_id", ['{"$ne": "' + MARK + '"}', f"$where{MARK}", f"{MARK}[$gt]"])
def test_crafted_store_ids_stay_plain_strings(loaded: APIClient, queries: list[Any], store_id: str) -> None:
    assert_json_error(loaded.get(f"/stores/{quote(store_id, safe='')}/timeline/"), 404)
    assert queries
    assert not [q for q in queries if any(MARK in s for s in strings_in(q))]


def test_the_read_token_reads_the_timeline(loaded: APIClient, settings: Any) -> None:
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN = FULL
    settings.API_READ_TOKEN = READ
    assert "Missing API token" in assert_json_error(loaded.get(URL), 401)["error"]
    assert loaded.get(URL, HTTP_AUTHORIZATION=f"Bearer {READ}").status_code == 200


def test_the_schema_documents_the_timeline(api: APIClient) -> None:
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    operation = paths["/stores/{store_id}/timeline/"]["get"]
    assert operation["operationId"] == "get_store_timeline"
    assert set(operation["responses"]) >= {"200", "400", "404", "409"}
    assert {p["name"] for p in operation["parameters"]} >= {"store_id", "from", "to", "max_gap_minutes"}
