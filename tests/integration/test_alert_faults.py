"""The alerts' bad input and faults on the real stack: gunicorn, FerretDB/mongod, Redis, Celery workers.

1. two evaluations at once (``_evaluate``, no lock) open no second alert for a store: the database's claims;
2. Redis down while an evaluation sends: the transitions and the pending deliveries are stored, the sweep
   delivers each once when Redis is back;
3. a Slack URL answering 500 for a while: ingestion stays fast, the message arrives once when it answers 200;
4. the alert API's bad input over real HTTP: JSON 4xx.

Each test runs its own app on a database (and queue) of its own. Polls are fed through POST /store_status/.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from pymongo import MongoClient
from pymongo.database import Database

from tests.support.integration import MONGO_URL, delete_queues, service_env
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker, free_port, run_manage, start_celery_worker, start_gunicorn
from tests.support.receiver import receiver

pytestmark = pytest.mark.integration

START = pd.Timestamp("2024-10-14 00:00", tz="UTC")  # a Monday; no hours stored: every store is open 24x7


@contextmanager
def app(tmp_path: Path, *, worker: bool, **settings: str) -> Iterator[tuple[Web, Worker | None, dict[str, str]]]:
    """gunicorn (and a Celery worker if asked) on a database and queue of their own; dropped afterwards.
    Without a worker nothing reads the queue: evaluations run only where the test runs them."""
    run_id = uuid.uuid4().hex[:10]
    env = service_env(
        os.environ,
        db_name=f"loop_it_alert_faults_{run_id}",
        queue=f"loop_it_alert_faults_{run_id}",
        secret=run_id,
        logs=tmp_path,
    )
    env.update(settings)
    celery = start_celery_worker(env, None, 2, tmp_path / "worker.log") if worker else None
    web = start_gunicorn(env, 1, tmp_path / "web.log")
    try:
        web.wait_healthy()
        if celery is not None:
            celery.wait_ready()
        yield web, celery, env
    finally:
        web.stop()
        if celery is not None:
            celery.shutdown()
        with MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000) as mongo:
            mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])


def post_polls(web: Web, polls: list[tuple[str, str, pd.Timestamp]]) -> float:
    """POST /store_status/ (must answer 201); the seconds it took."""
    items = [{"store_id": s, "status": st, "timestamp_utc": ts.isoformat()} for s, st, ts in polls]
    began = time.monotonic()
    response = requests.post(f"{web.url}/store_status/", json=items, timeout=30)
    assert response.status_code == 201, response.text
    return time.monotonic() - began


def hour_of_polls(stores: list[str], down: set[str], hour: int) -> list[tuple[str, str, pd.Timestamp]]:
    """Polls at :00, :20 and :50 of ``hour``: inactive for the stores in ``down``, active for the rest.
    A store inactive all hour after an active one is down from :55 of the hour before, 55 minutes at :50
    (D = 30): an alert opens; one active all hour after a down hour is up at :50: its alert resolves."""
    base = START + pd.Timedelta(hours=hour)
    return [
        (store, "inactive" if store in down else "active", base + pd.Timedelta(minutes=minute))
        for minute in (0, 20, 50)
        for store in stores
    ]


def open_alerts_api(web: Web) -> dict[str, str]:
    """store_id -> alert_id of every alert GET /alerts/ lists as open (all pages)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        response = requests.get(f"{web.url}/alerts/", params={"page": page, "page_size": 100}, timeout=30)
        assert response.status_code == 200, response.text
        found += response.json()["results"]
        if len(found) >= response.json()["count"]:
            break
        page += 1
    stores = Counter(a["store_id"] for a in found)
    assert max(stores.values(), default=0) <= 1, f"the API lists two open alerts for a store: {stores.most_common(3)}"
    return {a["store_id"]: a["alert_id"] for a in found}


def history_rows(db: Database) -> list[dict[str, Any]]:
    from loop import storage

    return [row for _, rows in storage.alert_history(db, resolved=None) for row in rows]


def open_records(db: Database) -> dict[str, str]:
    """store_id -> alert_id of the alerts the history has not resolved; fails if a store has two."""
    records = [row for row in history_rows(db) if row.get("resolved_us") is None]
    stores = Counter(str(r["store_id"]) for r in records)
    assert max(stores.values(), default=0) <= 1, f"two open alert records for a store: {stores.most_common(3)}"
    return {str(r["store_id"]): str(r["alert_id"]) for r in records}


