"""GET/PUT /stores/<id>/business_hours/ and /stores/<id>/timezone/ (mongomock, embedded worker).

Hours are checked by the CSV reader's own rules; expected answers are written by hand.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.storage import stores as tables  # unpatched, for the checks
from tests.support.api import FULL, READ, assert_json_error, wait_done
from tests.support.query_spy import MARK, strings_in
from tests.support.store_ids import PATH_STORE_IDS

WEEK = [
    {"dayOfWeek": 0, "start_time_local": "09:00", "end_time_local": "17:00"},
    {"dayOfWeek": 4, "start_time_local": "22:00:00", "end_time_local": "02:00:30"},
    {"dayOfWeek": 0, "start_time_local": " 18:00 ", "end_time_local": "20:00"},
]
WEEK_ANSWER = [
    {"dayOfWeek": 0, "start_time_local": "09:00:00", "end_time_local": "17:00:00"},
    {"dayOfWeek": 0, "start_time_local": "18:00:00", "end_time_local": "20:00:00"},
    {"dayOfWeek": 4, "start_time_local": "22:00:00", "end_time_local": "02:00:30"},
]
WEEK_STORED = [("s1", 0, 32400, 61200), ("s1", 0, 64800, 72000), ("s1", 4, 79200, 7230)]


def hours_url(store_id: str) -> str:
    return f"/stores/{quote(store_id, safe='')}/business_hours/"


def zone_url(store_id: str) -> str:
    return f"/stores/{quote(store_id, safe='')}/timezone/"


def stored_hours(db: Database) -> list[tuple[str, int, int, int]]:
    return sorted(tables.read_hours(db).itertuples(index=False, name=None))


def stored_zones(db: Database) -> list[tuple[str, str]]:
    return list(tables.read_zones(db).itertuples(index=False, name=None))


# --- business hours ---------------------------------------------------------------------


def test_a_store_without_hours_reads_as_an_empty_list(api: APIClient, mdb: Database) -> None:
    response = api.get(hours_url("never-seen"))
    assert response.status_code == 200
    assert response.json() == []


def test_put_replaces_one_stores_hours_and_get_reads_them_back(api: APIClient, mdb: Database) -> None:
    storage.replace_hours(
        mdb,
        pd.DataFrame(
            {"store_id": ["s1", "s2"], "day_of_week": [6, 2], "start_seconds": [0, 3600], "end_seconds": [60, 7200]}
        ),
    )
    response = api.put(hours_url("s1"), WEEK, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == WEEK_ANSWER
    assert api.get(hours_url("s1")).json() == WEEK_ANSWER
    # s1's old Sunday row is gone; s2 keeps its row.
    assert stored_hours(mdb) == [*WEEK_STORED, ("s2", 2, 3600, 7200)]


def test_an_empty_list_removes_the_stores_hours(api: APIClient, mdb: Database) -> None:
    assert api.put(hours_url("s1"), WEEK, format="json").status_code == 200
    assert api.put(hours_url("s2"), WEEK[:1], format="json").status_code == 200
    response = api.put(hours_url("s1"), [], format="json")
    assert response.status_code == 200 and response.json() == []
    assert api.get(hours_url("s1")).json() == []
    assert stored_hours(mdb) == [("s2", 0, 32400, 61200)]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        (
            {"dayOfWeek": 7, "start_time_local": "09:00", "end_time_local": "17:00"},
            "dayOfWeek is not a whole number 0-6",
        ),
        ({"dayOfWeek": -1, "start_time_local": "09:00", "end_time_local": "17:00"}, "dayOfWeek is not a whole number"),
        ({"dayOfWeek": "mon", "start_time_local": "09:00", "end_time_local": "17:00"}, "dayOfWeek is not a whole"),
        ({"dayOfWeek": 4.5, "start_time_local": "09:00", "end_time_local": "17:00"}, "dayOfWeek is not a string"),
        ({"dayOfWeek": True, "start_time_local": "09:00", "end_time_local": "17:00"}, "dayOfWeek is not a string"),
        ({"dayOfWeek": 1, "start_time_local": "25:00", "end_time_local": "17:00"}, "start_time_local is not a clock"),
        ({"dayOfWeek": 1, "start_time_local": "09:00", "end_time_local": "noon"}, "end_time_local is not a clock"),
        ({"dayOfWeek": 1, "start_time_local": "09:60", "end_time_local": "17:00"}, "start_time_local is not a clock"),
        ({"dayOfWeek": 1, "start_time_local": 900, "end_time_local": "17:00"}, "start_time_local is not a clock"),
        ({"dayOfWeek": 1, "start_time_local": "09:00"}, "end_time_local is not a clock"),
        ({"dayOfWeek": 1, "start_time_local": None, "end_time_local": "17:00"}, "start_time_local is not a string"),
        ("Monday 9-5", "not an object"),
    ],
)
def test_a_bad_item_is_400_naming_it_and_nothing_changes(
    api: APIClient, mdb: Database, item: Any, fragment: str
) -> None:
    assert api.put(hours_url("s1"), WEEK, format="json").status_code == 200
    body = [WEEK[0], item]
    error = assert_json_error(api.put(hours_url("s1"), body, format="json"), 400)["error"]
    assert f"item 1: {fragment}" in error
    assert stored_hours(mdb) == WEEK_STORED


@pytest.mark.parametrize("body", [{"dayOfWeek": 1}, "09:00-17:00", None])
def test_hours_must_be_a_json_list(api: APIClient, mdb: Database, body: Any) -> None:
    error = assert_json_error(api.put(hours_url("s1"), body, format="json"), 400)["error"]
    assert "list" in error
    assert stored_hours(mdb) == []


def test_hours_of_the_api_count_in_the_report(loaded: APIClient, mdb: Database) -> None:
    # Worked example: "mon" open Monday 09:00-12:00 Chicago. Closing Monday entirely (Sunday hours only)
    # leaves nothing to count on Monday: its uptime and downtime are zero.
    sunday = [{"dayOfWeek": 6, "start_time_local": "09:00", "end_time_local": "10:00"}]
    assert loaded.put(hours_url("mon"), sunday, format="json").status_code == 200
    report_id = loaded.post("/trigger_report/", {"now": "2024-10-07T18:00:00Z"}, format="json").json()["report_id"]
    done = wait_done(loaded, report_id)
    assert "mon,0.00,0.00,0.00,0.00,0.00,0.00" in done["csv_data"].splitlines()


# --- time zones -------------------------------------------------------------------------


def test_a_store_without_a_zone_reads_as_the_default(api: APIClient, mdb: Database) -> None:
    response = api.get(zone_url("s1"))
    assert response.status_code == 200
    assert response.json() == {"store_id": "s1", "timezone_str": "America/Chicago", "is_default": True}


def test_put_sets_the_zone_and_get_reads_it(api: APIClient, mdb: Database) -> None:
    storage.replace_zones(mdb, pd.DataFrame({"store_id": ["s1", "s2"], "timezone_str": ["Asia/Tokyo", "UTC"]}))
    response = api.put(zone_url("s1"), {"timezone_str": "America/New_York"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"store_id": "s1", "timezone_str": "America/New_York", "is_default": False}
    assert api.get(zone_url("s1")).json()["timezone_str"] == "America/New_York"
    assert stored_zones(mdb) == [("s1", "America/New_York"), ("s2", "UTC")]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"timezone_str": "Mars/Olympus_Mons"}, "'Mars/Olympus_Mons' is not a known time zone"),
        ({"timezone_str": "america/new_york"}, "is not a known time zone"),
        ({"timezone_str": ""}, "may not be blank"),
        ({"timezone_str": {"$ne": 1}}, "Not a valid string"),
        ({"timezone_str": "UTC", "extra": 1}, "unexpected field(s): extra"),
        ({}, "timezone_str: This field is required"),
        (["UTC"], "Expected a dictionary"),
    ],
)
def test_a_bad_zone_is_400_and_nothing_changes(api: APIClient, mdb: Database, body: Any, fragment: str) -> None:
    error = assert_json_error(api.put(zone_url("s1"), body, format="json"), 400)["error"]
    assert fragment in error
    assert stored_zones(mdb) == []


# --- store ids in paths -------------------------------------------------------------------


@pytest.mark.parametrize("store_id", [*PATH_STORE_IDS, " padded", "padded "], ids=repr)
@pytest.mark.parametrize("url", [hours_url, zone_url])
def test_bad_store_ids_are_400(api: APIClient, mdb: Database, store_id: str, url: Any) -> None:
    error = assert_json_error(api.get(url(store_id)), 400)["error"]
    assert "store_id: must be 1-128 characters" in error
    body = WEEK[:1] if url is hours_url else {"timezone_str": "America/Denver"}
    assert (
        "store_id: must be 1-128 characters"
        in assert_json_error(api.put(url(store_id), body, format="json"), 400)["error"]
    )
    assert stored_hours(mdb) == [] and stored_zones(mdb) == []


@pytest.mark.parametrize("url", [hours_url, zone_url])
def test_an_id_with_a_slash_has_no_route(api: APIClient, mdb: Database, url: Any) -> None:
    # %2F arrives as '/': the path has one segment more, so no store endpoint answers (the rule refuses '/').
    assert api.get(url("a/b")).status_code == 404


def test_a_128_character_id_is_accepted(api: APIClient, mdb: Database) -> None:
    assert api.put(hours_url("x" * 128), WEEK[:1], format="json").status_code == 200
    assert stored_hours(mdb) == [("x" * 128, 0, 32400, 61200)]


CRAFTED = ['{"$ne": "' + MARK + '"}', f"$where{MARK}", f"$regex.*{MARK}", f"{MARK}[$gt]"]


@pytest.mark.parametrize("store_id", CRAFTED)
def test_crafted_store_ids_stay_plain_strings(
    api: APIClient, mdb: Database, queries: list[Any], monkeypatch: pytest.MonkeyPatch, store_id: str
) -> None:
    seen: list[Any] = []
    for name in ("read_hours", "set_store_hours", "read_zones", "set_store_zone"):
        original = getattr(storage, name)

        def spy(db: Any, sid: Any, *args: Any, __original: Any = original) -> Any:
            seen.append(sid)
            return __original(db, sid, *args)

        monkeypatch.setattr(storage, name, spy)
    assert api.get(hours_url(store_id)).json() == []
    assert api.put(hours_url(store_id), WEEK[:1], format="json").status_code == 200
    assert api.get(hours_url(store_id)).json() == WEEK_ANSWER[:1]
    assert api.put(zone_url(store_id), {"timezone_str": "UTC"}, format="json").json()["store_id"] == store_id
    assert api.get(zone_url(store_id)).json()["timezone_str"] == "UTC"
    # Storage saw the path value, as a plain str, for each of the seven calls (each PUT reads the value
    # before it for the audit log) ...
    assert len(seen) == 7 and all(type(s) is str and s == store_id for s in seen)
    # ... and no MongoDB filter ever held it (packed tables are read by their head's _id).
    assert queries  # the spy works
    assert not [q for q in queries if any(MARK in s for s in strings_in(q))]
    # The store is just a store with an odd name; others are untouched.
    assert stored_hours(mdb) == [(store_id, 0, 32400, 61200)]


# --- access -------------------------------------------------------------------------------


def test_the_read_token_reads_but_may_not_put(api: APIClient, mdb: Database, tokens: None) -> None:
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    full = {"HTTP_AUTHORIZATION": f"Bearer {FULL}"}
    assert "may only read" in assert_json_error(api.put(hours_url("s1"), WEEK, format="json", **read), 403)["error"]
    assert_json_error(api.put(zone_url("s1"), {"timezone_str": "UTC"}, format="json", **read), 403)
    assert stored_hours(mdb) == [] and stored_zones(mdb) == []
    assert api.get(hours_url("s1"), **read).json() == []
    assert api.put(hours_url("s1"), WEEK, format="json", **full).status_code == 200
    assert api.put(zone_url("s1"), {"timezone_str": "UTC"}, format="json", **full).status_code == 200
    assert api.get(hours_url("s1"), **read).json() == WEEK_ANSWER
    assert api.get(zone_url("s1"), **read).json()["timezone_str"] == "UTC"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_without_a_token_store_attributes_are_401(api: APIClient, mdb: Database, tokens: None, method: str) -> None:
    for url in (hours_url("s1"), zone_url("s1")):
        response = api.generic(method, url, b"[]", content_type="application/json")
        assert "Missing API token" in assert_json_error(response, 401)["error"]


def test_the_schema_lists_the_new_operations(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    ingest = paths["/store_status/"]["post"]
    assert {"201", "200", "400", "401", "403", "411", "413", "415"} <= set(ingest["responses"])
    assert {"text/csv", "application/json"} <= set(ingest["requestBody"]["content"])
    hours = paths["/stores/{store_id}/business_hours/"]
    assert {"403", "413", "415"} <= set(hours["put"]["responses"]) and "403" not in hours["get"]["responses"]
    zone = paths["/stores/{store_id}/timezone/"]
    assert {"400", "403"} <= set(zone["put"]["responses"])
