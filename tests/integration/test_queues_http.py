"""Queues per kind on the real stack: while the reports worker is busy with a long report and more reports wait
in its queue, a batch of polls that opens an alert reaches a loopback webhook receiver within seconds.

Real processes: gunicorn, a Celery worker with WORKER_QUEUES=reports and one with WORKER_QUEUES=notifications
(both through tests/support/delayed_worker.py, so any report either of them runs sleeps REPORT_PAUSE_S first),
Redis and the MongoDB-wire server. The path measured is the issue's: the batch's answer (the evaluation is asked
of a worker), the evaluation, the delivery, the POST. Without the routes of settings.py the evaluation and the
delivery would go to the default (maintenance) queue nobody here consumes, and with one queue for everything
the notifications worker would be sleeping in a report as well: either way the receiver would wait.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
from pymongo import MongoClient

from tests.support.integration import MONGO_URL, delete_queues, service_env
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker, start_celery_worker, start_gunicorn
from tests.support.receiver import receiver

pytestmark = pytest.mark.integration

REPORT_PAUSE_S = 40  # each report sleeps this long once started: far longer than the delivery may take
REPORTS = 3  # one running, the others waiting in the reports queue
LATENCY_LIMIT_S = 10  # the target is 5 s at 10x; the limit here leaves room for a loaded CI machine
T = pd.Timestamp("2026-03-01T12:00:00Z")


@dataclass
class QueueStack:
    web: Web
    reports: Worker
    notifications: Worker


@pytest.fixture
def queue_stack(servers: None, tmp_path: Path) -> Iterator[QueueStack]:
    run_id = uuid.uuid4().hex[:10]
    env = service_env(
        os.environ, db_name=f"loop_it_queues_{run_id}", queue=f"loop_it_queues_{run_id}", secret=run_id, logs=tmp_path
    )
    env.update(WEBHOOK_ALLOW_PRIVATE="1")  # the receiver listens on 127.0.0.1
    reports = start_celery_worker(
        env,
        f"reports-{run_id}",
        1,
        tmp_path / "worker-reports.log",
        {"WORKER_QUEUES": "reports"},
        report_delay_s=REPORT_PAUSE_S,
    )
    notifications = start_celery_worker(
        env,
        f"notifications-{run_id}",
        1,
        tmp_path / "worker-notifications.log",
        {"WORKER_QUEUES": "notifications"},
        report_delay_s=REPORT_PAUSE_S,
    )
    web = start_gunicorn(env, 1, tmp_path / "web.log")
    try:
        web.wait_healthy()
        reports.wait_ready()
        notifications.wait_ready()
        yield QueueStack(web, reports, notifications)
    finally:
        web.stop()
        reports.stop()  # at once: the reports would sleep on through a warm shutdown
        notifications.stop()
        with MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000) as mongo:
            mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])


def polls(*rows: tuple[str, str, pd.Timedelta]) -> list[dict[str, str]]:
    return [{"store_id": s, "status": status, "timestamp_utc": (T + at).isoformat()} for s, status, at in rows]


def post_polls(web: Web, items: list[dict[str, str]]) -> None:
    posted = requests.post(f"{web.url}/store_status/", json=items, timeout=30)
    assert posted.status_code == 201, posted.text


def report_status(web: Web, report_id: str) -> str:
    return requests.get(f"{web.url}/get_report/{report_id}/", timeout=30).json()["status"]


def test_a_delivery_reaches_its_webhook_while_reports_hold_the_reports_worker(queue_stack: QueueStack) -> None:
    web, reports, notifications = queue_stack.web, queue_stack.reports, queue_stack.notifications
    minutes = pd.Timedelta(minutes=1)
    with receiver([200]) as hook:
        created = requests.post(
            f"{web.url}/channels/", json={"name": "q", "kind": "webhook", "url": hook.url}, timeout=30
        )
        assert created.status_code == 201, created.text
        # s1 up an hour before T (the notifications worker's first evaluation: nothing opens)
        post_polls(web, polls(("s1", "active", -60 * minutes), ("s2", "active", -60 * minutes)))

        triggered = [
            requests.post(f"{web.url}/trigger_report/", json={"force": True}, timeout=30) for _ in range(REPORTS)
        ]
        assert [r.status_code for r in triggered] == [202] * REPORTS, [r.text for r in triggered]
        report_ids = [r.json()["report_id"] for r in triggered]
        reports.wait_log("test delay: sleeping", timeout=60)  # the reports worker's one process is held now

        # s1 inactive since T-40 min: down for 50 min at T (D = 30), so this batch's evaluation opens an alert
        post_polls(
            web,
            polls(
                ("s1", "inactive", -40 * minutes), ("s1", "inactive", -20 * minutes), ("s1", "inactive", 0 * minutes)
            ),
        )
        answered = time.perf_counter()

        def opened() -> bool:
            return any(json.loads(got.body)["type"] == "alert.opened" for got in hook.received)

        wait_until(
            opened,
            LATENCY_LIMIT_S,
            "the alert.opened delivery while reports run",
            notifications.proc,
            interval=0.05,
            details=lambda: (
                f"notifications worker:\n{notifications.text()[-2000:]}\nreports worker:\n{reports.text()[-1500:]}"
            ),
        )
        got = next(got for got in hook.received if json.loads(got.body)["type"] == "alert.opened")
        latency = got.arrived - answered
        print(f"batch answer -> webhook: {latency:.2f} s")
        assert latency < LATENCY_LIMIT_S
        assert json.loads(got.body)["data"]["store_id"] == "s1"

    # ... before any report finished: the first still sleeps, the others have not left their queue
    assert [report_status(web, report_id) for report_id in report_ids] == ["Running"] * REPORTS
    assert reports.text().count("test delay: sleeping") == 1
    # each worker ran only its kind ("Task <name>[<id>] received" in its log)
    ran = {
        name: [
            kind
            for kind in ("generate_report", "evaluate_alerts", "send_delivery")
            if f"Task loop.tasks.{kind}_task[" in worker.text()
        ]
        for name, worker in (("reports", reports), ("notifications", notifications))
    }
    assert ran == {"reports": ["generate_report"], "notifications": ["evaluate_alerts", "send_delivery"]}
    assert "test delay" not in notifications.text()
