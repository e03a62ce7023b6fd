"""POST/GET /maintenance/ and GET/DELETE /maintenance/<id>/ in-process (mongomock): answers and every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.support.api import FULL, READ, VALID_ID, assert_json_error

ONE_OFF = {"store_ids": ["s1", "s2"], "start": "2024-10-07T10:00:00Z", "end": "2024-10-07T12:30:00Z"}
WEEKLY = {"all": True, "weekday": 0, "local_start": "22:00", "local_end": "02:00", "note": "Monday deploys"}


def create(api: APIClient, body: Any, **headers: str) -> Any:
    return api.post("/maintenance/", body, format="json", **headers)


def test_a_one_off_window_is_created_read_listed_and_deleted(api: APIClient) -> None:
    response = create(api, {**ONE_OFF, "start": "2024-10-07T12:00:00+02:00"})
    assert response.status_code == 201, response.content
    body = response.json()
    window_id = body.pop("window_id")
    assert response["Location"] == f"/maintenance/{window_id}/"
    assert body.pop("created_at").endswith("Z")
    assert body == {
        "kind": "one_off",
        "all": False,
        "store_ids": ["s1", "s2"],
        "start": "2024-10-07T10:00:00Z",  # 12:00 at +02:00
        "end": "2024-10-07T12:30:00Z",
        "weekday": None,
        "local_start": None,
        "local_end": None,
        "note": "",
    }
    detail = api.get(f"/maintenance/{window_id}/")
    assert detail.status_code == 200
    assert detail.json()["window_id"] == window_id and detail.json()["start"] == "2024-10-07T10:00:00Z"

    assert api.delete(f"/maintenance/{window_id}/").status_code == 204
    assert_json_error(api.get(f"/maintenance/{window_id}/"), 404)
    assert_json_error(api.delete(f"/maintenance/{window_id}/"), 404)
    assert api.get("/maintenance/").json() == {"count": 0, "page": 1, "page_size": 20, "results": []}


def test_a_weekly_all_stores_window_answers_its_local_times_in_full(api: APIClient) -> None:
    response = create(api, WEEKLY)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["all"], body["store_ids"]) == ("weekly", True, None)
    assert (body["weekday"], body["local_start"], body["local_end"]) == (0, "22:00:00", "02:00:00")
    assert (body["start"], body["end"], body["note"]) == (None, None, "Monday deploys")


def test_the_list_is_newest_first_and_paged(api: APIClient) -> None:
    first = create(api, ONE_OFF).json()["window_id"]
    second = create(api, WEEKLY).json()["window_id"]
    listed = api.get("/maintenance/").json()
    assert listed["count"] == 2
    assert [w["window_id"] for w in listed["results"]] == [second, first]
    page2 = api.get("/maintenance/?page=2&page_size=1").json()
    assert (page2["count"], page2["page"], page2["page_size"]) == (2, 2, 1)
    assert [w["window_id"] for w in page2["results"]] == [first]
    assert_json_error(api.get("/maintenance/?page_size=101"), 400)
    assert_json_error(api.get("/maintenance/?colour=red"), 400)


def test_active_at_keeps_the_windows_that_mute_a_store_then(api: APIClient) -> None:
    one_off = create(api, ONE_OFF).json()["window_id"]
    weekly = create(api, WEEKLY).json()["window_id"]
    # s9 has no zone row: America/Chicago. Monday 22:00-02:00 CDT holds Tue 2024-10-08 05:30Z (00:30 CDT).
    chicago = create(api, {"store_ids": ["s9"], "weekday": 1, "local_start": "09:00", "local_end": "10:00"})

    def active(at: str) -> list[str]:
        response = api.get(f"/maintenance/?active_at={at}")
        assert response.status_code == 200, response.content
        return [w["window_id"] for w in response.json()["results"]]

    assert active("2024-10-07T11:00:00Z") == [one_off]  # Monday 06:00 CDT: no weekly one
    assert active("2024-10-08T05:30:00Z") == [weekly]
    # Tuesday 09:30 CDT = 14:30Z: s9's window (Chicago) holds; the all-stores window does not.
    assert active("2024-10-08T14:30:00Z") == [chicago.json()["window_id"]]
    assert_json_error(api.get("/maintenance/?active_at=soon"), 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ONE_OFF, "end": "2024-10-07T09:00:00Z"}, "end"),  # end before start
        ({**ONE_OFF, "end": ONE_OFF["start"]}, "end"),  # empty
        ({**ONE_OFF, "start": "next Monday"}, "start"),
        ({**WEEKLY, "weekday": 7}, "weekday"),
        ({**WEEKLY, "weekday": -1}, "weekday"),
        ({**WEEKLY, "weekday": "mon"}, "weekday"),
        ({**WEEKLY, "local_start": "25:00"}, "local_start"),
        ({**WEEKLY, "local_end": "2 am"}, "local_end"),
        ({**WEEKLY, "local_end": "02:60"}, "local_end"),
        ({**ONE_OFF, "all": True}, "store_ids"),  # both
        ({"start": ONE_OFF["start"], "end": ONE_OFF["end"]}, "store_ids"),  # neither
        ({**ONE_OFF, "store_ids": []}, "store_ids"),
        ({**ONE_OFF, "store_ids": ["ok", "a/b"]}, "store_ids"),
        ({**WEEKLY, "all": False}, "all"),
        ({**ONE_OFF, "colour": "red"}, "non_field_errors"),  # unknown field
        ({**ONE_OFF, "weekday": 0}, "schedule"),  # one-off and weekly fields mixed
        ({"all": True}, "schedule"),  # no schedule
        ({"all": True, "start": ONE_OFF["start"]}, "end"),  # half a one-off
        ({"all": True, "weekday": 0, "local_start": "22:00"}, "local_end"),
        ({**WEEKLY, "note": "x" * 501}, "note"),
    ],
)
def test_a_bad_window_is_a_400_naming_its_field(api: APIClient, body: dict[str, Any], field: str) -> None:
    error = assert_json_error(create(api, body), 400)
    assert field in error["fields"], error
    assert api.get("/maintenance/").json()["count"] == 0


def test_a_body_that_is_not_an_object_is_a_400(api: APIClient) -> None:
    assert_json_error(create(api, ["s1"]), 400)
    assert_json_error(api.post("/maintenance/", "not json", content_type="application/json"), 400)


def test_unknown_and_malformed_ids(api: APIClient) -> None:
    assert "No maintenance window" in assert_json_error(api.get(f"/maintenance/{VALID_ID}/"), 404)["error"]
    assert_json_error(api.delete(f"/maintenance/{VALID_ID}/"), 404)
    assert "window_id" in assert_json_error(api.get("/maintenance/short/"), 400)["fields"]


def test_writes_need_the_full_token_and_reads_take_either(api: APIClient, tokens: None) -> None:
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    full = {"HTTP_AUTHORIZATION": f"Bearer {FULL}"}
    assert_json_error(create(api, ONE_OFF), 401)
    assert_json_error(create(api, ONE_OFF, **read), 403)
    window_id = create(api, ONE_OFF, **full).json()["window_id"]
    assert_json_error(api.get("/maintenance/"), 401)
    assert api.get("/maintenance/", **read).json()["count"] == 1
    assert api.get(f"/maintenance/{window_id}/", **read).status_code == 200
    assert_json_error(api.delete(f"/maintenance/{window_id}/", **read), 403)
    assert api.delete(f"/maintenance/{window_id}/", **full).status_code == 204
