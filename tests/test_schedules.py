"""Scheduled reports in one process (mongomock, the embedded worker, a loopback webhook receiver): the API,
the tick's claims (two beats, retries, missed slots), how `now` is chosen, the delivery to each kind of
channel, and the signed download link."""

from __future__ import annotations

import datetime as dt
import gzip
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from pymongo.database import Database
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from loop import metrics, storage
from loop.embedded_worker import wait_embedded_idle
from loop.services import report_links, schedules
from loop.storage.schema import SCHEDULE_RUNS
from tests.support.api import FULL, READ, VALID_ID, assert_json_error
from tests.support.receiver import receiver
from tests.support.worked_example import load_example


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.fixture
def sched_api(
    api: APIClient, mdb: Database, settings: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> APIClient:
    monkeypatch.setattr(schedules, "FIRST_CHECK_SECONDS", 0.05)  # the follow-up looks at once
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on 127.0.0.1
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PUBLIC_BASE_URL = "http://testserver"
    load_example(mdb, tmp_path)  # polls of 2024-09-20 .. 2024-10-08
    return api


def channel(api: APIClient, **body: Any) -> dict[str, Any]:
    response = api.post("/channels/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def email_channel(api: APIClient) -> str:
    return str(channel(api, name="ops mail", kind="email", email="ops@example.com")["channel_id"])


def create(api: APIClient, **body: Any) -> dict[str, Any]:
    response = api.post("/schedules/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def backdate(mdb: Database, schedule_id: str, since: dt.datetime) -> None:
    """As if the schedule had existed since ``since`` (the tests' slots lie in the sample data's past)."""
    storage.update_schedule(mdb, schedule_id, {"since": since.replace(tzinfo=None)})


def runs(mdb: Database) -> list[dict[str, Any]]:
    return list(mdb[SCHEDULE_RUNS].find({}, {"_id": 0}).sort("slot_us", 1))


def tick(at: dt.datetime) -> int:
    started = schedules.run_due_schedules(now=at)
    assert wait_embedded_idle(timeout=60)
    # The follow-up looks after 2 s: finish now instead of waiting for it.
    for run in runs(storage.get_db()):
        schedules.finish_run(run_id=run["run_id"], requeue=False)
    return started


# --- the API ------------------------------------------------------------------------------------------


def test_create_list_change_pause_and_delete(sched_api: APIClient) -> None:
    ch = email_channel(sched_api)
    body = {"name": "Monday NY", "cron": "0 9 * * MON", "timezone": "America/New_York", "channels": [ch]}
    created = create(sched_api, **body)
    assert created["format"] == "loop" and created["enabled"] is True and created["last_run"] is None
    assert created["region"] is None and created["skip_empty"] is False
    # The next Monday 09:00 in New York, whatever today is: a Monday, 13:00 or 14:00 UTC.
    nxt = dt.datetime.fromisoformat(created["next_run_at"].replace("Z", "+00:00"))
    assert nxt.weekday() == 0 and (nxt.hour, nxt.minute) in ((13, 0), (14, 0)) and nxt > dt.datetime.now(dt.UTC)
    sid = created["schedule_id"]
    listed = sched_api.get("/schedules/").json()
    assert listed["count"] == 1 and listed["results"][0]["schedule_id"] == sid
    changed = sched_api.patch(f"/schedules/{sid}/", {"cron": "@daily", "region": "West"}, format="json")
    assert changed.status_code == 200 and changed.json()["cron"] == "@daily" and changed.json()["region"] == "West"
    paused = sched_api.patch(f"/schedules/{sid}/", {"enabled": False}, format="json").json()
    assert paused["enabled"] is False and paused["next_run_at"] is None
    assert sched_api.get(f"/schedules/{sid}/").json()["enabled"] is False
    assert sched_api.delete(f"/schedules/{sid}/").status_code == 204
    assert_json_error(sched_api.get(f"/schedules/{sid}/"), 404)
    assert_json_error(sched_api.delete(f"/schedules/{sid}/"), 404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "0 9 * *"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"channels": [VALID_ID]}, "channels"),
        ({"channels": []}, "channels"),
        ({"channels": ["not an id"]}, "channels"),
        ({"format": "pdf"}, "format"),
        ({"name": ""}, "name"),
        ({"region": ""}, "region"),
        ({"every": "minute"}, "every"),
    ],
)
def test_bad_fields_are_400_naming_the_field(sched_api: APIClient, change: dict[str, Any], field: str) -> None:
    body = {"name": "n", "cron": "0 9 * * *", "timezone": "UTC", "channels": [email_channel(sched_api)], **change}
    error = assert_json_error(sched_api.post("/schedules/", body, format="json"), 400)["error"]
    assert error.startswith(f"{field}:") or error == f"unexpected field(s): {field}", error
    assert sched_api.get("/schedules/").json()["count"] == 0


