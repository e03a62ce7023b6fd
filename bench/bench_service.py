"""Benchmark of the running service against the MongoDB-wire server (issue: service speed at 1x and 10x).

Run: ``python bench/bench_service.py [--scales 1,10] [--keep]`` (needs ``make services``:
Redis and a MongoDB-wire server on loopback). ``--scales 1`` is the quick run.

For each scale (1x = the Loop-2025-sized set: 3,678 stores, ~1.85M polls over 60 days,
real hours and zones when ``../shared/data/loop-2025`` exists; generated into
``bench-data/`` and shared with ``bench_offline.py``), in its own database and queue,
it measures, next to the offline command on the same files in the same run:

1. the offline command ``manage.py generate_report --csv-dir DIR --output FILE`` (wall
   time: the reference of the ratios);
2. ``manage.py load_data DIR`` (wall time; target <= 5x offline);
3. trigger-to-Complete over HTTP (gunicorn) with a real ``celery worker --pool=solo``
   (target <= 3x offline) and the worker's peak RSS (VmHWM; target < 4 GB);
4. that the service's CSV is byte-equal to the offline command's output (same ``now``);
5. an hourly append (one poll per store within the hour after the newest poll), in
   process with ``loop.ingest.load_sources`` (target <= 2 s), then a report with no
   ``now`` must report at the appended hour's newest poll; a second hour through the
   ``load_data`` CLI (wall time, start-up included, for information);
6. one store's polls over a 7-day window (``storage.read_store_polls``), ~50 random
   stores and windows: median, p95 and max (target: p95 <= 100 ms at 1x);
7. ``GET /stores/<id>/timeline/`` over HTTP (gunicorn), ~50 random stores, default range
   (the report week ending at the newest poll), each store once: p50, p95 and max (target:
   p95 < 100 ms at 1x); for information the same stores again (parts cached), 31 days, and
   ``GET /stores/`` (first page, a search).
8. import upload: the whole set sent through POST /imports/ to a fresh database, once as a
   Loop .zip and once as three CSV fields (streamed from disk), polled to Complete: upload
   time, load time, status rows/s, the worker's and gunicorn's peak RSS, and the report
   after it byte-equal to the offline CSV (``--skip-import`` leaves this out).
9. alerts (``bench/bench_alerts.py``; ``--skip-alerts`` leaves it out, ``--alerts-only`` runs only
   the load and this step): hourly batches over HTTP until ``GET /alerts/``'s ``evaluated_at``
   (target 0.3 s at 1x, 1.5 s at 10x), batch answer to the first byte at a loopback webhook (p95
   <= 5 s), ``GET /alerts/?state=open`` with 5,000 open alerts at 10x (p95 < 50 ms).
10. daily figures (issue 19; ``--skip-history`` leaves it out), after every scale: the same stores with
   90 days of polls (generated once into bench-data), ``bench/bench_history.py``: the build from scratch
   against the offline report (<= 3x), hourly batches (<= 2 s at 10x, evaluation and figures included),
   one store's 90 dates (p95 < 50 ms), the trend (p95 < 200 ms) and the movers (< 300 ms).

At the end a table gives each figure per scale, the growth between the smallest and
the largest scale (target <= 12x when they are 1x and 10x), PASS/FAIL per target and a
``RESULT`` json line. Exit code 1 when any target fails. Databases are dropped unless
``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from pymongo.database import Database

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

import django  # noqa: E402

from bench.bench_alerts import alert_figures  # noqa: E402
from bench.bench_offline import DEFAULT_REAL_DIR, describe_set, ensure_dataset, run_measured, service_env  # noqa: E402
from loop.datagen import LOOP_2025_STORES  # noqa: E402
from tests.support.processes import Web, Worker, start_celery_worker, start_gunicorn  # noqa: E402

SEED = 2025

TARGET_LOAD_RATIO = 5.0  # load_data / offline
TARGET_TRIGGER_RATIO = 3.0  # trigger-to-Complete / offline
TARGET_APPEND_S = 2.0  # in-process hourly append (at 1x)
TARGET_READ_MS = 100.0  # one store's 7 days, p95 (at 1x)
TARGET_TIMELINE_MS = 100.0  # GET /stores/<id>/timeline/ over HTTP, p95 (at 1x)
TARGET_WORKER_GB = 4.0  # worker peak RSS
TARGET_GROWTH = 12.0  # each figure, 10x / 1x
READ_SAMPLES = 50
REPORT_TIMEOUT_S = 45 * 60


# --- processes ---------------------------------------------------------------------------


def vm_hwm_bytes(pid: int) -> int:
    """Peak RSS of a running process (VmHWM in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def gb(n: float) -> str:
    return f"{n / 2**30:.2f} GB"


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# --- one scale ---------------------------------------------------------------------------


@dataclass
class ScaleResult:
    label: str
    figures: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, text: str, ok: bool) -> None:
        self.checks.append((text, ok))
        print(f"  -> {'PASS' if ok else 'FAIL'}  {text}", flush=True)


