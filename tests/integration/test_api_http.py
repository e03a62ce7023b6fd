"""Bad input, the API token and the rate limit over real HTTP: gunicorn (DEBUG off), Redis, MongoDB.

The bad-input cases run against the session's stack. The token and the rate
limit need other settings, so a second gunicorn (two workers) is started on the
same database, broker and queue with ``API_TOKEN`` and ``TRIGGER_RATE_LIMIT``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pytest
import redis
import requests
from bson import ObjectId

from tests.support.integration import BROKER_URL, Dataset, Stack
from tests.support.processes import start_gunicorn

pytestmark = pytest.mark.integration

TOKEN = "it-token-0f9e8d7c6b5a"
RATE = 3  # per hour (an hour window: the test cannot straddle it by accident)
CORRUPT_ID = "CorruptReport0000000000000000000"  # Complete, but its CSV file is missing
assert len(CORRUPT_ID) == 32
UNKNOWN_ID = "u" * 32


def check_json_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, (
        response.request.method,
        response.url,
        response.status_code,
        response.text[:300],
    )
    assert response.headers["Content-Type"] == "application/json", response.headers
    assert "Traceback" not in response.text and "<html" not in response.text.lower()
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.fixture(scope="module")
def loaded_stack(stack: Stack, dataset: Dataset) -> Iterator[Stack]:
    """The session stack with the old export loaded and one corrupt report planted.

    The corrupt report makes the operator cases meaningful: a filter such as
    ``{"_id": {"$ne": "x"}}`` would find it (and fail with a 500).
    """
    proc = stack.manage("load_data", str(dataset.old))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    stack.db["report_table"].insert_one(
        {
            "_id": CORRUPT_ID,
            "report_id": CORRUPT_ID,
            "status": "Complete",
            "now_us": 0,
            "created_at": dt.datetime.now(dt.UTC),
            "finished_at": dt.datetime.now(dt.UTC),
            "rows": 1,
            "file_id": ObjectId(),
        }
    )
    yield stack
    stack.db["report_table"].delete_one({"_id": CORRUPT_ID})


def _post_json(base: str, body: bytes, content_type: str = "application/json", **kw) -> requests.Response:
    return requests.post(f"{base}/trigger_report/", data=body, headers={"Content-Type": content_type, **kw}, timeout=30)


def _bad_requests(base: str, future_now: str) -> list[tuple[str, int, Callable[[], requests.Response]]]:
    def chunked():
        yield b'{"now": "'
        yield b"2" * 10_000
        yield b'"}'

    get = requests.get
    return [
        ("malformed JSON", 400, lambda: _post_json(base, b'{"now": ')),
        ("nested too deeply", 400, lambda: _post_json(base, b"[" * 3000)),
        ("not an object", 400, lambda: _post_json(base, b"[]")),
        ("text/plain", 415, lambda: _post_json(base, b'{"now": "2024-10-07T18:00:00Z"}', "text/plain")),
        ("form", 415, lambda: requests.post(f"{base}/trigger_report/", data={"now": "x"}, timeout=30)),
        ("oversized", 413, lambda: _post_json(base, b'{"now": "' + b"2" * 10_000 + b'"}')),
        (
            "chunked",
            411,
            lambda: requests.post(
                f"{base}/trigger_report/", data=chunked(), headers={"Content-Type": "application/json"}, timeout=30
            ),
        ),
        (
            "now not a timestamp",
            400,
            lambda: requests.post(f"{base}/trigger_report/", json={"now": "yesterday"}, timeout=30),
        ),
        (
            "now after the data",
            400,
            lambda: requests.post(f"{base}/trigger_report/", json={"now": future_now}, timeout=30),
        ),
        (
            "now as an operator",
            400,
            lambda: requests.post(f"{base}/trigger_report/", json={"now": {"$gt": ""}}, timeout=30),
        ),
        ("unknown id", 404, lambda: get(f"{base}/get_report/{UNKNOWN_ID}/", timeout=30)),
        ("unknown id csv", 404, lambda: get(f"{base}/get_report/{UNKNOWN_ID}/csv/", timeout=30)),
        ("id of the wrong shape", 400, lambda: get(f"{base}/get_report/not-an-id/", timeout=30)),
        ("id as operator in the path", 400, lambda: get(f"{base}/get_report/%7B%22%24ne%22%3A1%7D/", timeout=30)),
        ("query operator", 400, lambda: get(f"{base}/get_report/?report_id[$ne]=x", timeout=30)),
        (
            "query operator as JSON",
            400,
            lambda: get(f"{base}/get_report/", params={"report_id": '{"$ne": null}'}, timeout=30),
        ),
        (
            "repeated query id",
            400,
            lambda: get(f"{base}/get_report/?report_id={UNKNOWN_ID}&report_id={CORRUPT_ID}", timeout=30),
        ),
        ("PUT trigger", 405, lambda: requests.put(f"{base}/trigger_report/", timeout=30)),
        ("GET trigger", 405, lambda: get(f"{base}/trigger_report/", timeout=30)),
        ("DELETE report", 405, lambda: requests.delete(f"{base}/get_report/{UNKNOWN_ID}/", timeout=30)),
        ("POST health", 405, lambda: requests.post(f"{base}/health/", timeout=30)),
        ("unknown URL", 404, lambda: get(f"{base}/no/such/page/", timeout=30)),
        ("form POST to an unknown URL", 404, lambda: requests.post(f"{base}/no/such/", data={"a": "1"}, timeout=30)),
        ("host not allowed", 400, lambda: get(f"{base}/health/", headers={"Host": "evil.example"}, timeout=30)),
    ]


def test_bad_requests_are_json_4xx_over_gunicorn(loaded_stack: Stack, dataset: Dataset) -> None:
    reports_before = loaded_stack.db["report_table"].count_documents({})
    future_now = (dataset.old_newest + pd.Timedelta(microseconds=1)).isoformat()
    results = {name: (status, call()) for name, status, call in _bad_requests(loaded_stack.base_url, future_now)}
    for name, (status, response) in results.items():
        try:
            check_json_error(response, status)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    assert "after the newest poll" in results["now after the data"][1].json()["error"]
    assert "larger than" in results["oversized"][1].json()["error"]
    assert "nested too deeply" in results["nested too deeply"][1].json()["error"]
    # None of them created a report.
    assert loaded_stack.db["report_table"].count_documents({}) == reports_before


@pytest.mark.parametrize("size", [64 * 1024 + 1, 3 * 1024 * 1024])
def test_a_body_over_any_limit_is_413_json_over_gunicorn(loaded_stack: Stack, size: int) -> None:
    # Over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (64 KiB) Django refused the body before our parser:
    # with DEBUG off that was a 500 "Internal server error." until RequestDataTooBig was mapped.
    reports_before = loaded_stack.db["report_table"].count_documents({})
    body = b'{"now": "' + b"2" * (size - 11) + b'"}'
    assert len(body) == size
    response = _post_json(loaded_stack.base_url, body)
    check_json_error(response, 413)
    assert response.json() == {"error": "Request body is larger than 4096 bytes."}
    assert loaded_stack.db["report_table"].count_documents({}) == reports_before


def test_a_server_error_with_debug_off_is_json_without_details(loaded_stack: Stack) -> None:
    # The planted report's CSV file is missing: a genuine server-side failure.
    for url in (f"/get_report/{CORRUPT_ID}/", f"/get_report/{CORRUPT_ID}/csv/", f"/get_report/?report_id={CORRUPT_ID}"):
        response = requests.get(f"{loaded_stack.base_url}{url}", timeout=30)
        assert check_json_error(response, 500) == {"error": "Internal server error."}
        assert "FileNotFoundError" not in response.text and "missing" not in response.text


# --- token and rate limit on a second gunicorn -------------------------------------------------


@dataclass
class Guarded:
    base_url: str
    db_name: str


@pytest.fixture(scope="module")
def guarded(loaded_stack: Stack) -> Iterator[Guarded]:
    env = {**loaded_stack.env, "API_TOKEN": TOKEN, "TRIGGER_RATE_LIMIT": f"{RATE}/hour"}
    web = start_gunicorn(env, 2, loaded_stack.logs / "web-guarded.log")
    try:
        web.wait_healthy()
        yield Guarded(web.url, loaded_stack.db_name)
    finally:
        web.stop()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_required_except_health_and_docs_over_http(guarded: Guarded) -> None:
    base = guarded.base_url
    assert requests.get(f"{base}/health/", timeout=30).json()["status"] == "ok"
    schema = requests.get(f"{base}/api/schema/", headers={"Accept": "application/json"}, timeout=30)
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert requests.get(f"{base}/api/docs/", timeout=30).status_code == 200

    refused = [
        requests.post(f"{base}/trigger_report/", timeout=30),
        requests.post(f"{base}/trigger_report/", headers=auth("wrong"), timeout=30),
        requests.get(f"{base}/get_report/{UNKNOWN_ID}/", timeout=30),
        requests.get(f"{base}/get_report/{UNKNOWN_ID}/", headers={"Authorization": f"Basic {TOKEN}"}, timeout=30),
        requests.get(f"{base}/get_report/", params={"report_id": UNKNOWN_ID}, timeout=30),
        requests.get(f"{base}/get_report/{UNKNOWN_ID}/csv/", headers=auth(TOKEN + "x"), timeout=30),
    ]
    for response in refused:
        check_json_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    check_json_error(requests.get(f"{base}/get_report/{UNKNOWN_ID}/", headers=auth(), timeout=30), 404)


def _wait_for_window(seconds: int, margin: float = 30) -> float:
    """Sleep past a window boundary that is less than ``margin`` seconds away."""
    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left + 0.5)
    return time.time()


def test_trigger_rate_limit_holds_across_gunicorn_workers(guarded: Guarded, loaded_stack: Stack) -> None:
    base = guarded.base_url
    start = _wait_for_window(3600)
    first = requests.post(f"{base}/trigger_report/", json={"force": True}, headers=auth(), timeout=30)
    assert first.status_code == 202, first.text
    # 8 at once, so both workers take some; 401s above never counted.
    with ThreadPoolExecutor(8) as pool:
        burst = list(
            pool.map(
                lambda _: requests.post(
                    f"{base}/trigger_report/", json={"now": "not-a-time"}, headers=auth(), timeout=30
                ),
                range(8),
            )
        )
    codes = sorted(r.status_code for r in burst)
    assert codes == [400] * (RATE - 1) + [429] * (8 - RATE + 1), codes
    left = 3600 - start % 3600
    for response in burst:
        if response.status_code == 429:
            body = check_json_error(response, 429)
            assert f"{RATE} per hour" in body["error"]
            assert 0 < int(response.headers["Retry-After"]) <= left + 1
    # The counter lives in Redis, where every worker sees it.
    window = int(start // 3600)
    key = f"loop:ratelimit:{guarded.db_name}:trigger:127.0.0.1:3600:{window}"
    assert int(redis.Redis.from_url(BROKER_URL).get(key)) == 1 + 8
    # The one accepted report is real and completes (the session's worker runs it).
    body = requests.get(f"{base}/get_report/{first.json()['report_id']}/", headers=auth(), timeout=30)
    assert body.status_code == 200
    done = loaded_stack.wait_report(first.json()["report_id"])
    assert done["status"] == "Complete"


def test_report_history_and_reuse_over_http(loaded_stack: Stack) -> None:
    """On the MongoDB-wire server: concurrent plain triggers converge on one report, then list and delete it."""
    base = loaded_stack.base_url
    t_max = loaded_stack.db["store_status"].find_one({"_id": "range"})["t_max"]
    # A `now` no other test pins (1 µs steps below the newest poll), so no earlier claim answers.
    now = pd.Timestamp(t_max - 7_777, unit="us", tz="UTC").isoformat()
    with ThreadPoolExecutor(12) as pool:  # over both gunicorn workers; 12 stays under the trigger rate limit
        answers = list(
            pool.map(lambda _: requests.post(f"{base}/trigger_report/", json={"now": now}, timeout=30), range(12))
        )
    assert sorted(r.status_code for r in answers) == [200] * 11 + [202], [r.text for r in answers]
    report_ids = {r.json()["report_id"] for r in answers}
    assert len(report_ids) == 1
    report_id = report_ids.pop()
    assert loaded_stack.db["report_table"].count_documents({"now_us": t_max - 7_777}) == 1
    assert loaded_stack.wait_report(report_id)["status"] == "Complete"

    listed = requests.get(f"{base}/reports/?status=Complete&page_size=100", timeout=30).json()
    item = next(i for i in listed["results"] if i["report_id"] == report_id)
    assert item["now"] == now.removesuffix("+00:00") + "Z" and item["rows"] > 0 and "phase" not in item

    file_id = loaded_stack.db["report_table"].find_one({"_id": report_id})["file_id"]
    assert requests.delete(f"{base}/reports/{report_id}/", timeout=30).status_code == 204
    assert loaded_stack.db["report_files.files"].count_documents({"_id": file_id}) == 0
    assert loaded_stack.db["report_files.chunks"].count_documents({"files_id": file_id}) == 0
    assert requests.get(f"{base}/get_report/{report_id}/", timeout=30).status_code == 404
    again = requests.post(f"{base}/trigger_report/", json={"now": now}, timeout=30)
    assert again.status_code == 202 and again.json()["report_id"] != report_id
    assert loaded_stack.wait_report(again.json()["report_id"])["status"] == "Complete"
