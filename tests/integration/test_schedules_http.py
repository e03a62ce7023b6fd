"""Scheduled reports on the real stack: two celery beats, a Celery worker (Redis broker), FerretDB/mongod,
gunicorn and a loopback webhook receiver. A schedule firing every minute runs for three minutes: three
reports, three deliveries (one per slot although both beats tick it), every signature valid, and the
download link works signed and fails tampered with or expired. A schedule runs the slot of the minute it is
created in, so the three slots take two to three minutes of wall time."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from pymongo import MongoClient
from standardwebhooks.webhooks import Webhook

from loop.services import report_links
from tests.support.integration import MONGO_URL, delete_queues, service_env
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker, run_manage, start_celery_beat, start_celery_worker, start_gunicorn
from tests.support.receiver import receiver

pytestmark = pytest.mark.integration

TICK_SECONDS = 5


@pytest.fixture
def beat_stack(servers: None, tmp_path: Path) -> Iterator[tuple[Web, Worker, list[Worker], dict[str, str]]]:
    run_id = uuid.uuid4().hex[:10]
    env = service_env(
        os.environ, db_name=f"loop_it_sched_{run_id}", queue=f"loop_it_sched_{run_id}", secret=run_id, logs=tmp_path
    )
    env.update(WEBHOOK_ALLOW_PRIVATE="1", SCHEDULE_TICK_SECONDS=str(TICK_SECONDS))
    loaded = run_manage(env, "load_data", timeout=300)  # the sample data/: 2024 polls, so "data ends N days before"
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    web = start_gunicorn(env, 1, tmp_path / "web.log")
    env["PUBLIC_BASE_URL"] = web.url  # the worker writes the download links
    worker = start_celery_worker(env, None, 1, tmp_path / "worker.log")
    beats = [start_celery_beat(env, tmp_path / f"beat{n}.log", tmp_path / f"beat{n}-schedule") for n in (1, 2)]
    try:
        web.wait_healthy()
        yield web, worker, beats, env
    finally:
        for beat in beats:
            beat.stop()
        web.stop()
        worker.shutdown()
        with MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000) as mongo:
            mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])


def test_two_beats_run_an_every_minute_schedule_three_times(
    beat_stack: tuple[Web, Worker, list[Worker], dict[str, str]], settings: Any
) -> None:
    web, worker, beats, env = beat_stack
    with receiver([200]) as hook:
        created = requests.post(
            f"{web.url}/channels/", json={"name": "reports", "kind": "webhook", "url": hook.url}, timeout=30
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        body = {
            "name": "every minute",
            "cron": "* * * * *",
            "timezone": "UTC",
            "channels": [created.json()["channel_id"]],
        }
        schedule = requests.post(f"{web.url}/schedules/", json=body, timeout=30)
        assert schedule.status_code == 201, schedule.text
        sid = schedule.json()["schedule_id"]

        def delivered() -> int:
            page = requests.get(f"{web.url}/deliveries/", params={"status": "delivered"}, timeout=30).json()
            return int(page["count"])

        def logs() -> str:
            return "\n".join(process.text()[-1500:] for process in (worker, *beats))

        wait_until(
            lambda: delivered() >= 3, 4 * 60, "three scheduled deliveries", worker.proc, interval=1, details=logs
        )
        paused = requests.patch(f"{web.url}/schedules/{sid}/", json={"enabled": False}, timeout=30)
        assert paused.status_code == 200
        time.sleep(TICK_SECONDS + 1)  # a tick already on its way finds the schedule paused
        received = list(hook.received)

    # Both beats were up and sending the tick all along; the slots' claims made one run of each.
    for beat in beats:
        assert beat.proc.poll() is None and "run-due-schedules" in beat.text(), beat.text()[-2000:]
    deliveries = requests.get(f"{web.url}/deliveries/", timeout=30).json()
    assert deliveries["count"] == 3, deliveries
    assert {d["event_type"] for d in deliveries["results"]} == {"report.completed"}
    assert {d["status"] for d in deliveries["results"]} == {"delivered"}
    assert len(received) == 3

    slots, report_ids = [], []
    for got in received:
        event: Any = Webhook(secret).verify(got.body, got.headers)  # raises unless the signature is right
        data = event["data"]
        assert event["type"] == "report.completed" and data["schedule_id"] == sid
        assert data["now"] == "2024-10-14T23:55:18.727055Z"  # the newest poll of data/ (all before the slot)
        assert data["data_note"].endswith("days before this report's time")
        assert data["rows"] > 0 and len(data["worst"]) == 10
        slots.append(dt.datetime.fromisoformat(data["slot"].replace("Z", "+00:00")))
        report_ids.append(data["report_id"])
    slots.sort()
    assert [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)] == [60.0, 60.0]
    assert all(slot.second == 0 for slot in slots)
    assert len(set(report_ids)) == 3
    reports = requests.get(f"{web.url}/reports/", params={"page_size": 50}, timeout=30).json()
    assert sorted(r["report_id"] for r in reports["results"]) == sorted(report_ids)
    assert {r["status"] for r in reports["results"]} == {"Complete"}
    assert len({got.headers["webhook-id"] for got in received}) == 3

    # The download link: works as delivered, with no token ...
    data = Webhook(secret).verify(received[0].body, received[0].headers)["data"]  # type: ignore[index]
    url = data["download_url"]
    assert url.startswith(f"{web.url}/reports/{data['report_id']}/download/?expires=")
    csv_text = requests.get(url, timeout=30)
    assert csv_text.status_code == 200 and csv_text.headers["Content-Type"].startswith("text/csv")
    assert csv_text.text.startswith("store_id,") and len(csv_text.text.splitlines()) == data["rows"] + 1
    # ... but not changed in any character, nor past its expiry (signed with the stack's SECRET_KEY).
    parts = urlsplit(url)
    sig = parts.query.rsplit("sig=", 1)[1]
    tampered = url[: -len(sig)] + ("0" if sig[0] != "0" else "1") + sig[1:]
    assert requests.get(tampered, timeout=30).status_code == 404
    longer = url.replace("expires=", "expires=1")
    assert requests.get(longer, timeout=30).status_code == 404
    settings.SECRET_KEY = env["SECRET_KEY"]
    expired = report_links.download_path(report_id=data["report_id"], expires=int(time.time()) - 60)
    answer = requests.get(f"{web.url}{expired}", timeout=30)
    assert answer.status_code == 410 and "expired" in answer.json()["error"]