class Service:
    """gunicorn + a real ``celery worker --pool=solo`` on one database and queue."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.worker: Worker | None = None
        self.web: Web | None = None
        self.base = ""

    def start(self) -> None:
        import requests  # noqa: F401 - fail early if missing

        self.worker = start_celery_worker(self.env, None, 1, self.logs / "worker.log", pool="solo")
        self.web = start_gunicorn(self.env, 2, self.logs / "web.log", timeout=600)
        self.base = self.web.url
        self.web.wait_healthy()
        self.worker.wait_ready(timeout=90)

    def report(self) -> tuple[float, dict]:
        """POST /trigger_report/ (no ``now``), poll until not Running: (trigger-to-Complete s, last body)."""
        import requests

        started = time.perf_counter()
        response = requests.post(f"{self.base}/trigger_report/", json={"force": True}, timeout=60)
        response.raise_for_status()
        report_id = response.json()["report_id"]
        deadline = time.monotonic() + REPORT_TIMEOUT_S
        while True:
            body = requests.get(f"{self.base}/get_report/{report_id}/", timeout=120).json()
            if body["status"] != "Running":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"report {report_id} still Running after {REPORT_TIMEOUT_S} s")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        body["report_id"] = report_id
        return elapsed, body

    def stop(self) -> None:
        """Stop both (safe to call again)."""
        if self.web is not None:
            self.web.stop()
            self.web = None
        if self.worker is not None:
            self.worker.shutdown(timeout=20)
            self.worker = None


def write_hour(folder: Path, store_ids: list[str], after_us: int, inactive_share: float, seed: int) -> tuple[int, int]:
    """One poll per store within the hour after ``after_us`` (Loop's formats), with header-only
    hours and zones files. Returns (polls, newest poll us)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = len(store_ids)
    t_us = rng.integers(after_us + 1_000_000, after_us + 59 * 60 * 1_000_000, size=n, endpoint=True)
    inactive = rng.random(n) < inactive_share
    stamps = pd.to_datetime(t_us, unit="us").strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "store_id": store_ids,
            "status": np.where(inactive, "inactive", "active"),
            "timestamp_utc": stamps,
        }
    ).to_csv(folder / "store_status.csv", index=False)
    (folder / "menu_hours.csv").write_text("store_id,dayOfWeek,start_time_local,end_time_local\n")
    (folder / "timezones.csv").write_text("store_id,timezone_str\n")
    return n, int(t_us.max())


