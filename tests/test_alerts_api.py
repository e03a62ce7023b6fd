"""Alerts end to end in process: POST /store_status/ batches, the evaluation after each, GET /alerts/ and the ack.

mongomock and the embedded worker; messages are caught where the evaluation hands them to delivery
(``loop.services.deliveries.publish``), which has tests of its own. Every expected time below is
worked by hand from the polls (stores without hours are open 24x7; outages start halfway between
the last active and the first inactive poll).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.embedded_worker import wait_embedded_idle
from loop.events import Event
from loop.ingest import insert_polls
from loop.services import alerts as alerts_service
from loop.services.alerts import evaluate_alerts, evaluate_alerts_paced, send_reminders
from loop.timeutil import us_to_ts
from tests.support.api import VALID_ID, assert_json_error

DAY = "2024-10-14"  # a Monday


def poll_frame(polls: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": [s for s, _, _ in polls],
            "status": [st for _, st, _ in polls],
            "timestamp_utc": pd.to_datetime([f"{DAY} {hhmm}" for _, _, hhmm in polls], utc=True).as_unit("us"),
        }
    )


def post(api: APIClient, *polls: tuple[str, str, str]) -> None:
    items = [{"store_id": s, "status": st, "timestamp_utc": f"{DAY} {hhmm}:00 UTC"} for s, st, hhmm in polls]
    response = api.post("/store_status/", items, format="json")
    assert response.status_code == 201, response.content
    assert wait_embedded_idle(timeout=30)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    events: list[Event] = []

    def publish(*, events: list[Event]) -> int:
        caught.extend(events)
        return len(events)

    caught = events
    monkeypatch.setattr("loop.services.deliveries.publish", publish)
    return events


def alerts(api: APIClient, **query: Any) -> dict[str, Any]:
    response = api.get("/alerts/", query)
    assert response.status_code == 200, response.content
    return response.json()


def test_an_alert_opens_after_d_minutes_down_and_resolves_when_up(api: APIClient, sent: list[Event]) -> None:
    post(api, ("s1", "active", "10:00"), ("s2", "active", "10:00"))
    body = alerts(api)
    assert (body["count"], body["open"], body["evaluated_at"]) == (0, 0, f"{DAY}T10:00:00Z")

    # s1 inactive since the midpoint 10:20: 20 minutes at 10:40 is pending (D = 30).
    post(api, ("s1", "inactive", "10:40"), ("s2", "active", "10:40"))
    assert alerts(api)["count"] == 0
    # 40 minutes at 11:00: down.
    post(api, ("s1", "inactive", "11:00"), ("s2", "active", "11:00"))
    body = alerts(api)
    assert (body["count"], body["open"], body["open_unacknowledged"]) == (1, 1, 1)
    alert = body["results"][0]
    assert alert["store_id"] == "s1"
    assert (alert["started_at"], alert["opened_at"]) == (f"{DAY}T10:20:00Z", f"{DAY}T11:00:00Z")
    assert (alert["resolved_at"], alert["resolution"], alert["ended_at"]) == (None, None, None)
    assert alert["down_minutes"] == 40.0
    assert [(e.type, e.data["store_id"], e.data["started_at"]) for e in sent] == [
        ("alert.opened", "s1", f"{DAY}T10:20:00Z")
    ]
    assert sent[0].data["started_at_local"] == f"{DAY}T05:20:00-05:00"  # America/Chicago (no zone row)

    post(api, ("s1", "inactive", "11:30"))
    assert alerts(api)["results"][0]["down_minutes"] == 70.0
    assert len(sent) == 1  # still down: nothing new

    # Up at 12:00: the outage ended halfway between 11:30 and 12:00.
    post(api, ("s1", "active", "12:00"), ("s2", "active", "12:00"))
    body = alerts(api, state="resolved")
    assert alerts(api)["open"] == 0
    resolved = body["results"][0]
    assert (resolved["resolved_at"], resolved["resolution"], resolved["ended_at"]) == (
        f"{DAY}T12:00:00Z",
        "up",
        f"{DAY}T11:45:00Z",
    )
    assert resolved["down_minutes"] == 85.0
    assert [e.type for e in sent] == ["alert.opened", "alert.resolved"]
    assert sent[1].data["ended_at"] == f"{DAY}T11:45:00Z"
    assert alerts(api, state="all")["count"] == 1


def test_closing_time_resolves_an_alert_at_the_end_of_business_hours(
    api: APIClient, mdb: Database, sent: list[Event]
) -> None:
    storage.replace_zones(mdb, pd.DataFrame({"store_id": ["h", "x"], "timezone_str": ["UTC", "UTC"]}))
    hours = pd.DataFrame(
        {"store_id": ["h"], "day_of_week": [0], "start_seconds": [9 * 3600], "end_seconds": [12 * 3600]}
    )
    storage.replace_hours(mdb, hours)
    # Outage from the midpoint of 09:05 and 10:00 (09:32:30); 77.5 minutes at 10:50: down.
    post(api, ("h", "active", "09:05"), ("h", "inactive", "10:00"), ("h", "inactive", "10:50"))
    assert alerts(api)["results"][0]["started_at"] == f"{DAY}T09:32:30Z"
    # Another store's poll moves the data clock past h's closing time (12:00): resolved "closed" at 12:10,
    # its outage ended when business hours did.
    post(api, ("x", "active", "12:10"))
    resolved = alerts(api, state="resolved")["results"][0]
    assert (resolved["resolution"], resolved["resolved_at"], resolved["ended_at"]) == (
        "closed",
        f"{DAY}T12:10:00Z",
        f"{DAY}T12:00:00Z",
    )
    assert resolved["down_minutes"] == 147.5


def test_no_second_open_alert_for_a_store_whose_claim_is_held(api: APIClient, mdb: Database, sent: list[Event]) -> None:
    # Another evaluation opened s1's alert and died before writing the open-alerts document.
    started_us = int(pd.Timestamp(f"{DAY} 09:00", tz="UTC").value // 1000)
    other = {"alert_id": VALID_ID, "store_id": "s1", "zone": "UTC", "muted": False, "resolution": None}
    other |= {
        "started_us": started_us,
        "opened_us": started_us + 30 * 60_000_000,
        "resolved_us": None,
        "ended_us": None,
    }
    other |= {"ack_by": "", "ack_us": 0}
    storage.record_opened(mdb, [other], day=DAY)
    assert storage.claim_open_alerts(mdb, [("s1", VALID_ID)]) == {"s1"}
    post(api, ("s1", "active", "10:00"), ("s1", "inactive", "10:40"), ("s1", "inactive", "11:00"))
    body = alerts(api, state="all")
    assert [a["alert_id"] for a in body["results"]] == [VALID_ID]
    assert body["open"] == 1
    # And it resolves like any other.
    post(api, ("s1", "active", "11:20"))
    assert alerts(api)["open"] == 0
    assert alerts(api, state="resolved")["results"][0]["alert_id"] == VALID_ID


def test_more_changes_than_the_threshold_make_one_grouped_message(api: APIClient, settings, sent: list[Event]) -> None:
    settings.ALERT_GROUP_THRESHOLD = 2
    post(api, *[(f"g{k}", "active", "10:00") for k in range(3)])
    post(api, *[(f"g{k}", "inactive", "11:00") for k in range(3)])
    assert alerts(api)["open"] == 3
    assert [e.type for e in sent] == ["alert.grouped"]
    assert sorted(a["store_id"] for a in sent[0].data["opened"]) == ["g0", "g1", "g2"]
    assert sent[0].data["resolved"] == []
    # Two resolve (not more than 2): one message each.
    post(api, ("g0", "active", "11:10"), ("g1", "active", "11:10"))
    assert [e.type for e in sent[1:]] == ["alert.resolved", "alert.resolved"]


def test_inside_a_maintenance_window_alerts_open_and_resolve_but_nothing_is_sent(
    api: APIClient, sent: list[Event]
) -> None:
    window = {"all": True, "start": f"{DAY}T00:00:00Z", "end": f"{DAY}T11:30:00Z"}
    assert api.post("/maintenance/", window, format="json").status_code == 201
    post(api, ("m", "active", "10:00"), ("m", "inactive", "11:00"))
    open_alert = alerts(api)["results"][0]
    assert open_alert["muted"] is True
    assert sent == []
    # The window ended while the alert stayed open: it is announced now.
    post(api, ("m", "inactive", "11:40"))
    assert [e.type for e in sent] == ["alert.opened"]


def test_a_resolution_inside_a_window_sends_nothing(api: APIClient, sent: list[Event]) -> None:
    post(api, ("w", "active", "10:00"), ("w", "inactive", "11:00"))
    window = {"store_ids": ["w"], "start": f"{DAY}T11:00:00Z", "end": f"{DAY}T13:00:00Z"}
    assert api.post("/maintenance/", window, format="json").status_code == 201
    post(api, ("w", "active", "11:30"))
    assert alerts(api, state="resolved")["count"] == 1
    assert [e.type for e in sent] == ["alert.opened"]


def test_ack_is_idempotent_and_stops_reminders(api: APIClient, mdb: Database, settings, sent: list[Event]) -> None:
    post(api, ("a", "active", "10:00"), ("a", "inactive", "11:00"))
    alert_id = alerts(api)["results"][0]["alert_id"]

    settings.ALERT_REPEAT_MINUTES = 1
    current = storage.read_open_alerts(mdb)
    # Pretend the last message went out two minutes ago.
    aged = replace(current, notified_us=current.notified_us - 120_000_000)
    storage.write_open_alerts(mdb, aged)
    assert send_reminders(db=mdb) == 1
    assert [e.type for e in sent] == ["alert.opened", "alert.reminder"]
    assert send_reminders(db=mdb) == 0  # just reminded

    first = api.post(f"/alerts/{alert_id}/ack/", {"by": "maria", "note": "on it"}, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["acknowledged_by"] == "maria"
    again = api.post(f"/alerts/{alert_id}/ack/", {"by": "li"}, format="json")
    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == "maria"  # the first ack stays
    listed = alerts(api)
    assert listed["open_unacknowledged"] == 0
    assert listed["results"][0]["acknowledged_by"] == "maria"  # the open list reads one document: the ack is in it

    acked = storage.read_open_alerts(mdb)
    storage.write_open_alerts(mdb, replace(acked, notified_us=acked.notified_us - 120_000_000))
    assert send_reminders(db=mdb) == 0  # acknowledged: no reminder


def test_an_ack_during_a_long_evaluation_is_copied_by_the_next_sweep(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch, sent: list[Event]
) -> None:
    post(api, ("b", "active", "10:00"), ("b", "inactive", "11:00"))
    alert_id = alerts(api)["results"][0]["alert_id"]
    monkeypatch.setattr("loop.services.alerts.ACK_LOCK_WAIT_SECONDS", 0.1)
    with storage.evaluation_lock(mdb) as held:  # an evaluation is running
        assert held
        answer = api.post(f"/alerts/{alert_id}/ack/", {"by": "ana"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["acknowledged_by"] == "ana"  # the ack itself is stored
    assert alerts(api)["open_unacknowledged"] == 1  # not in the open-alerts document yet
    send_reminders(db=mdb)
    listed = alerts(api)
    assert (listed["open_unacknowledged"], listed["results"][0]["acknowledged_by"]) == (0, "ana")
    assert alerts(api, state="all")["results"][0]["acknowledged_by"] == "ana"


def test_ack_errors_are_json(api: APIClient) -> None:
    assert_json_error(api.post(f"/alerts/{VALID_ID}/ack/"), 404)
    assert_json_error(api.get(f"/alerts/{VALID_ID}/"), 404)
    assert_json_error(api.post("/alerts/not-an-id/ack/"), 400)
    assert_json_error(api.get("/alerts/", {"state": "closed"}), 400)
    assert_json_error(api.get("/alerts/", {"colour": "red"}), 400)


def test_acking_a_resolved_alert_is_a_conflict(api: APIClient, sent: list[Event]) -> None:
    post(api, ("r", "active", "10:00"), ("r", "inactive", "11:00"))
    post(api, ("r", "active", "11:10"))
    alert_id = alerts(api, state="resolved")["results"][0]["alert_id"]
    assert_json_error(api.post(f"/alerts/{alert_id}/ack/"), 409)


def test_a_stale_feed_is_told_once_and_its_resumption_too(
    api: APIClient, mdb: Database, settings, sent: list[Event]
) -> None:
    post(api, ("f", "active", "10:00"))
    settings.INGEST_STALE_MINUTES = 1
    assert send_reminders(db=mdb) == 0  # written just now
    range_doc = {"_id": "range"}
    mdb[storage.STATUS].update_one(range_doc, {"$set": {"written_at": time.time() - 120}})
    assert send_reminders(db=mdb) == 1
    assert send_reminders(db=mdb) == 0  # told once
    post(api, ("f", "active", "10:05"))
    assert [e.type for e in sent] == ["ingestion.stale", "ingestion.resumed"]


def test_a_busy_evaluation_lock_makes_a_request_return_at_once(mdb: Database) -> None:
    with storage.evaluation_lock(mdb) as held:
        assert held
        assert evaluate_alerts(db=mdb) is None


@pytest.mark.parametrize("follow_up_s", [0, 3])
def test_the_worker_evaluates_once_and_asks_again_later_when_the_data_moved_meanwhile(
    mdb: Database, settings: Any, monkeypatch: pytest.MonkeyPatch, follow_up_s: int
) -> None:
    settings.BATCH_FOLLOW_UP_SECONDS = follow_up_s
    insert_polls(mdb, poll_frame([("a", "active", "10:00")]))
    asked: list[int] = []
    monkeypatch.setattr(alerts_service, "request_evaluation", lambda delay=0: asked.append(delay))
    rounds: list[pd.Timestamp] = []
    evaluate = alerts_service._evaluate

    def evaluate_then_a_batch_lands(db: Database) -> Any:
        result = evaluate(db)
        rounds.append(result.t)
        if len(rounds) == 1:  # a batch stored while the first round ran
            insert_polls(mdb, poll_frame([("a", "inactive", "10:20")]))
        return result

    monkeypatch.setattr(alerts_service, "_evaluate", evaluate_then_a_batch_lands)
    evaluate_alerts_paced(db=mdb)
    first = pd.Timestamp(f"{DAY} 10:00", tz="UTC")
    if follow_up_s:  # one round now; the batch's data in a follow-up, that many seconds later
        assert rounds == [first] and asked == [follow_up_s]
    else:  # the rounds go on at once while the data moves
        assert rounds == [first, pd.Timestamp(f"{DAY} 10:20", tz="UTC")] and asked == []


def test_alert_instants_keep_the_polls_microseconds_in_every_list(api: APIClient, sent: list[Event]) -> None:
    items = [
        {"store_id": "us", "status": "active", "timestamp_utc": f"{DAY}T10:00:00.000001Z"},
        {"store_id": "us", "status": "inactive", "timestamp_utc": f"{DAY}T11:00:00.000003Z"},
    ]
    assert api.post("/store_status/", items, format="json").status_code == 201
    assert wait_embedded_idle(timeout=30)
    # The outage began halfway: 10:30:00.000002.
    for state in ("open", "all"):
        alert = alerts(api, state=state)["results"][0]
        assert (alert["started_at"], alert["opened_at"]) == (f"{DAY}T10:30:00.000002Z", f"{DAY}T11:00:00.000003Z")


def test_history_pages_newest_first_across_chunks_and_days(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("loop.storage.alerts.CHUNK_ROWS", 2)
    base = int(pd.Timestamp(f"{DAY} 09:00", tz="UTC").value // 1000)
    hour = 3_600_000_000
    ids = [f"{k:02d}" + VALID_ID[2:] for k in range(5)]
    for k, alert_id in enumerate(ids):  # one evaluation each, 8 hours apart
        opened = base + k * 8 * hour
        row = {"alert_id": alert_id, "store_id": f"h{k}", "zone": "UTC", "muted": False, "resolution": None}
        row |= {"started_us": opened - hour, "opened_us": opened, "resolved_us": None, "ended_us": None}
        storage.record_opened(mdb, [row | {"ack_by": "", "ack_us": 0}], day=str(us_to_ts(opened).date()))
    # Opened 09:00 and 17:00 on the 14th (ids 0, 1), then 01:00, 09:00, 17:00 on the 15th (ids 2-4): two rows a
    # chunk, so the 15th has two chunks.
    chunks = [e["id"] for e in mdb["alert_history"].find_one({"_id": "index"})["chunks"]]
    assert chunks == [f"{DAY}|0000", "2024-10-15|0000", "2024-10-15|0001"]
    storage.record_changes(mdb, [(f"{DAY}|0000", ids[1], {"resolved_us": base + 9 * hour, "resolution": "up"})])

    everything = [a["alert_id"] for a in alerts(api, state="all", page_size=2)["results"]]
    assert everything == [ids[4], ids[3]]
    page2 = alerts(api, state="all", page_size=2, page=2)
    assert ([a["alert_id"] for a in page2["results"]], page2["count"]) == ([ids[2], ids[1]], 5)
    resolved = alerts(api, state="resolved")
    assert ([a["alert_id"] for a in resolved["results"]], resolved["count"]) == ([ids[1]], 1)
    assert resolved["results"][0]["resolution"] == "up"
    one = alerts(api, state="all", store_id="h3")
    assert ([a["alert_id"] for a in one["results"]], one["count"]) == ([ids[3]], 1)
    assert api.get(f"/alerts/{ids[1]}/").json()["resolved_at"] == f"{DAY}T18:00:00Z"


def test_old_alert_history_goes_a_whole_resolved_day_at_a_time(api: APIClient, mdb: Database) -> None:
    from loop.services.alerts import remove_old_alerts

    day_us = 86_400_000_000
    base = int(pd.Timestamp("2024-10-01 12:00", tz="UTC").value // 1000)
    ids = [f"{k:02d}" + VALID_ID[2:] for k in range(3)]
    # Alert 0 opened on the 1st and resolved; alert 1 on the 2nd, still open; alert 2 on the 10th, resolved.
    for k, (alert_id, offset, resolved) in enumerate(zip(ids, (0, 1, 9), (True, False, True), strict=True)):
        opened = base + offset * day_us
        row = {"alert_id": alert_id, "store_id": f"r{k}", "zone": "UTC", "muted": False, "ack_by": "", "ack_us": 0}
        row |= {"started_us": opened - 1, "opened_us": opened, "ended_us": None}
        row |= {"resolved_us": opened + 1 if resolved else None, "resolution": "up" if resolved else None}
        storage.record_opened(mdb, [row], day=str(us_to_ts(opened).date()))
    current = storage.read_open_alerts(mdb)
    storage.write_open_alerts(mdb, replace(current, evaluated_us=base + 9 * day_us))  # the data clock: the 10th

    # 7 days back from 2024-10-10 12:00 is the 3rd: the 1st (all resolved) goes, the 2nd (open alert) stays.
    assert remove_old_alerts(retention_days=7, db=mdb) == 1
    assert [a["alert_id"] for a in alerts(api, state="all")["results"]] == [ids[2], ids[1]]
    assert_json_error(api.get(f"/alerts/{ids[0]}/"), 404)
    assert api.get(f"/alerts/{ids[1]}/").status_code == 200
    assert remove_old_alerts(retention_days=0, db=mdb) == 0  # 0 keeps everything
    assert remove_old_alerts(retention_days=7, db=mdb) == 0  # nothing more is old and resolved
