"""The HTTP API with the embedded worker: the trigger/poll flow and every error shape."""

from __future__ import annotations

import re
import threading
from typing import Any

import pandas as pd
import pytest
from kombu.exceptions import OperationalError
from pymongo.database import Database
from pymongo.errors import ServerSelectionTimeoutError
from rest_framework.test import APIClient

from loop import storage, tasks
from loop.services import reports
from loop.timeutil import utcnow
from tests.support.api import trigger, wait_done
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_NOW


def test_trigger_answers_202_at_once_then_running_then_complete(
    loaded: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = reports.generate_report

    def held(**kwargs: Any):
        assert gate.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(reports, "generate_report", held)
    response = trigger(loaded, {"now": EXAMPLE_NOW.isoformat()})
    assert response.status_code == 202
    report_id = response.json()["report_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", report_id)
    assert response["Location"] == f"/get_report/{report_id}/"

    running = loaded.get(f"/get_report/{report_id}/")
    assert running.status_code == 200 and running.json()["status"] == "Running"
    assert "csv_data" not in running.json()
    gate.set()
    done = wait_done(loaded, report_id)
    assert done["status"] == "Complete"
    assert done["csv_data"] == EXAMPLE_CSV
    assert done["rows"] == 2
    assert done["now"] == "2024-10-07T18:00:00Z"
    assert done["finished_at"] >= done["created_at"]


def test_without_a_body_now_is_the_newest_poll(loaded: APIClient) -> None:
    report_id = trigger(loaded).json()["report_id"]
    done = wait_done(loaded, report_id)
    assert done["now"] == "2024-10-08T12:00:00Z"  # the newest poll of the worked example
    assert [line.split(",")[0] for line in done["csv_data"].splitlines()[1:]] == ["later", "mon", "old"]


def test_query_form_and_csv_download(loaded: APIClient) -> None:
    report_id = trigger(loaded, {"now": "2024-10-07 18:00:00 UTC"}).json()["report_id"]
    wait_done(loaded, report_id)
    by_query = loaded.get("/get_report/", {"report_id": report_id})
    assert by_query.status_code == 200 and by_query.json()["csv_data"] == EXAMPLE_CSV
    download = loaded.get(f"/get_report/{report_id}/csv/")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert download["Content-Disposition"] == f'attachment; filename="report-{report_id}.csv"'
    assert download.content.decode() == EXAMPLE_CSV


def test_report_ids_are_random_and_distinct(loaded: APIClient) -> None:
    ids = {trigger(loaded, {"force": True}).json()["report_id"] for _ in range(5)}
    assert len(ids) == 5


def test_csv_of_a_running_or_failed_report_is_409(loaded: APIClient, mdb: Database) -> None:
    storage.create_report(mdb, "R" * 32, EXAMPLE_NOW)
    running = loaded.get(f"/get_report/{'R' * 32}/csv/")
    assert running.status_code == 409 and "Running" in running.json()["error"]
    storage.fail_report(mdb, "R" * 32, "ValueError: boom")
    failed = loaded.get(f"/get_report/{'R' * 32}/")
    assert failed.json()["status"] == "Failed" and failed.json()["error"] == "ValueError: boom"
    assert loaded.get(f"/get_report/{'R' * 32}/csv/").status_code == 409


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"now": "yesterday"}, "ISO-8601"),
        ({"now": "2024-13-45T99:00:00"}, "ISO-8601"),
        ({"now": {"$gt": ""}}, "now"),
        ({"now": ["2024-10-07"]}, "now"),
        ({"now": "2030-01-01T00:00:00Z"}, "after the newest poll"),
        ({"later": "x"}, "unexpected field"),
        (["now"], "dictionary"),
        ([], "dictionary"),
        ("2024-10-07", "dictionary"),
    ],
)
def test_bad_trigger_bodies_are_400_json(loaded: APIClient, mdb: Database, body: Any, fragment: str) -> None:
    response = trigger(loaded, body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert mdb[storage.REPORTS].count_documents({}) == 0


def test_malformed_oversized_and_non_json_bodies(loaded: APIClient, mdb: Database) -> None:
    broken = loaded.post("/trigger_report/", b'{"now": ', content_type="application/json")
    assert broken.status_code == 400 and "Malformed JSON" in broken.json()["error"]
    huge = loaded.post("/trigger_report/", b'{"now": "' + b"1" * 10_000 + b'"}', content_type="application/json")
    assert huge.status_code == 413 and "larger than" in huge.json()["error"]
    form = loaded.post("/trigger_report/", "now=2024-10-07", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415 and "error" in form.json()
    assert mdb[storage.REPORTS].count_documents({}) == 0


def test_trigger_with_no_polls_loaded_is_409(api: APIClient) -> None:
    response = trigger(api)
    assert response.status_code == 409 and "load_data" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/get_report/short/", 400),
        ("/get_report/" + "a" * 33 + "/", 400),
        ("/get_report/" + "a" * 31 + "$/", 400),
        ("/get_report/" + "a" * 32 + "/", 404),
        ("/get_report/?report_id[$ne]=x", 400),
        ("/get_report/?report_id=" + "a" * 32 + "&report_id=" + "b" * 32, 400),
        ("/get_report/", 400),
        ("/no/such/page/", 404),
    ],
)
def test_bad_report_lookups_are_json_errors(loaded: APIClient, path: str, status: int) -> None:
    response = loaded.get(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]


def test_unsupported_methods_are_405_json(loaded: APIClient) -> None:
    assert loaded.get("/trigger_report/").status_code == 405
    response = loaded.delete(f"/get_report/{'a' * 32}/")
    assert response.status_code == 405 and "not allowed" in response.json()["error"]


def test_broker_down_gives_503_and_no_report_left_running(
    loaded: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.generate_report_task, "apply_async", refused)
    response = trigger(loaded)
    assert response.status_code == 503 and "broker" in response.json()["error"]
    docs = list(mdb[storage.REPORTS].find())
    assert [d["status"] for d in docs] == ["Failed"]


def test_mongodb_down_gives_503(loaded: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    monkeypatch.setattr(storage, "get_db", down)
    for response in (trigger(loaded), loaded.get(f"/get_report/{'a' * 32}/")):
        assert response.status_code == 503
        assert response.json() == {"error": "The database is unavailable; try again later."}


def test_health(loaded: APIClient, settings) -> None:
    ok = loaded.get("/health/")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "mongo": "ok", "broker": "embedded", "accounts": "ok"}
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    down = loaded.get("/health/")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable" and down.json()["broker"].startswith("error")


def test_openapi_schema_and_swagger_ui(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/trigger_report/",
        "/get_report/",
        "/get_report/{report_id}/",
        "/get_report/{report_id}/csv/",
        "/health/",
    ):
        assert path in paths, path
    assert "202" in paths["/trigger_report/"]["post"]["responses"]
    assert api.get("/api/docs/").status_code == 200


def test_stale_running_report_reads_as_failed(loaded: APIClient, mdb: Database, settings) -> None:
    settings.REPORT_STALE_SECONDS = 60
    storage.create_report(mdb, "S" * 32, pd.Timestamp("2024-10-07", tz="UTC"))
    mdb[storage.REPORTS].update_one(
        {"report_id": "S" * 32}, {"$set": {"created_at": utcnow() - pd.Timedelta(minutes=2)}}
    )
    body = loaded.get(f"/get_report/{'S' * 32}/").json()
    assert body["status"] == "Failed" and body["error"].startswith("stale")
