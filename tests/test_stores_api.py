"""GET /stores/, GET /stores/<id>/ and GET/PUT /stores/<id>/special_hours/ (mongomock, in-process client).

Expected answers are written by hand from the polls, hours and zones each test stores.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.ingest import insert_polls
from tests.support.api import FULL, READ, assert_json_error
from tests.support.query_spy import MARK, strings_in
from tests.support.store_ids import PATH_STORE_IDS


def polls(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "timestamp_utc": pd.to_datetime([r[2] for r in rows], utc=True, format="ISO8601").as_unit("us"),
        }
    )


def listed(store_id: str, zone: str, last: str, status: str) -> dict[str, str]:
    # No profile in these fleets: the directory's fields are null.
    return {
        "store_id": store_id,
        "name": None,
        "brand": None,
        "region": None,
        "timezone": zone,
        "last_poll_utc": last,
        "last_status": status,
    }


def item(date: object, start: object, end: object) -> dict[str, object]:
    return {"date_local": date, "start_time_local": start, "end_time_local": end}


def special_url(store_id: str) -> str:
    return f"/stores/{quote(store_id, safe='')}/special_hours/"


def store_url(store_id: str) -> str:
    return f"/stores/{quote(store_id, safe='')}/"


@pytest.fixture
def fleet(mdb: Database) -> Database:
    """Five stores; 'B2' polled last at 12:00 inactive (tied with an active poll), 'x%' has a regex-like id."""
    insert_polls(
        mdb,
        polls(
            [
                ("b1", "active", "2024-10-07 10:00:00"),
                ("b1", "inactive", "2024-10-07 11:00:00.5"),
                ("B2", "active", "2024-10-07 12:00:00"),
                ("B2", "inactive", "2024-10-07 12:00:00"),
                ("a", "active", "2024-10-06 09:00:00"),
                ("x%", "active", "2024-10-05 08:00:00"),
                (".*", "inactive", "2024-10-05 08:30:00"),
            ]
        ),
    )
    insert_polls(mdb, polls([("a", "inactive", "2024-10-01 00:00:00")]))  # older than a's last: changes only first
    storage.replace_zones(mdb, pd.DataFrame({"store_id": ["b1", "a"], "timezone_str": ["Asia/Tokyo", "Not/AZone"]}))
    return mdb


def test_list_is_sorted_by_id_as_text_with_zone_last_poll_and_status(api: APIClient, fleet: Database) -> None:
    response = api.get("/stores/")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "count": 5,
        "page": 1,
        "page_size": 20,
        "results": [
            listed(".*", "America/Chicago", "2024-10-05T08:30:00Z", "inactive"),
            listed("B2", "America/Chicago", "2024-10-07T12:00:00Z", "inactive"),
            # An unknown zone name reads as the default, as the report reads it.
            listed("a", "America/Chicago", "2024-10-06T09:00:00Z", "active"),
            listed("b1", "Asia/Tokyo", "2024-10-07T11:00:00.500000Z", "inactive"),
            listed("x%", "America/Chicago", "2024-10-05T08:00:00Z", "active"),
        ],
    }


@pytest.mark.parametrize(
    ("query", "ids", "count"),
    [
        ("search=b", ["B2", "b1"], 2),  # case-insensitive
        ("search=B1", ["b1"], 1),
        ("search=.*", [".*"], 1),  # literal, not a regex (a regex would match all five)
        ("search=%25", ["x%"], 1),
        ("search=zzz", [], 0),
        ("search=", [".*", "B2", "a", "b1", "x%"], 5),
        ("page=2&page_size=2", ["a", "b1"], 5),
        ("page=3&page_size=2", ["x%"], 5),
        ("page=9&page_size=2", [], 5),  # past the end: empty page, true count
        ("search=b&page=2&page_size=1", ["b1"], 2),
    ],
)
def test_search_and_paging(api: APIClient, fleet: Database, query: str, ids: list[str], count: int) -> None:
    body = api.get(f"/stores/?{query}").json()
    assert [r["store_id"] for r in body["results"]] == ids
    assert body["count"] == count


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("page=0", "page: Ensure this value is greater than or equal to 1."),
        ("page=x", "page: A valid integer is required."),
        ("page_size=101", "page_size: Ensure this value is less than or equal to 100."),
        ("page_size=0", "page_size"),
        ("pagesize=5", "unexpected field(s): pagesize"),
        (f"search={'x' * 129}", "search: Ensure this field has no more than 128 characters."),
        ("search[$ne]=x", "unexpected field(s): search[$ne]"),
    ],
)
def test_bad_list_parameters_are_400_json(api: APIClient, fleet: Database, query: str, fragment: str) -> None:
    assert fragment in assert_json_error(api.get(f"/stores/?{query}"), 400)["error"]


def test_an_empty_database_lists_no_stores(api: APIClient, mdb: Database) -> None:
    assert api.get("/stores/").json() == {"count": 0, "page": 1, "page_size": 20, "results": []}


# --- one store ----------------------------------------------------------------------------


def test_detail_of_a_polled_store_with_hours_holidays_and_zone(api: APIClient, fleet: Database) -> None:
    hours = {"store_id": ["b1", "b1"], "day_of_week": [4, 0], "start_seconds": [79200, 32400]}
    storage.replace_hours(fleet, pd.DataFrame({**hours, "end_seconds": [7230, 61200]}))
    assert api.put(special_url("b1"), [item("2024-12-25", None, None)], format="json").status_code == 200
    response = api.get(store_url("b1"))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "store_id": "b1",
        "name": None,
        "brand": None,
        "region": None,
        "timezone": "Asia/Tokyo",
        "business_hours": [
            {"dayOfWeek": 0, "start_time_local": "09:00:00", "end_time_local": "17:00:00"},
            {"dayOfWeek": 4, "start_time_local": "22:00:00", "end_time_local": "02:00:30"},
        ],
        "special_hours": [{"date_local": "2024-12-25", "start_time_local": None, "end_time_local": None}],
        "first_poll_utc": "2024-10-07T10:00:00Z",
        "last_poll_utc": "2024-10-07T11:00:00.500000Z",
        "last_status": "inactive",
    }
    # a's first poll came in a later, older batch.
    detail = api.get(store_url("a")).json()
    assert (detail["first_poll_utc"], detail["last_poll_utc"]) == ("2024-10-01T00:00:00Z", "2024-10-06T09:00:00Z")


def test_a_store_known_only_by_its_zone_or_hours_is_found_without_polls(api: APIClient, mdb: Database) -> None:
    assert api.put("/stores/z1/timezone/", {"timezone_str": "Europe/Paris"}, format="json").status_code == 200
    assert api.get(store_url("z1")).json() == {
        "store_id": "z1",
        "name": None,
        "brand": None,
        "region": None,
        "timezone": "Europe/Paris",
        "business_hours": [],
        "special_hours": [],
        "first_poll_utc": None,
        "last_poll_utc": None,
        "last_status": None,
    }
    assert api.put(special_url("h1"), [item("2024-01-01", "", "")], format="json").status_code == 200
    assert api.get(store_url("h1")).json()["special_hours"] == [
        {"date_local": "2024-01-01", "start_time_local": None, "end_time_local": None}
    ]


def test_an_unknown_store_is_404_json(api: APIClient, fleet: Database) -> None:
    assert "No store 'nope'" in assert_json_error(api.get(store_url("nope")), 404)["error"]


@pytest.mark.parametrize("store_id", [" padded", *PATH_STORE_IDS], ids=repr)
def test_bad_store_ids_are_400(api: APIClient, mdb: Database, store_id: str) -> None:
    for url in (store_url(store_id), special_url(store_id), f"{store_url(store_id)}timeline/"):
        assert "store_id: must be 1-128 characters" in assert_json_error(api.get(url), 400)["error"]
    closed = [item("2024-12-25", None, None)]
    assert_json_error(api.put(special_url(store_id), closed, format="json"), 400)
    assert storage.read_special_hours(mdb).empty


# --- holiday hours ------------------------------------------------------------------------

HOLIDAYS = [
    {"date_local": "2024-12-31", "start_time_local": "22:00", "end_time_local": "02:00"},
    {"date_local": "2024-12-25", "start_time_local": None, "end_time_local": None},
    {"date_local": "2024-12-24", "start_time_local": " 09:00:30 ", "end_time_local": "13:00"},
    {"date_local": "2024-12-24", "start_time_local": "15:00", "end_time_local": "16:00"},
]
HOLIDAYS_ANSWER = [
    {"date_local": "2024-12-24", "start_time_local": "09:00:30", "end_time_local": "13:00:00"},
    {"date_local": "2024-12-24", "start_time_local": "15:00:00", "end_time_local": "16:00:00"},
    {"date_local": "2024-12-25", "start_time_local": None, "end_time_local": None},
    {"date_local": "2024-12-31", "start_time_local": "22:00:00", "end_time_local": "02:00:00"},
]


def stored_special(db: Database) -> list[tuple[Any, ...]]:
    frame = storage.read_special_hours(db).fillna(-1)
    return sorted(frame.itertuples(index=False, name=None))


def test_special_hours_put_replaces_one_stores_list_and_get_reads_it(api: APIClient, mdb: Database) -> None:
    assert api.get(special_url("s1")).json() == []
    assert api.put(special_url("s2"), HOLIDAYS[1:2], format="json").status_code == 200
    response = api.put(special_url("s1"), HOLIDAYS, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == HOLIDAYS_ANSWER
    assert api.get(special_url("s1")).json() == HOLIDAYS_ANSWER
    assert stored_special(mdb) == [
        ("s1", "2024-12-24", 32430.0, 46800.0),
        ("s1", "2024-12-24", 54000.0, 57600.0),
        ("s1", "2024-12-25", -1.0, -1.0),
        ("s1", "2024-12-31", 79200.0, 7200.0),
        ("s2", "2024-12-25", -1.0, -1.0),
    ]
    assert api.put(special_url("s1"), [], format="json").json() == []
    assert stored_special(mdb) == [("s2", "2024-12-25", -1.0, -1.0)]


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([item("2024-02-30", "09:00", "10:00")], "item 0: date_local is not a date YYYY-MM-DD: '2024-02-30'"),
        (
            [HOLIDAYS[0], item("2024-12-01", "09:00", None)],
            "item 1: only one of start_time_local and end_time_local is empty",
        ),
        (
            [HOLIDAYS[0], HOLIDAYS[1], item("2024-12-01", "9am", "10:00")],
            "item 2: start_time_local is not a clock time HH:MM[:SS]: '9am'",
        ),
        ([{"start_time_local": "09:00", "end_time_local": "10:00"}], "item 0: date_local is not a date YYYY-MM-DD: ''"),
        ([item(None, None, None)], "item 0: date_local is not a string"),
        ([item({"$gt": ""}, None, None)], "item 0: date_local is not a string"),
        (["2024-12-25"], "item 0: not an object with the keys date_local, start_time_local, end_time_local"),
    ],
)
def test_a_bad_item_is_400_naming_it_and_nothing_changes(
    api: APIClient, mdb: Database, items: list[Any], fragment: str
) -> None:
    assert api.put(special_url("s1"), HOLIDAYS[1:2], format="json").status_code == 200
    error = assert_json_error(api.put(special_url("s1"), items, format="json"), 400)["error"]
    assert fragment in error, error
    assert stored_special(mdb) == [("s1", "2024-12-25", -1.0, -1.0)]


@pytest.mark.parametrize("body", [{"date_local": "2024-12-25"}, "x", 3])
def test_special_hours_must_be_a_json_list(api: APIClient, mdb: Database, body: Any) -> None:
    error = assert_json_error(api.put(special_url("s1"), body, format="json"), 400)["error"]
    assert "send a JSON list" in error


CRAFTED = ['{"$ne": "' + MARK + '"}', f"$where{MARK}", f"$regex.*{MARK}", f"{MARK}[$gt]"]


@pytest.mark.parametrize("store_id", CRAFTED)
def test_crafted_store_ids_stay_plain_strings(api: APIClient, mdb: Database, queries: list[Any], store_id: str) -> None:
    assert api.get(special_url(store_id)).json() == []
    assert_json_error(api.get(store_url(store_id)), 404)
    assert api.put(special_url(store_id), HOLIDAYS[1:2], format="json").status_code == 200
    insert_polls(mdb, polls([(store_id, "active", "2024-10-07 10:00:00")]))
    assert api.get(store_url(store_id)).json()["special_hours"] == [HOLIDAYS_ANSWER[2]]
    listed = api.get(f"/stores/?search={quote(store_id, safe='')}").json()
    assert [r["store_id"] for r in listed["results"]] == [store_id]
    # No MongoDB filter ever held the id: every read is a packed table's _id lookup.
    assert queries
    assert not [q for q in queries if any(MARK in s for s in strings_in(q))]


# --- access -------------------------------------------------------------------------------


def test_the_read_token_reads_but_may_not_put(api: APIClient, fleet: Database, tokens: None) -> None:
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    full = {"HTTP_AUTHORIZATION": f"Bearer {FULL}"}
    response = api.put(special_url("b1"), HOLIDAYS, format="json", **read)
    assert "may only read" in assert_json_error(response, 403)["error"]
    assert stored_special(fleet) == []
    assert api.put(special_url("b1"), HOLIDAYS, format="json", **full).status_code == 200
    assert api.get(special_url("b1"), **read).json() == HOLIDAYS_ANSWER
    assert api.get("/stores/", **read).json()["count"] == 5
    assert api.get(store_url("b1"), **read).json()["special_hours"] == HOLIDAYS_ANSWER


@pytest.mark.parametrize("url", ["/stores/", "/stores/b1/", "/stores/b1/special_hours/"])
def test_without_a_token_store_endpoints_are_401(api: APIClient, fleet: Database, tokens: None, url: str) -> None:
    assert "Missing API token" in assert_json_error(api.get(url), 401)["error"]


@pytest.mark.parametrize(
    ("method", "url"), [("POST", "/stores/"), ("PUT", "/stores/b1/"), ("DELETE", "/stores/b1/special_hours/")]
)
def test_other_methods_are_405(api: APIClient, mdb: Database, method: str, url: str) -> None:
    assert_json_error(api.generic(method, url, b"[]", content_type="application/json"), 405)  # fmt: skip


def test_the_schema_lists_the_store_operations(api: APIClient) -> None:
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert paths["/stores/"]["get"]["operationId"] == "list_stores"
    assert set(paths["/stores/{store_id}/"]["get"]["responses"]) >= {"200", "400", "404"}
    special = paths["/stores/{store_id}/special_hours/"]
    assert special["get"]["operationId"] == "get_special_hours"
    assert set(special["put"]["responses"]) >= {"200", "400", "401", "403"}