def test_the_number_of_schedules_is_limited(sched_api: APIClient, settings: Any) -> None:
    settings.SCHEDULES_MAX = 2
    body = {"name": "n", "cron": "0 9 * * *", "timezone": "UTC", "channels": [email_channel(sched_api)]}
    create(sched_api, **body)
    create(sched_api, **body)
    assert "SCHEDULES_MAX" in assert_json_error(sched_api.post("/schedules/", body, format="json"), 409)["error"]


def test_reading_needs_read_and_writing_needs_operate(sched_api: APIClient, tokens: None) -> None:
    full = {"HTTP_AUTHORIZATION": f"Bearer {FULL}"}
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    made = sched_api.post("/channels/", {"name": "m", "kind": "email", "email": "a@example.com"}, format="json", **full)
    ch = made.json()["channel_id"]
    body = {"name": "n", "cron": "0 9 * * *", "timezone": "UTC", "channels": [ch]}
    assert_json_error(sched_api.post("/schedules/", body, format="json", **read), 403)
    assert_json_error(sched_api.post("/schedules/", body, format="json"), 401)
    sid = sched_api.post("/schedules/", body, format="json", **full).json()["schedule_id"]
    assert sched_api.get("/schedules/", **read).status_code == 200
    assert sched_api.get(f"/schedules/{sid}/", **read).status_code == 200
    assert_json_error(sched_api.patch(f"/schedules/{sid}/", {"name": "x"}, format="json", **read), 403)
    assert_json_error(sched_api.post(f"/schedules/{sid}/run/", **read), 403)
    assert_json_error(sched_api.delete(f"/schedules/{sid}/", **read), 403)


def test_every_write_is_audited(sched_api: APIClient) -> None:
    from loop.audit.models import AuditEntry

    sid = create(sched_api, name="n", cron="0 9 * * *", timezone="UTC", channels=[email_channel(sched_api)])[
        "schedule_id"
    ]
    sched_api.patch(f"/schedules/{sid}/", {"enabled": False}, format="json")
    assert sched_api.post(f"/schedules/{sid}/run/").status_code == 202
    sched_api.delete(f"/schedules/{sid}/")
    assert wait_embedded_idle(timeout=60)
    actions = list(AuditEntry.objects.filter(target=sid).order_by("id").values_list("action", flat=True))
    assert actions == ["schedule.create", "schedule.update", "schedule.run", "schedule.delete"]


# --- runs: claims, missed slots, now ---------------------------------------------------------------------


def test_two_beats_ticking_the_same_slot_make_one_run_one_report_one_delivery(
    sched_api: APIClient, mdb: Database
) -> None:
    ch = email_channel(sched_api)
    sid = create(sched_api, name="hourly", cron="0 * * * *", timezone="UTC", channels=[ch])["schedule_id"]
    backdate(mdb, sid, utc(2024, 10, 7))
    at = utc(2024, 10, 7, 18, 0, 20)
    assert schedules.run_due_schedules(now=at) == 1
    assert schedules.run_due_schedules(now=at) == 0  # a second beat's tick of the same slot
    assert schedules.run_due_schedules(now=at + dt.timedelta(seconds=15)) == 0
    assert wait_embedded_idle(timeout=60)
    (run,) = runs(mdb)
    assert run["run_id"] == f"{sid}:{int(utc(2024, 10, 7, 18).timestamp() * 1_000_000)}"
    # Finished by the follow-up and again by a retried task: one delivery.
    for _ in range(3):
        schedules.finish_run(run_id=run["run_id"], requeue=False)
    assert wait_embedded_idle(timeout=60)
    assert len(storage.list_reports(mdb, status=None, skip=0, limit=50)[1]) == 1
    listed = sched_api.get("/deliveries/").json()
    assert listed["count"] == 1 and listed["results"][0]["event_type"] == "report.completed"
    assert listed["results"][0]["status"] == "delivered"
    assert len(mail.outbox) == 1


