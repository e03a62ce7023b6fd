"""Benchmark of the offline report command against the pandas floor (issue: speed and memory).

Run: ``python bench/bench_offline.py [--skip-10x] [--scale X] [--repeat N] [--floor-10x] [--with-30x [--onepass-30x]]
[--baseline-ref REF]``.

It generates (into ``bench-data/``, reused when the parameters match) a Loop-2025-sized
data set (3,678 stores, about 1.85M polls over 60 days; real hours and zones when
``../shared/data/loop-2025`` exists) and a 10x one, then prints, from the same run:
the floor (pandas reading store_status.csv and parsing its timestamps, nothing else),
the wall time and peak RSS of ``manage.py generate_report --csv-dir DIR --output FILE``,
the same for 10x, and the targets with PASS/FAIL. Exit code 1 when a target fails.

Issue 10 (same run, 1x set, in process on frames read once): the engine's Loop report
and its extended report (best of 5 alternating runs each; target: extended <= 1.5x Loop),
the offline command with ``--format extended`` beside the Loop one, and ``store_timeline``
(the pure part of the timeline endpoint) over the report week for 50 random stores
(median / p95 / max; target: max < 100 ms).

Issue 20 (same run): the 10x set also in store chunks (``--max-memory-mb 1024``), its report compared
byte for byte with the one-pass one; with ``--with-30x`` a 30x set in store chunks (default budget;
target: peak RSS <= 1.5 GB), with ``--onepass-30x`` also in one pass (bytes compared); the 1x one-pass
command of ``--baseline-ref`` (default main, unpacked under bench-data/) and of this tree, alternating
(target: no more than 10% slower, same bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loop.datagen import LOOP_2025_STORES, STATUS_FILE, generate_dataset  # noqa: E402

# ../shared/data/loop-2025 next to the checkout (or next to a parent folder: a worktree under ../wt/).
DEFAULT_REAL_DIR = next(
    (p / "shared" / "data" / "loop-2025" for p in REPO.parents if (p / "shared" / "data" / "loop-2025").is_dir()),
    REPO.parent / "shared" / "data" / "loop-2025",
)
DAYS = 60
SEED = 2025

# The floor, run as is in a fresh interpreter (argv[1] = store_status.csv). Only the
# read and the parse are timed: interpreter start and the pandas import are not.
FLOOR_CODE = """\
import sys, time
import pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype=str)
ts = pd.to_datetime(df["timestamp_utc"].str.removesuffix(" UTC"), format="ISO8601", utc=True)
print(time.perf_counter() - t0, len(ts))
"""

TARGET_FLOOR_RATIO = 1.2
TARGET_RSS_1X_GB = 1.5
TARGET_SCALING = 12.0
TARGET_RSS_10X_GB = 8.0
TARGET_EXTENDED_RATIO = 1.5
TARGET_TIMELINE_MS = 100.0
TARGET_BEFORE_AFTER = 1.10  # issue 20: 1x one pass no more than 10% slower than the baseline
TARGET_RSS_30X_GB = 1.5  # issue 20: the 30x set in store chunks
CHUNKED_10X_MB = 1024  # the 10x set in store chunks: a budget that cuts it in ranges
TIMELINE_STORES = 50
ENGINE_RUNS = 5
TIMELINE_RUNS = 3


@dataclass
class Run:
    seconds: float
    max_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> Run:
    """Run cmd as a child; wall time and the child's own peak RSS (os.wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Read both pipes fully before reaping, without deadlocking on either.
    out, err = _drain(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    return Run(seconds, usage.ru_maxrss * 1024, proc.returncode, out, err)  # ru_maxrss is KiB on Linux


def _drain(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    chunks: dict[str, bytes] = {}

    def read(name: str, stream: object) -> None:
        chunks[name] = stream.read()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=read, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return (chunks["out"].decode(errors="replace"), chunks["err"].decode(errors="replace"))


def service_env(
    base: Mapping[str, str], *, mongo_url: str, broker_url: str, db_name: str, queue: str, run_id: str
) -> dict[str, str]:
    """The settings of a benchmarked service (DEBUG off, its own database and queue)."""
    return {
        **base,
        "PYTHONPATH": str(REPO),
        "MONGO_URL": mongo_url,
        "MONGO_DB": db_name,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_QUEUE": queue,
        "DEBUG": "0",
        "SECRET_KEY": f"bench-{run_id}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }


def ensure_dataset(base: Path, stores: int, real_dir: Path | None, days: int = DAYS) -> tuple[Path, float | None]:
    """Generate the set unless bench-data already holds one with the same parameters.
    Returns the folder and the generation time (None when reused)."""
    use_real = real_dir is not None and real_dir.is_dir()
    params = {
        "stores": stores,
        "days": days,
        "seed": SEED,
        "real_dir": str(real_dir) if use_real else None,
        # A changed generator must not reuse an old set.
        "generator": hashlib.sha256((REPO / "loop" / "datagen.py").read_bytes()).hexdigest()[:16],
    }
    folder = base / f"stores{stores}-days{days}-seed{SEED}-{'real' if use_real else 'synthetic'}"
    marker = folder / "params.json"
    if marker.is_file() and json.loads(marker.read_text()).get("params") == params:
        return folder, None
    marker.unlink(missing_ok=True)  # written last: a half-written set is never reused
    summary = generate_dataset(folder, stores=stores, days=days, seed=SEED, real_dir=real_dir if use_real else None)
    marker.write_text(json.dumps({"params": params, "summary": summary.as_dict()}, indent=2))
    return folder, summary.seconds


def describe_set(folder: Path) -> str:
    s = json.loads((folder / "params.json").read_text())["summary"]
    return (
        f"{s['stores']} stores, {s['polls']:,} polls, {s['hours_rows']:,} hours rows, "
        f"hours/zones {'real' if s['hours_source'].startswith('real') else 'synthetic'}, "
        f"{s['files'][STATUS_FILE] / 1e6:.0f} MB status file"
    )


def floor(folder: Path, repeat: int) -> tuple[float, Run]:
    """Best of `repeat` fresh runs of FLOOR_CODE: (timed seconds, that run)."""
    best: tuple[float, Run] | None = None
    for _ in range(repeat):
        run = run_measured([sys.executable, "-c", FLOOR_CODE, str(folder / STATUS_FILE)])
        if run.returncode != 0:
            raise SystemExit(f"floor run failed:\n{run.stderr}")
        timed = float(run.stdout.split()[0])
        if best is None or timed < best[0]:
            best = (timed, run)
    assert best is not None
    return best


def offline(folder: Path, output: Path, repeat: int, extra: tuple[str, ...] = (), tree: Path = REPO) -> Run:
    """Best of `repeat` runs of the offline command (by wall time); the first failure wins.
    ``tree``: the checkout whose manage.py runs (the baseline's, for before/after)."""
    cmd = [sys.executable, str(tree / "manage.py"), "generate_report", "--csv-dir", str(folder.resolve())]
    cmd += ["--output", str(output.resolve()), *extra]
    best: Run | None = None
    for _ in range(repeat):
        output.unlink(missing_ok=True)
        run = run_measured(cmd, cwd=tree)
        if run.returncode != 0 or not output.is_file():
            return run
        if best is None or run.seconds < best.seconds:
            best = run
    assert best is not None
    return best


def baseline_tree(ref: str, data_dir: Path) -> tuple[Path, str]:
    """The code of git ``ref`` (e.g. main) unpacked under bench-data, for before/after runs in the same run."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    folder = data_dir / f"baseline-{sha[:12]}"
    if not (folder / "manage.py").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder, sha


def before_after(folder: Path, base: Path, data_dir: Path, repeat: int) -> tuple[Run, Run, bool]:
    """The 1x one-pass command of the baseline and of this tree, alternating, best of ``repeat`` each;
    and whether their reports are byte-equal."""
    runs: dict[str, list[Run]] = {"before": [], "after": []}
    outputs = {"before": data_dir / "report-1x-before.csv", "after": data_dir / "report-1x-after.csv"}
    for _ in range(repeat):
        for label, tree in (("before", base), ("after", REPO)):
            runs[label].append(offline(folder, outputs[label], 1, tree=tree))
    best = {label: min(found, key=lambda r: r.seconds) for label, found in runs.items()}
    same = outputs["before"].read_bytes() == outputs["after"].read_bytes()
    return best["before"], best["after"], same


def chunk_line(run: Run) -> str:
    return next((line for line in run.stderr.splitlines() if line.startswith("store chunks:")), "one pass")


def engine_figures(folder: Path, repeat: int) -> tuple[float, float, dict[int, list[float]]]:
    """(Loop report s, extended report s, {range days: timeline ms per store}) in this process, inputs read once."""
    import numpy as np
    import pandas as pd

    from loop.report_engine import compute_report
    from loop.sources.locate import locate_sources
    from loop.sources.problems import RowProblems
    from loop.sources.read import read_hours, read_status, read_zones
    from loop.timeline import store_timeline

    sources = locate_sources(folder)
    problems = RowProblems()
    polls = read_status(sources.status, problems)
    hours = read_hours(sources.hours, problems)
    zones = read_zones(sources.zones, problems)

    # Alternate Loop and extended runs so that a busy moment of the machine does not land on one side only.
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(max(ENGINE_RUNS, repeat)):
        for extended in (False, True):
            t0 = time.perf_counter()
            compute_report(polls, hours, zones, extended=extended)
            times[extended].append(time.perf_counter() - t0)
    loop_s, extended_s = min(times[False]), min(times[True])

    now = compute_report(polls.head(0), hours, zones, now=pd.Timestamp(polls["timestamp_utc"].max())).now
    if now is None:
        raise RuntimeError("the report has no now")
    rng = np.random.default_rng(SEED)
    ids = rng.choice(np.asarray(pd.unique(polls["store_id"])), size=TIMELINE_STORES, replace=False)
    zones_of = {str(sid): rows for sid, rows in zones.groupby("store_id", sort=False)}
    timeline_ms: dict[int, list[float]] = {7: [], 31: []}
    for sid in ids:
        # The endpoint reads one store's rows; selecting them is storage's part, not timed here.
        store_polls, store_hours = polls[polls["store_id"] == sid], hours[hours["store_id"] == sid]
        for days, spent in timeline_ms.items():
            runs = []
            for _ in range(TIMELINE_RUNS):  # best of a few per store, like the other figures (shared machine)
                t0 = time.perf_counter()
                store_timeline(
                    polls=store_polls,
                    hours=store_hours,
                    special_hours=None,
                    zones=zones_of.get(str(sid), zones.iloc[:0]),
                    start=now - pd.Timedelta(days=days),
                    end=now,
                )
                runs.append((time.perf_counter() - t0) * 1000)
            spent.append(min(runs))
    return loop_s, extended_s, timeline_ms


def gb(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-10x", action="store_true", help="only the 1x set")
    parser.add_argument("--scale", type=float, default=1.0, help="size of the base set, x 3,678 stores")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench-data")
    parser.add_argument(
        "--real-dir", type=Path, default=DEFAULT_REAL_DIR, help="real menu_hours.csv/timezones.csv (used when present)"
    )
    parser.add_argument("--synthetic", action="store_true", help="ignore --real-dir")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each measurement, best kept (the machine may be busy)"
    )
    parser.add_argument("--floor-10x", action="store_true", help="also time the floor on the 10x set")
    parser.add_argument(
        "--with-30x", action="store_true", help="issue 20: also a 30x set (~4.2 GB), in store chunks (default budget)"
    )
    parser.add_argument(
        "--onepass-30x", action="store_true", help="with --with-30x: also in one pass (~4.3 GB RSS), bytes compared"
    )
    parser.add_argument(
        "--baseline-ref",
        default="main",
        help="git ref whose 1x one-pass time is measured beside this tree's ('' skips)",
    )
    args = parser.parse_args(argv)
    real_dir = None if args.synthetic else args.real_dir
    base_stores = max(1, round(LOOP_2025_STORES * args.scale))

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    sets = [("1x", base_stores)] + ([] if args.skip_10x else [("10x", base_stores * 10)])
    sets += [("30x", base_stores * 30)] if args.with_30x else []
    folders: dict[str, Path] = {}
    for label, stores in sets:
        folder, gen_s = ensure_dataset(args.data_dir, stores, real_dir)
        folders[label] = folder
        how = f"generated in {gen_s:.1f} s" if gen_s is not None else "reused"
        print(
            f"data {label}: {folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder} "
            f"({describe_set(folder)}; {how})"
        )

    print("\nfloor code (fresh interpreter; only the lines between the two perf_counter calls are timed):")
    print("    " + FLOOR_CODE.replace("\n", "\n    ").rstrip())
    repeat = max(1, args.repeat)
    floors = {label: floor(folders[label], repeat) for label in folders if label == "1x" or args.floor_10x}
    for label, (floor_s, floor_run) in floors.items():
        print(
            f"floor {label}: {floor_s:.2f} s "
            f"(process: {floor_run.seconds:.2f} s wall, {gb(floor_run.max_rss_bytes)} peak RSS)"
        )
    floor_s = floors["1x"][0]

    checks: list[tuple[str, bool]] = []
    results: dict[str, Run] = {}
    for label in folders:
        if label == "30x":  # measured in store chunks below (the default budget would chunk it anyway)
            continue
        output = args.data_dir / f"report-{label}.csv"
        run = offline(folders[label], output, repeat)
        results[label] = run
        last = run.stderr.strip().splitlines()[-1:] or [""]
        print(
            f"offline {label}: {run.seconds:.2f} s wall, {gb(run.max_rss_bytes)} peak RSS, exit {run.returncode}"
            f" | {last[0][:200]}"
        )
        if label in floors and label != "1x":
            print(f"  ({label} command / {label} floor = {run.seconds / floors[label][0]:.2f}, for information)")
        if run.returncode != 0 or not output.is_file():
            print(f"  command failed:\n{run.stderr[-3000:]}")
            checks.append((f"offline {label} exits 0 and writes the report", False))

    # Issue 20: the same sets in store chunks (10x: a budget that cuts it; 30x: the default budget chunks it).
    chunked: dict[str, Run] = {}
    for label, extra in (("10x", ("--max-memory-mb", str(CHUNKED_10X_MB))), ("30x", ())):
        if label not in folders:
            continue
        output = args.data_dir / f"report-{label}-chunked.csv"
        run = offline(folders[label], output, repeat if label == "10x" else 1, extra)
        chunked[label] = run
        print(
            f"offline {label} in store chunks ({' '.join(extra) or 'default budget'}): {run.seconds:.2f} s wall, "
            f"{gb(run.max_rss_bytes)} peak RSS, exit {run.returncode} | {chunk_line(run)}"
        )
        if run.returncode != 0:
            print(f"  command failed:\n{run.stderr[-3000:]}")
        if label in results and results[label].returncode == 0:
            same = output.read_bytes() == (args.data_dir / f"report-{label}.csv").read_bytes()
            checks.append((f"{label} chunked report == {label} one-pass report (bytes)", same))
    if "30x" in folders and args.onepass_30x:
        run = offline(folders["30x"], args.data_dir / "report-30x-onepass.csv", 1, ("--max-memory-mb", "1000000"))
        print(f"offline 30x in one pass (forced): {run.seconds:.2f} s wall, {gb(run.max_rss_bytes)} peak RSS")
        same = (args.data_dir / "report-30x-onepass.csv").read_bytes() == (
            args.data_dir / "report-30x-chunked.csv"
        ).read_bytes()
        checks.append(("30x chunked report == 30x one-pass report (bytes)", same))
    baseline: tuple[Path, str] | None = None
    if args.baseline_ref:
        try:
            baseline = baseline_tree(args.baseline_ref, args.data_dir)
        except (subprocess.CalledProcessError, OSError) as error:
            print(f"1x before/after skipped: no git ref {args.baseline_ref!r} here ({error})")
    if baseline is not None:
        base, sha = baseline
        before, after, same = before_after(folders["1x"], base, args.data_dir, max(3, repeat))
        ba_ratio = after.seconds / before.seconds
        print(
            f"1x one pass, before ({args.baseline_ref} = {sha[:10]}) / after (this tree), alternating, best of "
            f"{max(3, repeat)}: {before.seconds:.2f} s / {after.seconds:.2f} s = {ba_ratio:.2f}; peak RSS "
            f"{gb(before.max_rss_bytes)} / {gb(after.max_rss_bytes)}"
        )
        checks.append(
            (f"1x one pass after / before = {ba_ratio:.2f} (<= {TARGET_BEFORE_AFTER})", ba_ratio <= TARGET_BEFORE_AFTER)
        )
        checks.append(("1x report before == after (bytes)", same))

    loop_s, extended_s, timeline_ms = engine_figures(folders["1x"], repeat)
    extended_ratio = extended_s / loop_s
    print(
        f"engine 1x (in process, best of {max(ENGINE_RUNS, repeat)}, alternating): Loop report {loop_s:.3f} s, "
        f"extended report {extended_s:.3f} s, extended / Loop = {extended_ratio:.2f}"
    )
    output = args.data_dir / "report-1x-extended.csv"
    output.unlink(missing_ok=True)
    cmd = [sys.executable, "manage.py", "generate_report", "--csv-dir", str(folders["1x"]), "--output", str(output)]
    ext_run = run_measured([*cmd, "--format", "extended"])
    print(
        f"offline 1x --format extended: {ext_run.seconds:.2f} s wall, {gb(ext_run.max_rss_bytes)} peak RSS, "
        f"exit {ext_run.returncode} ({ext_run.seconds / results['1x'].seconds:.2f}x the Loop command, for information)"
    )
    for days, spent in timeline_ms.items():
        ordered = sorted(spent)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        what = "report week, the target" if days == 7 else "31 days, the longest range, for information"
        print(
            f"store_timeline 1x ({TIMELINE_STORES} random stores, {what}; pure part): "
            f"median {ordered[len(ordered) // 2]:.1f} ms, p95 {p95:.1f} ms, max {ordered[-1]:.1f} ms"
        )
    ordered = sorted(timeline_ms[7])

    print("\ntargets:")
    checks.append(
        (
            f"extended / Loop report (engine) = {extended_ratio:.2f} (<= {TARGET_EXTENDED_RATIO})",
            extended_ratio <= TARGET_EXTENDED_RATIO,
        )
    )
    checks.append(
        (f"store_timeline max = {ordered[-1]:.1f} ms (< {TARGET_TIMELINE_MS:.0f} ms)", ordered[-1] < TARGET_TIMELINE_MS)
    )
    checks.append(("offline 1x --format extended exits 0", ext_run.returncode == 0 and output.is_file()))
    r1 = results["1x"]
    ratio = r1.seconds / floor_s
    checks.append((f"1x command / floor = {ratio:.2f} (<= {TARGET_FLOOR_RATIO})", ratio <= TARGET_FLOOR_RATIO))
    checks.append(
        (
            f"1x peak RSS = {gb(r1.max_rss_bytes)} (<= {TARGET_RSS_1X_GB} GB)",
            r1.max_rss_bytes <= TARGET_RSS_1X_GB * 2**30,
        )
    )
    if "30x" in chunked:
        r30 = chunked["30x"]
        checks.append(
            (
                f"30x in store chunks: peak RSS = {gb(r30.max_rss_bytes)} (<= {TARGET_RSS_30X_GB} GB), exit 0",
                r30.returncode == 0 and r30.max_rss_bytes <= TARGET_RSS_30X_GB * 2**30,
            )
        )
    if "10x" in results:
        r10 = results["10x"]
        scaling = r10.seconds / r1.seconds
        checks.append((f"10x time / 1x time = {scaling:.2f} (<= {TARGET_SCALING})", scaling <= TARGET_SCALING))
        checks.append(
            (
                f"10x peak RSS = {gb(r10.max_rss_bytes)} (<= {TARGET_RSS_10X_GB} GB)",
                r10.max_rss_bytes <= TARGET_RSS_10X_GB * 2**30,
            )
        )
    for text, ok in checks:
        print(f"  {verdict(ok)}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
