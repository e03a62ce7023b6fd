"""Bad input, the API token and the trigger rate limit (Django test client, mongomock, embedded worker).

Every response checked here must be a JSON 4xx (or the expected success), never
a 500 or an HTML page, and crafted input must never reach MongoDB as an operator.
"""

from __future__ import annotations

import hmac
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from kombu.exceptions import OperationalError
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage, tasks
from loop.api import access
from loop.rates import Rate, parse_rate
from tests.support.api import VALID_ID, assert_json_error, wait_done
from tests.support.query_spy import MARK, strings_in
from tests.support.worked_example import NEWEST

TOKEN = "t0ken-For-Tests_8f3a9c"
NOT_A_TIME = {"now": "not-a-time"}  # a cheap trigger: 400 after the rate check, no report made


def report_count(db: Database) -> int:
    return db[storage.REPORTS].count_documents({})


# --- bodies of POST /trigger_report/ ------------------------------------------------------


def post_raw(api: APIClient, body: bytes, content_type: str = "application/json", **extra: Any) -> Any:
    return api.generic("POST", "/trigger_report/", body, content_type=content_type, **extra)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"[" * 3000, "application/json", 400, "nested too deeply"),
        (b"{" + b'"a":{' * 800, "application/json", 400, "Malformed JSON"),
        (b'{"now": NaN}', "application/json", 400, "Malformed JSON"),
        (b'{"now": "2024-10-07T18:00:00Z"}'.decode().encode("utf-16"), "application/json", 400, "Malformed JSON"),
        (b'{"now": "2024-10-07T18:00:00Z"}', "application/json; charset=utf-16", 400, "Malformed JSON"),
        (b"[]", "application/json", 400, "dictionary"),
        (b"0", "application/json", 400, "dictionary"),
        (b'"now"', "application/json", 400, "dictionary"),
        (b"true", "application/json", 400, "dictionary"),
        (b'{"now": "2024-10-07T18:00:00Z"}', "text/plain", 415, "text/plain"),
        (b'{"now": "2024-10-07T18:00:00Z"}', "application/xml", 415, "application/xml"),
        (b"now=x", "multipart/form-data; boundary=zz", 415, "multipart/form-data"),
        (b'{"now": "2024-10-07T18:00:00Z"}', "", 415, "Unsupported media type"),
    ],
)
def test_bad_bodies_are_json_4xx_and_create_nothing(
    loaded: APIClient, mdb: Database, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    error = assert_json_error(post_raw(loaded, body, content_type), status)["error"]
    assert fragment in error
    assert report_count(mdb) == 0


@pytest.mark.parametrize(
    ("now", "fragment"),
    [
        ("", "blank"),
        (None, "null"),
        (12345, "ISO-8601"),
        (True, "valid string"),
        ("NaN", "ISO-8601"),
        ("2024-10-07T18:00:00+25:00", "ISO-8601"),
        ("9999-12-31T23:59:59Z", "outside the supported range"),  # ISO-8601, but no nanosecond stamp holds it
        ("0001-01-01T00:00:00Z", "outside the supported range"),
        ("1677-12-31T23:59:59.999999Z", "outside the supported range"),  # 1 us before 1678-01-01
        ("2262-01-01T00:00:00.000001Z", "outside the supported range"),
        ("2" * 65, "64 characters"),
        ("2024-10-08T12:00:00.000001Z", "after the newest poll"),  # 1 us after NEWEST
        ("2024-10-08T07:00:01-05:00", "after the newest poll"),  # 12:00:01 UTC
    ],
)
def test_now_must_be_a_timestamp_not_after_the_data(loaded: APIClient, mdb: Database, now: Any, fragment: str) -> None:
    body = assert_json_error(loaded.post("/trigger_report/", {"now": now}, format="json"), 400)
    assert fragment in body["error"]
    assert "now" in body["fields"]
    assert report_count(mdb) == 0


@pytest.mark.parametrize("body", [None, b"", b"null", b"{}"])
def test_no_body_null_or_empty_object_mean_no_options(loaded: APIClient, mdb: Database, body: bytes | None) -> None:
    response = loaded.post("/trigger_report/") if body is None else post_raw(loaded, body)
    assert response.status_code == 202, response.content
    doc = storage.get_report(mdb, response.json()["report_id"])
    assert storage.report_now(doc).isoformat() == NEWEST


def test_now_equal_to_the_newest_poll_is_accepted(loaded: APIClient) -> None:
    response = loaded.post("/trigger_report/", {"now": "2024-10-08T07:00:00-05:00"}, format="json")
    assert response.status_code == 202, response.content


def test_now_before_all_data_gives_an_empty_report(loaded: APIClient) -> None:
    response = loaded.post("/trigger_report/", {"now": "1900-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 202, response.content
    done = wait_done(loaded, response.json()["report_id"])
    assert done["status"] == "Complete" and done["rows"] == 0


def test_a_chunked_body_without_length_is_411_not_silently_dropped(loaded: APIClient, mdb: Database) -> None:
    # Under WSGI Django would read no bytes of it and start a report without the options.
    response = post_raw(loaded, b'{"now": "2024-10-07T18:00:00Z"}', HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    assert "Content-Length" in assert_json_error(response, 411)["error"]
    assert report_count(mdb) == 0


def test_body_size_limit_is_configurable(loaded: APIClient, mdb: Database, settings) -> None:
    settings.API_MAX_BODY_BYTES = 100
    core = b'{"now": "2024-10-07T18:00:00+00:00"}'
    exactly = core + b" " * (100 - len(core))  # JSON allows trailing whitespace
    assert len(exactly) == 100
    assert post_raw(loaded, exactly).status_code == 202
    body = assert_json_error(post_raw(loaded, exactly + b" "), 413)
    assert "larger than 100 bytes" in body["error"]
    assert report_count(mdb) == 1


# --- ids and query parameters crafted as MongoDB operators -----------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"/get_report/?report_id[$ne]={MARK}",
        f"/get_report/?report_id[$regex]=.*{MARK}",
        f"/get_report/?report_id[]={MARK}",
        f"/get_report/?report_id={VALID_ID}&report_id={MARK}",
        "/get_report/?report_id=%7B%22%24ne%22%3A%22" + MARK + "%22%7D",  # {"$ne":"INJECTED"}
        "/get_report/%7B%22%24ne%22%3A%22" + MARK + "%22%7D/",
        "/get_report/%7B%22%24ne%22%3A%22" + MARK + "%22%7D/csv/",
        f"/get_report/$ne{MARK}{'x' * (32 - 3 - len(MARK))}/",  # right length, '$' not allowed
        f"/get_report/?report_id={VALID_ID}&{MARK}=1",
    ],
)
def test_crafted_ids_never_reach_mongodb(api: APIClient, queries: list[Any], path: str) -> None:
    assert_json_error(api.get(path), 400)
    assert not [q for q in queries if any(MARK in s for s in strings_in(q))]


@pytest.mark.parametrize(
    "body",
    [
        {"now": {"$gt": MARK}},
        {"now": {"$date": MARK}},
        {"now": [MARK]},
        {"$where": MARK},
        {"now": "2024-10-07T18:00:00Z", "report_id": {"$ne": MARK}},
    ],
)
def test_crafted_bodies_never_reach_mongodb(
    loaded: APIClient, mdb: Database, queries: list[Any], body: dict[str, Any]
) -> None:
    assert_json_error(loaded.post("/trigger_report/", body, format="json"), 400)
    assert not [q for q in queries if any(MARK in s for s in strings_in(q))]
    assert report_count(mdb) == 0


def test_a_well_formed_id_reaches_mongodb_as_a_plain_string(api: APIClient, queries: list[Any]) -> None:
    # The control for the two tests above: the spy does see the lookups.
    assert_json_error(api.get(f"/get_report/{VALID_ID}/"), 404)
    assert_json_error(api.get("/get_report/", {"report_id": VALID_ID}), 404)
    lookups = [q for q in queries if isinstance(q, dict) and VALID_ID in q.values()]
    assert lookups  # find_one also shows up as the find it calls
    assert all(q == {"_id": VALID_ID} and type(q["_id"]) is str for q in lookups)


# --- methods and URLs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/trigger_report/"),
        ("PUT", "/trigger_report/"),
        ("PATCH", "/trigger_report/"),
        ("DELETE", "/trigger_report/"),
        ("POST", f"/get_report/{VALID_ID}/"),
        ("PUT", f"/get_report/{VALID_ID}/"),
        ("DELETE", f"/get_report/{VALID_ID}/"),
        ("POST", "/get_report/"),
        ("DELETE", f"/get_report/{VALID_ID}/csv/"),
        ("POST", "/health/"),
        ("POST", "/api/schema/"),
    ],
)
def test_unsupported_methods_are_405_json(api: APIClient, method: str, path: str) -> None:
    response = api.generic(method, path)
    assert f'"{method}" not allowed' in assert_json_error(response, 405)["error"]
    assert method not in response["Allow"] and response["Allow"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/no/such/page/"),
        ("POST", "/no/such/page/"),  # a form POST: no CSRF page either
        ("GET", "/api/nothing/"),
        ("GET", "/get_report/a/b/c/"),
    ],
)
def test_unknown_urls_are_404_json(method: str, path: str, settings) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.generic(method, path, b"a=1", content_type="application/x-www-form-urlencoded")
    assert f"Not found: {path}" == assert_json_error(response, 404)["error"]


