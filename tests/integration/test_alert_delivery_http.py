"""Alert delivery on the real stack: a Celery worker (Redis broker), FerretDB/mongod, gunicorn, and a loopback
webhook receiver that answers 500 twice, then 200. The event is published by another process (as the alert
evaluation will), the worker retries with backoff, and every attempt is signed with the same webhook-id."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.integration import service_env, web_and_worker
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker, run_manage
from tests.support.receiver import receiver

pytestmark = pytest.mark.integration

PUBLISH = """
import datetime as dt
from loop.events import Event
from loop.services.deliveries import publish
event = Event(type="alert.opened", timestamp=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), data={"alert_id": "a1"})
print("stored", publish(events=[event]))
"""


@pytest.fixture
def delivery_stack(servers: None, tmp_path: Path) -> Iterator[tuple[Web, Worker, dict[str, str]]]:
    run_id = uuid.uuid4().hex[:10]
    env = service_env(
        os.environ, db_name=f"loop_it_alerts_{run_id}", queue=f"loop_it_alerts_{run_id}", secret=run_id, logs=tmp_path
    )
    # The receiver listens on 127.0.0.1; retries after ~0.5-1 s, then ~1-2 s.
    env.update(WEBHOOK_ALLOW_PRIVATE="1", DELIVERY_RETRY_BASE_SECONDS="1", DELIVERY_RETRY_MAX_SECONDS="2")
    with web_and_worker(env, tmp_path, web_workers=1, concurrency=1) as (web, worker):
        yield web, worker, env


def test_a_webhook_is_retried_until_delivered_with_one_id(delivery_stack: tuple[Web, Worker, dict[str, str]]) -> None:
    web, worker, env = delivery_stack
    with receiver([500, 500, 200]) as hook:
        created = requests.post(
            f"{web.url}/channels/", json={"name": "it", "kind": "webhook", "url": hook.url}, timeout=30
        )
        assert created.status_code == 201, created.text
        channel = created.json()

        published = run_manage(env, "shell", "-c", PUBLISH, timeout=120)
        assert published.returncode == 0, published.stderr
        assert "stored 1" in published.stdout

        def delivered() -> bool:
            page = requests.get(f"{web.url}/deliveries/", params={"channel": channel["channel_id"]}, timeout=30)
            results = page.json()["results"]
            return bool(results) and results[0]["status"] == "delivered"

        wait_until(delivered, 60, "the delivery to be delivered", worker.proc, details=lambda: worker.text()[-3000:])

    assert len(hook.received) == 3
    webhook = Webhook(channel["secret"])
    for got in hook.received:
        body: Any = webhook.verify(got.body, got.headers)  # raises unless the signature is right
        assert body == {"type": "alert.opened", "timestamp": "2026-03-01T12:00:00Z", "data": {"alert_id": "a1"}}
    assert len({got.headers["webhook-id"] for got in hook.received}) == 1
    assert len({got.body for got in hook.received}) == 1

    listed = requests.get(f"{web.url}/deliveries/", timeout=30).json()
    assert listed["count"] == 1
    delivery = listed["results"][0]
    assert delivery["webhook_id"] == hook.received[0].headers["webhook-id"]
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 500), (3, 200)]
    assert (
        all(a["next_retry_at"] for a in delivery["attempts"][:2]) and delivery["attempts"][2]["next_retry_at"] is None
    )
    assert delivery["event"]["type"] == "alert.opened"