def claims(db: Database) -> dict[str, str]:
    return {str(c["_id"]): str(c["alert_id"]) for c in db["open_alerts"].find()}


def open_document(db: Database) -> dict[str, str]:
    from loop import storage

    current = storage.read_open_alerts(db)
    assert len(set(current.store_id.tolist())) == len(current), "the open-alerts document lists a store twice"
    return dict(zip(current.store_id.tolist(), current.alert_id.tolist(), strict=True))


# --- 1. two evaluations at once ----------------------------------------------------------------------------


def evaluate_at_once(db: Database) -> list[Any]:
    """``_evaluate`` (no lock) from two threads released together; their results."""
    from loop.services.alerts import _evaluate

    barrier = threading.Barrier(2)

    def one() -> Any:
        barrier.wait()
        return _evaluate(db)

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(one) for _ in range(2)]
        return [future.result(120) for future in futures]


def test_two_evaluations_at_once_open_no_second_alert_for_a_store(tmp_path: Path, settings: Any) -> None:
    from loop import storage
    from loop.services.alerts import evaluate_alerts

    stores = [f"race-{k:02d}" for k in range(50)]
    evens = {s for k, s in enumerate(stores) if k % 2 == 0}
    # Hour by hour, the stores down: all; the even ones (the odd resolve); the odd ones (the odd open again,
    # the even resolve); all (the even open again); none (all resolve); all.
    rounds = [set(stores), evens, set(stores) - evens, set(stores), set(), set(stores)]
    with app(tmp_path, worker=False) as (web, _, env):
        settings.MONGO_URL, settings.MONGO_DB = MONGO_URL, env["MONGO_DB"]
        db = storage.get_db()
        post_polls(web, hour_of_polls(stores, set(), 0))
        assert evaluate_alerts(db=db) is not None
        assert open_document(db) == {}
        for hour, down in enumerate(rounds, start=1):
            post_polls(web, hour_of_polls(stores, down, hour))
            results = evaluate_at_once(db)
            # Both evaluated this hour's data (neither found the other's write and skipped): a real race.
            assert [r.skipped for r in results] == [False, False], f"hour {hour}: {results}"
            # The database's view: one open record per down store, each with its claim, none for the others.
            records = open_records(db)
            assert set(records) == down, f"hour {hour}"
            assert claims(db) == records, f"hour {hour}"
            # The next evaluation under the lock (new data: the same hour's polls again at :55) repairs the
            # document from the claims, and every reader agrees.
            again = START + pd.Timedelta(hours=hour, minutes=55)
            post_polls(web, [(s, "inactive" if s in down else "active", again) for s in stores])
            assert evaluate_alerts(db=db) is not None
            assert open_records(db) == records, f"hour {hour}: the next evaluation opened or resolved an alert"
            assert claims(db) == records
            assert open_document(db) == records, f"hour {hour}"
            assert open_alerts_api(web) == records, f"hour {hour}"
        history = len(history_rows(db))
        # Opened: 50, then 25 odd again, 25 even again, then 50 after the all-up hour.
        assert history == 50 + 25 + 25 + 50