def test_docs_answer_without_a_trailing_slash(api: APIClient) -> None:
    assert api.get("/api/schema", HTTP_ACCEPT="application/json").status_code == 200
    assert api.get("/api/docs").status_code == 200


def test_a_non_json_accept_header_gets_a_json_406(loaded: APIClient) -> None:
    assert_json_error(loaded.get(f"/get_report/{VALID_ID}/", HTTP_ACCEPT="text/html"), 406)


# --- the API token ----------------------------------------------------------------------

PROTECTED = [
    ("POST", "/trigger_report/"),
    ("GET", f"/get_report/{VALID_ID}/"),
    ("GET", f"/get_report/?report_id={VALID_ID}"),
    ("GET", f"/get_report/{VALID_ID}/csv/"),
    ("OPTIONS", "/trigger_report/"),
]


@pytest.fixture
def token(settings) -> str:
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN = TOKEN
    return TOKEN


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (None, "Missing API token"),
        ("Bearer wrong-token", "Invalid API token"),
        (f"Bearer {TOKEN}x", "Invalid API token"),
        (f"Bearer {TOKEN[:-1]}", "Invalid API token"),
        (f"Basic {TOKEN}", "Malformed Authorization header"),
        ("Bearer ", "Malformed Authorization header"),
        (TOKEN, "Malformed Authorization header"),
    ],
)
def test_without_the_right_token_every_api_endpoint_is_401(
    api: APIClient, mdb: Database, token: str, header: str | None, fragment: str
) -> None:
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    for method, path in PROTECTED:
        response = api.generic(method, path, **extra)
        assert fragment in assert_json_error(response, 401)["error"], (method, path)
        assert response["WWW-Authenticate"].startswith("Bearer"), (method, path)
    assert report_count(mdb) == 0


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_right_token_lets_requests_through(loaded: APIClient, mdb: Database, token: str, scheme: str) -> None:
    auth = {"HTTP_AUTHORIZATION": f"{scheme} {token}"}
    report_id = loaded.post("/trigger_report/", **auth).json()["report_id"]
    assert report_count(mdb) == 1
    assert loaded.get(f"/get_report/{report_id}/", **auth).status_code == 200
    assert_json_error(loaded.get(f"/get_report/{VALID_ID}/", **auth), 404)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc"])