def run_scale(scale: float, args: argparse.Namespace, run_id: str) -> ScaleResult:
    import numpy as np
    import pandas as pd

    from loop import storage
    from loop.ingest import load_sources
    from loop.timeutil import ts_to_us, us_to_ts

    label = f"{scale:g}x"
    out = ScaleResult(label)
    fig = out.figures
    stores = max(1, round(LOOP_2025_STORES * scale))
    print(f"\n===== {label}: {stores:,} stores ({load_text()}) =====", flush=True)
    folder, generated = ensure_dataset(args.data_dir, stores, args.real_dir)
    print(
        f"data set: {folder} ({describe_set(folder)}; {f'generated in {generated:.1f} s' if generated else 'reused'})",
        flush=True,
    )
    summary = json.loads((folder / "params.json").read_text())["summary"]
    inactive_share = summary["inactive_polls"] / summary["polls"]
    fig["polls"] = summary["polls"]

    tag = f"{run_id}_{label.replace('.', '_')}"
    db_name = f"loop_bench_{tag}"
    env = service_env(
        os.environ,
        mongo_url=args.mongo_url,
        broker_url=args.broker_url,
        db_name=db_name,
        queue=f"loop_bench_{tag}",
        run_id=run_id,
    )
    env["WEBHOOK_ALLOW_PRIVATE"] = "1"  # step 9's receiver is on loopback
    logs = args.data_dir / f"bench-service-{run_id}" / label
    logs.mkdir(parents=True, exist_ok=True)
    db = storage.get_db(db_name, args.mongo_url)
    service = Service(env, logs)
    try:
        if args.alerts_only:
            alerts_only(folder, env, db, service, summary, out, args, scale)
            return out

        # 1. the offline command: the reference
        offline_csv = logs / "offline.csv"
        run = run_measured(
            [sys.executable, "manage.py", "generate_report", "--csv-dir", str(folder), "--output", str(offline_csv)],
            env,
        )
        if run.returncode or not offline_csv.is_file():
            raise RuntimeError(f"offline command failed:\n{run.stderr[-3000:]}")
        now_match = re.search(r"now=(\S+),", run.stderr)
        if now_match is None:
            raise RuntimeError(f"offline command printed no now=:\n{run.stderr[-3000:]}")
        offline_now = pd.Timestamp(now_match.group(1))
        offline_s = fig["offline_s"] = run.seconds
        fig["offline_rss_gb"] = run.max_rss_bytes / 2**30
        print(
            f"[1] offline command: {offline_s:.2f} s wall, {gb(run.max_rss_bytes)} peak RSS "
            f"(now={offline_now.isoformat()})",
            flush=True,
        )

        if args.import_only:
            for mode in import_modes(scale, folder):
                run_import_step(mode, label, folder, env, logs, offline_csv, offline_now, out, args)
            return out

        # 2. load_data of the whole set
        run = run_measured([sys.executable, "manage.py", "load_data", str(folder)], env)
        if run.returncode:
            raise RuntimeError(f"load_data failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
        fig["load_s"] = run.seconds
        fig["load_rss_gb"] = run.max_rss_bytes / 2**30
        print("[2] load_data: " + " | ".join(run.stdout.strip().splitlines()))
        print(
            f"    load_data: {run.seconds:.2f} s wall, {gb(run.max_rss_bytes)} peak RSS, "
            f"{summary['polls'] / run.seconds:,.0f} polls/s; offline {offline_s:.2f} s; "
            f"ratio {run.seconds / offline_s:.2f}",
            flush=True,
        )
        out.check(
            f"{label} load_data / offline = {run.seconds:.2f} / {offline_s:.2f} = "
            f"{run.seconds / offline_s:.2f} (<= {TARGET_LOAD_RATIO:g})",
            run.seconds / offline_s <= TARGET_LOAD_RATIO,
        )

        # 3. trigger-to-Complete with the real worker
        service.start()
        assert service.worker is not None
        hwm_idle = vm_hwm_bytes(service.worker.proc.pid)
        trigger_s, body = service.report()
        hwm = vm_hwm_bytes(service.worker.proc.pid)
        if body["status"] != "Complete":
            raise RuntimeError(f"report failed: {body}")
        fig["trigger_s"] = trigger_s
        fig["worker_peak_gb"] = hwm / 2**30
        report_doc = storage.get_report(db, body["report_id"])
        timings = report_doc.get("timings", {}) if report_doc else {}
        print(
            f"[3] trigger-to-Complete: {trigger_s:.2f} s ({body['rows']:,} stores; worker read "
            f"{timings.get('read_s')} s, compute {timings.get('compute_s')} s, total {timings.get('total_s')} s, "
            f"{int(timings.get('polls_read', 0)):,} polls read); offline {offline_s:.2f} s; "
            f"ratio {trigger_s / offline_s:.2f}",
            flush=True,
        )
        print(
            f"    worker peak RSS (VmHWM, --pool=solo): {gb(hwm)} (after start-up: {gb(hwm_idle)}); "
            f"offline command peak RSS {gb(fig['offline_rss_gb'] * 2**30)}",
            flush=True,
        )
        out.check(
            f"{label} trigger-to-Complete / offline = {trigger_s:.2f} / {offline_s:.2f} = "
            f"{trigger_s / offline_s:.2f} (<= {TARGET_TRIGGER_RATIO:g})",
            trigger_s / offline_s <= TARGET_TRIGGER_RATIO,
        )
        out.check(f"{label} worker peak RSS = {gb(hwm)} (< {TARGET_WORKER_GB:g} GB)", hwm < TARGET_WORKER_GB * 2**30)

        # 4. byte-equal to the offline CSV, same now
        service_now = pd.Timestamp(body["now"])
        same_now = service_now == offline_now
        equal = body["csv_data"] == offline_csv.read_text(encoding="utf-8")
        print(
            f"[4] service now={service_now.isoformat()}, offline now={offline_now.isoformat()}; "
            f"CSV {len(body['csv_data']):,} bytes",
            flush=True,
        )
        out.check(f"{label} service CSV byte-equal to the offline CSV at the same now", same_now and equal)

        # where the worker's read goes: its phases, in process, for information
        phases = {}
        for name, call in (
            (
                "bare week read (scan_polls)",
                lambda: storage.scan_polls(db, service_now - pd.Timedelta(days=7), service_now),
            ),
            ("week_polls", lambda: storage.week_polls(db, service_now)),
            ("read_hours", lambda: storage.read_hours(db)),
            ("read_zones", lambda: storage.read_zones(db)),
            ("store_ids_polled_through", lambda: storage.store_ids_polled_through(db, service_now)),
        ):
            started = time.perf_counter()
            value = call()
            phases[name] = (time.perf_counter() - started, len(value) if hasattr(value, "__len__") else value)
        fig["week_read_s"] = phases["bare week read (scan_polls)"][0]
        fig["hours_read_s"] = phases["read_hours"][0]
        print(
            "    (info) the report's reads in process: "
            + ", ".join(f"{name} {sec:.2f} s ({n:,} rows)" for name, (sec, n) in phases.items()),
            flush=True,
        )

        # 6. (before the appends: over the loaded set) one store's 7 days
        _, ids, _ = storage.read_catalog(db)
        heads_n = storage.stored_day_counts(db)
        days = sorted(heads_n)
        t_lo = ts_to_us(pd.Timestamp(days[0], tz="UTC"))
        loaded_newest = storage.newest_poll_time(db)
        if loaded_newest is None:
            raise RuntimeError("no polls stored after the load")
        t_hi = ts_to_us(loaded_newest)
        week_us = 7 * 86_400 * 1_000_000
        rng = np.random.default_rng(SEED)
        sample = rng.choice(len(ids), size=min(READ_SAMPLES + 1, len(ids)), replace=False)
        starts = rng.integers(t_lo, max(t_lo + 1, t_hi - week_us), size=len(sample))
        storage.read_store_polls(db, str(ids[sample[0]]), us_to_ts(starts[0]), us_to_ts(starts[0] + week_us))
        read_ms, read_polls = [], 0
        for i, start_us in zip(sample[1:], starts[1:], strict=True):
            t0 = time.perf_counter()
            frame = storage.read_store_polls(db, str(ids[i]), us_to_ts(start_us), us_to_ts(start_us + week_us))
            read_ms.append((time.perf_counter() - t0) * 1000)
            read_polls += len(frame)
        heads_ms = []
        for _ in range(5):
            t0 = time.perf_counter()
            storage.stored_day_counts(db)
            heads_ms.append((time.perf_counter() - t0) * 1000)
        arr = np.array(read_ms)
        fig["read_median_ms"] = float(np.median(arr))
        fig["read_p95_ms"] = float(np.percentile(arr, 95))
        fig["read_max_ms"] = float(arr.max())
        print(
            f"[6] one store's 7 days (read_store_polls, in process, {len(arr)} random stores and windows, "
            f"{read_polls / len(arr):.0f} polls each on average, after 1 untimed warm-up read): "
            f"median {fig['read_median_ms']:.1f} ms, p95 {fig['read_p95_ms']:.1f} ms, "
            f"max {fig['read_max_ms']:.1f} ms",
            flush=True,
        )
        fig["heads_read_ms"] = float(np.median(heads_ms))
        print(
            f"    (info) reading all {len(days)} day heads at once (storage.stored_day_counts, for ops; a "
            f"store's read looks up only its days' heads, by _id) takes {fig['heads_read_ms']:.1f} ms (median of 5)",
            flush=True,
        )
        if scale == 1:
            out.check(
                f"{label} one store's 7 days p95 = {fig['read_p95_ms']:.1f} ms (<= {TARGET_READ_MS:g} ms; "
                f"judged on p95, max {fig['read_max_ms']:.1f} ms)",
                fig["read_p95_ms"] <= TARGET_READ_MS,
            )

        # 7. the timeline endpoint over HTTP (still over the loaded set)
        timeline_figures(service.base, [str(ids[i]) for i in sample], loaded_newest, fig)
        if scale == 1:
            out.check(
                f"{label} GET /stores/<id>/timeline/ p95 = {fig['timeline_p95_ms']:.1f} ms "
                f"(< {TARGET_TIMELINE_MS:g} ms; max {fig['timeline_max_ms']:.1f} ms)",
                fig["timeline_p95_ms"] < TARGET_TIMELINE_MS,
            )

        # 5. hourly appends
        id_list = [str(s) for s in ids]
        hours_before = len(storage.read_hours(db))
        zones_before = len(storage.read_zones(db))
        newest_us = t_hi
        hour1 = logs / "hour1"
        n1, newest1 = write_hour(hour1, id_list, newest_us, inactive_share, SEED + 1)
        started = time.perf_counter()
        stats = load_sources(hour1, db)
        append_s = fig["append_s"] = time.perf_counter() - started
        print(
            f"[5] hourly append in process (load_sources): {n1:,} polls ({inactive_share:.0%} inactive) in "
            f"{append_s:.3f} s; {stats.polls_inserted:,} inserted, {stats.polls_duplicates} duplicates; "
            f"offline {offline_s:.2f} s",
            flush=True,
        )
        if scale == 1:
            out.check(
                f"{label} hourly append in process = {append_s:.3f} s (<= {TARGET_APPEND_S:g} s)",
                append_s <= TARGET_APPEND_S,
            )
        hours_after = len(storage.read_hours(db))
        zones_after = len(storage.read_zones(db))
        out.check(
            f"{label} header-only hours/zones files keep the stored rows "
            f"(hours {hours_before:,} -> {hours_after:,}, zones {zones_before:,} -> {zones_after:,})",
            hours_before == hours_after and zones_before == zones_after,
        )
        out.check(
            f"{label} append inserted every new poll ({stats.polls_inserted:,} of {n1:,})", stats.polls_inserted == n1
        )
        report1_s, body = service.report()
        now1 = pd.Timestamp(body["now"]) if body.get("now") else None
        print(f"    report after the append: {body['status']} in {report1_s:.2f} s, now={now1}", flush=True)
        out.check(
            f"{label} report after the append sees the new now ({us_to_ts(newest1).isoformat()})",
            body["status"] == "Complete" and now1 == us_to_ts(newest1),
        )

        hour2 = logs / "hour2"
        n2, newest2 = write_hour(hour2, id_list, newest1, inactive_share, SEED + 2)
        run = run_measured([sys.executable, "manage.py", "load_data", str(hour2)], env)
        if run.returncode:
            raise RuntimeError(f"load_data of the second hour failed:\n{run.stderr[-3000:]}")
        fig["append_cli_s"] = run.seconds
        inner = re.search(r"done in ([\d.]+) s", run.stdout)
        print(
            f"    second hour through the CLI (manage.py load_data, start-up included, for information): "
            f"{n2:,} polls in {run.seconds:.2f} s wall ({inner.group(1) if inner else '?'} s inside load_sources)",
            flush=True,
        )
        report2_s, body = service.report()
        now2 = pd.Timestamp(body["now"]) if body.get("now") else None
        out.check(
            f"{label} report after the CLI append sees the new now ({us_to_ts(newest2).isoformat()})",
            body["status"] == "Complete" and now2 == us_to_ts(newest2),
        )
        # A third hour over HTTP, as the pollers will send it (POST /store_status/, CSV body).
        import requests

        hour3 = logs / "hour3"
        n3, newest3 = write_hour(hour3, id_list, newest2, inactive_share, SEED + 3)
        body3 = (hour3 / "store_status.csv").read_bytes()
        started = time.perf_counter()
        response = requests.post(
            f"{service.base}/store_status/", data=body3, headers={"Content-Type": "text/csv"}, timeout=300
        )
        fig["append_http_s"] = time.perf_counter() - started
        answer = response.json()
        fig["append_http_polls_per_s"] = n3 / fig["append_http_s"]
        fig["load_polls_per_s"] = fig["polls"] / fig["load_s"]
        print(
            f"    third hour over HTTP (POST /store_status/, {len(body3) / 1e6:.2f} MB CSV): {response.status_code} "
            f"{answer.get('inserted')} inserted in {fig['append_http_s']:.2f} s = "
            f"{fig['append_http_polls_per_s']:,.0f} polls/s (load_data of the whole set: "
            f"{fig['load_polls_per_s']:,.0f} polls/s)",
            flush=True,
        )
        out.check(f"{label} POST /store_status/ stored the hour ({n3:,} polls)", answer.get("inserted") == n3)
        report3_s, body = service.report()
        now3 = pd.Timestamp(body["now"]) if body.get("now") else None
        out.check(
            f"{label} report after the HTTP append sees the new now ({us_to_ts(newest3).isoformat()})",
            body["status"] == "Complete" and now3 == us_to_ts(newest3),
        )
        hwm = vm_hwm_bytes(service.worker.proc.pid)
        fig["worker_peak_gb_end"] = hwm / 2**30
        print(f"    worker peak RSS after 4 reports: {gb(hwm)}", flush=True)

        # 9. alerts, on the same service and data
        if not args.skip_alerts:
            alert_figures(service.base, db, id_list, scale, args.alert_batches, out)
        service.stop()

        # 8. the whole set uploaded over HTTP (POST /imports/), as a Loop .zip and as three CSVs
        if not args.skip_import:
            for mode in import_modes(scale, folder):
                run_import_step(mode, label, folder, env, logs, offline_csv, offline_now, out, args)
        return out
    finally:
        service.stop()
        if not args.keep:
            db.client.drop_database(db_name)
            print(f"dropped database {db_name}", flush=True)
        else:
            print(f"kept database {db_name}", flush=True)


def alerts_only(
    folder: Path,
    env: dict[str, str],
    db: Database,
    service: Service,
    summary: dict,
    out: ScaleResult,
    args: argparse.Namespace,
    scale: float,
) -> None:
    """``--alerts-only``: load the set (no offline reference, no ratio), start the service, step 9."""
    from loop import storage

    run = run_measured([sys.executable, "manage.py", "load_data", str(folder)], env)
    if run.returncode:
        raise RuntimeError(f"load_data failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    out.figures["load_s"] = run.seconds
    print(f"[2] load_data: {run.seconds:.2f} s wall ({summary['polls']:,} polls)", flush=True)
    service.start()
    _, ids, _ = storage.read_catalog(db)
    alert_figures(service.base, db, [str(s) for s in ids], scale, args.alert_batches, out)


def timeline_figures(base: str, store_ids: list[str], newest: pd.Timestamp, fig: dict[str, float]) -> None:
    """Step 7: client-side wall time of GET /stores/<id>/timeline/ (and, for information, of GET /stores/)."""
    from urllib.parse import quote

    import numpy as np
    import pandas as pd
    import requests

    def timed(url: str, params: dict[str, str] | None = None) -> tuple[float, dict]:
        t0 = time.perf_counter()
        response = requests.get(url, params=params, timeout=60)
        ms = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} {params}: {response.status_code} {response.text[:300]}")
        return ms, response.json()

    urls = [f"{base}/stores/{quote(store_id, safe='')}/timeline/" for store_id in store_ids]
    timed(urls[0])  # warm-up: each gunicorn worker's first request imports and connects
    timed(urls[0])
    week = [timed(url) for url in urls[1:]]
    ms = np.array([m for m, _ in week])
    segments = np.mean([len(body["segments"]) for _, body in week])
    fig["timeline_p50_ms"] = float(np.median(ms))
    fig["timeline_p95_ms"] = float(np.percentile(ms, 95))
    fig["timeline_max_ms"] = float(ms.max())
    # The same stores again: each gunicorn worker now holds their parts (packed.PartCache), as for a
    # dashboard that refreshes its stores.
    warm = np.array([timed(url)[0] for url in urls[1:]])
    fig["timeline_warm_p50_ms"] = float(np.median(warm))
    fig["timeline_warm_p95_ms"] = float(np.percentile(warm, 95))
    end = newest
    month = {"from": (end - pd.Timedelta(days=31)).isoformat(), "to": end.isoformat()}
    long_ms = np.array([timed(url, month)[0] for url in urls[1:21]])
    fig["timeline_31d_p95_ms"] = float(np.percentile(long_ms, 95))
    list_ms = [timed(f"{base}/stores/")[0] for _ in range(5)] + [
        timed(f"{base}/stores/", {"search": store_ids[0][:4], "page_size": "100"})[0] for _ in range(5)
    ]
    fig["stores_list_ms"] = float(np.median(list_ms))
    print(
        f"[7] GET /stores/<id>/timeline/ over HTTP ({len(ms)} random stores, default range = the report week, "
        f"{segments:.0f} segments each on average, after 2 untimed warm-up requests): "
        f"p50 {fig['timeline_p50_ms']:.1f} ms, p95 {fig['timeline_p95_ms']:.1f} ms, "
        f"max {fig['timeline_max_ms']:.1f} ms; "
        f"(info) the same stores again p50 {fig['timeline_warm_p50_ms']:.1f} ms, p95 "
        f"{fig['timeline_warm_p95_ms']:.1f} ms; 31 days p95 {fig['timeline_31d_p95_ms']:.1f} ms "
        f"({len(long_ms)} stores); "
        f"GET /stores/ median {fig['stores_list_ms']:.1f} ms",
        flush=True,
    )


def import_modes(scale: float, folder: Path) -> tuple[str, ...]:
    """Step 8's uploads: the zip and the CSVs, leaving out the CSVs when they exceed the default
    IMPORT_MAX_UPLOAD_BYTES (512 MiB; the 10x set's CSVs are ~1.4 GB, its zip ~0.5 GB)."""
    csv_bytes = sum(path.stat().st_size for path in folder.glob("*.csv"))
    modes = ("zip", "csv") if csv_bytes < 500 * 2**20 else ("zip",)
    if len(modes) == 1:
        print(f"[8] {scale:g}x: the CSVs ({csv_bytes / 1e9:.2f} GB) exceed the upload limit: zip only", flush=True)
    return modes


def gunicorn_peak_bytes(web: Web) -> int:
    """The largest peak RSS among gunicorn's worker processes (the ones that read upload bodies)."""
    children = Path(f"/proc/{web.proc.pid}/task/{web.proc.pid}/children").read_text().split()
    return max((vm_hwm_bytes(int(pid)) for pid in children), default=0)


def run_import_step(
    mode: str,
    label: str,
    folder: Path,
    env: dict[str, str],
    logs: Path,
    offline_csv: Path,
    offline_now: object,
    out: ScaleResult,
    args: argparse.Namespace,
) -> None:
    """Upload the whole set to a fresh database through POST /imports/, wait for Complete, compare the report."""
    import pandas as pd
    import requests

    from loop import storage
    from tests.support.uploads import csv_parts, post_upload, zip_folder

    fig = out.figures
    db_name = f"{env['MONGO_DB']}_import_{mode}"
    import_env = {**env, "MONGO_DB": db_name, "CELERY_QUEUE": f"{env['CELERY_QUEUE']}_import_{mode}"}
    mode_logs = logs / f"import-{mode}"
    mode_logs.mkdir(exist_ok=True)
    if mode == "zip":
        started = time.perf_counter()
        archive = zip_folder(folder, logs / "loop-export.zip")
        parts = [("archive", archive.name, archive)]
        print(
            f"[8] import upload (zip): zipped the set to {archive.stat().st_size / 1e6:.1f} MB in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
    else:
        parts = csv_parts(folder)
    upload_mb = sum(path.stat().st_size for _, _, path in parts) / 1e6
    service = Service(import_env, mode_logs)
    try:
        service.start()
        assert service.worker is not None and service.web is not None
        started = time.perf_counter()
        response = post_upload(service.base, parts, timeout=1800)
        upload_s = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"POST /imports/ answered {response.status_code}: {response.text[:500]}")
        import_id = response.json()["import_id"]
        polls, rows_seen = 0, set()
        deadline = time.monotonic() + REPORT_TIMEOUT_S
        while True:
            body = requests.get(f"{service.base}/imports/{import_id}/", timeout=120).json()
            polls += 1
            rows_seen.add(body["progress"]["rows"])
            if body["status"] != "Running":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"import {import_id} still Running after {REPORT_TIMEOUT_S} s")
            time.sleep(0.2)
        load_s = time.perf_counter() - started - upload_s
        worker_hwm = vm_hwm_bytes(service.worker.proc.pid)
        web_hwm = gunicorn_peak_bytes(service.web)
        if body["status"] != "Complete":
            raise RuntimeError(f"import failed: {body}")
        summary = body["summary"]
        fig[f"import_{mode}_upload_s"] = upload_s
        fig[f"import_{mode}_load_s"] = load_s
        fig[f"import_{mode}_polls_per_s"] = summary["status_rows_read"] / load_s
        fig[f"import_{mode}_worker_gb"] = worker_hwm / 2**30
        fig[f"import_{mode}_web_gb"] = web_hwm / 2**30
        print(
            f"[8] import upload ({mode}, {upload_mb:.1f} MB): upload {upload_s:.2f} s "
            f"({upload_mb / upload_s:.1f} MB/s) -> 202; Running -> Complete {load_s:.2f} s "
            f"({summary['status_rows_read'] / load_s:,.0f} status rows/s; loader {summary['seconds']:.2f} s; "
            f"{len(rows_seen)} distinct progress values over {polls} polls)",
            flush=True,
        )
        print("    summary: " + " | ".join(summary["lines"]), flush=True)
        import_doc = storage.get_import(storage.get_db(db_name, args.mongo_url), import_id)
        timings = import_doc.get("timings", {}) if import_doc else {}
        print(
            f"    worker: unpack (GridFS -> temp folder{', unzip' if mode == 'zip' else ''}) "
            f"{timings.get('unpack_s')} s, load {timings.get('load_s')} s, "
            f"total with cleanup {timings.get('total_s')} s",
            flush=True,
        )
        print(
            f"    worker peak RSS (VmHWM, --pool=solo): {gb(worker_hwm)}; gunicorn worker peak RSS: {gb(web_hwm)}",
            flush=True,
        )
        out.check(
            f"{label} import ({mode}) worker peak RSS = {gb(worker_hwm)} (< {TARGET_WORKER_GB:g} GB)",
            worker_hwm < TARGET_WORKER_GB * 2**30,
        )
        _, report = service.report()
        same = (
            report["status"] == "Complete"
            and pd.Timestamp(report["now"]) == offline_now
            and report["csv_data"] == offline_csv.read_text(encoding="utf-8")
        )
        out.check(f"{label} report after the {mode} import byte-equal to the offline CSV at the same now", same)
    finally:
        service.stop()
        if not args.keep:
            storage.get_db(db_name, args.mongo_url).client.drop_database(db_name)


