"""Issue 9, report history: GET /reports/, phases of a Running report, DELETE /reports/<id>/ (mongomock)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.services import reports
from loop.timeutil import utcnow
from tests.support.api import FULL, READ, VALID_ID, assert_json_error, trigger, wait_done
from tests.support.worked_example import EXAMPLE_NOW

T0 = pd.Timestamp("2026-01-01 12:00:00")  # naive UTC, as BSON dates come back


def make_report(db: Database, letter: str, *, minutes: int, status: str = "Running") -> str:
    """A report with id letter*32 created ``minutes`` after T0, moved to ``status`` through storage."""
    report_id = letter * 32
    storage.create_report(db, report_id, EXAMPLE_NOW)
    db[storage.REPORTS].update_one(
        {"_id": report_id}, {"$set": {"created_at": (T0 + pd.Timedelta(minutes=minutes)).to_pydatetime()}}
    )
    if status == "Complete":
        storage.complete_report(db, report_id, "h\nrow\n", rows=1, polls_counted=2, warnings=[], timings={})
    elif status == "Failed":
        storage.fail_report(db, report_id, "boom")
    return report_id


@pytest.fixture
def history(mdb: Database, api: APIClient, settings) -> APIClient:
    """Five reports created a minute apart: A (oldest) .. E (newest); B and D Failed, A and C Complete, E Running."""
    settings.REPORT_STALE_SECONDS = 10**9  # T0 lies in the past: keep E Running
    for minutes, (letter, status) in enumerate(
        [("A", "Complete"), ("B", "Failed"), ("C", "Complete"), ("D", "Failed"), ("E", "Running")]
    ):
        make_report(mdb, letter, minutes=minutes, status=status)
    return api


def ids(body: dict[str, Any]) -> str:
    return "".join(item["report_id"][0] for item in body["results"])


def test_list_is_newest_first_and_paged(history: APIClient) -> None:
    first = history.get("/reports/?page_size=2")
    assert first.status_code == 200
    body = first.json()
    assert (body["count"], body["page"], body["page_size"]) == (5, 1, 2)
    assert ids(body) == "ED"
    assert ids(history.get("/reports/?page_size=2&page=2").json()) == "CB"
    assert ids(history.get("/reports/?page_size=2&page=3").json()) == "A"
    past_the_end = history.get("/reports/?page_size=2&page=4").json()
    assert past_the_end["results"] == [] and past_the_end["count"] == 5
    assert history.get("/reports").json()["page_size"] == 20


def test_list_items_carry_only_what_applies_to_their_status(history: APIClient) -> None:
    by_letter = {item["report_id"][0]: item for item in history.get("/reports/").json()["results"]}
    assert by_letter["E"] == {
        "report_id": "E" * 32,
        "status": "Running",
        "now": "2024-10-07T18:00:00Z",
        "created_at": "2026-01-01T12:04:00Z",
        "phase": "queued",
        "progress": 0,
        "format": "loop",  # stored before formats existed: a Loop report
    }
    assert by_letter["A"]["rows"] == 1 and "phase" not in by_letter["A"] and "progress" not in by_letter["A"]
    assert by_letter["A"]["finished_at"] >= by_letter["A"]["created_at"]
    assert "rows" not in by_letter["B"] and by_letter["B"]["status"] == "Failed"
    assert "csv_data" not in by_letter["A"] and "error" not in by_letter["B"]


def test_list_does_not_read_the_csvs(history: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the list read a CSV")

    monkeypatch.setattr(storage, "read_report_csv", refuse)
    monkeypatch.setattr(storage.reports, "read_text_file", refuse)
    assert history.get("/reports/").status_code == 200


@pytest.mark.parametrize(("status", "expected"), [("Complete", "CA"), ("Failed", "DB"), ("Running", "E")])
def test_status_filter(history: APIClient, status: str, expected: str) -> None:
    body = history.get(f"/reports/?status={status}").json()
    assert ids(body) == expected
    assert body["count"] == len(expected)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("status=Done", "status"),
        ("status=running", "status"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("pagesize=5", "unexpected"),
    ],
)
def test_bad_list_parameters_are_400_json(history: APIClient, query: str, fragment: str) -> None:
    error = assert_json_error(history.get(f"/reports/?{query}"), 400)["error"]
    assert fragment in error


def test_stale_running_reports_in_the_list_read_failed(mdb: Database, api: APIClient, settings) -> None:
    settings.REPORT_STALE_SECONDS = 60
    make_report(mdb, "S", minutes=0)  # created in 2026-01-01: long stale
    storage.create_report(mdb, "F" * 32, EXAMPLE_NOW)  # fresh: stays Running
    items = {item["report_id"][0]: item for item in api.get("/reports/").json()["results"]}
    assert items["S"]["status"] == "Failed" and "phase" not in items["S"]
    assert items["F"]["status"] == "Running"
    assert storage.get_report(mdb, "S" * 32)["error"].startswith("stale")


def test_running_report_shows_its_phase_then_ends_complete(loaded: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = reports.generate_report
    seen: list[str] = []

    def held(**kwargs: Any):
        assert gate.wait(10)
        return real(**kwargs)

    def spy_phase(db: Database, report_id: str, phase: storage.ReportPhase) -> bool:
        seen.append(phase.value)
        return real_set(db, report_id, phase)

    real_set = storage.set_report_phase
    monkeypatch.setattr(reports, "generate_report", held)
    monkeypatch.setattr(storage, "set_report_phase", spy_phase)
    report_id = trigger(loaded, {"now": EXAMPLE_NOW.isoformat()}).json()["report_id"]
    try:
        for _ in range(200):
            item = loaded.get("/reports/").json()["results"][0]
            if item.get("phase") != "queued":
                break
            threading.Event().wait(0.02)
        assert item["report_id"] == report_id
        assert (item["status"], item["phase"], item["progress"]) == ("Running", "reading", 10)
    finally:
        gate.set()
    assert wait_done(loaded, report_id)["status"] == "Complete"
    assert seen == ["reading", "computing", "storing"]
    done = loaded.get("/reports/").json()["results"][0]
    assert done["status"] == "Complete" and "phase" not in done and "progress" not in done


def test_a_phase_never_moves_a_finished_report(mdb: Database) -> None:
    report_id = make_report(mdb, "A", minutes=0, status="Failed")
    assert storage.set_report_phase(mdb, report_id, storage.ReportPhase.STORING) is False
    doc = storage.get_report(mdb, report_id)
    assert (doc["status"], doc["phase"], doc["progress"]) == ("Failed", "queued", 0)


def test_delete_a_finished_report_removes_it_and_its_csv(loaded: APIClient, mdb: Database) -> None:
    report_id = trigger(loaded, {"now": EXAMPLE_NOW.isoformat()}).json()["report_id"]
    assert wait_done(loaded, report_id)["status"] == "Complete"
    file_id = storage.get_report(mdb, report_id)["file_id"]
    assert mdb[storage.schema.REPORT_FILES].count_documents({"_id": file_id}) == 1
    assert mdb[storage.schema.REPORT_CHUNKS].count_documents({"files_id": file_id}) >= 1

    response = loaded.delete(f"/reports/{report_id}/")
    assert response.status_code == 204 and response.content == b""
    assert mdb[storage.schema.REPORT_FILES].count_documents({}) == 0
    assert mdb[storage.schema.REPORT_CHUNKS].count_documents({}) == 0
    assert_json_error(loaded.get(f"/get_report/{report_id}/"), 404)
    assert loaded.get("/reports/").json()["count"] == 0
    assert_json_error(loaded.delete(f"/reports/{report_id}/"), 404)


def test_delete_a_failed_report(mdb: Database, api: APIClient) -> None:
    report_id = make_report(mdb, "B", minutes=0, status="Failed")
    assert api.delete(f"/reports/{report_id}").status_code == 204
    assert storage.get_report(mdb, report_id) is None


def test_delete_while_running_is_409_and_keeps_it(mdb: Database, api: APIClient) -> None:
    storage.create_report(mdb, "R" * 32, EXAMPLE_NOW)
    assert "Running" in assert_json_error(api.delete(f"/reports/{'R' * 32}/"), 409)["error"]
    assert storage.get_report(mdb, "R" * 32)["status"] == "Running"


@pytest.mark.parametrize(("path", "status"), [(f"/reports/{VALID_ID}/", 404), ("/reports/short/", 400)])
def test_delete_unknown_or_bad_id(mdb: Database, api: APIClient, path: str, status: int) -> None:
    assert_json_error(api.delete(path), status)


def test_delete_needs_a_write_token(mdb: Database, api: APIClient, settings) -> None:
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN = FULL
    settings.API_READ_TOKEN = READ
    report_id = make_report(mdb, "C", minutes=0, status="Complete")
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    assert "may not administer" in assert_json_error(api.delete(f"/reports/{report_id}/", **read), 403)["error"]
    assert api.get("/reports/", **read).json()["count"] == 1  # the read token may list
    assert_json_error(api.delete(f"/reports/{report_id}/"), 401)
    assert storage.get_report(mdb, report_id) is not None
    assert api.delete(f"/reports/{report_id}/", HTTP_AUTHORIZATION=f"Bearer {FULL}").status_code == 204
    assert storage.get_report(mdb, report_id) is None


def test_other_methods_on_a_report_are_405(mdb: Database, api: APIClient) -> None:
    assert_json_error(api.get(f"/reports/{VALID_ID}/"), 405)
    assert_json_error(api.post("/reports/", {}, format="json"), 405)


def test_openapi_schema_has_the_history_operations(api: APIClient) -> None:
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    listing = paths["/reports/"]["get"]
    assert listing["operationId"] == "list_reports"
    assert {"200", "400"} <= set(listing["responses"])
    assert {p["name"] for p in listing["parameters"]} >= {"page", "page_size", "status"}
    deleting = paths["/reports/{report_id}/"]["delete"]
    assert deleting["operationId"] == "delete_report"
    assert {"204", "400", "403", "404", "409"} <= set(deleting["responses"])
    trigger_op = paths["/trigger_report/"]["post"]
    assert {"200", "202"} <= set(trigger_op["responses"])


def test_created_at_of_a_new_report_is_recent(mdb: Database) -> None:
    doc = storage.create_report(mdb, "N" * 32, EXAMPLE_NOW)
    assert abs((utcnow() - doc["created_at"]).total_seconds()) < 60
    assert (doc["phase"], doc["progress"]) == ("queued", 0)


# --- reuse -------------------------------------------------------------------------------

NOW_BODY = {"now": EXAMPLE_NOW.isoformat()}


def first_report(api: APIClient) -> str:
    response = trigger(api, NOW_BODY)
    assert response.status_code == 202 and response.json()["reused"] is False
    return response.json()["report_id"]


def test_same_now_and_no_writes_reuses_the_report(loaded: APIClient, mdb: Database) -> None:
    report_id = first_report(loaded)
    again = trigger(loaded, NOW_BODY)
    assert again.status_code == 200
    assert again.json() == {"report_id": report_id, "reused": True}
    assert again["Location"] == f"/get_report/{report_id}/"
    wait_done(loaded, report_id)
    assert trigger(loaded, NOW_BODY).json() == {"report_id": report_id, "reused": True}  # Complete: still reused
    assert mdb[storage.REPORTS].count_documents({}) == 1


def test_a_different_now_is_a_new_report(loaded: APIClient) -> None:
    report_id = first_report(loaded)
    other = trigger(loaded, {"now": "2024-10-07T19:00:00Z"})
    assert other.status_code == 202 and other.json()["report_id"] != report_id


def test_new_polls_make_a_new_report_but_duplicates_do_not(loaded: APIClient, mdb: Database) -> None:
    report_id = first_report(loaded)
    assert wait_done(loaded, report_id)["status"] == "Complete"  # computed before the new poll arrives
    csv = "store_id,status,timestamp_utc\nmon,active,2024-10-07 16:45:00 UTC\n"  # 11:45 in Chicago: open
    assert loaded.generic("POST", "/store_status/", csv, content_type="text/csv").status_code == 201
    fresh = trigger(loaded, NOW_BODY)
    assert fresh.status_code == 202 and fresh.json()["report_id"] != report_id
    # The same poll again stores nothing: the data version stays, the new report is reused.
    assert loaded.generic("POST", "/store_status/", csv, content_type="text/csv").status_code == 200
    assert trigger(loaded, NOW_BODY).json() == {"report_id": fresh.json()["report_id"], "reused": True}
    # The report triggered after the ingestion counts the new poll; the first one did not.
    assert wait_done(loaded, fresh.json()["report_id"])["status"] == "Complete"
    counted = [storage.get_report(mdb, rid)["polls_counted"] for rid in (report_id, fresh.json()["report_id"])]
    assert counted[1] == counted[0] + 1


def test_changed_hours_or_zone_make_a_new_report(loaded: APIClient) -> None:
    report_id = first_report(loaded)
    put = loaded.put("/stores/mon/timezone/", {"timezone_str": "America/New_York"}, format="json")
    assert put.status_code == 200
    after_zone = trigger(loaded, NOW_BODY).json()
    assert after_zone["reused"] is False and after_zone["report_id"] != report_id
    week = [{"dayOfWeek": 0, "start_time_local": "08:00:00", "end_time_local": "12:00:00"}]
    assert loaded.put("/stores/mon/business_hours/", week, format="json").status_code == 200
    after_hours = trigger(loaded, NOW_BODY).json()
    assert after_hours["reused"] is False and after_hours["report_id"] not in (report_id, after_zone["report_id"])


def test_force_always_starts_a_new_report_and_leaves_the_reused_one(loaded: APIClient) -> None:
    report_id = first_report(loaded)
    forced = trigger(loaded, {**NOW_BODY, "force": True})
    assert forced.status_code == 202 and forced.json()["reused"] is False
    assert forced.json()["report_id"] != report_id
    assert trigger(loaded, NOW_BODY).json() == {"report_id": report_id, "reused": True}
    assert_json_error(trigger(loaded, {**NOW_BODY, "force": "maybe"}), 400)


def test_a_failed_or_deleted_report_is_not_reused(loaded: APIClient, mdb: Database) -> None:
    report_id = first_report(loaded)
    wait_done(loaded, report_id)
    mdb[storage.REPORTS].update_one({"_id": report_id}, {"$set": {"status": "Failed", "error": "x"}})
    second = trigger(loaded, NOW_BODY)
    assert second.status_code == 202 and second.json()["report_id"] != report_id
    second_id = second.json()["report_id"]
    wait_done(loaded, second_id)
    assert loaded.delete(f"/reports/{second_id}/").status_code == 204
    third = trigger(loaded, NOW_BODY)
    assert third.status_code == 202 and third.json()["report_id"] not in (report_id, second_id)


def test_twenty_concurrent_triggers_cost_one_report(
    loaded: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    barrier = threading.Barrier(20)
    results: list[reports.TriggerResult] = []
    errors: list[BaseException] = []
    # The worst interleaving: all 20 have seen "no report yet" and created one before any claims it.
    all_created = threading.Barrier(20)
    real_create, discarded = storage.create_report, []
    real_discard = storage.discard_unqueued_report

    def create_then_wait(*args: Any, **kwargs: Any) -> storage.ReportDoc:
        doc = real_create(*args, **kwargs)
        all_created.wait(10)
        return doc

    def discard(db: Database, report_id: str) -> None:
        discarded.append(report_id)
        real_discard(db, report_id)

    monkeypatch.setattr(storage, "create_report", create_then_wait)
    monkeypatch.setattr(storage, "discard_unqueued_report", discard)

    def press() -> None:
        try:
            barrier.wait(10)
            results.append(reports.trigger_report(now=EXAMPLE_NOW))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=press) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 20
    assert len({r.report_id for r in results}) == 1
    assert sum(not r.reused for r in results) == 1
    assert len(discarded) == 19  # every loser created one, lost the claim and removed it
    assert mdb[storage.REPORTS].count_documents({}) == 1  # the losers' unqueued documents are gone
    assert wait_done(loaded, results[0].report_id)["status"] == "Complete"


def test_data_version_moves_only_on_writes_that_change_something(mdb: Database) -> None:
    assert storage.data_state(mdb) == (None, 0)
    storage.widen_poll_range(mdb, 5, 10)
    assert storage.data_state(mdb)[1] == 0
    storage.widen_poll_range(mdb, 1, 20, changed=True)
    assert storage.data_state(mdb) == (pd.Timestamp(20, unit="us", tz="UTC"), 1)
    storage.bump_data_version(mdb)
    assert storage.data_state(mdb)[1] == 2


def test_hours_before_any_poll_leave_no_newest_poll(mdb: Database) -> None:
    storage.set_store_zone(mdb, "s1", "America/Denver")
    assert storage.data_state(mdb) == (None, 1)
    assert storage.newest_poll_time(mdb) is None


# --- retention ---------------------------------------------------------------------------


def test_retention_removes_old_finished_reports_and_their_files_never_running_ones(mdb: Database, settings) -> None:
    settings.REPORT_RETENTION_DAYS = 30
    old_done = make_report(mdb, "A", minutes=0, status="Complete")
    old_failed = make_report(mdb, "B", minutes=0, status="Failed")
    old_running = make_report(mdb, "C", minutes=0)
    fresh_done = "D" * 32
    storage.create_report(mdb, fresh_done, EXAMPLE_NOW)
    storage.complete_report(mdb, fresh_done, "h\n", rows=0, polls_counted=0, warnings=[], timings={})
    day = dt.timedelta(days=1)
    for report_id, age in ((old_done, 31), (old_failed, 31), (old_running, 40), (fresh_done, 29)):
        mdb[storage.REPORTS].update_one({"_id": report_id}, {"$set": {"created_at": utcnow() - age * day}})
    assert reports.remove_old_reports() == 2
    left = {doc["_id"] for doc in mdb[storage.REPORTS].find({}, {"_id": 1})}
    assert left == {old_running, fresh_done}
    kept_file = storage.get_report(mdb, fresh_done)["file_id"]
    assert [doc["_id"] for doc in mdb[storage.schema.REPORT_FILES].find()] == [kept_file]
    assert {doc["files_id"] for doc in mdb[storage.schema.REPORT_CHUNKS].find()} == {kept_file}
    assert reports.remove_old_reports(retention_days=0) == 0  # 0 keeps everything
    assert mdb[storage.REPORTS].count_documents({}) == 2


def test_retention_task_is_scheduled_and_runs_the_service(mdb: Database, settings) -> None:
    from django.conf import settings as live

    from loop import tasks

    assert live.CELERY_BEAT_SCHEDULE["remove-old-reports"]["task"] == tasks.remove_old_reports_task.name
    old = make_report(mdb, "A", minutes=0, status="Complete")  # created 2026-01-01 12:00 (T0)
    settings.REPORT_RETENTION_DAYS = max(1, (utcnow() - T0.to_pydatetime()).days - 1)
    assert tasks.remove_old_reports_task() == 1
    assert storage.get_report(mdb, old) is None
