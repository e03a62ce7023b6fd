"""Load benchmark: many clients polling reports while reports are being generated.

Run: ``python bench/bench_load.py`` (or ``make bench-load``); needs ``make services``
(Redis and a MongoDB-wire server on loopback).

It loads a small generated data set into a database of its own, starts the real
stack on loopback (gunicorn with ``--web-workers`` workers and one ``celery
worker``), and then, for ``--duration`` seconds:

* one trigger thread keeps ``--in-flight`` reports generating at all times
  (a new ``POST /trigger_report/`` as soon as one finishes);
* ``--clients`` client threads poll ``GET /get_report/<id>/`` in a closed loop
  over the reports triggered so far (Running ones and Complete ones, whose
  answer carries the CSV).

It prints requests per second, p50/p90/p99/max latency and the error count
(any exception or status other than 200). Exit code 1 when there was an error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.processes import free_port, stop_process  # noqa: E402

BIN = Path(sys.executable).parent


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


@dataclass
class Tally:
    """What one client thread saw (merged at the end; no lock on the hot path)."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


class Reports:
    """The report ids clients poll, shared between the trigger thread and the clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[str] = []

    def add(self, report_id: str) -> None:
        with self._lock:
            self._ids.append(report_id)

    def pick(self, rng: random.Random) -> str:
        with self._lock:
            # Mostly the newest reports (what clients wait on), sometimes any older one.
            recent = self._ids[-4:]
            return rng.choice(recent if rng.random() < 0.7 else self._ids)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)


def ensure_dataset(folder: Path, stores: int, days: int, seed: int) -> Path:
    if not (folder / "store_status.csv").is_file():
        from loop.datagen import generate_dataset

        generate_dataset(folder, stores=stores, days=days, seed=seed)
    return folder


def wait_ready(base: str, worker_log: Path, procs: list[subprocess.Popen[bytes]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/health/", timeout=5).status_code == 200 and "ready." in worker_log.read_text():
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"the stack did not start; logs in {worker_log.parent}")
        time.sleep(0.3)


def run_load(
    base: str, reports: Reports, clients: int, duration: float, in_flight: int
) -> tuple[list[Tally], float, dict[str, int]]:
    stop_at = time.monotonic() + duration
    tallies = [Tally() for _ in range(clients)]
    generated = {"triggered": 0, "completed": 0, "failed": 0, "trigger_errors": 0}

    def trigger_loop() -> None:
        try:
            keep_generating()
        except Exception as exc:  # reported, not silently lost with the thread
            generated["trigger_errors"] += 1
            print(f"trigger thread: {type(exc).__name__}: {exc}", flush=True)

    def keep_generating() -> None:
        session = requests.Session()
        running: list[str] = []
        while time.monotonic() < stop_at:
            still: list[str] = []
            for report_id in running:
                body = session.get(f"{base}/get_report/{report_id}/", timeout=60).json()
                if body["status"] == "Running":
                    still.append(report_id)
                else:
                    generated["completed" if body["status"] == "Complete" else "failed"] += 1
            running = still
            while len(running) < in_flight:
                response = session.post(f"{base}/trigger_report/", json={"force": True}, timeout=60)
                if response.status_code != 202:
                    generated["trigger_errors"] += 1
                    break
                report_id = response.json()["report_id"]
                running.append(report_id)
                reports.add(report_id)
                generated["triggered"] += 1
            time.sleep(0.2)

    def client_loop(index: int) -> None:
        tally = tallies[index]
        rng = random.Random(index)
        session = requests.Session()
        while time.monotonic() < stop_at:
            report_id = reports.pick(rng)
            started = time.perf_counter()
            try:
                response = session.get(f"{base}/get_report/{report_id}/", timeout=30)
                elapsed = time.perf_counter() - started
                if response.status_code == 200:
                    status = response.json()["status"]
                    tally.statuses[status] = tally.statuses.get(status, 0) + 1
                    tally.latencies.append(elapsed)
                else:
                    tally.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except Exception as exc:  # every failure counts as an error, the run goes on
                tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=trigger_loop, name="trigger", daemon=True)]
    threads += [
        threading.Thread(target=client_loop, args=(i,), name=f"client-{i}", daemon=True) for i in range(clients)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)
    return tallies, time.monotonic() - began, generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of polling")
    parser.add_argument("--in-flight", type=int, default=2, help="reports kept generating during the run")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=1, help="threads per gunicorn worker (gthread if > 1)")
    parser.add_argument("--stores", type=int, default=300)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--broker-url", default=os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)

    run_id = uuid.uuid4().hex[:8]
    db_name = f"loop_benchload_{run_id}"
    queue = f"loop_benchload_{run_id}"
    logs = args.data_dir / f"bench-load-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MONGO_URL": args.mongo_url,
        "MONGO_DB": db_name,
        "CELERY_BROKER_URL": args.broker_url,
        "CELERY_QUEUE": queue,
        "DEBUG": "0",
        "SECRET_KEY": f"bench-load-{run_id}-{os.urandom(8).hex()}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "TRIGGER_RATE_LIMIT": "0",  # the trigger thread is not an abuser
        "API_TOKEN": "",
        "SQLITE_PATH": str(logs / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    folder = ensure_dataset(args.data_dir / f"load-stores{args.stores}-days{args.days}", args.stores, args.days, 7)
    print(f"data set: {folder}", flush=True)
    load = subprocess.run(
        [sys.executable, "manage.py", "load_data", str(folder)], cwd=REPO, env=env, capture_output=True, text=True
    )
    if load.returncode:
        print(load.stdout, load.stderr)
        return 1
    print(load.stdout.strip().splitlines()[0], flush=True)

    procs: list[subprocess.Popen[bytes]] = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker_cmd = [
        str(BIN / "celery"),
        "-A",
        "myproject",
        "worker",
        "--loglevel=INFO",
        "--concurrency=1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    web_cmd = [
        str(BIN / "gunicorn"),
        "myproject.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.web_workers),
        "--timeout",
        "120",
        "--backlog",
        "2048",
    ]
    if args.web_threads > 1:
        web_cmd += ["--worker-class", "gthread", "--threads", str(args.web_threads)]
    try:
        for name, cmd in (("worker", worker_cmd), ("web", web_cmd)):
            with open(logs / f"{name}.log", "wb") as out:
                procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
        wait_ready(base, logs / "worker.log", procs)

        # One finished report before the clients start, so there is always a Complete one to poll.
        reports = Reports()
        first = requests.post(f"{base}/trigger_report/", json={"force": True}, timeout=60)
        first.raise_for_status()
        first_id = first.json()["report_id"]
        while (body := requests.get(f"{base}/get_report/{first_id}/", timeout=60).json())["status"] == "Running":
            time.sleep(0.2)
        if body["status"] != "Complete":
            print(f"first report did not complete: {body}")
            return 1
        reports.add(first_id)
        print(
            f"stack up: gunicorn {args.web_workers} worker(s) x {args.web_threads} thread(s), 1 celery worker; "
            f"report of {body['rows']} stores is {len(body['csv_data']):,} bytes of CSV",
            flush=True,
        )
        print(
            f"running: {args.clients} clients polling for {args.duration:.0f}s, "
            f"{args.in_flight} report(s) generating at all times ...",
            flush=True,
        )

        tallies, wall, generated = run_load(base, reports, args.clients, args.duration, args.in_flight)
    finally:
        for proc in procs:
            stop_process(proc, timeout=20)
        try:
            from pymongo import MongoClient

            with MongoClient[dict[str, Any]](args.mongo_url, serverSelectionTimeoutMS=5000) as client:
                client.drop_database(db_name)
            import redis

            redis.Redis.from_url(args.broker_url).delete(queue)
        except Exception as exc:  # cleanup is best effort; the numbers are already in
            print(f"cleanup: {exc}")

    latencies = sorted(x for t in tallies for x in t.latencies)
    errors = [e for t in tallies for e in t.errors]
    statuses: dict[str, int] = {}
    for tally in tallies:
        for key, value in tally.statuses.items():
            statuses[key] = statuses.get(key, 0) + value
    total = len(latencies) + len(errors)
    result = {
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "requests": total,
        "requests_per_s": round(total / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p90_ms": round(percentile(latencies, 90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "errors": len(errors),
        "answers": statuses,
        "reports": generated,
        "web_workers": args.web_workers,
        "web_threads": args.web_threads,
    }
    print(f"requests: {total:,} in {wall:.1f}s = {result['requests_per_s']:,} req/s")
    print(
        f"latency: p50 {result['p50_ms']} ms, p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms"
    )
    print(f"answers: {statuses}; reports during the run: {generated}")
    print(f"errors: {len(errors)}" + (f" (first: {errors[:3]})" if errors else ""))
    print("RESULT " + json.dumps(result))
    return 1 if errors or generated["trigger_errors"] or generated["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
