"""A stream of small batches on the real stack (gunicorn, a Celery worker, Redis, FerretDB/mongod): their alert
evaluations and daily-figures updates are asked for ``BATCH_FOLLOW_UP_SECONDS`` later, once for the whole
stream (``loop.queue.send_follow_up``), and the one that runs still covers the last batch."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.support.integration import service_env, web_and_worker
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker

pytestmark = pytest.mark.integration

DELAY_S = 4
BATCHES = 12
START = pd.Timestamp("2024-10-14 12:00", tz="UTC")


@pytest.fixture
def stream_stack(servers: None, tmp_path: Path) -> Iterator[tuple[Web, Worker]]:
    run_id = uuid.uuid4().hex[:10]
    env = service_env(
        os.environ, db_name=f"loop_it_follow_{run_id}", queue=f"loop_it_follow_{run_id}", secret=run_id, logs=tmp_path
    )
    env["BATCH_FOLLOW_UP_SECONDS"] = str(DELAY_S)
    with web_and_worker(env, tmp_path, web_workers=2, concurrency=2) as both:
        yield both


def post_poll(web: Web, store: str, t: pd.Timestamp) -> str:
    posted = requests.post(
        f"{web.url}/store_status/",
        json=[{"store_id": store, "status": "active", "timestamp_utc": t.isoformat()}],
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    return t.isoformat().replace("+00:00", "Z")


def runs(worker: Worker, task: str) -> int:
    """How many messages of ``task`` the worker has received (its log, one line each)."""
    return len(re.findall(rf"Task loop\.tasks\.{task}\[[0-9a-f-]+\] received", worker.text()))


def evaluated_at(web: Web) -> str | None:
    return requests.get(f"{web.url}/alerts/", timeout=30).json()["evaluated_at"]


def test_a_stream_of_small_batches_is_evaluated_once_and_the_evaluation_covers_the_last_batch(
    stream_stack: tuple[Web, Worker],
) -> None:
    web, worker = stream_stack
    last = ""
    for k in range(BATCHES):  # well inside DELAY_S: each is a few tens of milliseconds
        last = post_poll(web, f"s{k % 3}", START + pd.Timedelta(minutes=k))
    wait_until(lambda: evaluated_at(web) == last, 60, f"the evaluation at {last}", worker.proc)
    # One evaluation and one figures update for the twelve batches (two if the posting outlasted the delay).
    assert 1 <= runs(worker, "evaluate_alerts_task") <= 2, worker.text()[-3000:]
    assert 1 <= runs(worker, "update_history_task") <= 2, worker.text()[-3000:]
    assert len(re.findall(r"alerts evaluated at", worker.text())) <= 2

    # The task cleared its mark when it started: the next batch asks again, and is evaluated too.
    before = runs(worker, "evaluate_alerts_task")
    later = post_poll(web, "s0", START + pd.Timedelta(hours=1))
    wait_until(lambda: evaluated_at(web) == later, 60, f"the evaluation at {later}", worker.proc)
    assert runs(worker, "evaluate_alerts_task") == before + 1