def test_a_restarted_run_reuses_its_report_and_its_deliveries(sched_api: APIClient, mdb: Database) -> None:
    ch = email_channel(sched_api)
    sid = create(sched_api, name="h", cron="0 * * * *", timezone="UTC", channels=[ch])["schedule_id"]
    doc = storage.get_schedule(mdb, sid)
    assert doc is not None
    slot = utc(2024, 10, 7, 18)
    run_id = f"{sid}:{int(slot.timestamp() * 1_000_000)}"
    first, created = schedules._start(mdb, doc, slot, kind="cron", run_id=run_id)
    assert created
    assert wait_embedded_idle(timeout=60)
    # A claimant that died after creating the report: its run reads "claimed" again, long ago.
    storage.update_run(mdb, run_id, {"state": "claimed", "claimed_at": dt.datetime(2024, 1, 1)})
    again, created = schedules._start(mdb, doc, slot, kind="cron", run_id=run_id)
    assert not created and again["report_id"] == first["report_id"]
    assert wait_embedded_idle(timeout=60)
    schedules.finish_run(run_id=run_id, requeue=False)
    schedules.finish_run(run_id=run_id, requeue=False)
    assert len(storage.list_reports(mdb, status=None, skip=0, limit=50)[1]) == 1
    assert sched_api.get("/deliveries/").json()["count"] == 1


def test_slots_missed_while_down_run_once_the_newest_and_none_before_creation(
    sched_api: APIClient, mdb: Database
) -> None:
    ch = email_channel(sched_api)
    sid = create(sched_api, name="h", cron="0 * * * *", timezone="UTC", channels=[ch])["schedule_id"]
    backdate(mdb, sid, utc(2024, 10, 7, 9, 30))
    # Everything was down from before 10:00 until 15:10: slots 10:00 .. 15:00 were missed; 15:00 runs, once.
    missed = metrics.SCHEDULE_RUNS_MISSED._value.get()
    assert tick(utc(2024, 10, 7, 15, 10)) == 1
    assert metrics.SCHEDULE_RUNS_MISSED._value.get() == missed + 1  # 15:00 started ten minutes late
    assert tick(utc(2024, 10, 7, 15, 40)) == 0
    assert tick(utc(2024, 10, 7, 16, 0, 5)) == 1
    assert metrics.SCHEDULE_RUNS_MISSED._value.get() == missed + 1  # 16:00 on time
    assert [r["slot_us"] for r in runs(mdb)] == [int(utc(2024, 10, 7, h).timestamp() * 1_000_000) for h in (15, 16)]
    # Paused and resumed: the slots in between never run; the next due one does.
    sched_api.patch(f"/schedules/{sid}/", {"enabled": False}, format="json")
    assert tick(utc(2024, 10, 7, 17, 0, 5)) == 0
    storage.update_schedule(mdb, sid, {"enabled": True, "since": dt.datetime(2024, 10, 7, 17, 30)})
    assert tick(utc(2024, 10, 7, 17, 50)) == 0  # 17:00 came before the resume
    assert tick(utc(2024, 10, 7, 18, 0, 1)) == 1
    assert sched_api.get("/deliveries/").json()["count"] == 3


def test_now_is_the_newest_poll_at_or_before_the_slot_and_old_data_is_noted(
    sched_api: APIClient, mdb: Database
) -> None:
    with receiver([200]) as hook:
        hooked = channel(sched_api, name="hook", kind="webhook", url=hook.url)
        sid = create(sched_api, name="six", cron="0 18 * * *", timezone="UTC", channels=[hooked["channel_id"]])[
            "schedule_id"
        ]
        backdate(mdb, sid, utc(2024, 10, 1))
        tick(utc(2024, 10, 7, 18, 0, 30))
        assert wait_embedded_idle(timeout=60)
        (got,) = hook.received
    body: Any = Webhook(hooked["secret"]).verify(got.body, got.headers)
    data = body["data"]
    assert body["type"] == "report.completed"
    # Polls at 15:14 and 16:15 that day (and 2024-10-08 12:00, after the slot): now = 16:15, 1 h 45 min before.
    assert data["now"] == "2024-10-07T16:15:00Z" and data["slot"] == "2024-10-07T18:00:00Z"
    assert data["slot_local"] == "2024-10-07T18:00:00+00:00"
    assert data["data_note"] == "data ends 2 h before this report's time"
    assert data["rows"] == 2 and data["schedule_id"] == sid and data["schedule_name"] == "six"
    # Worst first by week uptime %: "old" (no business time in its week: last), "mon".
    assert [row["store_id"] for row in data["worst"]] == ["mon", "old"]
    # The last hour 10:15-11:15 Chicago: up 10:15-10:44:30, down after (midpoint of the polls).
    csv_text = sched_api.get(f"/get_report/{data['report_id']}/csv/").content.decode()
    assert "\nmon,29.50," in csv_text
    assert sched_api.get(f"/get_report/{data['report_id']}/").json()["now"].startswith("2024-10-07T16:15:00")