# --- the table ---------------------------------------------------------------------------

# (key, title, unit format, growth judged against TARGET_GROWTH)
ROWS = [
    ("offline_s", "offline command (reference)", "{:.2f} s", False),
    ("load_s", "load_data whole set (CLI)", "{:.2f} s", True),
    ("trigger_s", "trigger-to-Complete (HTTP + worker)", "{:.2f} s", True),
    ("worker_peak_gb", "worker peak RSS (first report)", "{:.2f} GB", True),
    ("append_s", "hourly append in process", "{:.3f} s", True),
    ("append_cli_s", "hourly append, CLI wall (info)", "{:.2f} s", False),
    ("append_http_s", "hourly append over HTTP (info)", "{:.2f} s", False),
    ("append_http_polls_per_s", "  polls/s over HTTP (info)", "{:,.0f}", False),
    ("load_polls_per_s", "  polls/s of load_data (info)", "{:,.0f}", False),
    ("import_zip_upload_s", "import upload: zip upload (info)", "{:.2f} s", False),
    ("import_zip_load_s", "import upload: zip load (info)", "{:.2f} s", False),
    ("import_zip_polls_per_s", "  status rows/s (info)", "{:,.0f}", False),
    ("import_zip_worker_gb", "  worker peak RSS (info)", "{:.2f} GB", False),
    ("import_zip_web_gb", "  gunicorn worker peak RSS (info)", "{:.2f} GB", False),
    ("import_csv_upload_s", "import upload: CSVs upload (info)", "{:.2f} s", False),
    ("import_csv_load_s", "import upload: CSVs load (info)", "{:.2f} s", False),
    ("import_csv_polls_per_s", "  status rows/s (info)", "{:,.0f}", False),
    ("import_csv_worker_gb", "  worker peak RSS (info)", "{:.2f} GB", False),
    ("import_csv_web_gb", "  gunicorn worker peak RSS (info)", "{:.2f} GB", False),
    ("read_median_ms", "store 7-day read median", "{:.1f} ms", False),
    ("read_p95_ms", "store 7-day read p95", "{:.1f} ms", True),
    ("read_max_ms", "store 7-day read max", "{:.1f} ms", False),
    ("heads_read_ms", "all day heads at once (info)", "{:.1f} ms", False),
    ("timeline_p50_ms", "timeline over HTTP p50", "{:.1f} ms", False),
    ("timeline_p95_ms", "timeline over HTTP p95", "{:.1f} ms", True),
    ("timeline_max_ms", "timeline over HTTP max", "{:.1f} ms", False),
    ("timeline_warm_p50_ms", "timeline again, p50 (info)", "{:.1f} ms", False),
    ("timeline_warm_p95_ms", "timeline again, p95 (info)", "{:.1f} ms", False),
    ("timeline_31d_p95_ms", "timeline 31 days p95 (info)", "{:.1f} ms", False),
    ("stores_list_ms", "GET /stores/ median (info)", "{:.1f} ms", False),
    ("alert_post_s", "alerts: batch POST median (info)", "{:.2f} s", False),
    ("alert_evaluated_p50_s", "alerts: send -> evaluated_at median", "{:.2f} s", False),
    ("alert_evaluated_max_s", "alerts: send -> evaluated_at max", "{:.2f} s", False),
    ("alert_evaluation_p50_s", "alerts: evaluation's own s, median", "{:.3f} s", False),
    ("alert_delivery_p50_s", "alerts: answer -> webhook p50", "{:.2f} s", False),
    ("alert_delivery_p95_s", "alerts: answer -> webhook p95", "{:.2f} s", False),
    ("alert_sent_delivery_p95_s", "alerts: send -> webhook p95 (info)", "{:.2f} s", False),
    ("alert_mass_evaluation_s_1", "alerts: evaluation opening many (info)", "{:.3f} s", False),
    ("alert_mass_evaluated_s_2", "alerts: many open, send -> evaluated", "{:.2f} s", False),
    ("alert_open", "alerts: open for the list", "{:,.0f}", False),
    ("alert_recover_evaluation_s", "alerts: evaluation resolving them (info)", "{:.3f} s", False),
    ("alert_list_p50_ms", "alerts: GET ?state=open p50", "{:.1f} ms", False),
    ("alert_list_p95_ms", "alerts: GET ?state=open p95", "{:.1f} ms", False),
    ("week_read_s", "bare week read (info)", "{:.2f} s", False),
    ("hours_read_s", "read_hours in process (info)", "{:.2f} s", False),
]


