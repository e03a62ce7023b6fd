"""POST /store_status/: batches of polls over HTTP (mongomock, embedded worker).

The same reader and checks as ``load_data``: expected counts, lines and reasons
below are written by hand from the batches, not computed by the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from tests.support.api import FULL, READ, assert_json_error, wait_done
from tests.support.store_ids import NOT_PRINTABLE, NOT_UTF8, REFUSED_STORE_IDS, SLASH, TOO_LONG
from tests.support.worked_example import EXAMPLE_CSV

URL = "/store_status/"
HEADER = "store_id,status,timestamp_utc"
GOOD_CSV = (
    f"{HEADER}\n"
    "s1,active,2024-10-08 11:00:00 UTC\n"
    "s1,inactive,2024-10-08 12:00:00 UTC\n"
    "s2,active,2024-10-07T09:30:00Z\n"
)


def post_csv(api: APIClient, body: str | bytes, path: str = URL, **extra: Any) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return api.generic("POST", path, data, content_type="text/csv", **extra)


def post_json(api: APIClient, items: Any, path: str = URL, **extra: Any) -> Any:
    return api.post(path, items, format="json", **extra)


def stored(db: Database) -> list[tuple[str, str, str]]:
    """Every stored poll as (store_id, status, ISO time), sorted."""
    frame = storage.read_all_polls(db).to_frame()
    return sorted(
        (str(s), str(st), t.isoformat())
        for s, st, t in zip(frame["store_id"], frame["status"], frame["timestamp_utc"], strict=True)
    )


GOOD_STORED = [
    ("s1", "active", "2024-10-08T11:00:00+00:00"),
    ("s1", "inactive", "2024-10-08T12:00:00+00:00"),
    ("s2", "active", "2024-10-07T09:30:00+00:00"),
]


def test_a_csv_batch_is_stored_and_answered_201_with_counts(api: APIClient, mdb: Database) -> None:
    response = post_csv(api, GOOD_CSV)
    assert response.status_code == 201, response.content
    assert response.json() == {"read": 3, "inserted": 3, "duplicates": 0, "rejected": 0, "problems": []}
    assert stored(mdb) == GOOD_STORED
    assert storage.newest_poll_time(mdb).isoformat() == "2024-10-08T12:00:00+00:00"


def test_a_json_batch_is_stored_like_the_csv(api: APIClient, mdb: Database) -> None:
    items = [
        {"store_id": "s1", "status": "active", "timestamp_utc": "2024-10-08 11:00:00 UTC"},
        {"store_id": "s1", "status": "inactive", "timestamp_utc": "2024-10-08 12:00:00 UTC"},
        {"store_id": "s2", "status": "ACTIVE ", "timestamp_utc": "2024-10-07T09:30:00Z"},
    ]
    response = post_json(api, items)
    assert response.status_code == 201, response.content
    assert response.json() == {"read": 3, "inserted": 3, "duplicates": 0, "rejected": 0, "problems": []}
    assert stored(mdb) == GOOD_STORED


def test_posting_the_same_batch_twice_stores_nothing_new(api: APIClient, mdb: Database) -> None:
    assert post_csv(api, GOOD_CSV).status_code == 201
    again = post_csv(api, GOOD_CSV)
    assert again.status_code == 200, again.content
    assert again.json() == {"read": 3, "inserted": 0, "duplicates": 3, "rejected": 0, "problems": []}
    assert stored(mdb) == GOOD_STORED
    # The same polls as JSON are the same polls.
    as_json = post_json(api, [{"store_id": "s2", "status": "active", "timestamp_utc": "2024-10-07 09:30:00 UTC"}])
    assert as_json.status_code == 200
    assert as_json.json()["duplicates"] == 1
    assert stored(mdb) == GOOD_STORED


def test_a_repeat_within_a_batch_counts_once_and_inactive_wins(api: APIClient, mdb: Database) -> None:
    body = f"{HEADER}\ns9,active,2024-10-08 10:00:00 UTC\ns9,inactive,2024-10-08 10:00:00 UTC\n"
    assert post_csv(api, body).json() == {"read": 2, "inserted": 1, "duplicates": 1, "rejected": 0, "problems": []}
    assert stored(mdb) == [("s9", "inactive", "2024-10-08T10:00:00+00:00")]


def test_bad_csv_rows_are_answered_with_their_line_and_the_good_rows_stored(api: APIClient, mdb: Database) -> None:
    body = (
        f"{HEADER}\n"  # line 1
        "s1,active,2024-10-08 11:00:00 UTC\n"  # 2: good
        "s1,sleeping,2024-10-08 12:00:00 UTC\n"  # 3: bad status
        ",active,2024-10-08 12:00:00 UTC\n"  # 4: blank store id
        "s2,active,yesterday\n"  # 5: bad timestamp
        "s2,active\n"  # 6: too few fields
        f"{'x' * 129},active,2024-10-08 12:00:00 UTC\n"  # 7: id too long
        "s3,inactive,2024-10-08 12:00:00 UTC\n"  # 8: good
    )
    response = post_csv(api, body)
    assert response.status_code == 201, response.content
    answer = response.json()
    assert (answer["read"], answer["inserted"], answer["duplicates"], answer["rejected"]) == (7, 2, 0, 5)
    assert answer["problems"] == [
        "line 3: status is not active or inactive: 'sleeping'",
        "line 4: store_id is blank",
        "line 5: timestamp_utc is not a valid timestamp: 'yesterday'",
        "line 6: timestamp_utc is not a valid timestamp: ''",
        "line 7: store_id is longer than 128 characters: '" + "x" * 40 + "...'",
    ]
    assert stored(mdb) == [
        ("s1", "active", "2024-10-08T11:00:00+00:00"),
        ("s3", "inactive", "2024-10-08T12:00:00+00:00"),
    ]


def test_bad_json_items_are_answered_with_their_index(api: APIClient, mdb: Database) -> None:
    items = [
        {"store_id": "s1", "status": "active", "timestamp_utc": "2024-10-08 11:00:00 UTC"},  # 0: good
        "s1,active,2024-10-08 11:00:00 UTC",  # 1: not an object
        {"store_id": "s1", "status": "up", "timestamp_utc": "2024-10-08 12:00:00 UTC"},  # 2
        {"store_id": {"$ne": 1}, "status": "active", "timestamp_utc": "2024-10-08 12:00:00 UTC"},  # 3
        {"status": "active", "timestamp_utc": "2024-10-08 12:00:00 UTC"},  # 4: no store_id
        {"store_id": "s4", "status": "active", "timestamp_utc": "2024-13-01 00:00:00 UTC"},  # 5
        {"store_id": 42, "status": "inactive", "timestamp_utc": "2024-10-08 12:00:00 UTC"},  # 6: good ("42")
    ]
    response = post_json(api, items)
    assert response.status_code == 201, response.content
    answer = response.json()
    assert (answer["read"], answer["inserted"], answer["rejected"]) == (7, 2, 5)
    assert answer["problems"] == [
        "item 1: not an object with the keys store_id, status, timestamp_utc",
        "item 2: status is not active or inactive: 'up'",
        "item 3: store_id is not a string",
        "item 4: store_id is blank",
        "item 5: timestamp_utc is not a valid timestamp: '2024-13-01 00:00:00 UTC'",
    ]
    assert stored(mdb) == [
        ("42", "inactive", "2024-10-08T12:00:00+00:00"),
        ("s1", "active", "2024-10-08T11:00:00+00:00"),
    ]


def test_all_rejected_rows_are_counted_and_the_first_twenty_listed(api: APIClient, mdb: Database) -> None:
    at = "2024-10-08 12:00:00 UTC"
    items: list[Any] = [["not", "an", "object"]] * 6  # items 0-5
    items += [{"store_id": 7.5, "status": "active", "timestamp_utc": at}] * 6  # 6-11
    items += [{"store_id": " ", "status": "active", "timestamp_utc": at}] * 6  # 12-17
    items += [{"store_id": "s1", "status": "maybe", "timestamp_utc": at}] * 6  # 18-23
    items += [{"store_id": "s1", "status": "active", "timestamp_utc": "later"}] * 6  # 24-29
    answer = post_json(api, items).json()
    assert (answer["read"], answer["inserted"], answer["rejected"]) == (30, 0, 30)
    # Five examples per reason (as load_data prints them), in item order, cut at twenty.
    assert len(answer["problems"]) == 20
    assert answer["problems"][0] == "item 0: not an object with the keys store_id, status, timestamp_utc"
    assert answer["problems"][5] == "item 6: store_id is not a string"
    assert answer["problems"][10] == "item 12: store_id is blank"
    assert answer["problems"][19] == "item 22: status is not active or inactive: 'maybe'"
    assert stored(mdb) == []


def test_strict_refuses_the_whole_batch_with_400_and_stores_nothing(api: APIClient, mdb: Database) -> None:
    body = f"{GOOD_CSV}s1,sleeping,2024-10-08 13:00:00 UTC\n"
    error = assert_json_error(post_csv(api, body, path=f"{URL}?strict=1"), 400)["error"]
    assert "strict: 1 row(s) rejected, nothing was stored" in error
    assert "line 5: status is not active or inactive: 'sleeping'" in error
    assert stored(mdb) == []
    assert storage.newest_poll_time(mdb) is None
    items = [{"store_id": "s1", "status": "active", "timestamp_utc": "soon"}]
    assert "item 0: timestamp_utc" in assert_json_error(post_json(api, items, path=f"{URL}?strict=true"), 400)["error"]
    assert stored(mdb) == []
    # A clean batch goes through under strict.
    assert post_csv(api, GOOD_CSV, path=f"{URL}?strict=1").status_code == 201
    assert stored(mdb) == GOOD_STORED


@pytest.mark.parametrize("query", ["?strict=maybe", "?stric=1"])
def test_bad_query_parameters_are_400(api: APIClient, mdb: Database, query: str) -> None:
    assert_json_error(post_csv(api, GOOD_CSV, path=f"{URL}{query}"), 400)
    assert stored(mdb) == []


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"", "text/csv", "body: empty"),
        (b"", "application/json", "body: empty"),
        (b"\n\n", "text/csv", "file is empty (no header line)"),
        (b"store_id,status\ns1,active\n", "text/csv", "header has no 'timestamp_utc' column"),
        (b"id,state,time\ns1,active,2024-10-08 11:00:00 UTC\n", "text/csv", "header has no 'store_id' column"),
        (b"[]", "application/json", "the batch is empty"),
        (b'{"store_id": "s1", "status": "active"}', "application/json", "must be a list of objects"),
        (b'"s1,active"', "application/json", "must be a list of objects"),
        (b"[{]", "application/json", "Malformed JSON"),
    ],
)
def test_unusable_bodies_are_400_with_a_clear_message(
    api: APIClient, mdb: Database, body: bytes, content_type: str, fragment: str
) -> None:
    error = assert_json_error(api.generic("POST", URL, body, content_type=content_type), 400)["error"]
    assert fragment in error
    assert stored(mdb) == []


def test_a_huge_garbage_header_is_not_echoed_whole(api: APIClient, mdb: Database) -> None:
    error = assert_json_error(post_csv(api, b"x" * 100_000), 400)["error"]
    assert "header has no 'store_id' column" in error
    assert len(error) < 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=zz"])
def test_other_content_types_are_415(api: APIClient, mdb: Database, content_type: str) -> None:
    response = api.generic("POST", URL, GOOD_CSV.encode(), content_type=content_type)
    assert content_type.split(";")[0] in assert_json_error(response, 415)["error"]
    assert stored(mdb) == []


# --- size limit ----------------------------------------------------------------------------


def test_the_ingest_limit_is_its_own_and_configurable(api: APIClient, mdb: Database, settings) -> None:
    settings.INGEST_MAX_BODY_BYTES = 120
    body = f"{HEADER}\ns1,active,2024-10-08 11:00:00 UTC\n".encode()
    exactly = body + b"\n" * (120 - len(body))  # blank lines are skipped
    assert len(exactly) == 120
    assert post_csv(api, exactly).status_code == 201
    response = post_csv(api, exactly + b"\n")
    assert assert_json_error(response, 413) == {
        "error": "Request body is larger than 120 bytes (INGEST_MAX_BODY_BYTES)."
    }
    json_body = b'[{"store_id": "s2", "status": "active", "timestamp_utc": "2024-10-08 11:00:00 UTC"}]' + b" " * 40
    assert len(json_body) > 120
    assert_json_error(api.generic("POST", URL, json_body, content_type="application/json"), 413)
    assert stored(mdb) == [("s1", "active", "2024-10-08T11:00:00+00:00")]


def test_a_batch_over_djangos_64_kib_limit_is_accepted_under_the_ingest_limit(api: APIClient, mdb: Database) -> None:
    rows = [f"store-{i:05d},active,2024-10-08 11:00:00 UTC" for i in range(2000)]  # 2000 x 38 bytes = ~76 KB
    body = ("\n".join([HEADER, *rows]) + "\n").encode()
    assert len(body) > 64 * 1024
    response = post_csv(api, body)
    assert response.status_code == 201, response.content[:300]
    assert response.json()["inserted"] == 2000
    items = [
        {"store_id": f"j{i:05d}", "status": "active", "timestamp_utc": "2024-10-08 11:00:00 UTC"} for i in range(1200)
    ]
    response = post_json(api, items)
    assert response.status_code == 201, response.content[:300]
    assert response.json()["inserted"] == 1200


def test_a_body_over_the_ingest_limit_and_over_64_kib_is_413(api: APIClient, mdb: Database, settings) -> None:
    settings.INGEST_MAX_BODY_BYTES = 70 * 1024
    body = (HEADER + "\n" + "s1,active,2024-10-08 11:00:00 UTC\n" * 3000).encode()  # ~102 KB
    assert len(body) > 70 * 1024
    assert_json_error(post_csv(api, body), 413)
    assert stored(mdb) == []


def test_a_content_length_over_the_limit_is_refused_before_reading(api: APIClient, mdb: Database, settings) -> None:
    settings.INGEST_MAX_BODY_BYTES = 1000
    # The test client's payload refuses reads past its real 8 bytes: a 413 here means nothing was read.
    response = post_csv(api, b"store_id", CONTENT_LENGTH="5000000")
    assert "larger than 1000 bytes" in assert_json_error(response, 413)["error"]


def test_a_chunked_body_without_length_is_411(api: APIClient, mdb: Database) -> None:
    response = post_csv(api, GOOD_CSV, HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    assert_json_error(response, 411)
    assert stored(mdb) == []


# --- access -------------------------------------------------------------------------------


def test_the_read_token_gets_403_on_ingestion_and_the_full_token_writes(
    api: APIClient, mdb: Database, tokens: None
) -> None:
    error = assert_json_error(post_csv(api, GOOD_CSV, HTTP_AUTHORIZATION=f"Bearer {READ}"), 403)["error"]
    assert "may only read" in error
    assert "Missing API token" in assert_json_error(post_csv(api, GOOD_CSV), 401)["error"]
    assert (
        "Invalid API token"
        in assert_json_error(post_csv(api, GOOD_CSV, HTTP_AUTHORIZATION="Bearer nope"), 401)["error"]
    )
    assert stored(mdb) == []
    assert post_csv(api, GOOD_CSV, HTTP_AUTHORIZATION=f"Bearer {FULL}").status_code == 201
    assert stored(mdb) == GOOD_STORED


def test_the_read_token_reads_and_triggers_reports(loaded: APIClient, mdb: Database, tokens: None) -> None:
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    response = loaded.post("/trigger_report/", {"now": "2024-10-07T18:00:00Z"}, format="json", **read)
    assert response.status_code == 202, response.content
    report_id = response.json()["report_id"]
    loaded.credentials(HTTP_AUTHORIZATION=f"Bearer {READ}")  # wait_done polls with it
    done = wait_done(loaded, report_id)
    assert done["status"] == "Complete" and done["csv_data"] == EXAMPLE_CSV


def test_without_tokens_everything_is_open(api: APIClient, mdb: Database, settings) -> None:
    settings.API_TOKEN = ""
    settings.API_READ_TOKEN = ""
    assert post_csv(api, GOOD_CSV).status_code == 201


# --- a report after an ingestion -------------------------------------------------------------


def test_a_report_triggered_after_an_ingestion_sees_the_new_polls(loaded: APIClient, mdb: Database) -> None:
    # The worked example's newest poll is 2024-10-08 12:00 UTC.
    newer = f"{HEADER}\nmon,inactive,2024-10-08 13:30:00 UTC\nnew,active,2024-10-08 13:15:00 UTC\n"
    assert post_csv(loaded, newer).json()["inserted"] == 2
    response = loaded.post("/trigger_report/")
    assert response.status_code == 202, response.content
    done = wait_done(loaded, response.json()["report_id"])
    assert done["status"] == "Complete"
    assert done["now"] == "2024-10-08T13:30:00Z"
    # "new" is polled inside the week now; "later" (2024-10-08 12:00) is too.
    stores = [line.split(",")[0] for line in done["csv_data"].splitlines()[1:]]
    assert sorted(stores) == ["later", "mon", "new", "old"]


# --- the store-id rule: what a path refuses is never stored ----------------------------------

AT = "2024-10-08 12:00:00 UTC"


def test_csv_rows_with_ids_the_paths_refuse_are_rejected_with_line_and_reason(api: APIClient, mdb: Database) -> None:
    # Lines: 2 good, 3-10 one bad id each, the line-break ids last (quoted), then a good one.
    bad = [
        "nul\x00id",
        "tab\there",
        "del\x7fid",
        "zero\u200bwidth",
        "right\u202eleft",
        "a/b",
        "bad\ufffdbytes",
        "x" * 129,
        "line\nbreak",
        "car\rriage",
    ]
    rows = ["g1", *bad, "g2"]
    text = HEADER + "\n" + "".join(f'"{store_id}",active,{AT}\n' for store_id in rows)
    body = text.encode().replace("\ufffd".encode(), b"\xff")  # bytes that are not UTF-8
    answer = post_csv(api, body).json()
    assert (answer["read"], answer["inserted"], answer["rejected"]) == (12, 2, 10)
    assert answer["problems"] == [
        f"line 3: {NOT_PRINTABLE}: 'nul\\x00id'",
        f"line 4: {NOT_PRINTABLE}: 'tab\\there'",
        f"line 5: {NOT_PRINTABLE}: 'del\\x7fid'",
        f"line 6: {NOT_PRINTABLE}: 'zero\\u200bwidth'",
        f"line 7: {NOT_PRINTABLE}: 'right\\u202eleft'",
        f"line 8: {SLASH}: 'a/b'",
        f"line 9: {NOT_UTF8}: 'bad\ufffdbytes'",
        f"line 10: {TOO_LONG}: '{'x' * 40}...'",
    ]
    assert [store_id for store_id, _, _ in stored(mdb)] == ["g1", "g2"]


def test_json_items_with_ids_the_paths_refuse_are_rejected_with_index_and_reason(api: APIClient, mdb: Database) -> None:
    items = [{"store_id": store_id, "status": "inactive", "timestamp_utc": AT} for store_id in REFUSED_STORE_IDS]
    items = [
        {"store_id": "g1", "status": "active", "timestamp_utc": AT},
        *items,
        {"store_id": " g2 ", "status": "inactive", "timestamp_utc": AT},
    ]
    answer = post_json(api, items).json()
    assert (answer["read"], answer["inserted"], answer["rejected"]) == (12, 2, 10)
    # Five examples per reason: the two other control-character ids are counted, not listed.
    assert answer["problems"] == [
        f"item 1: {NOT_PRINTABLE}: 'nul\\x00id'",
        f"item 2: {NOT_PRINTABLE}: 'line\\nbreak'",
        f"item 3: {NOT_PRINTABLE}: 'car\\rriage'",
        f"item 4: {NOT_PRINTABLE}: 'tab\\there'",
        f"item 5: {NOT_PRINTABLE}: 'del\\x7fid'",
        f"item 8: {SLASH}: 'a/b'",
        f"item 9: {NOT_UTF8}: 'bad\ufffdbytes'",
        f"item 10: {TOO_LONG}: '{'x' * 40}...'",
    ]
    # Surrounding spaces are stripped, as in a CSV file.
    assert stored(mdb) == [
        ("g1", "active", "2024-10-08T12:00:00+00:00"),
        ("g2", "inactive", "2024-10-08T12:00:00+00:00"),
    ]


def test_strict_refuses_a_batch_with_one_refused_id(api: APIClient, mdb: Database) -> None:
    items = [{"store_id": "zero\u200bwidth", "status": "active", "timestamp_utc": AT}]
    error = assert_json_error(post_json(api, items, path=f"{URL}?strict=1"), 400)["error"]
    assert f"item 0: {NOT_PRINTABLE}" in error
    assert stored(mdb) == []
