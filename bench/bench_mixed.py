"""Mixed-load benchmark (issue 16): pollers, readers and report triggers at once, with and without slow clients.

Run: ``python bench/bench_mixed.py [--scale 1|10] [--duration 600] [--clients 200] [--slow 20] [--front]``
(or ``make bench-load-mixed BENCH_MIXED_ARGS="..."``); needs ``make services`` (Redis and a
MongoDB-wire server on loopback). Smoke run: ``--scale 1 --duration 30 --clients 20 --slow 2``.

It loads the 1x or 10x set of ``bench_offline.py`` (generated into ``bench-data/`` unless present)
into a database of its own with ``manage.py load_data``, starts gunicorn with the repository's
``gunicorn.conf.py``, one Celery worker and, with ``--front``, nginx with deploy/nginx/nginx.conf in
front, on a queue of its own, all on 127.0.0.1. The clients (threads of this process) are split
as the issue has it (200: 100 / 80 / 20):

* pollers ``POST /store_status/`` batches of 5 polls (JSON or CSV by poller), stamped after the
  data's newest poll by a simulated clock (``--clock-speed`` simulated seconds per second), a
  quarter inactive; some batches are resent as they were (they must store nothing new) and some
  carry one poll the poller already had acknowledged;
* readers ``GET /stores/`` (a page or a search), ``GET /stores/<id>/timeline/`` (default range) and
  ``GET /reports/``;
* triggers ``POST /trigger_report/`` (no ``force``: reuse allowed; one in five extended) and follow
  their report with ``GET /get_report/<id>/`` about once a second until it is not Running.

Each client waits ``--think`` seconds on average (uniformly 0.5x-1.5x) between requests. After an
unmeasured warm-up the profile runs ``--duration`` seconds without slow clients, then (with
``--slow N``) as long again with N slow clients: sockets that each hold a half-sent request, sending
it 1 byte/s (half drip the headers, half a POST body with a large Content-Length), opened again as
soon as the server closes them. Between runs the reports still queued are drained.

Measured: each request's latency from send to the last byte of the answer (every request counts,
failures too), per kind; errors (any exception, a 30 s timeout, a 5xx) and unexpected answers;
every 2 s the RSS (/proc) of gunicorn's workers and of the Celery worker (main process and pool).
Afterwards every poll of a 2xx-acknowledged batch is looked up in storage by a separate process
(``storage.read_poll_columns`` over the simulated span) and, for a few stores, with
``manage.py show_polls``. Targets (PASS/FAIL, exit code 1 on a FAIL): zero 5xx and errors, zero
lost polls, p99 < 1 s for each of poll write, store list, timeline, report list and trigger,
memory flat (last-minute peak <= 1.1x first-minute peak, per process group and run), and slow
clients changing the p99 of all requests by less than 10%. The database and queue are dropped.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_load import percentile  # noqa: E402
from bench.bench_offline import DEFAULT_REAL_DIR, describe_set, ensure_dataset, run_measured, service_env  # noqa: E402
from bench.bench_service import gb, load_text  # noqa: E402
from loop.datagen import LOOP_2025_STORES  # noqa: E402
from tests.support.processes import (  # noqa: E402
    Front,
    Web,
    Worker,
    environment_without_config,
    nginx_binary,
    run_manage,
    start_celery_worker,
    start_front,
    start_gunicorn,
    stop_process,
)

# --- targets and fixed parameters ----------------------------------------------------------

TARGET_P99_S = 1.0
TARGET_SLOW_RATIO = 1.10  # p99 with slow clients / without
TARGET_MEMORY_GROWTH = 1.10  # last-minute peak / first-minute peak
MEMORY_WINDOW_S = 60.0
REQUEST_TIMEOUT_S = 30.0
GUNICORN_GRACE_S = 45.0  # gunicorn.conf.py's graceful_timeout (30 s) and a margin
BATCH_ROWS = 5
INACTIVE_SHARE = 0.25
RESEND_SHARE = 0.05  # batches sent again exactly as before (a poller retrying)
REPEAT_ROW_SHARE = 0.10  # batches carrying one poll this poller already had acknowledged
EXTENDED_SHARE = 0.2
REPORT_POLL_S = 1.0
MAX_REQUESTS_PER_SECOND = 100  # per client: bounds every loop in count as well as in time
SHOW_POLLS_STORES = 3
SEED = 16

TARGET_KINDS = ("poll write", "store list", "timeline", "report list", "trigger")
INFO_KINDS = ("report status",)
KINDS = TARGET_KINDS + INFO_KINDS
READ_MIX = (("store list", 0.35), ("timeline", 0.45), ("report list", 0.20))
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# --- what the clients saw ------------------------------------------------------------------


@dataclass
class Tally:
    """One client thread's figures (merged at the end; no lock on the hot path)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    server_errors: list[str] = field(default_factory=list)  # 5xx
    failures: list[str] = field(default_factory=list)  # exceptions, timeouts
    unexpected: list[str] = field(default_factory=list)  # other statuses, answers that contradict the request
    acked: list[tuple[str, int, bool]] = field(default_factory=list)  # (store, t_us, inactive) of 2xx batches
    resends: int = 0
    resends_inserting: int = 0
    reports: dict[str, int] = field(default_factory=dict)  # final status of followed reports, "reused"

    def count(self, key: str) -> None:
        self.reports[key] = self.reports.get(key, 0) + 1


