"""What logging and metrics cost (issue 21): GET /metrics' latency, and bench-load's throughput, a report's
trigger -> Complete and the offline report's time with them on and off, in one run.

    python bench/bench_metrics.py [--data bench-data/stores3678-days60-seed2025-real] [--parts ...] [--rounds 6]
    make bench-ops       (the same without the scrape timings: --parts load,report,offline)

In one run, on a database and queues of its own (needs `make services`):

1. ``scrape``: the data set is loaded (``load_data``), gunicorn (gunicorn.conf.py, 2 processes) and a Celery
   worker start, one report runs, then ``GET /metrics`` is timed ``--scrapes`` times with every scrape
   reading MongoDB and Redis (``METRICS_CACHE_SECONDS=0``: the worst case) and as many again with the
   default cache (5 s);
2. two stacks (gunicorn with gunicorn.conf.py, DEBUG=0, and a Celery worker, each on queues of its own) start
   side by side on that database: "on" as in production (``LOG_FORMAT=json``, ``LOG_ACCESS=1``,
   ``METRICS_ENABLED=1``) and "off" (``LOG_FORMAT=text``, ``LOG_ACCESS=0``, ``METRICS_ENABLED=0``;
   ``--compare metrics``: only ``METRICS_ENABLED=0``). Then, alternating between them in ABBA order (on,
   off, off, on, ...) so a drift of the shared machine falls on both:
   ``load``: bench-load's load (``bench/bench_load.py``'s ``run_load``: ``--clients`` clients polling
   ``GET /get_report/<id>/`` while ``--in-flight`` reports generate), ``--rounds`` pairs of ``--duration``
   s, each followed by a wait for its reports (not counted); ``report``: trigger (force) -> Complete,
   ``--report-rounds`` pairs;
3. ``offline``: ``manage.py generate_report --csv-dir --data`` with each side's settings, ``--offline-rounds``
   pairs (the CSVs compared).

Each pair gives a ratio on/off; the verdict (PASS when the cost is at most 5%) reads the median of the
ratios, with their spread. Prints a table and one ``RESULT {json}`` line; docs/benchmarks.md#logs-and-metrics
has a run.
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

from bench.bench_load import Credential, Reports, percentile, run_load, wait_idle  # noqa: E402
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


def run_report(base: str, *, poll_s: float) -> tuple[str, float]:
    """(report id, seconds from POST /trigger_report/ with force to Complete, polled every ``poll_s``)."""
    began = time.perf_counter()
    response = requests.post(f"{base}/trigger_report/", json={"force": True}, timeout=60)
    response.raise_for_status()
    report_id = response.json()["report_id"]
    while (body := requests.get(f"{base}/get_report/{report_id}/", timeout=60).json())["status"] == "Running":
        time.sleep(poll_s)
    if body["status"] != "Complete":
        raise RuntimeError(f"report {report_id} did not complete: {body}")
    return report_id, time.perf_counter() - began


def first_report(base: str) -> str:
    return run_report(base, poll_s=0.2)[0]


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


# What "with" and "without" set: the production settings (JSON logs, the access and task lines, metrics
# counted), and the same with the per-request and per-task logging and the counting off.
SETTINGS = {
    "ops": {
        "on": {"LOG_FORMAT": "json", "LOG_ACCESS": "1", "METRICS_ENABLED": "1"},
        "off": {"LOG_FORMAT": "text", "LOG_ACCESS": "0", "METRICS_ENABLED": "0"},
    },
    # A control: the same settings on both stacks (any "cost" it shows is the benchmark's own error).
    "same": {
        "on": {"LOG_FORMAT": "json", "LOG_ACCESS": "1", "METRICS_ENABLED": "1"},
        "off": {"LOG_FORMAT": "json", "LOG_ACCESS": "1", "METRICS_ENABLED": "1"},
    },
    "metrics": {
        "on": {"LOG_FORMAT": "json", "LOG_ACCESS": "1", "METRICS_ENABLED": "1"},
        "off": {"LOG_FORMAT": "json", "LOG_ACCESS": "1", "METRICS_ENABLED": "0"},
    },
}


def load_once(web_url: str, reports: Reports, args: argparse.Namespace) -> float:
    """One round of bench-load's load against ``web_url``; req/s. Waits until the reports it triggered are done
    (not counted), so none of its work falls into the next round."""
    tallies, wall, generated = run_load(
        web_url, reports, args.clients, args.duration, args.in_flight, [Credential("open")], {}
    )
    wait_idle(web_url, reports.all()[-(generated["triggered"] + 1) :], {})
    answered = sum(len(t.latencies) for t in tallies)
    errors = sum(len(t.errors) for t in tallies)
    if errors:
        print(f"    {errors} errors, e.g. {next(e for t in tallies for e in t.errors)}")
    return answered / wall


def report_once(web_url: str) -> float:
    """Seconds from POST /trigger_report/ (force) to Complete, polled every 50 ms."""
    return run_report(web_url, poll_s=0.05)[1]


def offline_once(env: dict[str, str], data: Path, output: Path) -> float:
    """Seconds of ``manage.py generate_report --csv-dir`` (the whole command, start-up included)."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "generate_report", "--csv-dir", str(data), "--output", str(output)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - began


