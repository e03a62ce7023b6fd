"""Alerts on the real stack, hour by hour: gunicorn, a Celery worker (Redis broker), FerretDB/mongod and a
loopback webhook receiver.

A small fleet (zones, weekly hours, outages) is fed through ``POST /store_status/`` one hour at a time; after
each batch the test waits for ``evaluated_at`` to reach the batch's newest poll (so each batch gets its own
evaluation), then compares every alert the API lists with ``tests/support/alert_reference.py`` (a deliberately
simple re-implementation of the rules) evaluated at the same instants. The receiver checks every
signature, and that each opening and each resolution arrived in exactly one message.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.alert_reference import normalise_alerts, reference_alerts
from tests.support.integration import service_env, web_and_worker
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker
from tests.support.receiver import receiver

pytestmark = pytest.mark.integration

START = pd.Timestamp("2024-10-14 00:00", tz="UTC")  # a Monday
HOURS_FED = 30
ZONES = {"n1": "America/New_York", "n2": "America/New_York", "c1": "America/Chicago", "u1": "UTC", "u2": "UTC"}
# Weekly hours (0 = Monday): n1 opens 09:00-17:00 local each day; c1 runs past midnight; the rest 24x7.
HOURS = {
    "n1": [{"dayOfWeek": d, "start_time_local": "09:00", "end_time_local": "17:00"} for d in range(7)],
    "c1": [{"dayOfWeek": d, "start_time_local": "18:00", "end_time_local": "02:00"} for d in range(7)],
}


def fleet_polls(seed: int = 17) -> pd.DataFrame:
    """Polls every ~20 minutes with runs of inactive ones (a few long enough to alert)."""
    rng = np.random.default_rng(seed)
    rows = []
    for store in sorted(ZONES):
        t = START + pd.Timedelta(minutes=int(rng.integers(0, 20)))
        down_left = 0
        while t < START + pd.Timedelta(hours=HOURS_FED):
            if down_left == 0 and rng.random() < 0.06:
                down_left = int(rng.integers(1, 8))  # 20 minutes to ~2.5 hours down
            status = "inactive" if down_left > 0 else "active"
            down_left = max(0, down_left - 1)
            rows.append((store, status, t))
            t += pd.Timedelta(minutes=int(rng.integers(15, 26)))
    return pd.DataFrame(rows, columns=["store_id", "status", "timestamp_utc"])


@pytest.fixture
def alert_stack(servers: None, tmp_path: Path) -> Iterator[tuple[Web, Worker]]:
    run_id = uuid.uuid4().hex[:10]
    env = service_env(
        os.environ,
        db_name=f"loop_it_alerting_{run_id}",
        queue=f"loop_it_alerting_{run_id}",
        secret=run_id,
        logs=tmp_path,
    )
    env.update(WEBHOOK_ALLOW_PRIVATE="1")
    with web_and_worker(env, tmp_path, web_workers=1, concurrency=2) as both:
        yield both


def all_alerts(web: Web) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        body = requests.get(f"{web.url}/alerts/", params={"state": "all", "page": page, "page_size": 100}, timeout=30)
        assert body.status_code == 200, body.text
        found += body.json()["results"]
        if len(found) >= body.json()["count"]:
            return found
        page += 1


def test_alerts_fed_hour_by_hour_match_the_reference_and_each_transition_is_one_signed_message(
    alert_stack: tuple[Web, Worker],
) -> None:
    web, worker = alert_stack
    polls = fleet_polls()
    for store, zone in ZONES.items():
        put = requests.put(f"{web.url}/stores/{store}/timezone/", json={"timezone_str": zone}, timeout=30)
        assert put.status_code == 200, put.text
    for store, rows in HOURS.items():
        put = requests.put(f"{web.url}/stores/{store}/business_hours/", json=rows, timeout=30)
        assert put.status_code == 200, put.text

    with receiver([200] * 1000) as hook:
        created = requests.post(
            f"{web.url}/channels/", json={"name": "ops", "kind": "webhook", "url": hook.url}, timeout=30
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]

        times: list[pd.Timestamp] = []
        for hour in range(1, HOURS_FED + 1):
            end = START + pd.Timedelta(hours=hour)
            batch = polls[(polls["timestamp_utc"] > end - pd.Timedelta(hours=1)) & (polls["timestamp_utc"] <= end)]
            if batch.empty:
                continue
            items = [
                {"store_id": s, "status": st, "timestamp_utc": ts.isoformat()}
                for s, st, ts in zip(batch["store_id"], batch["status"], batch["timestamp_utc"], strict=True)
            ]
            posted = requests.post(f"{web.url}/store_status/", json=items, timeout=30)
            assert posted.status_code == 201, posted.text
            newest = batch["timestamp_utc"].max()
            times.append(newest)
            expected = newest.isoformat().replace("+00:00", "Z")

            def evaluated(expected: str = expected) -> bool:
                body = requests.get(f"{web.url}/alerts/", timeout=30).json()
                return body["evaluated_at"] == expected

            wait_until(
                evaluated, 60, f"the evaluation at {expected}", worker.proc, details=lambda: worker.text()[-3000:]
            )

        got = all_alerts(web)
        zones = pd.DataFrame({"store_id": list(ZONES), "timezone_str": list(ZONES.values())})
        hours = pd.DataFrame(
            [
                (
                    store,
                    row["dayOfWeek"],
                    *(int(x[:2]) * 3600 + int(x[3:]) * 60 for x in (row["start_time_local"], row["end_time_local"])),
                )
                for store, rows in HOURS.items()
                for row in rows
            ],
            columns=["store_id", "day_of_week", "start_seconds", "end_seconds"],
        )
        want = reference_alerts(polls, hours, None, zones, times)
        assert len(want) >= 3, "the fleet should alert a few times"
        assert any(a["resolution"] == "closed" for a in want) or any(a["resolution"] == "up" for a in want)
        assert normalise_alerts(got) == normalise_alerts(want)

        opened = {a["alert_id"] for a in got}
        resolved = {a["alert_id"] for a in got if a["resolved_at"] is not None}

        def all_delivered() -> bool:
            return len(hook.received) >= len(opened) + len(resolved)

        wait_until(all_delivered, 60, "every message", worker.proc, details=lambda: worker.text()[-3000:])

    webhook = Webhook(secret)
    seen: dict[str, list[str]] = {"alert.opened": [], "alert.resolved": []}
    for message in hook.received:
        body: Any = webhook.verify(message.body, message.headers)  # raises unless the signature is right
        if body["type"] == "alert.grouped":
            seen["alert.opened"] += [a["alert_id"] for a in body["data"]["opened"]]
            seen["alert.resolved"] += [a["alert_id"] for a in body["data"]["resolved"]]
        else:
            seen[body["type"]].append(body["data"]["alert_id"])
    assert sorted(seen["alert.opened"]) == sorted(opened)
    assert sorted(seen["alert.resolved"]) == sorted(resolved)