@dataclass
class Merged:
    """The tallies of one run, merged."""

    label: str
    seconds: float
    latencies: dict[str, list[float]]
    server_errors: list[str]
    failures: list[str]
    unexpected: list[str]
    resends: int
    resends_inserting: int
    reports: dict[str, int]
    slow: dict[str, int]
    memory: dict[str, dict[str, float]]

    @property
    def all_latencies(self) -> list[float]:
        return sorted(x for kind in KINDS for x in self.latencies[kind])


def merge(label: str, seconds: float, tallies: list[Tally]) -> Merged:
    reports: dict[str, int] = {}
    for tally in tallies:
        for key, value in tally.reports.items():
            reports[key] = reports.get(key, 0) + value
    return Merged(
        label=label,
        seconds=seconds,
        latencies={kind: sorted(x for t in tallies for x in t.latencies[kind]) for kind in KINDS},
        server_errors=[e for t in tallies for e in t.server_errors],
        failures=[e for t in tallies for e in t.failures],
        unexpected=[e for t in tallies for e in t.unexpected],
        resends=sum(t.resends for t in tallies),
        resends_inserting=sum(t.resends_inserting for t in tallies),
        reports=reports,
        slow={},
        memory={},
    )


def timed(
    session: requests.Session,
    tally: Tally,
    kind: str,
    method: str,
    url: str,
    expected: tuple[int, ...] = (200,),
    **kwargs: Any,
) -> requests.Response | None:
    """One request, timed from send to its whole answer (``requests`` reads the body before returning).

    Every request's time is kept, failed ones too; an exception, a 5xx, an answer after more than
    REQUEST_TIMEOUT_S or a status outside ``expected`` is recorded. Returns the answer when expected.
    """
    started = time.perf_counter()
    try:
        response = session.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
    except Exception as exc:  # a refused connection, a timeout, a reset: all errors, the run goes on
        tally.latencies[kind].append(time.perf_counter() - started)
        tally.failures.append(f"{kind}: {type(exc).__name__}: {exc}"[:300])
        return None
    elapsed = time.perf_counter() - started
    tally.latencies[kind].append(elapsed)
    if response.status_code >= 500:
        tally.server_errors.append(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")
        return None
    if elapsed > REQUEST_TIMEOUT_S:
        tally.failures.append(f"{kind}: answered after {elapsed:.1f} s (over {REQUEST_TIMEOUT_S:g} s)")
        return None
    if response.status_code not in expected:
        tally.unexpected.append(f"{kind}: HTTP {response.status_code}: {response.text[:200]}")
        return None
    return response


# --- the simulated clock and the pollers' batches ------------------------------------------


class SimClock:
    """Poll times after the data's newest poll, advancing ``speed`` simulated seconds per wall second."""

    def __init__(self, start_us: int, speed: float) -> None:
        self.start_us, self.speed = start_us, speed
        self.began = time.monotonic()

    def now_us(self) -> int:
        return self.start_us + int((time.monotonic() - self.began) * self.speed * 1_000_000)


def stamp(t_us: int) -> str:
    """Loop's timestamp text, exact to the microsecond."""
    return (EPOCH + dt.timedelta(microseconds=t_us)).strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"


Poll = tuple[str, int, bool]  # store id, t_us, inactive


def batch_body(polls: list[Poll], as_csv: bool) -> tuple[bytes, str]:
    if as_csv:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["store_id", "status", "timestamp_utc"])
        for store, t_us, inactive in polls:
            writer.writerow([store, "inactive" if inactive else "active", stamp(t_us)])
        return out.getvalue().encode(), "text/csv"
    items = [
        {"store_id": store, "status": "inactive" if inactive else "active", "timestamp_utc": stamp(t_us)}
        for store, t_us, inactive in polls
    ]
    return json.dumps(items).encode(), "application/json"


# --- slow clients --------------------------------------------------------------------------


