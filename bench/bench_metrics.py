"""What the metrics cost (issue 21): GET /metrics' latency, and bench-load's throughput with and without counting.

    python bench/bench_metrics.py [--data bench-data/stores3678-days60-seed2025-real] [--rounds 2] [--duration 30]

In one run, on a database and queues of its own (needs `make services`):

1. the data set is loaded (``load_data``), then gunicorn (gunicorn.conf.py, 2 processes) and a Celery worker
   start with metrics on; one report and one alert evaluation run, then ``GET /metrics`` is timed
   ``--scrapes`` times with every scrape reading MongoDB and Redis (``METRICS_CACHE_SECONDS=0``: the
   worst case) and as many again with the default cache (5 s);
2. bench-load's load (``bench/bench_load.py``'s ``run_load``: ``--clients`` clients polling
   ``GET /get_report/<id>/`` while reports are generated) runs ``--rounds`` times with metrics on and as many
   with ``METRICS_ENABLED=0``, alternating (on, off, on, off ...) so a drift of the machine falls on both,
   each round on a freshly started web and worker.

Prints the figures and one ``RESULT {json}`` line; docs/benchmarks.md#metrics has a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_load import Credential, Reports, percentile, run_load  # noqa: E402
from tests.support.processes import (  # noqa: E402
    free_port,
    migrate_accounts_database,
    start_celery_worker,
    start_gunicorn,
)


def start(env: dict[str, str], logs: Path, tag: str) -> tuple[Any, Any]:
    worker = start_celery_worker(env, f"bench-{tag}", 1, logs / f"worker-{tag}.log")
    web = start_gunicorn(env, 2, logs / f"web-{tag}.log")
    web.wait_healthy(120)
    worker.wait_ready(120)
    return web, worker


def stop(web: Any, worker: Any) -> None:
    web.stop()
    worker.shutdown()


def first_report(base: str) -> str:
    response = requests.post(f"{base}/trigger_report/", json={"force": True}, timeout=60)
    response.raise_for_status()
    report_id = response.json()["report_id"]
    while (body := requests.get(f"{base}/get_report/{report_id}/", timeout=60).json())["status"] == "Running":
        time.sleep(0.2)
    if body["status"] != "Complete":
        raise RuntimeError(f"the first report did not complete: {body}")
    return report_id


def time_scrapes(base: str, count: int) -> dict[str, float]:
    times = []
    size = 0
    for _ in range(count):
        began = time.perf_counter()
        response = requests.get(f"{base}/metrics", timeout=30)
        times.append(time.perf_counter() - began)
        response.raise_for_status()
        size = len(response.content)
    times.sort()
    return {
        "p50_ms": round(percentile(times, 50) * 1000, 1),
        "p95_ms": round(percentile(times, 95) * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1),
        "bytes": size,
    }


def load_round(env: dict[str, str], logs: Path, tag: str, args: argparse.Namespace) -> float:
    web, worker = start(env, logs, tag)
    try:
        reports = Reports()
        reports.add(first_report(web.url))
        tallies, wall, generated = run_load(
            web.url, reports, args.clients, args.duration, args.in_flight, [Credential("open")], {}
        )
    finally:
        stop(web, worker)
    answered = sum(len(t.latencies) for t in tallies)
    errors = sum(len(t.errors) for t in tallies)
    rate = answered / wall
    print(f"  {tag}: {rate:,.1f} req/s ({answered:,} answers, {errors} errors, {generated['completed']} reports)")
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "bench-data" / "stores3678-days60-seed2025-real")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="load rounds with metrics on, and as many off")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--skip-load", action="store_true", help="only time GET /metrics")
    parser.add_argument("--mongo-db", default="", help="an already loaded database (kept); default: load --data")
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--broker-url", default=os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)

    run_id = uuid.uuid4().hex[:8]
    db_name = args.mongo_db or f"loop_benchmetrics_{run_id}"
    queue = f"loop_benchmetrics_{run_id}"
    logs = REPO / "bench-data" / f"bench-metrics-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MONGO_URL": args.mongo_url,
        "MONGO_DB": db_name,
        "CELERY_BROKER_URL": args.broker_url,
        "CELERY_QUEUE": queue,
        "DEBUG": "0",
        "SECRET_KEY": f"bench-metrics-{run_id}-{os.urandom(8).hex()}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "TRIGGER_RATE_LIMIT": "0",
        "AUTH_REQUIRED": "0",
        "SQLITE_PATH": str(logs / "db.sqlite3"),
        "PYTHONUNBUFFERED": "1",
        "WORKER_METRICS_PORT": str(free_port()),
    }
    result: dict[str, Any] = {"data": str(args.data), "mongo_db": db_name}
    try:
        if not args.mongo_db:
            began = time.perf_counter()
            load = subprocess.run(
                [sys.executable, "manage.py", "load_data", str(args.data)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            if load.returncode:
                print(load.stdout[-2000:], load.stderr[-2000:])
                return 1
            print(load.stdout.strip().splitlines()[0], f"({time.perf_counter() - began:.0f} s)", flush=True)
        migrate_accounts_database(env)

        web, worker = start({**env, "METRICS_CACHE_SECONDS": "0"}, logs, "scrape-cold")
        try:
            first_report(web.url)
            cold = time_scrapes(web.url, args.scrapes)
        finally:
            stop(web, worker)
        web, worker = start(env, logs, "scrape-cached")
        try:
            cached = time_scrapes(web.url, args.scrapes)
        finally:
            stop(web, worker)
        result["scrape_uncached"], result["scrape_cached"] = cold, cached
        print(f"GET /metrics, every scrape reading MongoDB and Redis: {cold}")
        print(f"GET /metrics, METRICS_CACHE_SECONDS=5 (default): {cached}")

        if not args.skip_load:
            print(f"load: {args.clients} clients, {args.duration:.0f} s a round, metrics on / off alternating")
            on: list[float] = []
            off: list[float] = []
            for index in range(args.rounds):
                on.append(load_round({**env, "METRICS_ENABLED": "1"}, logs, f"on-{index}", args))
                off.append(load_round({**env, "METRICS_ENABLED": "0"}, logs, f"off-{index}", args))
            mean_on, mean_off = statistics.mean(on), statistics.mean(off)
            cost = (mean_off - mean_on) / mean_off * 100
            result["load"] = {"on_req_s": on, "off_req_s": off, "cost_pct": round(cost, 1)}
            print(f"throughput: on {mean_on:,.1f} req/s, off {mean_off:,.1f} req/s: metrics cost {cost:.1f}%")
    finally:
        try:
            from pymongo import MongoClient

            if not args.mongo_db:
                with MongoClient[dict[str, Any]](args.mongo_url, serverSelectionTimeoutMS=5000) as client:
                    client.drop_database(db_name)
            import redis

            client_r = redis.Redis.from_url(args.broker_url)
            keys = list(client_r.scan_iter(match=f"{queue}*")) + list(
                client_r.scan_iter(match=f"loop:workers:{queue}:*")
            )
            if keys:
                client_r.delete(*keys)
        except Exception as exc:  # best effort; the figures are in
            print(f"cleanup: {exc}")
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