def interleaved(
    name: str, rounds: int, measure: Any, unit: str, into: dict[str, list[float]] | None = None
) -> dict[str, list[float]]:
    """``measure(side)`` for side on/off, ``rounds`` pairs in ABBA order (on, off, off, on, ...): a drift of the
    machine falls on both sides. Appends to ``into`` (the values of earlier blocks) and returns it."""
    values = into if into is not None else {"on": [], "off": []}
    for index in range(rounds):
        for side in ("on", "off") if index % 2 == 0 else ("off", "on"):
            value = measure(side)
            values[side].append(value)
            load = os.getloadavg()[0]
            print(
                f"  {name} pair {max(len(values['on']), len(values['off']))} {side}: "
                f"{value:,.2f} {unit}  (load {load:.1f})",
                flush=True,
            )
    return values


def summarise(name: str, values: dict[str, list[float]], higher_is_better: bool, unit: str) -> dict[str, Any]:
    """Each pair's ratio on/off; the verdict reads their median (PASS: a cost of at most 5%)."""
    on, off = values["on"], values["off"]
    ratios = sorted(a / b for a, b in zip(on, off, strict=True))
    median = statistics.median(ratios)
    cost = (1 - median) * 100 if higher_is_better else (median - 1) * 100
    figures = {
        "on": [round(v, 3) for v in on],
        "off": [round(v, 3) for v in off],
        "median_on": round(statistics.median(on), 3),
        "median_off": round(statistics.median(off), 3),
        "ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(median, 3),
        "cost_pct": round(cost, 1),
        "verdict": "PASS" if cost <= 5.0 else "FAIL",
    }
    print(
        f"  {name}: on {figures['median_on']:,.2f} / off {figures['median_off']:,.2f} {unit} (medians); "
        f"on/off ratio median {median:.3f}, spread {ratios[0]:.3f}-{ratios[-1]:.3f}; "
        f"cost {cost:.1f}% -> {figures['verdict']} (budget 5%)",
        flush=True,
    )
    return figures


def share(total: int, blocks: int, block: int) -> int:
    """Block ``block``'s part of ``total`` pairs (the first blocks take the remainder)."""
    return total // blocks + (1 if block < total % blocks else 0)