class SlowClients:
    """``count`` sockets each holding a half-sent request, 1 byte per second, reopened when the server closes one.

    Even ones drip a request line and headers that never end (a header value longer than the run);
    odd ones send a POST's headers at once and then drip a body far shorter than its Content-Length.
    """

    BODY_LENGTH = 1_000_000

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.stats = {"opened": 0, "closed_by_server": 0, "answered": 0, "connect_errors": 0, "bytes_sent": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def _request(self, index: int) -> tuple[bytes, bytes]:
        """(sent at once, dripped 1 byte/s) for client ``index``."""
        host = f"{self.host}:{self.port}"
        if index % 2 == 0:
            return b"", f"GET /stores/ HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode() + b"a" * 100_000
        head = (
            f"POST /store_status/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {self.BODY_LENGTH}\r\n\r\n"
        ).encode()
        return head, b"store_id,status,timestamp_utc\n" + b"s" * self.BODY_LENGTH

    def _open(self, index: int) -> tuple[socket.socket, Iterator[int]] | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            self.stats["connect_errors"] += 1
            return None
        at_once, dripped = self._request(index)
        try:
            sock.sendall(at_once)
        except OSError:
            sock.close()
            self.stats["connect_errors"] += 1
            return None
        sock.setblocking(False)
        self.stats["opened"] += 1
        self.stats["bytes_sent"] += len(at_once)
        return sock, iter(dripped)

    def _closed(self, sock: socket.socket) -> bool:
        """True when the server answered or closed (read without blocking)."""
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            self.stats["closed_by_server"] += 1
            return True
        self.stats["answered" if data else "closed_by_server"] += 1
        return True

    def _run(self) -> None:
        open_: dict[int, tuple[socket.socket, Iterator[int]] | None] = {i: None for i in range(self.count)}
        try:
            while not self._stop.is_set():
                for index in range(self.count):
                    held = open_[index]
                    if held is not None and self._closed(held[0]):
                        held[0].close()
                        held = None
                    if held is None:
                        held = open_[index] = self._open(index)
                        continue
                    sock, dripped = held
                    byte = next(dripped, None)
                    try:
                        if byte is not None:
                            sock.send(bytes([byte]))
                            self.stats["bytes_sent"] += 1
                    except OSError:
                        self.stats["closed_by_server"] += 1
                        sock.close()
                        open_[index] = None
                self._stop.wait(1.0)
        finally:
            for held in open_.values():
                if held is not None:
                    held[0].close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join(timeout=10)
        return dict(self.stats)


# --- memory ----------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers, the Celery pool), from /proc."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            children.extend(int(x) for x in text)
    except FileNotFoundError:
        pass
    return children


class MemorySampler:
    """Every ``every`` seconds: the summed RSS of gunicorn's workers and of the Celery worker (main + pool)."""

    def __init__(self, gunicorn_pid: int, celery_pid: int, every: float) -> None:
        self.gunicorn_pid, self.celery_pid, self.every = gunicorn_pid, celery_pid, every
        self.samples: list[tuple[float, int, int]] = []  # (seconds since start, gunicorn workers, celery)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)
        self._began = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            web = sum(rss_bytes(p) for p in child_pids(self.gunicorn_pid))
            celery = rss_bytes(self.celery_pid) + sum(rss_bytes(p) for p in child_pids(self.celery_pid))
            self.samples.append((time.monotonic() - self._began, web, celery))
            self._stop.wait(self.every)

    def start(self) -> None:
        self._began = time.monotonic()
        self._thread.start()

    def stop(self) -> dict[str, dict[str, float]]:
        """First-window and last-window mean and peak (bytes) per process group."""
        self._stop.set()
        self._thread.join(timeout=10)
        if not self.samples:
            return {}
        span = self.samples[-1][0]
        window = min(MEMORY_WINDOW_S, max(span / 3, self.every))
        first = [s for s in self.samples if s[0] <= window]
        last = [s for s in self.samples if s[0] >= span - window]
        out: dict[str, dict[str, float]] = {}
        for column, name in ((1, "gunicorn workers"), (2, "celery worker")):
            out[name] = {
                "window_s": window,
                "first_mean": sum(s[column] for s in first) / len(first),
                "first_peak": max(s[column] for s in first),
                "last_mean": sum(s[column] for s in last) / len(last),
                "last_peak": max(s[column] for s in last),
                "samples": len(self.samples),
            }
        return out


# --- storage, read by separate processes ------------------------------------------------------


def storage_helper(mode: str, path: Path | None) -> int:
    """``--storage-helper catalog|verify``: run in a fresh process with the service's settings (MONGO_DB)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    import django

    django.setup()
    from loop import storage
    from loop.timeutil import ts_to_us, us_to_ts

    db = storage.get_db()
    if mode == "catalog":
        _, ids, _ = storage.read_catalog(db)
        newest = storage.newest_poll_time(db)
        print(json.dumps({"store_ids": [str(s) for s in ids], "newest_us": ts_to_us(newest) if newest else None}))
        return 0
    assert path is not None
    sent: list[list[Any]] = json.loads(path.read_text())["polls"]
    # "Inactive wins" for a key acknowledged more than once (only exact repeats are sent, so it never decides).
    expected: dict[tuple[str, int], bool] = {}
    for store, t_us, inactive in sent:
        expected[(store, t_us)] = expected.get((store, t_us), False) or bool(inactive)
    first_us, last_us = min(t for _, t in expected), max(t for _, t in expected)
    columns = storage.read_poll_columns(db, us_to_ts(first_us), us_to_ts(last_us))
    stored: dict[tuple[str, int], bool] = {}
    for store, t_us, inactive in zip(
        columns.store_ids[columns.store].tolist(), columns.t_us.tolist(), columns.inactive.tolist(), strict=True
    ):
        stored[(str(store), t_us)] = stored.get((str(store), t_us), False) or inactive
    lost = [key for key in expected if key not in stored]
    mismatched = [key for key, inactive in expected.items() if key in stored and stored[key] != inactive]
    print(
        json.dumps(
            {
                "acked": len(expected),
                "found": len(expected) - len(lost),
                "lost": len(lost),
                "status_mismatch": len(mismatched),
                "stored_in_span": len(stored),
                "examples": [[store, stamp(t_us)] for store, t_us in sorted(lost)[:5]],
            }
        )
    )
    return 0


def run_helper(env: dict[str, str], mode: str, path: Path | None = None) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--storage-helper", mode]
    if path is not None:
        argv.append(str(path))
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"storage helper {mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def show_polls_check(env: dict[str, str], acked: list[Poll], rng: random.Random) -> tuple[int, int]:
    """(acknowledged, listed) polls of a few stores through ``manage.py show_polls`` over the simulated span."""
    stores = sorted({p[0] for p in acked})
    chosen = rng.sample(stores, min(SHOW_POLLS_STORES, len(stores)))
    wanted = listed = 0
    start, end = stamp(min(p[1] for p in acked)), stamp(max(p[1] for p in acked))
    for store in chosen:
        expected = {f"{store},{'inactive' if i else 'active'},{stamp(t)}" for s, t, i in acked if s == store}
        done = run_manage(env, "show_polls", store, "--from", start, "--to", end, timeout=120)
        if done.returncode:
            raise RuntimeError(f"show_polls {store} failed:\n{done.stderr[-2000:]}")
        lines = set(done.stdout.splitlines())
        wanted += len(expected)
        listed += len(expected & lines)
    return wanted, listed


# --- the profile -------------------------------------------------------------------------------


@dataclass
class Profile:
    base: str
    store_ids: list[str]
    clock: SimClock
    pollers: int
    readers: int
    triggers: int
    think: float
    seed: int


def split_clients(clients: int) -> tuple[int, int, int]:
    """The issue's 100 / 80 / 20 of 200, at any count (at least one of each from 3 clients)."""
    pollers = max(1, round(clients * 0.5))
    triggers = max(1, round(clients * 0.1))
    return pollers, max(1, clients - pollers - triggers), triggers


def run_profile(profile: Profile, duration: float, label: str) -> tuple[list[Tally], float]:
    """All clients for ``duration`` seconds; returns their tallies and the wall time."""
    stop_at = time.monotonic() + duration
    max_requests = math.ceil(duration * MAX_REQUESTS_PER_SECOND)
    base = profile.base

    def think(rng: random.Random) -> None:
        time.sleep(max(0.0, min(profile.think * rng.uniform(0.5, 1.5), stop_at - time.monotonic())))

    def poller(index: int, tally: Tally) -> None:
        rng = random.Random(f"{profile.seed}-{label}-poll-{index}")
        session = requests.Session()
        as_csv = index % 2 == 1
        history: list[list[Poll]] = []  # acknowledged batches
        last_ms = 0
        for _ in range(max_requests):
            if time.monotonic() >= stop_at:
                break
            resend = bool(history) and rng.random() < RESEND_SHARE
            if resend:
                polls = rng.choice(history[-50:])
            else:
                # Distinct instants per poller: milliseconds of the clock, the poller's index in the microseconds.
                ms = max(profile.clock.now_us() // 1000, last_ms + 1)
                last_ms = ms + BATCH_ROWS - 1
                stores = rng.sample(profile.store_ids, BATCH_ROWS)
                polls = [
                    (store, (ms + row) * 1000 + index % 1000, rng.random() < INACTIVE_SHARE)
                    for row, store in enumerate(stores)
                ]
                if history and rng.random() < REPEAT_ROW_SHARE:
                    polls[-1] = rng.choice(rng.choice(history[-50:]))
            body, content_type = batch_body(polls, as_csv)
            response = timed(
                session,
                tally,
                "poll write",
                "POST",
                f"{base}/store_status/",
                (200, 201),
                data=body,
                headers={"Content-Type": content_type},
            )
            if response is not None:
                answer = response.json()
                if answer.get("read") != BATCH_ROWS or answer.get("rejected") != 0:
                    tally.unexpected.append(f"poll write: answer {answer}")
                else:
                    tally.acked.extend(polls)
                    if resend:
                        tally.resends += 1
                        if answer.get("inserted") != 0 or response.status_code != 200:
                            tally.resends_inserting += 1
                    else:
                        history.append(polls)
            think(rng)

    def reader(index: int, tally: Tally) -> None:
        rng = random.Random(f"{profile.seed}-{label}-read-{index}")
        session = requests.Session()
        kinds = [kind for kind, _ in READ_MIX]
        weights = [weight for _, weight in READ_MIX]
        pages = max(1, math.ceil(len(profile.store_ids) / 20))
        for _ in range(max_requests):
            if time.monotonic() >= stop_at:
                break
            kind = rng.choices(kinds, weights)[0]
            if kind == "store list":
                if rng.random() < 0.3:
                    search = rng.choice(profile.store_ids)[: rng.randint(2, 4)]
                    url = f"{base}/stores/?search={quote(search)}&page_size=20"
                else:
                    url = f"{base}/stores/?page={rng.randint(1, pages)}&page_size=20"
            elif kind == "timeline":
                store = quote(rng.choice(profile.store_ids), safe="")
                url = f"{base}/stores/{store}/timeline/"
            else:
                url = f"{base}/reports/?page=1&page_size=20" + ("&status=Complete" if rng.random() < 0.3 else "")
            timed(session, tally, kind, "GET", url)
            think(rng)

    def trigger(index: int, tally: Tally) -> None:
        rng = random.Random(f"{profile.seed}-{label}-trigger-{index}")
        session = requests.Session()
        sent = 0
        while sent < max_requests and time.monotonic() < stop_at:
            extended = rng.random() < EXTENDED_SHARE
            body = {"format": "extended"} if extended else {}
            response = timed(session, tally, "trigger", "POST", f"{base}/trigger_report/", (200, 202), json=body)
            sent += 1
            if response is not None:
                answer = response.json()
                if answer.get("reused"):
                    tally.count("reused")
                report_id = answer["report_id"]
                # Follow the report as a user would, until it is done or the run is over.
                while sent < max_requests and time.monotonic() < stop_at:
                    time.sleep(max(0.0, min(REPORT_POLL_S, stop_at - time.monotonic())))
                    state = timed(session, tally, "report status", "GET", f"{base}/get_report/{report_id}/")
                    sent += 1
                    if state is None:
                        break
                    status = state.json().get("status")
                    if status != "Running":
                        tally.count(str(status))
                        if status != "Complete":
                            tally.unexpected.append(f"report {report_id} ended {status}: {state.text[:200]}")
                        break
            think(rng)

    tallies: list[Tally] = []
    threads: list[threading.Thread] = []
    roles: list[tuple[str, int, Callable[[int, Tally], None]]] = [
        ("poller", profile.pollers, poller),
        ("reader", profile.readers, reader),
        ("trigger", profile.triggers, trigger),
    ]
    for role, count, target in roles:
        for index in range(count):
            tally = Tally()
            tallies.append(tally)
            threads.append(threading.Thread(target=target, args=(index, tally), name=f"{role}-{index}", daemon=True))
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request ends within REQUEST_TIMEOUT_S (requests' read timeout) after the run's end.
        thread.join(timeout=max(1.0, stop_at - time.monotonic()) + REQUEST_TIMEOUT_S + 30)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        tallies[0].failures.append(f"{len(stuck)} client thread(s) still in a request after the run: {stuck[:5]}")
    return tallies, time.monotonic() - began


def drain_reports(base: str, timeout: float) -> tuple[float, int]:
    """Wait until no report is Running (the triggers' queue is empty): (seconds waited, still Running)."""
    began = time.monotonic()
    running = 0
    while time.monotonic() - began < timeout:
        try:
            answer = requests.get(f"{base}/reports/?status=Running&page_size=1", timeout=REQUEST_TIMEOUT_S)
            running = int(answer.json()["count"])
        except Exception:  # a busy moment: ask again
            running = -1
        if running == 0:
            break
        time.sleep(2)
    return time.monotonic() - began, running


# --- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    web: Web | None = None
    worker: Worker | None = None
    front: Front | None = None

    def stop(self) -> None:
        """Stop everything, gunicorn's workers included, before the database may be dropped."""
        if self.front is not None:
            self.front.stop()
            self.front = None
        left: list[int] = []
        if self.web is not None:
            left = stop_gunicorn(self.web)
            self.web = None
        if self.worker is not None:
            self.worker.shutdown(timeout=20)
            self.worker = None
        if left:
            raise RuntimeError(f"gunicorn workers {left} did not stop: the database is kept")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def stop_gunicorn(web: Web) -> list[int]:
    """SIGTERM, then time for gunicorn's own graceful stop; then SIGKILL whatever is left, workers too.
    Returns the workers still alive (none, normally).

    A master killed before its workers leaves them serving the requests still queued, against a
    database about to be dropped: after a saturated run left two such workers writing while its database
    was dropped, the shared FerretDB 1.24 died (SIGBUS in SQLite's WAL code).
    """
    workers = child_pids(web.proc.pid)
    stop_process(web.proc, timeout=GUNICORN_GRACE_S)
    for pid in workers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in workers if alive(pid)]


def start_stack(env: dict[str, str], logs: Path, args: argparse.Namespace) -> tuple[Stack, str]:
    stack = Stack()
    stack.worker = start_celery_worker(
        env, f"mixed-{uuid.uuid4().hex[:6]}", args.worker_concurrency, logs / "worker.log"
    )
    stack.web = start_gunicorn(env, args.web_workers, logs / "web.log")
    stack.web.wait_healthy(timeout=120)
    stack.worker.wait_ready(timeout=120)
    base = stack.web.url
    if args.front:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("--front needs nginx (apt-get install nginx-light)")
        stack.front = start_front(binary, stack.web.url, logs / "front")
        stack.front.wait_ready()
        base = stack.front.url
    return stack, base


# --- the report ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:,.0f}"


def print_table(runs: list[Merged]) -> None:
    columns = ("requests", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms")
    print(f"\n{'kind':<14} {'run':<18} " + " ".join(f"{c:>8}" for c in columns))
    for kind in (*KINDS, "all"):
        for run in runs:
            values = run.all_latencies if kind == "all" else run.latencies[kind]
            print(
                f"{kind:<14} {run.label:<18} {len(values):>8,} {len(values) / run.seconds:>8.1f} "
                f"{ms(percentile(values, 50)):>8} {ms(percentile(values, 90)):>8} {ms(percentile(values, 99)):>8} "
                f"{ms(values[-1] if values else float('nan')):>8}"
            )
    for run in runs:
        print(
            f"{run.label}: 5xx {len(run.server_errors)}, errors (exceptions/timeouts) {len(run.failures)}, "
            f"unexpected answers {len(run.unexpected)}; resends {run.resends} ({run.resends_inserting} inserted "
            f"something); reports followed {run.reports}" + (f"; slow clients {run.slow}" if run.slow else "")
        )
        for name, figures in run.memory.items():
            print(
                f"  {name} RSS: first {figures['window_s']:.0f} s mean {gb(figures['first_mean'])} peak "
                f"{gb(figures['first_peak'])}; last {figures['window_s']:.0f} s mean {gb(figures['last_mean'])} peak "
                f"{gb(figures['last_peak'])} ({figures['samples']:.0f} samples)"
            )
        for title, errors in (("5xx", run.server_errors), ("errors", run.failures), ("unexpected", run.unexpected)):
            if errors:
                print(f"  first {title}: {errors[:3]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 3,678 stores (Loop 2025), 10 = 36,780")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of each measured run")
    parser.add_argument("--clients", type=int, default=200, help="split 50%% pollers, 40%% readers, 10%% triggers")
    parser.add_argument("--slow", type=int, default=20, help="slow clients of the second run (0: one run only)")
    parser.add_argument("--front", action="store_true", help="nginx (deploy/nginx/nginx.conf) in front of gunicorn")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds each client waits between requests")
    parser.add_argument("--clock-speed", type=float, default=60.0, help="simulated seconds of polls per second")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first (default: 10%%, <= 30)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (gunicorn.conf.py's default)")
    parser.add_argument("--web-threads", type=int, default=8, help="threads per gunicorn worker (WEB_THREADS)")
    parser.add_argument("--worker-concurrency", type=int, default=1, help="Celery worker pool size")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="longest wait for queued reports")
    parser.add_argument("--prepare-only", action="store_true", help="generate and load the set, time it, drop it")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    parser.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR)
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--broker-url", default=os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--storage-helper", choices=("catalog", "verify"), help=argparse.SUPPRESS)
    parser.add_argument("helper_path", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.storage_helper:
        return storage_helper(args.storage_helper, args.helper_path)
    for url in (args.mongo_url, args.broker_url):
        if "127.0.0.1" not in url and "localhost" not in url:
            parser.error(f"{url}: the benchmark talks to loopback servers only")

    run_id = uuid.uuid4().hex[:8]
    label = f"{args.scale:g}x"
    stores = max(1, round(LOOP_2025_STORES * args.scale))
    db_name = queue = f"loop_benchmixed_{run_id}"
    logs = args.data_dir / f"bench-mixed-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    env = service_env(
        environment_without_config(),
        mongo_url=args.mongo_url,
        broker_url=args.broker_url,
        db_name=db_name,
        queue=queue,
        run_id=run_id,
    )
    env.update(
        {
            "TRIGGER_RATE_LIMIT": "0",  # every client is 127.0.0.1: one shared limit would refuse the triggers
            "API_TOKEN": "",
            "SQLITE_PATH": str(logs / "db.sqlite3"),
            "WEB_THREADS": str(args.web_threads),
        }
    )
    print(f"bench-mixed {run_id}: {label} ({stores:,} stores), {load_text()}; logs in {logs}", flush=True)
    began = time.perf_counter()
    folder, generated = ensure_dataset(args.data_dir, stores, args.real_dir)
    print(
        f"data set: {folder} ({describe_set(folder)}; {f'generated in {generated:.1f} s' if generated else 'reused'})",
        flush=True,
    )

    stack = Stack()
    try:
        load = run_measured([sys.executable, "manage.py", "load_data", str(folder)], env)
        if load.returncode:
            raise RuntimeError(f"load_data failed:\n{load.stdout[-2000:]}\n{load.stderr[-3000:]}")
        print(f"load_data: {load.seconds:.1f} s wall, {gb(load.max_rss_bytes)} peak RSS", flush=True)
        catalog = run_helper(env, "catalog")
        store_ids: list[str] = catalog["store_ids"]
        if not store_ids or catalog["newest_us"] is None:
            raise RuntimeError("no stores or polls after the load")
        print(f"catalog: {len(store_ids):,} stores, newest poll {stamp(catalog['newest_us'])}", flush=True)
        if args.prepare_only:
            print(f"prepared in {time.perf_counter() - began:.1f} s (generation, load and catalog)")
            return 0

        stack, base = start_stack(env, logs, args)
        assert stack.web is not None and stack.worker is not None
        pollers, readers, triggers = split_clients(args.clients)
        clock = SimClock(catalog["newest_us"] + 1_000_000, args.clock_speed)
        profile = Profile(base, store_ids, clock, pollers, readers, triggers, args.think, SEED)
        print(
            f"stack: gunicorn (gunicorn.conf.py) {args.web_workers} workers x {args.web_threads} threads, celery "
            f"worker concurrency {args.worker_concurrency}{', nginx in front' if args.front else ''}; clients: "
            f"{pollers} pollers, {readers} readers, {triggers} triggers, think {args.think:g} s; polls' clock "
            f"x{args.clock_speed:g}",
            flush=True,
        )
        acked: list[Poll] = []
        runs: list[Merged] = []
        other_runs: list[Merged] = []
        warmup = args.warmup if args.warmup is not None else min(30.0, args.duration / 10)
        plan = [("warm-up", warmup, 0)] if warmup > 0 else []
        plan.append(("no slow clients", args.duration, 0))
        if args.slow:
            plan.append((f"{args.slow} slow clients", args.duration, args.slow))
        for run_label, duration, slow_count in plan:
            waited, running = drain_reports(base, args.drain_timeout)
            print(
                f"\n--- {run_label}: {duration:.0f} s ({load_text()}; queued reports drained in {waited:.0f} s"
                + (f", {running} still Running" if running else "")
                + ")",
                flush=True,
            )
            host, port = base.removeprefix("http://").split(":")
            slow = SlowClients(host, int(port), slow_count) if slow_count else None
            if slow is not None:
                slow.start()
                time.sleep(min(5.0, duration / 10))  # they hold their connections before the clients start
            sampler = MemorySampler(stack.web.proc.pid, stack.worker.proc.pid, args.sample_every)
            sampler.start()
            tallies, wall = run_profile(profile, duration, run_label)
            merged = merge(run_label, wall, tallies)
            merged.slow = slow.stop() if slow is not None else {}
            merged.memory = sampler.stop()
            acked.extend(p for t in tallies for p in t.acked)
            (other_runs if run_label == "warm-up" else runs).append(merged)
            all_ = merged.all_latencies
            print(
                f"    {len(all_):,} requests ({len(all_) / wall:.1f}/s), p99 {ms(percentile(all_, 99))} ms, "
                f"5xx {len(merged.server_errors)}, errors {len(merged.failures)}, unexpected {len(merged.unexpected)}",
                flush=True,
            )

        # Every acknowledged poll, looked up by separate processes after the runs.
        expected_file = logs / "acked-polls.json"
        expected_file.write_text(json.dumps({"polls": acked}))
        verified = run_helper(env, "verify", expected_file) if acked else {"acked": 0, "found": 0, "lost": 0}
        wanted, listed = show_polls_check(env, acked, random.Random(SEED)) if acked else (0, 0)
    finally:
        stack.stop()
        if not args.keep:
            try:
                from pymongo import MongoClient

                with MongoClient[dict[str, Any]](args.mongo_url, serverSelectionTimeoutMS=5000) as client:
                    client.drop_database(db_name)
                import redis

                redis.Redis.from_url(args.broker_url).delete(queue)
                print(f"dropped database {db_name} and queue {queue}", flush=True)
            except Exception as exc:  # cleanup is best effort; the figures are already in
                print(f"cleanup: {type(exc).__name__}: {exc}", flush=True)

    print_table(other_runs + runs)
    print(
        f"\nacknowledged polls: {verified['acked']:,} distinct, found in storage {verified['found']:,}, lost "
        f"{verified['lost']:,}, stored with another status {verified.get('status_mismatch', 0)}"
        + (f" (first lost: {verified['examples']})" if verified.get("examples") else "")
        + f"; show_polls of {SHOW_POLLS_STORES} stores lists {listed} of their {wanted}"
    )

    checks: list[tuple[str, bool]] = []
    every = other_runs + runs
    n_5xx = sum(len(r.server_errors) for r in every)
    n_errors = sum(len(r.failures) for r in every)
    n_unexpected = sum(len(r.unexpected) for r in every)
    checks.append((f"zero 5xx over every run, warm-up included ({n_5xx})", n_5xx == 0))
    checks.append((f"zero errors: exceptions, {REQUEST_TIMEOUT_S:g} s timeouts ({n_errors})", n_errors == 0))
    checks.append((f"zero unexpected answers: other statuses, failed reports ({n_unexpected})", n_unexpected == 0))
    lost = int(verified["lost"]) + int(verified.get("status_mismatch", 0))
    checks.append(
        (
            f"zero lost polls: {verified['found']:,} of {verified['acked']:,} acknowledged stored as sent, "
            f"show_polls {listed} of {wanted}",
            lost == 0 and listed == wanted and verified["acked"] > 0,
        )
    )
    resends = sum(r.resends for r in every)
    inserting = sum(r.resends_inserting for r in every)
    checks.append((f"acknowledged batches sent again store nothing new ({inserting} of {resends})", inserting == 0))
    main_run = runs[0]
    for kind in TARGET_KINDS:
        p99 = percentile(main_run.latencies[kind], 99)
        checks.append(
            (
                f"{main_run.label}: {kind} p99 {ms(p99)} ms < {TARGET_P99_S * 1000:.0f} ms "
                f"({len(main_run.latencies[kind]):,} requests)",
                not math.isnan(p99) and p99 < TARGET_P99_S,
            )
        )
    for run in runs:
        for name, figures in run.memory.items():
            growth = figures["last_peak"] / figures["first_peak"] if figures["first_peak"] else float("inf")
            checks.append(
                (
                    f"{run.label}: {name} memory flat: last {figures['window_s']:.0f} s peak "
                    f"{gb(figures['last_peak'])} / first {gb(figures['first_peak'])} = {growth:.2f} "
                    f"(<= {TARGET_MEMORY_GROWTH:g})",
                    growth <= TARGET_MEMORY_GROWTH,
                )
            )
    result: dict[str, Any] = {
        "scale": args.scale,
        "clients": args.clients,
        "front": args.front,
        "verified": verified,
        "runs": {
            r.label: {
                kind: {"n": len(r.latencies[kind]), "p99_ms": round(percentile(r.latencies[kind], 99) * 1000, 1)}
                for kind in KINDS
                if r.latencies[kind]
            }
            for r in every
        },
    }
    if len(runs) == 2:
        without, with_slow = (percentile(r.all_latencies, 99) for r in runs)
        ratio = with_slow / without
        result["slow_p99_ratio"] = round(ratio, 3)
        per_kind = ", ".join(
            f"{kind} {percentile(runs[1].latencies[kind], 99) / percentile(runs[0].latencies[kind], 99):.2f}"
            for kind in TARGET_KINDS
            if runs[0].latencies[kind] and runs[1].latencies[kind]
        )
        print(f"p99 with / without slow clients, per kind (information): {per_kind}")
        # A saturated baseline (errors, p99 at the timeout) makes any ratio near 1: then the check cannot pass.
        baseline_errors = len(runs[0].server_errors) + len(runs[0].failures)
        judged = baseline_errors == 0 and without < REQUEST_TIMEOUT_S
        checks.append(
            (
                f"{args.slow} slow clients change the p99 of all requests by less than 10%: "
                f"{ms(with_slow)} / {ms(without)} ms = {ratio:.2f} (< {TARGET_SLOW_RATIO:g})"
                + ("" if judged else f"; not judged: the run without them had {baseline_errors} errors"),
                judged and ratio < TARGET_SLOW_RATIO,
            )
        )
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    result["checks"] = [{"check": text, "ok": ok} for text, ok in checks]
    print("RESULT " + json.dumps(result))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