def race_with_a_pause(db: Database) -> None:
    """Two ``_evaluate`` at once, forced through one interleaving: the one whose claims were taken (A) waits
    between its claims and its records until the refused one (B) has repaired; B waits before writing the
    open-alerts document until A has written it, so B's write is the last."""
    from loop import storage
    from loop.services.alerts import _evaluate

    b_repaired, a_written = threading.Event(), threading.Event()
    won = threading.local()
    real_claim, real_insert = storage.claim_open_alerts, storage.record_transitions
    real_write = storage.write_open_alerts

    def claim(db: Database, pairs: Any) -> set[str]:
        taken = real_claim(db, pairs)
        won.value = bool(taken)
        return taken

    def insert(db: Database, **kwargs: Any) -> str:
        if won.value:
            assert b_repaired.wait(30)
        else:  # B records (nothing) right after its repair
            b_repaired.set()
        return real_insert(db, **kwargs)

    def write(db: Database, alerts: Any) -> None:
        if not won.value:
            assert a_written.wait(30)
        real_write(db, alerts)
        if won.value:
            a_written.set()

    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            _evaluate(db)
        except BaseException as exc:
            errors.append(exc)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage, "claim_open_alerts", claim)
        patch.setattr(storage, "record_transitions", insert)
        patch.setattr(storage, "write_open_alerts", write)
        threads = [threading.Thread(target=evaluate) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    assert a_written.is_set() and b_repaired.is_set(), "the race did not take the forced path"


@pytest.mark.parametrize("then", ["down", "up"])
def test_an_evaluation_refused_its_claims_leaves_the_winners_claims_and_the_next_one_repairs(
    tmp_path: Path, settings: Any, then: str
) -> None:
    from loop import storage
    from loop.services.alerts import evaluate_alerts

    stores = [f"pause-{k:02d}" for k in range(50)]
    with app(tmp_path, worker=False) as (web, _, env):
        settings.MONGO_URL, settings.MONGO_DB = MONGO_URL, env["MONGO_DB"]
        db = storage.get_db()
        post_polls(web, hour_of_polls(stores, set(), 0))
        assert evaluate_alerts(db=db) is not None
        post_polls(web, hour_of_polls(stores, set(stores), 1))
        race_with_a_pause(db)
        # A opened the 50 alerts; B (refused) must not have dropped A's claims, which A had not recorded yet.
        records = open_records(db)
        assert set(records) == set(stores)
        assert claims(db) == records
        # The next evaluation, under the lock, on new polls: the stores still down keep their one alert and
        # the document lists it; stores back up resolve it.
        status = "inactive" if then == "down" else "active"
        post_polls(web, [(s, status, START + pd.Timedelta(hours=2)) for s in stores])
        assert evaluate_alerts(db=db) is not None
        want = records if then == "down" else {}
        assert open_records(db) == want
        assert claims(db) == want
        assert open_document(db) == want
        assert open_alerts_api(web) == want
        assert len(history_rows(db)) == 50


def test_a_claim_without_a_record_is_released_only_once_older_than_the_lock(tmp_path: Path, settings: Any) -> None:
    from loop import storage
    from loop.services.alerts import evaluate_alerts
    from loop.storage.packed import LOCK_SECONDS

    with app(tmp_path, worker=False) as (web, _, env):
        settings.MONGO_URL, settings.MONGO_DB = MONGO_URL, env["MONGO_DB"]
        db = storage.get_db()
        # Claims whose evaluation never recorded them: one that died long ago, one perhaps still running.
        assert storage.claim_open_alerts(db, [("old", "A" * 32), ("young", "B" * 32)]) == {"old", "young"}
        db["open_alerts"].update_one({"_id": "old"}, {"$set": {"at": time.time() - LOCK_SECONDS - 5}})
        post_polls(web, hour_of_polls(["old", "young"], set(), 0))
        post_polls(web, hour_of_polls(["old", "young"], {"old", "young"}, 1))
        assert evaluate_alerts(db=db) is not None
        records = open_records(db)
        assert set(records) == {"old"}  # its stale claim gave way to a new alert
        assert claims(db) == {"old": records["old"], "young": "B" * 32}


# --- 2. Redis down while an evaluation sends ------------------------------------------------------------

EVALUATE = """
from loop.services.alerts import evaluate_alerts
print("evaluated", evaluate_alerts())
"""
# The sweep as of 31 s from now: it queues deliveries overdue by SWEEP_GRACE_SECONDS (30 s) and these were
# due when stored, so this stands in for waiting half a minute.
SWEEP = """
import datetime as dt
from loop.services.deliveries import send_due_deliveries
from loop.timeutil import utcnow
print("queued", send_due_deliveries(now=utcnow() + dt.timedelta(seconds={ahead})))
"""


def deliveries(web: Web) -> list[dict[str, Any]]:
    response = requests.get(f"{web.url}/deliveries/", params={"page_size": 100}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_redis_down_while_an_evaluation_sends_keeps_every_delivery_for_the_sweep(tmp_path: Path) -> None:
    stores = ["r1", "r2", "r3"]
    with app(tmp_path, worker=False, WEBHOOK_ALLOW_PRIVATE="1") as (web, _, env), receiver([200]) as hook:
        created = requests.post(
            f"{web.url}/channels/", json={"name": "h", "kind": "webhook", "url": hook.url}, timeout=30
        )
        assert created.status_code == 201, created.text
        post_polls(web, hour_of_polls(stores, set(), 0))
        post_polls(web, hour_of_polls(stores, set(stores), 1))
        # The evaluation runs in a process whose broker is a closed port.
        dead = {**env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
        began = time.monotonic()
        proc = run_manage(dead, "shell", "-c", EVALUATE, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "evaluated EvaluationResult(" in proc.stdout and "opened=3, resolved=0" in proc.stdout, proc.stdout
        assert time.monotonic() - began < 60  # the dead broker fails fast
        assert "deliveries not queued" in proc.stderr, proc.stderr[-2000:]
        alerts = requests.get(f"{web.url}/alerts/", timeout=30).json()
        assert sorted(a["store_id"] for a in alerts["results"]) == stores
        stored = deliveries(web)
        assert sorted(d["event"]["data"]["store_id"] for d in stored) == stores
        assert {(d["status"], d["attempt_count"]) for d in stored} == {("pending", 0)}
        assert hook.received == []

        # The broker back: a worker, and the beat's sweep (now: nothing is overdue by 30 s yet).
        worker = start_celery_worker(env, None, 1, tmp_path / "worker-back.log")
        try:
            worker.wait_ready()
            assert "queued 0" in run_manage(env, "shell", "-c", SWEEP.format(ahead=0)).stdout
            swept = run_manage(env, "shell", "-c", SWEEP.format(ahead=31))
            assert "queued 3" in swept.stdout, swept.stdout + swept.stderr

            def all_delivered() -> bool:
                return [d["status"] for d in deliveries(web)] == ["delivered"] * 3

            wait_until(all_delivered, 60, "the 3 deliveries", worker.proc, details=lambda: worker.text()[-3000:])
            # A later sweep finds nothing pending: nothing is sent twice.
            assert "queued 0" in run_manage(env, "shell", "-c", SWEEP.format(ahead=31)).stdout
            time.sleep(1)
        finally:
            worker.shutdown()
    assert len(hook.received) == 3
    assert sorted(m.headers["webhook-id"] for m in hook.received) == sorted(d["webhook_id"] for d in stored)
    got = sorted(json.loads(m.body)["data"]["alert_id"] for m in hook.received)
    assert got == sorted(a["alert_id"] for a in alerts["results"])


# --- 3. a Slack URL answering 500 for a while ------------------------------------------------------------


def test_a_slack_url_failing_for_a_while_leaves_ingestion_alone_and_gets_the_message_once(tmp_path: Path) -> None:
    short = {"WEBHOOK_ALLOW_PRIVATE": "1", "DELIVERY_RETRY_BASE_SECONDS": "1", "DELIVERY_RETRY_MAX_SECONDS": "2"}
    with app(tmp_path, worker=True, **short) as (web, worker, _), receiver([500, 500, 500, 200]) as slack:
        assert worker is not None
        body = {"name": "ops", "kind": "slack", "url": slack.url, "events": ["alert.opened"]}
        created = requests.post(f"{web.url}/channels/", json=body, timeout=30)
        assert created.status_code == 201, created.text
        stores = ["sl-down", "sl-up"]
        post_polls(web, hour_of_polls(stores, set(), 0))
        post_polls(web, hour_of_polls(stores, {"sl-down"}, 1))
        wait_until(lambda: len(slack.received) >= 1, 60, "the first send", worker.proc, details=worker.text)

        # While the URL answers 500 (and the worker retries), batches keep landing at once.
        took: list[float] = []
        t = START + pd.Timedelta(hours=1, minutes=50)
        # Bounded by time, not count: each batch queues an evaluation ahead of the retries, and a busy CI
        # machine once needed more than 200 quick batches (8 s) to reach the 4th send.
        deadline = time.monotonic() + 90
        while len(slack.received) < 4:
            t += pd.Timedelta(minutes=1)
            took.append(post_polls(web, [("sl-down", "inactive", t), ("sl-up", "active", t)]))
            assert time.monotonic() < deadline, f"the receiver got {len(slack.received)} of 4 POSTs in 90 s"
            time.sleep(0.2)
        assert len(took) >= 3, "too few batches while the URL failed to show anything"
        # A 2-row batch answers in ~50 ms here; 5 s leaves room for a busy CI machine, far below what waiting
        # on a failing URL would cost (the delivery's 10 s timeout, retries).
        assert max(took) < 5.0, took
        newest = t.isoformat().replace("+00:00", "Z")

        def evaluated() -> bool:
            return requests.get(f"{web.url}/alerts/", timeout=30).json()["evaluated_at"] == newest

        wait_until(evaluated, 60, "the evaluation of the last batch", worker.proc, details=worker.text)

        def delivered() -> bool:
            return [d["status"] for d in deliveries(web)] == ["delivered"]

        wait_until(delivered, 60, "the delivery", worker.proc, details=worker.text)
        time.sleep(2)  # nothing more arrives
        (delivery,) = deliveries(web)
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    assert len(slack.received) == 4  # three refused, one taken: the message arrived once
    assert len({m.body for m in slack.received}) == 1
    text = json.loads(slack.received[-1].body)["text"]
    assert text.startswith("Alert opened") and "sl-down" in text


# --- 4. bad input over HTTP ----------------------------------------------------------------------------

UNKNOWN = "Abcdefghijklmnopqrstuvwxyz012_-9"  # a well-formed id nobody has


def test_bad_alert_input_over_http_is_json_4xx(tmp_path: Path, settings: Any) -> None:
    from loop import storage
    from loop.services.alerts import evaluate_alerts

    with app(tmp_path, worker=False, WEBHOOK_ALLOW_PRIVATE="0") as (web, _, env):
        settings.MONGO_URL, settings.MONGO_DB = MONGO_URL, env["MONGO_DB"]
        post_polls(web, hour_of_polls(["bad-1", "bad-2"], set(), 0))
        post_polls(web, hour_of_polls(["bad-1", "bad-2"], {"bad-1", "bad-2"}, 1))
        assert evaluate_alerts(db=storage.get_db()) is not None
        first, second = (a["alert_id"] for a in requests.get(f"{web.url}/alerts/", timeout=30).json()["results"])
        # bad-2 comes back up: its alert resolves.
        post_polls(web, [("bad-1", "inactive", START + pd.Timedelta(hours=2))])
        post_polls(web, [("bad-2", "active", START + pd.Timedelta(hours=2))])
        assert evaluate_alerts(db=storage.get_db()) is not None
        resolved = requests.get(f"{web.url}/alerts/", params={"state": "resolved"}, timeout=30).json()["results"]
        (closed,) = [a["alert_id"] for a in resolved]
        still_open = first if closed == second else second

        # The first ack answers the alert; a second one changes nothing (200, the first kept).
        for by in ("maria", "joe"):
            ack = requests.post(f"{web.url}/alerts/{still_open}/ack/", json={"by": by}, timeout=30)
            assert ack.status_code == 200, ack.text
            assert ack.json()["acknowledged_by"] == "maria"

        one_off = {"store_ids": ["bad-1"], "start": "2024-10-14T10:00:00Z", "end": "2024-10-14T12:00:00Z"}
        weekly = {"all": True, "weekday": 0, "local_start": "22:00", "local_end": "02:00"}
        cases: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
            ("GET", f"/alerts/{UNKNOWN}/", None, 404, "No alert"),
            ("POST", f"/alerts/{UNKNOWN}/ack/", {}, 404, "No alert"),
            ("GET", "/alerts/not-an-id/", None, 400, "alert_id"),
            ("POST", f"/alerts/{closed}/ack/", {}, 409, "resolved"),
            ("GET", "/alerts/?state=closed", None, 400, "state"),
            ("POST", "/maintenance/", {**one_off, "end": "2024-10-14T09:00:00Z"}, 400, "end"),
            ("POST", "/maintenance/", {**weekly, "weekday": 7}, 400, "weekday"),
            ("POST", "/maintenance/", {**weekly, "weekday": "mon"}, 400, "weekday"),
            ("POST", "/channels/", {"name": "x", "kind": "slack", "url": "ftp://hooks.example.com/x"}, 400, "url"),
            ("POST", "/channels/", {"name": "x", "kind": "webhook", "url": "file:///etc/passwd"}, 400, "url"),
            ("POST", "/channels/", {"name": "x", "kind": "webhook", "url": "http://10.0.0.7/hook"}, 400, "private"),
            ("POST", "/channels/", {"name": "x", "kind": "webhook", "url": "http://127.0.0.1:9/"}, 400, "loopback"),
        ]
        for method, path, body, status, says in cases:
            response = requests.request(method, f"{web.url}{path}", json=body, timeout=30)
            assert response.status_code == status, (path, body, response.text)
            assert response.headers["Content-Type"] == "application/json", (path, response.headers)
            error = response.json()
            assert says in error["error"] or says in error.get("fields", {}), (path, body, error)
        # Nothing was created by the refused requests.
        assert requests.get(f"{web.url}/maintenance/", timeout=30).json()["count"] == 0
        assert requests.get(f"{web.url}/channels/", timeout=30).json()["count"] == 0
        assert requests.get(f"{web.url}/alerts/{closed}/", timeout=30).json()["acknowledged_by"] is None