def print_table(results: list[ScaleResult]) -> list[tuple[str, bool]]:
    checks: list[tuple[str, bool]] = []
    labels = [r.label for r in results]
    growth = len(results) >= 2
    head = f"{'figure':<38}" + "".join(f"{lb:>12}" for lb in labels)
    if growth:
        head += f"{labels[-1] + '/' + labels[0]:>12}  target"
    print("\n" + head)
    ratios = {
        "load_s": ("x offline", TARGET_LOAD_RATIO),
        "trigger_s": ("x offline", TARGET_TRIGGER_RATIO),
    }
    for key, title, fmt, judged in ROWS:
        if not all(key in r.figures for r in results):
            continue
        line = f"{title:<38}" + "".join(f"{fmt.format(r.figures[key]):>12}" for r in results)
        if growth:
            g = results[-1].figures[key] / results[0].figures[key] if results[0].figures[key] else float("inf")
            line += f"{g:>11.2f}x"
            if judged:
                ok = g <= TARGET_GROWTH
                line += f"  <= {TARGET_GROWTH:g}x {'PASS' if ok else 'FAIL'}"
                checks.append((f"{title}: {labels[-1]}/{labels[0]} = {g:.2f} (<= {TARGET_GROWTH:g})", ok))
        print(line)
        if key in ratios and all("offline_s" in r.figures for r in results):
            name, target = ratios[key]
            vals = [r.figures[key] / r.figures["offline_s"] for r in results]
            ok_all = all(v <= target for v in vals)
            print(
                f"{'  ratio to offline':<38}"
                + "".join(f"{v:>11.2f}x" for v in vals)
                + f"{'':>12}  <= {target:g}x {'PASS' if ok_all else 'FAIL'}"
            )
    return checks