def test_health_and_docs_stay_open_with_a_token_set(loaded: APIClient, token: str, header: str | None) -> None:
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    assert loaded.get("/health/", **extra).json()["status"] == "ok"
    assert loaded.get("/api/schema/", HTTP_ACCEPT="application/json", **extra).status_code == 200
    assert loaded.get("/api/docs/", **extra).status_code == 200


def test_token_comparison_is_constant_time(loaded: APIClient, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(access, "hmac", SimpleNamespace(compare_digest=spy))
    assert loaded.get(f"/get_report/{VALID_ID}/", HTTP_AUTHORIZATION="Bearer guess").status_code == 401
    assert calls == [(b"guess", TOKEN.encode())]


def test_non_ascii_tokens_compare_without_errors() -> None:
    secret = "pässwörd-€"
    # Over real HTTP the header arrives as latin-1-decoded UTF-8 bytes (PEP 3333).
    assert access.token_matches(secret.encode("utf-8").decode("latin-1"), secret)
    assert access.token_matches(secret, secret)  # a str from the test client
    assert not access.token_matches("pässwörd-$", secret)
    assert not access.token_matches("", secret)


def test_openapi_schema_declares_the_bearer_token(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    paths = schema["paths"]
    protected = [
        ("/trigger_report/", "post"),
        ("/get_report/", "get"),
        ("/get_report/{report_id}/", "get"),
        ("/get_report/{report_id}/csv/", "get"),
    ]
    for path, method in protected:
        operation = paths[path][method]
        assert operation["security"] == [{"bearerAuth": []}], path
        assert "401" in operation["responses"], path
    assert paths["/health/"]["get"]["security"] == [{}]  # {} = no authentication needed
    assert "429" in paths["/trigger_report/"]["post"]["responses"]


# --- the trigger rate limit --------------------------------------------------------------

T0 = 1_700_000_000.0  # 1_700_000_000 = 28_333_333 * 60 + 20: 20 s into a minute window


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fake = SimpleNamespace(now=T0)
    monkeypatch.setattr(access, "time", SimpleNamespace(time=lambda: fake.now))
    return fake


def statuses(api: APIClient, n: int, **extra: Any) -> list[int]:
    return [api.post("/trigger_report/", NOT_A_TIME, format="json", **extra).status_code for _ in range(n)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/minute", Rate(10, 60)),
        ("10/m", Rate(10, 60)),
        (" 3 / min ", Rate(3, 60)),
        ("5/10s", Rate(5, 10)),
        ("100/hours", Rate(100, 3600)),
        ("2/Day", Rate(2, 86400)),
        ("0", None),
        ("", None),
        ("off", None),
        ("0/minute", None),
    ],
)
def test_parse_rate(text: str, expected: Rate | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["ten/minute", "10/fortnight", "10", "10/0s", "-1/minute", "10/ms"])
def test_parse_rate_rejects_nonsense(text: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="TRIGGER_RATE_LIMIT"):
        parse_rate(text)


def test_trigger_over_the_limit_is_429_with_retry_after(loaded: APIClient, clock: SimpleNamespace, settings) -> None:
    settings.TRIGGER_RATE_LIMIT = "3/minute"
    assert statuses(loaded, 3) == [400, 400, 400]
    response = loaded.post("/trigger_report/", NOT_A_TIME, format="json")
    body = assert_json_error(response, 429)
    assert response["Retry-After"] == "40"  # 60 - 20 s into the window
    assert "3 per minute" in body["error"] and "40 seconds" in body["error"]
    # A valid request is refused as well: no report is created while limited.
    assert loaded.post("/trigger_report/").status_code == 429
    clock.now = T0 + 39.5  # still the same window
    assert loaded.post("/trigger_report/", NOT_A_TIME, format="json")["Retry-After"] == "1"
    clock.now = T0 + 40  # the next window starts
    assert statuses(loaded, 4) == [400, 400, 400, 429]


def test_rate_limit_is_per_client_and_ignores_forged_forwarded_for(
    loaded: APIClient, clock: SimpleNamespace, settings
) -> None:
    settings.TRIGGER_RATE_LIMIT = "2/minute"
    assert statuses(loaded, 3, REMOTE_ADDR="10.0.0.1") == [400, 400, 429]
    forged = [
        loaded.post(
            "/trigger_report/", NOT_A_TIME, format="json", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}"
        ).status_code
        for i in range(3)
    ]
    assert forged == [429, 429, 429]
    assert statuses(loaded, 3, REMOTE_ADDR="10.0.0.2") == [400, 400, 429]


