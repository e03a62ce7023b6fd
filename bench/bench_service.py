"""Benchmark of the running service against the MongoDB-wire server (issue: service speed).

Run: ``python bench/bench_service.py [--scale X] [--no-verify] [--reload] [--keep]``
(needs ``make services``: Redis and a MongoDB-wire server on loopback).

On the Loop-2025-sized set (3,678 stores, ~1.85M polls over 60 days, real hours
and zones when ``../shared/data/loop-2025`` exists; generated into ``bench-data/``
and shared with ``bench_offline.py``) it prints, from one run:

* ``load_data`` wall time and throughput (status rows per second);
* trigger-to-Complete of the full report over HTTP (gunicorn) with a real
  ``celery worker``, and the worker's own breakdown (read / compute);
* the floor: a bare bulk read of the week's polls on the same server (raw BSON
  batches, no decoding), and the offline engine time on the same inputs;
* the ratio trigger-to-Complete / (floor + engine); the issue aims at <= 2.
With verification on (default) the service's CSV must equal the offline
command's output for the same ``now``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

import django  # noqa: E402

from bench.bench_offline import DEFAULT_REAL_DIR, ensure_dataset  # noqa: E402
from loop.datagen import LOOP_2025_STORES  # noqa: E402
from tests.support.processes import free_port, stop_process, wait_for_health  # noqa: E402

TARGET_RATIO = 2.0
BIN = Path(sys.executable).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the 3,678 stores")
    parser.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR)
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--broker-url", default=os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--no-verify", action="store_true", help="skip the comparison with the offline command")
    parser.add_argument("--reload", action="store_true", help="also time loading the same files again")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args(argv)

    run_id = uuid.uuid4().hex[:8]
    db_name = f"loop_bench_{run_id}"
    env = {
        **os.environ,
        "MONGO_URL": args.mongo_url,
        "MONGO_DB": db_name,
        "CELERY_BROKER_URL": args.broker_url,
        "CELERY_QUEUE": f"loop_bench_{run_id}",
        "DEBUG": "0",
        "SECRET_KEY": f"bench-{run_id}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update({k: env[k] for k in ("MONGO_URL", "MONGO_DB", "CELERY_BROKER_URL")})
    django.setup()
    import pandas as pd
    import requests

    from loop import storage
    from loop.report_engine import compute_report

    stores = round(LOOP_2025_STORES * args.scale)
    folder, generated = ensure_dataset(args.data_dir, stores, args.real_dir)
    origin = f"generated in {generated:.1f}s" if generated else "reused"
    print(f"data set: {folder} ({origin})", flush=True)
    db = storage.get_db(db_name, args.mongo_url)
    server = db.client.server_info()
    print(
        f"server: {args.mongo_url} version {server.get('version')}"
        f"{' (FerretDB ' + server['ferretdbVersion'] + ')' if 'ferretdbVersion' in server else ''}; db {db_name}"
    )

    def manage(*cmd: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "manage.py", *cmd], cwd=REPO, env=env, capture_output=True, text=True)
        return time.perf_counter() - started, proc

    logs = args.data_dir / f"bench-service-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, float | int | str | bool] = {}
    procs: list[subprocess.Popen] = []
    try:
        # 1. load_data
        load_s, proc = manage("load_data", str(folder))
        if proc.returncode:
            print(proc.stdout, proc.stderr)
            return 1
        rows = int(re.search(r"store_status\.csv: (\d+) rows read", proc.stdout).group(1))
        print(proc.stdout.strip())
        results.update(load_rows=rows, load_wall_s=round(load_s, 2), load_rows_per_s=round(rows / load_s))
        print(f"load_data: {rows:,} status rows in {load_s:.1f}s wall = {rows / load_s:,.0f} rows/s", flush=True)
        if args.reload:
            reload_s, proc = manage("load_data", str(folder))
            print(proc.stdout.strip().splitlines()[0])
            results.update(reload_wall_s=round(reload_s, 2), reload_rows_per_s=round(rows / reload_s))
            print(f"reload (all duplicates): {reload_s:.1f}s wall = {rows / reload_s:,.0f} rows/s", flush=True)

        # 2. worker + web
        port = free_port()
        worker_log = open(logs / "worker.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "myproject",
                    "worker",
                    "--loglevel=INFO",
                    "--concurrency=1",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=REPO,
                env=env,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
        )
        web_log = open(logs / "web.log", "w")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "myproject.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "--timeout",
                    "600",
                ],
                cwd=REPO,
                env=env,
                stdout=web_log,
                stderr=subprocess.STDOUT,
            )
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        wait_for_health(base, procs[-1], logs / "web.log")
        while "ready" not in (logs / "worker.log").read_text():
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not start; see " + str(logs))
            time.sleep(0.3)

        # 3. trigger -> Complete
        started = time.perf_counter()
        response = requests.post(f"{base}/trigger_report/", timeout=60)
        response.raise_for_status()
        report_id = response.json()["report_id"]
        while True:
            body = requests.get(f"{base}/get_report/{report_id}/", timeout=60).json()
            if body["status"] != "Running":
                break
            time.sleep(0.1)
        trigger_s = time.perf_counter() - started
        if body["status"] != "Complete":
            print(f"report failed: {body}")
            return 1
        doc = storage.get_report(db, report_id)
        timings = doc.get("timings", {})
        results.update(
            trigger_to_complete_s=round(trigger_s, 2),
            report_rows=body["rows"],
            worker_read_s=timings.get("read_s"),
            worker_compute_s=timings.get("compute_s"),
            polls_read=timings.get("polls_read"),
        )
        print(
            f"trigger-to-Complete: {trigger_s:.2f}s ({body['rows']} stores; worker read "
            f"{timings.get('read_s')}s, compute {timings.get('compute_s')}s, "
            f"{int(timings.get('polls_read', 0)):,} polls read)",
            flush=True,
        )

        # 4. the floor and the engine alone, on the same server and inputs
        now = storage.report_now(doc)
        week = (now - pd.Timedelta(days=7), now)
        coll = db[storage.STATUS]
        started = time.perf_counter()
        raw_bytes = sum(
            len(b)
            for b in coll.find_raw_batches(
                storage._poll_range_filter(*week), storage._POLL_PROJECTION, batch_size=storage.READ_BATCH
            )
        )
        floor_s = time.perf_counter() - started
        started = time.perf_counter()
        decoded = storage.scan_polls(db, *week)
        floor_decoded_s = time.perf_counter() - started
        polls = storage.week_polls(db, now)
        hours, zones = storage.read_hours(db), storage.read_zones(db)
        extra = [s for s in storage.store_ids_polled_through(db, now) if s not in set(polls["store_id"].unique())]
        started = time.perf_counter()
        compute_report(polls, hours, zones, now=now, extra_store_ids=extra)
        engine_s = time.perf_counter() - started
        ratio = trigger_s / (floor_s + engine_s)
        results.update(
            floor_s=round(floor_s, 2),
            floor_decoded_s=round(floor_decoded_s, 2),
            floor_mb=round(raw_bytes / 1e6, 1),
            engine_s=round(engine_s, 2),
            ratio=round(ratio, 2),
        )
        print(
            f"floor: bare bulk read of the week's polls: {floor_s:.2f}s ({raw_bytes / 1e6:.1f} MB raw BSON; "
            f"{floor_decoded_s:.2f}s with decoding, {decoded:,} polls)"
        )
        print(f"offline engine on the same inputs: {engine_s:.2f}s")
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        print(
            f"trigger-to-Complete / (floor + engine) = {trigger_s:.2f} / ({floor_s:.2f} + {engine_s:.2f}) "
            f"= {ratio:.2f}x (target <= {TARGET_RATIO}x): {verdict}",
            flush=True,
        )

        # 5. the same report offline
        ok = True
        if not args.no_verify:
            offline_s, proc = manage(
                "generate_report", "--csv-dir", str(folder), "--now", now.isoformat(), "--output", "-"
            )
            ok = proc.returncode == 0 and proc.stdout == body["csv_data"]
            results.update(offline_command_s=round(offline_s, 2), equal_to_offline=ok)
            print(f"offline command ({offline_s:.1f}s wall) output equal to the service's CSV: {ok}")
        print("RESULT " + json.dumps(results))
        return 0 if ok and verdict == "PASS" else 1
    finally:
        for proc in procs:
            stop_process(proc, timeout=20)
        if not args.keep:
            db.client.drop_database(db_name)


if __name__ == "__main__":
    sys.exit(main())