def print_table(result: dict[str, Any], compare: str) -> None:
    rows = [(key, result[key]) for key in ("load", "report", "offline") if key in result]
    if not rows:
        return
    what = {
        "load": "bench-load throughput, req/s",
        "report": "trigger -> Complete, s",
        "offline": "offline generate_report, s",
    }
    off = {
        "ops": "logs (access, task lines) and metrics off",
        "metrics": "metrics off",
        "same": "the same settings again (control)",
    }[compare]
    print()
    print(f"| what | on (production) | {off} | on/off, median of pairs | spread | cost | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, figures in rows:
        ratios = figures["ratios"]
        print(
            f"| {what[key]} | {figures['median_on']:,.2f} | {figures['median_off']:,.2f} "
            f"| {figures['median_ratio']:.3f} | {ratios[0]:.3f}-{ratios[-1]:.3f} "
            f"| {figures['cost_pct']:.1f}% | {figures['verdict']} |"
        )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "bench-data" / "stores3678-days60-seed2025-real")
    parser.add_argument(
        "--parts",
        default="scrape,load,report,offline",
        help="comma-separated: scrape (GET /metrics' latency), load (bench-load's throughput), report "
        "(trigger -> Complete), offline (generate_report --csv-dir)",
    )
    parser.add_argument(
        "--compare",
        choices=sorted(SETTINGS),
        default="ops",
        help="ops: production (LOG_FORMAT=json, LOG_ACCESS=1, METRICS_ENABLED=1) against LOG_FORMAT=text, "
        "LOG_ACCESS=0, METRICS_ENABLED=0; metrics: METRICS_ENABLED 1 against 0, JSON logs in both",
    )
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6, help="load rounds: pairs of one on and one off")
    parser.add_argument("--report-rounds", type=int, default=6, help="trigger -> Complete pairs")
    parser.add_argument("--offline-rounds", type=int, default=4, help="offline generate_report pairs")
    parser.add_argument("--blocks", type=int, default=2, help="load and report pairs spread over this many starts")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of one load round")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=2)
    parser.add_argument("--skip-load", action="store_true", help="only time GET /metrics (--parts scrape)")
    parser.add_argument("--mongo-db", default="", help="an already loaded database (kept); default: load --data")
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--broker-url", default=os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args(argv)
    parts = {"scrape"} if args.skip_load else {p.strip() for p in args.parts.split(",") if p.strip()}

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
    result: dict[str, Any] = {
        "data": str(args.data),
        "mongo_db": db_name,
        "compare": args.compare,
        "settings": SETTINGS[args.compare],
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
    }
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    try:
        if parts & {"scrape", "load", "report"}:
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

        if "scrape" in parts:
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

        if parts & {"load", "report"}:
            # Both stacks up at once (each its own queue, worker and exporter port), so the rounds alternate
            # without restarts; only the stack of the round is busy. Started afresh for each of --blocks blocks,
            # in turn on first and off first, so what one pair of processes happens to be (their place in
            # memory, which started first) does not fall on one side only.
            load_values: dict[str, list[float]] = {"on": [], "off": []}
            report_values: dict[str, list[float]] = {"on": [], "off": []}
            for block in range(args.blocks):
                stacks: dict[str, tuple[Any, Any]] = {}
                try:
                    order = list(SETTINGS[args.compare].items())
                    for side, values in order if block % 2 == 0 else order[::-1]:
                        side_env = {
                            **env,
                            **values,
                            "CELERY_QUEUE": f"{queue}_{side}",
                            "WORKER_METRICS_PORT": str(free_port()),
                        }
                        stacks[side] = start(side_env, logs, f"{side}-{block}")
                    print(
                        f"block {block + 1}/{args.blocks}: stacks on {stacks['on'][0].url}, off {stacks['off'][0].url}"
                    )
                    first = {side: first_report(web.url) for side, (web, _) in stacks.items()}
                    if "load" in parts:
                        print(f"load: {args.clients} clients, {args.duration:.0f} s a round")
                        reports = {side: Reports() for side in stacks}
                        for side, report_id in first.items():
                            reports[side].add(report_id)
                        interleaved(
                            "load",
                            share(args.rounds, args.blocks, block),
                            lambda side, stacks=stacks, reports=reports: load_once(
                                stacks[side][0].url, reports[side], args
                            ),
                            "req/s",
                            load_values,
                        )
                    if "report" in parts:
                        print("report: trigger -> Complete", flush=True)
                        interleaved(
                            "report",
                            share(args.report_rounds, args.blocks, block),
                            lambda side, stacks=stacks: report_once(stacks[side][0].url),
                            "s",
                            report_values,
                        )
                finally:
                    for web, worker in stacks.values():
                        stop(web, worker)
            if "load" in parts:
                result["load"] = summarise("load", load_values, True, "req/s")
            if "report" in parts:
                result["report"] = summarise("report", report_values, False, "s")

        if "offline" in parts:
            print(f"offline: generate_report --csv-dir {args.data}, {args.offline_rounds} pairs", flush=True)
            outputs = {side: logs / f"offline-{side}.csv" for side in ("on", "off")}
            offline_values = interleaved(
                "offline",
                args.offline_rounds,
                lambda side: offline_once({**env, **SETTINGS[args.compare][side]}, args.data, outputs[side]),
                "s",
            )
            result["offline"] = summarise("offline", offline_values, False, "s")
            same = outputs["on"].read_bytes() == outputs["off"].read_bytes()
            result["offline"]["same_csv"] = same
            print(f"  offline CSV on == off: {same}")
    finally:
        try:
            from pymongo import MongoClient

            if not args.mongo_db and parts & {"scrape", "load", "report"}:
                with MongoClient[dict[str, Any]](args.mongo_url, serverSelectionTimeoutMS=5000) as client:
                    client.drop_database(db_name)
            import redis

            client_r = redis.Redis.from_url(args.broker_url)
            keys = list(client_r.scan_iter(match=f"{queue}*")) + list(
                client_r.scan_iter(match=f"loop:workers:{queue}*")
            )
            if keys:
                client_r.delete(*keys)
        except Exception as exc:  # best effort; the figures are in
            print(f"cleanup: {exc}")
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    print_table(result, args.compare)
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