@pytest.mark.parametrize("limit", ["0", ""])
def test_rate_limit_can_be_disabled(loaded: APIClient, clock: SimpleNamespace, settings, limit: str) -> None:
    settings.TRIGGER_RATE_LIMIT = limit
    assert statuses(loaded, 15) == [400] * 15


def test_unauthenticated_requests_do_not_use_up_the_limit(
    api: APIClient, clock: SimpleNamespace, token: str, settings
) -> None:
    settings.TRIGGER_RATE_LIMIT = "2/minute"
    assert statuses(api, 5) == [401] * 5
    assert statuses(api, 3, HTTP_AUTHORIZATION=f"Bearer {token}") == [400, 400, 429]


def test_only_post_trigger_is_rate_limited(loaded: APIClient, clock: SimpleNamespace, settings) -> None:
    settings.TRIGGER_RATE_LIMIT = "1/minute"
    others = [loaded.get(f"/get_report/{VALID_ID}/").status_code for _ in range(3)]
    others += [loaded.generic(method, "/trigger_report/").status_code for method in ("GET", "PUT", "OPTIONS")]
    assert others == [404, 404, 404, 405, 405, 200]
    assert statuses(loaded, 2) == [400, 429]
    assert [loaded.get(f"/get_report/{VALID_ID}/").status_code for _ in range(3)] == [404] * 3
    assert loaded.get("/trigger_report/").status_code == 405


def test_redis_down_is_a_503_not_a_500(
    loaded: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    # Redis (broker and rate counter) refuses connections: the limit cannot be
    # counted, so the trigger goes on and fails to queue with the usual 503.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.TRIGGER_RATE_LIMIT = "1/minute"

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.generate_report_task, "apply_async", refused)
    for _ in range(2):
        assert "broker" in assert_json_error(loaded.post("/trigger_report/"), 503)["error"]
    assert [d["status"] for d in mdb[storage.REPORTS].find()] == ["Failed", "Failed"]
