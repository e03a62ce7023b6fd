"""Step 9 of ``bench/bench_service.py``: the alerts issue's figures on the running service.

Against the service of a scale (gunicorn + a real Celery worker, the whole set loaded), after the other
steps' appends, hour by hour (each batch = one poll per store in the hour after the newest poll, CSV over
``POST /store_status/``), from 08:00 UTC (the stores' hours are real, so the hour of day matters):

a. a baseline batch, all active (resolves what the earlier random appends opened);
b. ``--alert-batches`` batches, each making ``ALERT_STORES`` stores inactive at the start of the hour (stores
   that were ``up`` at the previous evaluation, so their outage began after an active poll and lasts ~1 h
   at the batch's newest poll: they open; the previous batch's ones come back up and resolve). For each:
   send -> ``GET /alerts/``'s ``evaluated_at`` == the batch's newest poll (target 1), the evaluation's own
   ``seconds`` (the open-alerts document's log), and answer -> first byte of the message about this
   evaluation at a loopback webhook receiver (target 2, p95);
c. two batches keeping ``OPEN_STORES`` stores inactive (500 at 1x, 5,000 at 10x), then ``GET
   /alerts/?state=open`` ``LIST_CALLS`` times: p50 / p95 (target 3, judged at 10x);
d. one more batch, all active: those alerts resolve (the evaluation's time, for information).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tests.support.receiver import Receiver, receiver

if TYPE_CHECKING:
    import pandas as pd
    from pymongo.database import Database

TARGET_EVALUATED_S = {1.0: 0.3, 10.0: 1.5}  # send -> evaluated_at, by scale
TARGET_DELIVERY_P95_S = 5.0  # batch answer -> first byte at the receiver
TARGET_LIST_MS = 50.0  # GET /alerts/?state=open, p95, 5,000 open (10x)
ALERT_STORES = 10  # inactive stores per measured batch (under ALERT_GROUP_THRESHOLD: one message each)
OPEN_STORES_PER_1X = 500  # step c: 5,000 at 10x
LIST_CALLS = 30
WAIT_S = 600.0  # step d's evaluation resolves thousands of alerts at 10x
MASS_HOUR_UTC = 17
HOUR_US = 3_600 * 1_000_000
MINUTE_US = 60 * 1_000_000


class Result(Protocol):
    label: str
    figures: dict[str, float]

    def check(self, text: str, ok: bool) -> None: ...


# --- the loopback receiver --------------------------------------------------------------------------


def first_message_about(hook: Receiver, t_iso: str) -> float | None:
    """When the first message about the evaluation at ``t_iso`` (an opening, or a group) arrived."""
    for got in list(hook.received):
        data = json.loads(got.body).get("data", {})
        if data.get("opened_at") == t_iso or data.get("evaluated_at") == t_iso:
            return got.arrived
    return None


# --- batches ----------------------------------------------------------------------------------------


def hour_csv(store_ids: list[str], after_us: int, inactive: set[str], seed: int) -> tuple[bytes, int]:
    """One poll per store in the hour after ``after_us``: ``inactive`` stores at its first minute (so their
    outage is ~an hour old at the batch's newest poll), the rest active at random. (CSV, newest poll us)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t_us = rng.integers(after_us + 2 * MINUTE_US, after_us + 59 * MINUTE_US, size=len(store_ids), endpoint=True)
    down = np.array([s in inactive for s in store_ids], dtype=bool)
    t_us[down] = after_us + MINUTE_US
    # Whole milliseconds: alert records and the evaluation log keep BSON dates (ms), and the bench matches
    # them to the batch's newest poll.
    t_us -= t_us % 1000
    stamps = pd.to_datetime(t_us, unit="us").strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"
    frame = pd.DataFrame(
        {"store_id": store_ids, "status": np.where(down, "inactive", "active"), "timestamp_utc": stamps}
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode(), int(t_us.max())


def up_stores(db: Database, t: pd.Timestamp) -> list[str]:
    """Stores ``up`` at ``t`` by the alert rules (in process; the ones a batch can take down)."""
    import pandas as pd
    from django.conf import settings

    from loop import storage
    from loop.alert_rules import UP, store_states

    lookback = pd.Timedelta(hours=2)
    states = store_states(
        store_ids=storage.store_ids_polled_through(db, t),
        polls=storage.read_polls(db, t - lookback, t),
        hours=storage.read_hours(db),
        special_hours=storage.read_special_hours(db),
        zones=storage.read_zones(db),
        t=t,
        down_after_minutes=settings.ALERT_DOWN_AFTER_MINUTES,
        lookback=lookback,
    )
    return sorted(str(s) for s in states.index[states["state"] == UP])


def iso(us: int) -> str:
    from loop.timeutil import us_to_ts

    return us_to_ts(us).isoformat().replace("+00:00", "Z")


def wait_for(what: str, probe: Callable[[], Any], timeout: float = WAIT_S, pause: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:g} s")
        time.sleep(pause)


@dataclass
class Batch:
    newest_us: int
    post_s: float  # send -> answer
    evaluated_s: float  # send -> evaluated_at == newest
    evaluation_s: float  # the evaluation's own seconds (its log entry)
    opened: int
    resolved: int
    answered_at: float  # perf_counter of the answer


def send_batch(base: str, db: Database, store_ids: list[str], after_us: int, inactive: set[str], seed: int) -> Batch:
    import pandas as pd
    import requests

    from loop import storage
    from loop.timeutil import ts_to_us

    body, newest_us = hour_csv(store_ids, after_us, inactive, seed)
    want = iso(newest_us)
    session = requests.Session()
    started = time.perf_counter()
    response = session.post(f"{base}/store_status/", data=body, headers={"Content-Type": "text/csv"}, timeout=300)
    answered = time.perf_counter()
    if response.status_code != 201 or response.json().get("inserted") != len(store_ids):
        raise RuntimeError(f"POST /store_status/: {response.status_code} {response.text[:300]}")

    def evaluated() -> bool:
        got = session.get(f"{base}/alerts/", params={"page_size": 1}, timeout=60)
        return got.status_code == 200 and got.json()["evaluated_at"] == want

    wait_for(f"evaluation at {want}", evaluated)
    evaluated_s = time.perf_counter() - started
    log = [e for e in storage.read_open_alerts(db).evaluations if iso(ts_to_us(pd.Timestamp(e["t"]))) == want]
    entry = log[-1] if log else {"seconds": float("nan"), "opened": -1, "resolved": -1}
    return Batch(
        newest_us,
        answered - started,
        evaluated_s,
        float(entry["seconds"]),
        int(entry["opened"]),
        int(entry["resolved"]),
        answered,
    )


# --- the step ---------------------------------------------------------------------------------------


def alert_figures(base: str, db: Database, store_ids: list[str], scale: float, batches: int, out: Result) -> None:
    """Step 9 (see the module's docstring); figures into ``out.figures``, PASS/FAIL through ``out.check``."""
    import pandas as pd
    import requests

    from loop import storage
    from loop.timeutil import ts_to_us, us_to_ts

    fig, label = out.figures, out.label
    newest = storage.newest_poll_time(db)
    assert newest is not None
    # Skip ahead so that step c's batches fall at 17:00-19:00 UTC (late morning across the US zones: most
    # stores open, so many can go down). The stores' last polls are then hours old: the baseline batch
    # observes them again.
    start = newest.floor("D") + pd.Timedelta(hours=MASS_HOUR_UTC - 1 - batches)
    after_us = ts_to_us(start if start > newest else start + pd.Timedelta(days=1))
    rng = np.random.default_rng(9)
    with receiver([200]) as hook:
        created = requests.post(
            f"{base}/channels/", json={"name": "bench", "kind": "webhook", "url": hook.url}, timeout=30
        )
        if created.status_code != 201:
            raise RuntimeError(f"POST /channels/: {created.status_code} {created.text[:300]} (WEBHOOK_ALLOW_PRIVATE?)")

        # a. all active: what the earlier appends opened resolves
        base_batch = send_batch(base, db, store_ids, after_us, set(), seed=90)
        after_us = base_batch.newest_us
        print(
            f"[9] alerts: baseline batch (all active) {base_batch.evaluated_s:.2f} s to evaluated_at "
            f"(evaluation {base_batch.evaluation_s:.3f} s, {base_batch.resolved} resolved)",
            flush=True,
        )

        # b. measured batches, each taking ALERT_STORES up stores down
        measured: list[Batch] = []
        delivery_s: list[float] = []
        # A batch evaluated in its own request (an hourly file) can be delivered before its answer: a
        # negative answer -> first byte. Send -> first byte says how long a message takes in all.
        sent_s: list[float] = []
        down: set[str] = set()
        for k in range(batches):
            candidates = sorted(set(up_stores(db, us_to_ts(after_us))) - down)
            down = set(rng.choice(candidates, size=min(ALERT_STORES, len(candidates)), replace=False).tolist())
            batch = send_batch(base, db, store_ids, after_us, down, seed=100 + k)
            after_us = batch.newest_us
            measured.append(batch)
            note = ""
            if batch.opened > 0:
                t_iso = iso(batch.newest_us)
                arrived = wait_for(f"message about {t_iso}", partial(first_message_about, hook, t_iso))
                delivery_s.append(arrived - batch.answered_at)
                sent_s.append(arrived - (batch.answered_at - batch.post_s))
                note = (
                    f"; answer -> first byte at the receiver {delivery_s[-1]:.2f} s (send -> first byte "
                    f"{sent_s[-1]:.2f} s)"
                )
            print(
                f"    batch {k + 1}: POST {batch.post_s:.2f} s, send -> evaluated_at {batch.evaluated_s:.2f} s "
                f"(evaluation {batch.evaluation_s:.3f} s; {batch.opened} opened, {batch.resolved} resolved){note}",
                flush=True,
            )
        evaluated = np.array([b.evaluated_s for b in measured])
        fig["alert_post_s"] = float(np.median([b.post_s for b in measured]))
        fig["alert_evaluated_p50_s"] = float(np.median(evaluated))
        fig["alert_evaluated_max_s"] = float(evaluated.max())
        fig["alert_evaluation_p50_s"] = float(np.median([b.evaluation_s for b in measured]))
        target = TARGET_EVALUATED_S.get(scale, 0.3 if scale < 10 else 1.5)
        out.check(
            f"{label} hourly batch send -> evaluated_at, median of {len(measured)} = "
            f"{fig['alert_evaluated_p50_s']:.2f} s "
            f"(<= {target:g} s; max {fig['alert_evaluated_max_s']:.2f} s, POST {fig['alert_post_s']:.2f} s, "
            f"evaluation {fig['alert_evaluation_p50_s']:.3f} s)",
            fig["alert_evaluated_p50_s"] <= target,
        )
        if delivery_s:
            fig["alert_delivery_p50_s"] = float(np.median(delivery_s))
            fig["alert_delivery_p95_s"] = float(np.percentile(delivery_s, 95))
            fig["alert_sent_delivery_p95_s"] = float(np.percentile(sent_s, 95))
        out.check(
            f"{label} batch answer -> webhook first byte p95 over {len(delivery_s)} batches that opened = "
            f"{fig.get('alert_delivery_p95_s', float('nan')):.2f} s (<= {TARGET_DELIVERY_P95_S:g} s)",
            len(delivery_s) >= max(1, batches // 2) and fig["alert_delivery_p95_s"] <= TARGET_DELIVERY_P95_S,
        )

        # c. many open alerts: two batches keep OPEN_STORES stores inactive
        want_open = round(OPEN_STORES_PER_1X * scale)
        candidates = sorted(set(up_stores(db, us_to_ts(after_us))) - down)
        many = set(rng.choice(candidates, size=min(want_open, len(candidates)), replace=False).tolist())
        for k in range(2):
            batch = send_batch(base, db, store_ids, after_us, many, seed=200 + k)
            after_us = batch.newest_us
            print(
                f"    {len(many):,} stores inactive, batch {k + 1}: send -> evaluated_at {batch.evaluated_s:.2f} s "
                f"(evaluation {batch.evaluation_s:.3f} s; {batch.opened} opened, {batch.resolved} resolved)",
                flush=True,
            )
            fig[f"alert_mass_evaluated_s_{k + 1}"] = batch.evaluated_s
            fig[f"alert_mass_evaluation_s_{k + 1}"] = batch.evaluation_s
        open_now = len(storage.read_open_alerts(db))
        list_figures(base, open_now, want_open, scale, out)

        # d. all active again: the poller recovered, the alerts resolve (information; each resolution is a
        # record update, so a long wait here is a finding, not a failure of the run)
        try:
            batch = send_batch(base, db, store_ids, after_us, set(), seed=300)
        except RuntimeError as exc:
            print(f"    all active again: {exc}", flush=True)
            return
        fig["alert_recover_evaluation_s"] = batch.evaluation_s
        print(
            f"    all active again: send -> evaluated_at {batch.evaluated_s:.2f} s (evaluation "
            f"{batch.evaluation_s:.3f} s; {batch.opened} opened, {batch.resolved} resolved)",
            flush=True,
        )


def list_figures(base: str, open_now: int, want_open: int, scale: float, out: Result) -> None:
    """Step c's ``GET /alerts/?state=open`` calls."""
    import requests

    fig, label = out.figures, out.label
    fig["alert_open"] = open_now
    session = requests.Session()
    ms = []
    for _ in range(LIST_CALLS + 2):
        t0 = time.perf_counter()
        got = session.get(f"{base}/alerts/", params={"state": "open"}, timeout=60)
        ms.append((time.perf_counter() - t0) * 1000)
        if got.status_code != 200:
            raise RuntimeError(f"GET /alerts/?state=open: {got.status_code} {got.text[:300]}")
    listed = np.array(ms[2:])  # the first call of each gunicorn worker warms up
    fig["alert_list_p50_ms"] = float(np.median(listed))
    fig["alert_list_p95_ms"] = float(np.percentile(listed, 95))
    print(
        f"    GET /alerts/?state=open with {open_now:,} open ({got.json()['count']:,} listed, page of "
        f"{len(got.json()['results'])}), {len(listed)} calls after 2 warm-up: p50 {fig['alert_list_p50_ms']:.1f} ms, "
        f"p95 {fig['alert_list_p95_ms']:.1f} ms",
        flush=True,
    )
    text = (
        f"{label} GET /alerts/?state=open with {open_now:,} open: p95 {fig['alert_list_p95_ms']:.1f} ms "
        f"(< {TARGET_LIST_MS:g} ms; p50 {fig['alert_list_p50_ms']:.1f} ms)"
    )
    if scale >= 10:
        enough = open_now >= want_open * 0.9  # some chosen stores close within the hour
        out.check(text + f"; wanted ~{want_open:,} open", fig["alert_list_p95_ms"] < TARGET_LIST_MS and enough)
    else:
        print(f"  (info: judged at 10x) {text}", flush=True)
