"""Benchmark of the daily figures (issue 19's history) against the MongoDB-wire server.

Run: ``python bench/bench_history.py [--scale 1|10] [--batches 3] [--keep]`` (``make bench-history``;
needs ``make services``). On the set of ``make bench`` (bench-data/stores<N>-days60-...: 60 days of polls,
real hours and zones), in a database of its own (dropped unless ``--keep``), it prints:

1. the offline command ``generate_report --csv-dir`` on the same files (wall: the reference), before and
   again right after the build;
2. ``load_sources`` of the set (in process), then ``build_history`` from scratch (target: <= 3x offline,
   against the mean of the two offline runs around it);
3. hourly batches (one poll per store in the hour after the newest, ``ingest_polls`` in process as
   ``POST /store_status/`` runs it): the whole batch (write, alert evaluation, daily figures; target
   <= 2 s at 10x) and its daily-figures update alone, after a first batch that warms the process (not
   counted); batches alternate between the figures updated beside the alert evaluation (the default) and
   after it (``ingest.OVERLAP_FIGURES``);
4. ``get_store_history`` of 50 random stores over 90 dates: p50 / p95 / max (target < 50 ms);
5. ``get_trend`` over 90 dates, all stores and one region: p50 / p95 (target < 200 ms at 10x);
6. ``get_movers``: the first call (reads 14 dates) and the next (same data version: kept) (target < 300 ms).

Between 3 and 4, an hour appended by a load (``load_sources`` of one poll per store with header-only tables,
then ``build_after_load``, as ``load_data`` runs them): only the dates it touches are recomputed; printed
with the build from scratch beside it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--stores-sampled", type=int, default=50)
    parser.add_argument("--data", default=None, help="the set's folder (default: bench-data/stores<N>-days60-...)")
    parser.add_argument("--mongo-url", default=os.environ.get("IT_MONGO_URL", "mongodb://127.0.0.1:27017"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    stores = 3678 * args.scale
    folder = Path(args.data) if args.data else _find_set(stores)
    db_name = f"bench_history_{uuid.uuid4().hex[:8]}"
    os.environ.update({"MONGO_URL": args.mongo_url, "MONGO_DB": db_name, "CELERY_BROKER_URL": "memory://"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    import django

    django.setup()
    import numpy as np
    import pandas as pd

    from bench.bench_offline import run_measured
    from loop import storage
    from loop.embedded_worker import wait_embedded_idle
    from loop.ingest import load_sources
    from loop.services import history, ingest
    from loop.services.ingest import ingest_polls

    print(f"set: {folder} ({stores} stores); database {db_name} on {args.mongo_url}")
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        offline = run_measured(
            [sys.executable, "manage.py", "generate_report", "--csv-dir", str(folder), "--output", f"{tmp}/r.csv"]
        )
    assert offline.returncode == 0, offline.stderr
    results["offline report (CLI wall)"] = f"{offline.seconds:.2f} s"
    db = storage.get_db()
    try:
        t0 = time.perf_counter()
        load_sources(folder, db)
        results["load_sources (in process)"] = f"{time.perf_counter() - t0:.2f} s"
        built = history.build_history(db=db)
        # The offline command again right after the build: on a shared machine the load moves, so the
        # build is compared with the mean of the two runs around it.
        with tempfile.TemporaryDirectory() as tmp:
            again = run_measured(
                [sys.executable, "manage.py", "generate_report", "--csv-dir", str(folder), "--output", f"{tmp}/r.csv"]
            )
        assert again.returncode == 0, again.stderr
        around = (offline.seconds + again.seconds) / 2
        results["offline report (CLI wall)"] += f", {again.seconds:.2f} s after the build"
        ratio = built.seconds / around
        results["build_history from scratch"] = (
            f"{built.seconds:.2f} s ({built.rows:,} rows, {built.dates} dates; {ratio:.2f}x offline (the mean of "
            f"the two runs around it), {built.seconds / offline.seconds:.2f}x the first; target <= 3x: "
            f"{'PASS' if ratio <= 3 else 'FAIL'})"
        )
        results["  build phases"] = ", ".join(f"{k} {v:.2f} s" for k, v in (built.phases or {}).items())

        # Hourly batches: one poll per store in the hour after the newest.
        updates: list[float] = []
        real_update = history.update_history

        def timed_update(**kwargs: object) -> object:
            began = time.perf_counter()
            try:
                return real_update(**kwargs)  # type: ignore[arg-type]
            finally:
                if kwargs.get("fold") is False:  # the batch's own update (not the worker's)
                    updates.append(time.perf_counter() - began)

        history.update_history = timed_update  # type: ignore[assignment]
        ids = storage.read_store_catalog(db).store_ids.astype(str)
        rng = np.random.default_rng(19)
        totals = []
        overlapped: dict[bool, list[float]] = {True: [], False: []}
        updates_by_mode: dict[bool, list[float]] = {True: [], False: []}
        default = ingest.OVERLAP_FIGURES
        for k in range(args.batches + 1):
            # A first batch to warm the process (not counted: its days, tables and catalog are read cold),
            # then alternately the figures beside the alert evaluation (the default) and after it.
            ingest.OVERLAP_FIGURES = overlap = k % 2 == 1
            newest = storage.newest_poll_time(db)
            assert newest is not None
            t = newest + pd.to_timedelta(rng.integers(1, 3_600_000_000, len(ids)), unit="us")
            status = np.where(rng.random(len(ids)) < 0.9, "active", "inactive")
            stamps = t.strftime("%Y-%m-%d %H:%M:%S.%f")
            rows = zip(ids, status, stamps, strict=True)
            body = "store_id,status,timestamp_utc\n" + "".join(f"{s},{st},{ts} UTC\n" for s, st, ts in rows)
            wait_embedded_idle()  # the previous batch's worker update (tiles, movers) is done
            storage.wait_for_deletions()  # and its replaced versions' parts deleted (an hour passes in real life)
            began = time.perf_counter()
            ingest_polls(csv_body=body.encode())
            if k == 0:
                results["hourly batch: the first (cold) one, not counted"] = f"{time.perf_counter() - began:.3f} s"
                updates.clear()
                continue
            totals.append(time.perf_counter() - began)
            overlapped[overlap].append(totals[-1])
            updates_by_mode[overlap].append(updates[-1])
        history.update_history = real_update
        ingest.OVERLAP_FIGURES = default
        wait_embedded_idle()  # the worker's update after the batches (tiles, movers) is not measured below
        mine = overlapped[default] or totals
        results["hourly batch: whole (write + alerts + figures), the default, median / max"] = (
            f"{statistics.median(mine):.3f} / {max(mine):.3f} s (target <= 2 s at 10x: "
            f"{'PASS' if statistics.median(mine) <= 2 else 'FAIL'}); every batch: {statistics.median(totals):.3f} / "
            f"{max(totals):.3f} s"
        )
        results["hourly batch: daily figures update, median / max"] = (
            f"{statistics.median(updates):.3f} / {max(updates):.3f} s" if updates else "not run"
        )
        results["hourly batch: figures beside / after the evaluation, medians"] = " / ".join(
            f"{statistics.median(v):.3f} s ({len(v)})" if v else "-" for v in (overlapped[True], overlapped[False])
        )
        results["  its figures update, beside / after"] = " / ".join(
            f"{statistics.median(v):.3f} s" if v else "-" for v in (updates_by_mode[True], updates_by_mode[False])
        )

        # An appended hour by a load (issue 20: the files of a later export, here one poll per store and
        # header-only tables): its dates only, against the build from scratch above.
        from bench.bench_service import write_hour
        from loop.timeutil import ts_to_us

        newest = storage.newest_poll_time(db)
        assert newest is not None
        with tempfile.TemporaryDirectory() as tmp:
            write_hour(Path(tmp), list(ids), ts_to_us(newest), 0.1, 20)
            began = time.perf_counter()
            stats = load_sources(tmp, db)
            loaded = time.perf_counter() - began
            after = history.build_after_load(
                db, tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us
            )
        assert after is not None and after.updated, "the appended hour was not an update"
        results["an appended hour by a load: load / daily figures"] = (
            f"{loaded:.2f} s / {after.seconds:.2f} s ({after.rows:,} rows recomputed; the build from scratch: "
            f"{built.seconds:.2f} s, {built.seconds / after.seconds:.1f}x longer)"
        )

        meta = history.history_state(db)
        last = pd.Timestamp(meta["last_date"]).date()
        first = last - pd.Timedelta(days=89)
        sample = random.Random(7).sample(list(ids), min(args.stores_sampled, len(ids)))
        times = []
        for store_id in sample:
            began = time.perf_counter()
            found = history.get_store_history(store_id=store_id, first=first, last=last)
            times.append((time.perf_counter() - began) * 1000)
            assert found.days
        results["store history, 90 dates: p50 / p95 / max"] = _quantiles(times, "ms", 50)

        a_region = _a_region(db)
        if a_region is None:
            results["trend, 90 dates, one region"] = "skipped: this set's stores have no regions"
        for label, region in (("all stores", None), ("one region", a_region)):
            if label == "one region" and region is None:
                continue
            times = []
            for _ in range(20):
                began = time.perf_counter()
                trend = history.get_trend(first=first, last=last, region=region)
                times.append((time.perf_counter() - began) * 1000)
            results[f"trend, 90 dates, {label}: p50 / p95 / max"] = _quantiles(times, "ms", 200) + (
                f" ({len(trend.days)} dates)"
            )

        began = time.perf_counter()
        history.get_movers(limit=20)
        cold = (time.perf_counter() - began) * 1000
        warm = []
        for _ in range(10):
            began = time.perf_counter()
            history.get_movers(limit=20)
            warm.append((time.perf_counter() - began) * 1000)
        results["movers: first call / next (kept) p50"] = (
            f"{cold:.1f} / {statistics.median(warm):.1f} ms (target < 300 ms: {'PASS' if cold < 300 else 'FAIL'})"
        )
    finally:
        if not args.keep:
            db.client.drop_database(db_name)
    width = max(len(k) for k in results)
    print(f"\n== daily figures, {args.scale}x")
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    return 0


def _quantiles(values: list[float], unit: str, target: float) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    verdict = "PASS" if p95 < target else "FAIL"
    return f"{statistics.median(ordered):.1f} / {p95:.1f} / {ordered[-1]:.1f} {unit} (p95 < {target:g}: {verdict})"


def _a_region(db: object) -> str | None:
    from loop import storage

    regions = storage.read_profiles(db).get("region")  # type: ignore[arg-type]
    found = [] if regions is None else regions.dropna().tolist()
    return found[0] if found else None


def _find_set(stores: int) -> Path:
    for base in (REPO / "bench-data", Path("/work/main/bench-data")):
        found = sorted(base.glob(f"stores{stores}-days*-seed2025-*"))
        if found:
            return found[0]
    raise SystemExit(f"no bench set of {stores} stores: run `make bench` first")


if __name__ == "__main__":
    raise SystemExit(main())