def test_a_slot_before_any_poll_delivers_report_failed(sched_api: APIClient, mdb: Database) -> None:
    ch = email_channel(sched_api)
    sid = create(sched_api, name="early", cron="0 0 * * *", timezone="UTC", channels=[ch])["schedule_id"]
    backdate(mdb, sid, utc(2024, 1, 1))
    tick(utc(2024, 1, 2, 0, 0, 10))
    (delivery,) = sched_api.get("/deliveries/").json()["results"]
    assert delivery["event_type"] == "report.failed"
    assert "no stored poll at or before 2024-01-02T00:00:00Z" in delivery["event"]["data"]["error"]
    assert mail.outbox[0].subject.startswith('[store monitoring] Scheduled report "early" failed')


def test_run_now_makes_one_run_per_minute(sched_api: APIClient) -> None:
    ch = email_channel(sched_api)
    sid = create(sched_api, name="n", cron="0 9 * * *", timezone="UTC", channels=[ch], enabled=False)["schedule_id"]
    first = sched_api.post(f"/schedules/{sid}/run/")
    second = sched_api.post(f"/schedules/{sid}/run/")
    assert first.status_code == 202, first.content
    if second.status_code == 200:  # the same minute (almost always): the same run
        assert second.json()["run_id"] == first.json()["run_id"]
    run = first.json()
    assert run["kind"] == "manual" and run["state"] == "running" and run["report_id"]
    # Data of 2024 for a run now: the report says how old its data is.
    assert run["now"] == "2024-10-08T12:00:00Z" and run["data_note"].endswith("days before this report's time")
    assert_json_error(sched_api.post(f"/schedules/{VALID_ID}/run/"), 404)
    deadline = time.monotonic() + 30
    while sched_api.get("/deliveries/").json()["count"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sched_api.get("/deliveries/").json()["results"][0]["event_type"] == "report.completed"


def test_deliveries_of_one_schedule(sched_api: APIClient) -> None:
    """GET /deliveries/?schedule=: only that schedule's runs' deliveries (the dashboard's Schedules page)."""
    ch = email_channel(sched_api)
    one = create(sched_api, name="one", cron="0 9 * * *", timezone="UTC", channels=[ch])["schedule_id"]
    two = create(sched_api, name="two", cron="0 9 * * *", timezone="UTC", channels=[ch])["schedule_id"]
    assert sched_api.post(f"/schedules/{one}/run/").status_code == 202
    deadline = time.monotonic() + 30
    while sched_api.get(f"/deliveries/?schedule={one}").json()["count"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = sched_api.get(f"/deliveries/?schedule={one}").json()
    assert mine["count"] == 1
    assert mine["results"][0]["event"]["data"]["schedule_id"] == one
    sched_api.post(f"/channels/{ch}/test/")  # a delivery of no schedule
    assert sched_api.get("/deliveries/").json()["count"] == 2
    assert sched_api.get(f"/deliveries/?schedule={one}").json()["count"] == 1
    assert sched_api.get(f"/deliveries/?schedule={two}").json()["count"] == 0
    assert sched_api.get("/deliveries/?schedule=not-an-id").json()["count"] == 0
    assert sched_api.get(f"/deliveries/?schedule={one}&channel={ch}").json()["count"] == 1


# --- what each channel gets ------------------------------------------------------------------------------


def test_email_attaches_the_csv_gzipped_over_the_limit_and_slack_gets_the_link(
    sched_api: APIClient, mdb: Database, settings: Any
) -> None:
    with receiver([200]) as slack:
        sl = channel(sched_api, name="slack", kind="slack", url=slack.url)["channel_id"]
        em = email_channel(sched_api)
        sid = create(sched_api, name="both", cron="0 18 * * *", timezone="UTC", channels=[sl, em])["schedule_id"]
        backdate(mdb, sid, utc(2024, 10, 1))
        tick(utc(2024, 10, 7, 18, 0, 30))
        assert wait_embedded_idle(timeout=60)
        (posted,) = slack.received
    text = __import__("json").loads(posted.body)["text"]
    assert text.startswith(
        'Scheduled report "both" of 2024-10-07T18:00:00+00:00: 2 store(s), data up to 2024-10-07T16:15:00Z'
    )
    assert "- mon: " in text and "/download/?expires=" in text
    (message,) = mail.outbox
    ((name, content, mimetype),) = message.attachments
    assert name.endswith(".csv") and mimetype == "text/csv" and content.startswith("store_id,")
    # Over REPORT_EMAIL_GZIP_BYTES the CSV goes gzipped; over the attachment limit, only the link.
    from loop.services.report_links import report_attachment

    report_id = runs(mdb)[0]["report_id"]
    settings.REPORT_EMAIL_GZIP_BYTES = 10
    packed = report_attachment(report_id=report_id, region=None, brand=None)
    assert packed is not None and packed.filename.endswith(".csv.gz") and packed.mimetype == "application/gzip"
    assert gzip.decompress(packed.content).decode() == content
    settings.REPORT_EMAIL_MAX_ATTACHMENT_BYTES = 10
    assert report_attachment(report_id=report_id, region=None, brand=None) is None


def test_skip_empty_sends_nothing_for_a_report_without_stores(sched_api: APIClient, mdb: Database) -> None:
    ch = email_channel(sched_api)
    body = {"name": "w", "cron": "0 18 * * *", "timezone": "UTC", "channels": [ch], "region": "Nowhere"}
    sid = create(sched_api, **body, skip_empty=True)["schedule_id"]
    backdate(mdb, sid, utc(2024, 10, 1))
    tick(utc(2024, 10, 7, 18, 0, 30))
    (run,) = runs(mdb)
    assert run["state"] == "skipped" and sched_api.get("/deliveries/").json()["count"] == 0


# --- the signed download link ----------------------------------------------------------------------------


def test_the_download_link_works_signed_and_fails_tampered_or_expired(
    sched_api: APIClient, mdb: Database, settings: Any
) -> None:
    ch = email_channel(sched_api)
    sid = create(sched_api, name="d", cron="0 18 * * *", timezone="UTC", channels=[ch])["schedule_id"]
    backdate(mdb, sid, utc(2024, 10, 1))
    tick(utc(2024, 10, 7, 18, 0, 30))
    (delivery,) = sched_api.get("/deliveries/").json()["results"]
    url = delivery["event"]["data"]["download_url"]
    report_id = delivery["event"]["data"]["report_id"]
    parts = urlsplit(url)
    assert url.startswith(f"http://testserver/reports/{report_id}/download/?expires=")
    path = f"{parts.path}?{parts.query}"
    settings.AUTH_REQUIRED, settings.API_TOKEN = True, FULL  # from here on, every other route needs a token
    sched_api.credentials(HTTP_AUTHORIZATION=f"Bearer {FULL}")
    anonymous = APIClient()
    got = anonymous.get(path)
    assert got.status_code == 200 and got["Content-Type"].startswith("text/csv")
    assert got.content.decode() == sched_api.get(f"/get_report/{report_id}/csv/").content.decode()
    query = parse_qs(parts.query)
    sig, expires = query["sig"][0], int(query["expires"][0])
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    other = create(sched_api, name="o", cron="0 1 * * *", timezone="UTC", channels=[ch])["schedule_id"]
    for tampered in (
        f"{parts.path}?expires={expires}&sig={flipped}",
        f"{parts.path}?expires={expires + 3600}&sig={sig}",  # a longer life
        f"{parts.path}?expires={expires}&sig={sig}&region=West",  # another cut
        f"{parts.path}?expires={expires}",
        f"/reports/{VALID_ID}/download/?expires={expires}&sig={sig}",  # another report
        f"/schedules/{other}/?expires={expires}&sig={sig}",  # nothing else opens with it
    ):
        answer = anonymous.get(tampered)
        assert answer.status_code in (401, 404), (tampered, answer.status_code)
    past = report_links.download_path(report_id=report_id, expires=int(time.time()) - 1)
    assert "expired" in assert_json_error(anonymous.get(past), 410)["error"]
    # With filters: the cut is signed too, and only those stores come.
    storage.set_store_profile(mdb, "mon", name="Monday store", brand=None, region="West")
    west = report_links.download_path(report_id=report_id, expires=int(time.time()) + 60, region="West")
    rows = anonymous.get(west).content.decode().splitlines()
    assert rows[0].startswith("store_id,") and [row.split(",")[0] for row in rows[1:]] == ["mon"]


def test_newest_poll_at_or_before_walks_back_over_days_without_polls(mdb: Database, tmp_path: Any) -> None:
    import pandas as pd

    load_example(mdb, tmp_path)  # polls: 2024-09-20 12:00, 2024-10-07 15:14 and 16:15, 2024-10-08 12:00

    def newest(text: str) -> Any:
        return storage.newest_poll_at_or_before(mdb, pd.Timestamp(text, tz="UTC"))

    assert newest("2030-01-01") == pd.Timestamp("2024-10-08 12:00", tz="UTC")  # after the newest: one read
    assert newest("2024-10-08 12:00") == pd.Timestamp("2024-10-08 12:00", tz="UTC")  # at: included
    assert newest("2024-10-08 11:59") == pd.Timestamp("2024-10-07 16:15", tz="UTC")
    assert newest("2024-10-07 16:14:59") == pd.Timestamp("2024-10-07 15:14", tz="UTC")
    assert newest("2024-10-05") == pd.Timestamp("2024-09-20 12:00", tz="UTC")  # 15 days without polls between
    assert newest("2024-09-20 11:59") is None


def test_a_channel_deleted_since_gets_nothing_and_the_others_still_do(sched_api: APIClient, mdb: Database) -> None:
    kept, gone = email_channel(sched_api), email_channel(sched_api)
    sid = create(sched_api, name="two", cron="0 18 * * *", timezone="UTC", channels=[kept, gone])["schedule_id"]
    backdate(mdb, sid, utc(2024, 10, 1))
    assert sched_api.delete(f"/channels/{gone}/").status_code == 204
    tick(utc(2024, 10, 7, 18, 0, 30))
    (run,) = runs(mdb)
    (delivery,) = sched_api.get("/deliveries/").json()["results"]
    assert delivery["channel_id"] == kept and run["delivery_ids"] == [delivery["delivery_id"]]


def test_run_now_with_the_broker_down_is_503_and_the_failure_is_delivered(
    sched_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loop import queue

    ch = email_channel(sched_api)
    sid = create(sched_api, name="n", cron="0 9 * * *", timezone="UTC", channels=[ch])["schedule_id"]

    def broker_down(report_id: str) -> None:
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(queue, "enqueue_report", broker_down)
    assert "broker" in assert_json_error(sched_api.post(f"/schedules/{sid}/run/"), 503)["error"]
    assert wait_embedded_idle(timeout=60)
    (delivery,) = sched_api.get("/deliveries/").json()["results"]
    assert delivery["event_type"] == "report.failed" and "broker is unavailable" in delivery["event"]["data"]["error"]
    assert delivery["status"] == "delivered"


def test_a_schedule_runs_the_slot_of_the_minute_it_was_created_in(sched_api: APIClient, mdb: Database) -> None:
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    create(sched_api, name="m", cron="* * * * *", timezone="UTC", channels=[email_channel(sched_api)])
    assert schedules.run_due_schedules() == 1
    assert schedules.run_due_schedules() == 0
    assert wait_embedded_idle(timeout=60)
    (run,) = runs(mdb)
    assert run["slot_us"] >= int(minute.timestamp() * 1_000_000)  # this minute's slot (the next, at a boundary)


def test_a_run_now_whose_follow_up_was_lost_is_finished_by_the_next_tick(
    sched_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loop import queue

    def broker_refuses(run_id: str, check: int, countdown: float) -> None:
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(queue, "enqueue_run_finish", broker_refuses)
    ch = email_channel(sched_api)
    sid = create(sched_api, name="n", cron="0 9 * * *", timezone="UTC", channels=[ch], enabled=False)["schedule_id"]
    run = sched_api.post(f"/schedules/{sid}/run/").json()
    assert wait_embedded_idle(timeout=60)
    assert sched_api.get("/deliveries/").json()["count"] == 0  # its report is done, nobody delivered it
    schedules.run_due_schedules()  # the tick (the schedule is paused: only the run-now is looked at)
    (delivery,) = sched_api.get("/deliveries/").json()["results"]
    assert delivery["event"]["data"]["run_id"] == run["run_id"]
    schedules.run_due_schedules()
    assert sched_api.get("/deliveries/").json()["count"] == 1