HISTORY_DAYS = 90


def history_step(scale: float, args: argparse.Namespace) -> list[tuple[str, bool]]:
    """10. Issue 19's daily figures on the set with HISTORY_DAYS days of polls (generated once, like the
    others): ``bench/bench_history.py``'s build from scratch against the offline report, hourly batches,
    one store's 90 dates, the trend and the movers, in its own database; a check for each PASS or FAIL it
    prints."""
    label = f"{scale:g}x"
    stores = max(1, round(LOOP_2025_STORES * scale))
    folder, generated = ensure_dataset(args.data_dir, stores, args.real_dir, days=HISTORY_DAYS)
    print(f"\n===== {label}: daily figures, {HISTORY_DAYS} days of polls ({folder}) =====", flush=True)
    cmd = [sys.executable, "bench/bench_history.py", "--scale", str(max(1, round(scale))), "--data", str(folder)]
    cmd += ["--batches", str(args.history_batches), "--mongo-url", args.mongo_url]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    table = run.stdout[run.stdout.find("== daily figures") :] if "== daily figures" in run.stdout else ""
    print(table or run.stderr[-3000:], flush=True)
    checks = [
        (f"{label} daily figures ({HISTORY_DAYS} days): {line.split('  ')[0].strip()}", "PASS" in line)
        for line in table.splitlines()
        if "PASS" in line or "FAIL" in line
    ]
    return checks if run.returncode == 0 and checks else [*checks, (f"{label} daily figures ran", False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10", help="comma-separated multiples of the 3,678 stores (1,10)")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    parser.add_argument("--real-dir", type=Path, default=DEFAULT_REAL_DIR)
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--broker-url", default=os.environ.get("IT_BROKER_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases afterwards")
    parser.add_argument("--skip-import", action="store_true", help="leave out step 8 (the set over POST /imports/)")
    parser.add_argument(
        "--import-only", action="store_true", help="only steps 1 and 8 (the offline reference, imports)"
    )
    parser.add_argument("--skip-alerts", action="store_true", help="leave out step 9 (alerts)")
    parser.add_argument("--skip-history", action="store_true", help="leave out step 10 (daily figures, 90 days)")
    parser.add_argument("--history-batches", type=int, default=8, help="step 10's hourly batches (8)")
    parser.add_argument("--alerts-only", action="store_true", help="only load_data and step 9 (alerts)")
    parser.add_argument("--alert-batches", type=int, default=8, help="step 9's measured batches (8)")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",") if s.strip()]

    run_id = uuid.uuid4().hex[:8]
    # The in-process phases (append, reads) use storage with these settings.
    os.environ.update(MONGO_URL=args.mongo_url, MONGO_DB=f"loop_bench_{run_id}", CELERY_BROKER_URL=args.broker_url)
    django.setup()
    from loop import storage

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"start: {load_text()}")
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    server = storage.get_client(args.mongo_url).server_info()
    print(
        f"server: {args.mongo_url} version {server.get('version')}"
        f"{' (FerretDB ' + server['ferretdbVersion'] + ')' if 'ferretdbVersion' in server else ''}; "
        f"run {run_id}",
        flush=True,
    )

    results: list[ScaleResult] = []
    failed: list[str] = []
    for scale in scales:
        try:
            results.append(run_scale(scale, args, run_id))
        except Exception as exc:  # report it, and still print what the other scales measured
            import traceback

            traceback.print_exc()
            failed.append(f"{scale:g}x: {type(exc).__name__}: {exc}"[:500])

    checks = [c for r in results for c in r.checks]
    if results:
        checks += print_table(results)
    checks += [(f"scale {f} ran to the end", False) for f in failed]
    if not args.skip_history:
        for scale in scales:
            checks += history_step(scale, args)
    print("\ntargets:")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    print(f"end: {load_text()}")
    print(
        "RESULT "
        + json.dumps(
            {
                "run": run_id,
                "scales": {r.label: {k: round(v, 4) for k, v in r.figures.items()} for r in results},
                "checks": {text: ok for text, ok in checks},
            }
        )
    )
    return 0 if checks and all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
