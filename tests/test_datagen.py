"""Tests of the data generator (loop/datagen.py) and its generate_data command.

Expected values come from reading the written files back with plain Python / pandas,
never from the generator's own summary (which is itself checked against the files).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from loop.datagen import GenerationSummary, generate_dataset

REPO = Path(__file__).resolve().parents[1]
STORES, DAYS, SEED = 400, 14, 7
END = datetime(2024, 10, 14, 23, 55, 18, 727055, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
END_US = (END - EPOCH) // timedelta(microseconds=1)
DAY_US = 86_400 * 1_000_000
STATUS_LINE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12},(active|inactive),"
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d{0,5}[1-9])? UTC$"
)
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def parse_ts(text: str) -> datetime:
    # Independent of pandas: "YYYY-MM-DD HH:MM:SS[.f{1,6}] UTC"
    return datetime.fromisoformat(text.removesuffix(" UTC")).replace(tzinfo=UTC)


def epoch_us(text: str) -> int:
    """Microseconds since the epoch, exact (ints, so comparisons are cheap)."""
    return (parse_ts(text) - EPOCH) // timedelta(microseconds=1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    out = tmp_path_factory.mktemp("gen")
    return out, generate_dataset(out, stores=STORES, days=DAYS, seed=SEED)


@pytest.fixture(scope="module")
def polls(generated: tuple[Path, GenerationSummary]) -> pd.DataFrame:
    out, _ = generated
    _, rows = read_rows(out / "store_status.csv")
    df = pd.DataFrame(rows, columns=["store_id", "status", "ts"])
    df["t"] = [epoch_us(x) for x in df["ts"]]
    return df


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", stores=50, days=5, seed=3)
    b = generate_dataset(tmp_path / "b", stores=50, days=5, seed=3)
    generate_dataset(tmp_path / "c", stores=50, days=5, seed=4)
    for name in ("store_status.csv", "menu_hours.csv", "timezones.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert a.polls == b.polls


def test_exact_headers_and_line_ends(generated: tuple[Path, GenerationSummary]) -> None:
    out, _ = generated
    status = (out / "store_status.csv").read_bytes()
    hours = (out / "menu_hours.csv").read_bytes()
    zones = (out / "timezones.csv").read_bytes()
    assert status.startswith(b"store_id,status,timestamp_utc\n")
    assert hours.startswith(b"store_id,dayOfWeek,start_time_local,end_time_local\n")
    assert zones.startswith(b"store_id,timezone_str\n")
    assert b"\r" not in status + hours + zones
    # As in the real 2025 export: status ends with a newline, hours and zones do not.
    assert status.endswith(b" UTC\n")
    assert not hours.endswith(b"\n") and not zones.endswith(b"\n")


def test_status_lines_in_loop_format(generated: tuple[Path, GenerationSummary]) -> None:
    out, _ = generated
    lines = (out / "store_status.csv").read_text().splitlines()[1:]
    bad = [line for line in lines if not STATUS_LINE.match(line)]
    assert bad == []
    digits = Counter(len(m.group(3) or ".") - 1 for m in map(STATUS_LINE.match, lines))
    # Trailing zeros are dropped as in the real export: mostly 6 digits, some fewer.
    assert digits[6] > 0.8 * len(lines)
    assert digits[5] > 0


def test_poll_times_span_and_end(polls: pd.DataFrame) -> None:
    assert polls["t"].max() == END_US  # `now` of the data set is exactly `end`
    assert polls["t"].min() >= END_US - DAYS * DAY_US
    assert polls["t"].min() < END_US - (DAYS - 1) * DAY_US


def test_polls_unsorted_and_interleaved(polls: pd.DataFrame) -> None:
    steps = polls["t"].diff().dropna()
    assert (steps > 0).sum() > 0.3 * len(steps) and (steps < 0).sum() > 0.3 * len(steps)
    ids = list(polls["store_id"])
    changes = sum(1 for x, y in zip(ids, ids[1:], strict=False) if x != y)
    assert changes > 0.5 * len(ids)  # not grouped by store


def test_poll_volume_and_sparse_dense_pollers(polls: pd.DataFrame) -> None:
    expected = STORES * DAYS * 8.4
    assert abs(len(polls) - expected) < 0.06 * expected
    per_day = polls["store_id"].value_counts() / DAYS
    assert polls["store_id"].nunique() == STORES  # every store polls at least once
    assert (per_day < 2).sum() >= 0.02 * STORES  # sparse pollers
    assert (per_day > 18).sum() >= 0.02 * STORES  # dense, about hourly
    gaps = polls.sort_values(["store_id", "t"]).groupby("store_id")["t"].diff().dropna()
    mean_gap_h = gaps.mean() / 3.6e9
    assert 1.5 < mean_gap_h < 5  # 8.4 polls/day: about 3 h on average


def test_inactive_share_about_a_quarter_and_in_runs(polls: pd.DataFrame) -> None:
    inactive = polls["status"] == "inactive"
    assert set(polls["status"]) == {"active", "inactive"}
    assert 0.2 < inactive.mean() < 0.3
    ordered = polls.sort_values(["store_id", "t"])
    same_store = ordered["store_id"].eq(ordered["store_id"].shift(-1))
    cur = ordered["status"].eq("inactive")
    nxt = ordered["status"].shift(-1).eq("inactive")
    p_stay = (cur & nxt & same_store).sum() / (cur & same_store).sum()
    assert p_stay > 0.5  # independent polls would give about 0.25


def test_hours_variety(generated: tuple[Path, GenerationSummary]) -> None:
    out, _ = generated
    _, rows = read_rows(out / "menu_hours.csv")
    assert all(len(r) == 4 for r in rows)
    assert all(r[1] in {"0", "1", "2", "3", "4", "5", "6"} for r in rows)
    assert all(CLOCK.match(r[2]) and CLOCK.match(r[3]) for r in rows)
    overnight = [r for r in rows if r[3] < r[2]]  # HH:MM:SS compares as text
    same = [r for r in rows if r[3] == r[2]]
    last_second = [r for r in rows if r[3] == "23:59:59"]
    assert len(overnight) > 0 and len(same) > 0 and len(last_second) > 0
    per_day = Counter((r[0], r[1]) for r in rows)
    assert sum(1 for n in per_day.values() if n >= 2) > 0  # multi-shift days
    days = defaultdict(set)
    for r in rows:
        days[r[0]].add(r[1])
    assert sum(1 for d in days.values() if len(d) < 7) > 0.2 * len(days)  # closed weekdays
    assert all(len(d) >= 5 for d in days.values())
    stores = {line.split(",")[0] for line in (out / "store_status.csv").read_text().splitlines()[1:]}
    without = stores - set(days)
    assert len(without) == round(0.10 * STORES)  # 24x7 stores
    assert set(days) <= stores


def test_zones_variety(generated: tuple[Path, GenerationSummary]) -> None:
    out, _ = generated
    _, rows = read_rows(out / "timezones.csv")
    stores = {line.split(",")[0] for line in (out / "store_status.csv").read_text().splitlines()[1:]}
    zoned = [r[0] for r in rows]
    assert len(zoned) == len(set(zoned))
    assert len(stores - set(zoned)) == round(0.05 * STORES)
    invalid = []
    for _, name in rows:
        try:
            ZoneInfo(name)
        except (ValueError, KeyError):  # KeyError base of ZoneInfoNotFoundError
            invalid.append(name)
    assert 2 <= len(invalid) <= 0.02 * STORES
    counts = Counter(name for _, name in rows)
    assert counts.most_common(1)[0][0] == "America/Chicago"
    assert counts["America/New_York"] > 0


def test_summary_matches_files(generated: tuple[Path, GenerationSummary], polls: pd.DataFrame) -> None:
    out, summary = generated
    _, hours = read_rows(out / "menu_hours.csv")
    _, zones = read_rows(out / "timezones.csv")
    assert summary.polls == len(polls)
    assert summary.inactive_polls == int((polls["status"] == "inactive").sum())
    assert summary.hours_rows == len(hours)
    assert summary.zone_rows == len(zones)
    assert summary.stores_without_hours == STORES - len({r[0] for r in hours})
    assert summary.stores_without_zone == STORES - len(zones)
    assert summary.files["store_status.csv"] == (out / "store_status.csv").stat().st_size


def test_small_chunks_keep_each_stores_poll_count(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", stores=80, days=6, seed=11)
    b = generate_dataset(tmp_path / "b", stores=80, days=6, seed=11, chunk_rows=500)
    lines_a = (tmp_path / "a" / "store_status.csv").read_text().splitlines()[1:]
    lines_b = (tmp_path / "b" / "store_status.csv").read_text().splitlines()[1:]
    assert a.polls == b.polls == len(lines_a) == len(lines_b)
    assert all(STATUS_LINE.match(line) for line in lines_b)
    assert Counter(x.split(",")[0] for x in lines_a) == Counter(x.split(",")[0] for x in lines_b)
    assert max(parse_ts(x.split(",")[2]) for x in lines_b) == END


def _write_real(real: Path) -> tuple[dict[str, list[tuple[str, str, str]]], dict[str, str]]:
    hours = {
        "r-1": [("0", "09:00:00", "17:00:00"), ("1", "09:00:00", "17:00:00")],
        "r-2": [("2", "22:00:00", "02:00:00")],
        "r-3": [("3", "00:00:00", "23:59:59"), ("3", "10:00:00", "11:00:00")],
        "r-4": [("6", "05:00:00", "05:00:00")],
    }
    zones = {"r-1": "America/Denver", "r-2": "America/New_York", "r-3": "Pacific/Honolulu", "r-5": "Bad/Zone"}
    real.mkdir()
    (real / "menu_hours.csv").write_text(
        "store_id,dayOfWeek,start_time_local,end_time_local\n"
        + "\n".join(f"{s},{d},{a},{b}" for s, rows in hours.items() for d, a, b in rows)
    )
    (real / "timezones.csv").write_text("store_id,timezone_str\n" + "\n".join(f"{s},{z}" for s, z in zones.items()))
    return hours, zones


def _profiles(out: Path) -> tuple[dict[str, tuple[tuple[str, str, str], ...]], dict[str, str], set[str]]:
    _, hrows = read_rows(out / "menu_hours.csv")
    _, zrows = read_rows(out / "timezones.csv")
    hours: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for s, d, a, b in hrows:
        hours[s].append((d, a, b))
    status_ids = {line.split(",")[0] for line in (out / "store_status.csv").read_text().splitlines()[1:]}
    return {s: tuple(sorted(v)) for s, v in hours.items()}, dict(zrows), status_ids


def test_real_dir_small_scale_keeps_real_ids_hours_and_zones(tmp_path: Path) -> None:
    hours, zones = _write_real(tmp_path / "real")
    summary = generate_dataset(tmp_path / "out", stores=3, days=3, seed=1, real_dir=tmp_path / "real")
    assert summary.hours_source.startswith("real")
    got_hours, got_zones, ids = _profiles(tmp_path / "out")
    assert len(ids) == 3 and ids <= {"r-1", "r-2", "r-3", "r-4", "r-5"}
    for s in ids:
        assert got_hours.get(s, ()) == tuple(sorted(hours.get(s, [])))
        assert got_zones.get(s) == zones.get(s)
    assert set(got_hours) <= ids and set(got_zones) <= ids


def test_real_dir_large_scale_replicates_with_new_ids(tmp_path: Path) -> None:
    hours, zones = _write_real(tmp_path / "real")
    generate_dataset(tmp_path / "out", stores=23, days=3, seed=2, real_dir=tmp_path / "real")
    got_hours, got_zones, ids = _profiles(tmp_path / "out")
    real_ids = {"r-1", "r-2", "r-3", "r-4", "r-5"}
    assert len(ids) == 23 and real_ids <= ids
    real_profiles = {(tuple(sorted(hours.get(s, []))), zones.get(s)) for s in real_ids}
    for s in ids:
        assert (got_hours.get(s, ()), got_zones.get(s)) in real_profiles
    new_ids = ids - real_ids
    assert all(re.fullmatch(r"[0-9a-f-]{36}", s) for s in new_ids)
    # Each real profile appears at least once, and replicas make up the rest.
    seen = Counter((got_hours.get(s, ()), got_zones.get(s)) for s in ids)
    assert set(seen) == real_profiles and sum(seen.values()) == 23


def test_missing_real_files_fall_back_to_synthetic(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = generate_dataset(tmp_path / "out", stores=20, days=2, seed=1, real_dir=tmp_path / "empty")
    assert summary.hours_source == "synthetic"


def test_committed_sample_is_the_documented_generation(tmp_path: Path) -> None:
    # data/ must be exactly `generate_data data --stores 60 --days 10 --seed 1`.
    generate_dataset(tmp_path, stores=60, days=10, seed=1)
    for name in ("store_status.csv", "menu_hours.csv", "timezones.csv"):
        assert (REPO / "data" / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert sum((REPO / "data" / n).stat().st_size for n in os.listdir(REPO / "data")) < 500_000


def test_generate_data_command(tmp_path: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    import django
    from django.core.management import call_command

    django.setup()
    stdout = io.StringIO()
    call_command(
        "generate_data",
        str(tmp_path / "cmd"),
        "--stores",
        "10",
        "--scale",
        "2",
        "--days",
        "3",
        "--seed",
        "5",
        stdout=stdout,
    )
    generate_dataset(tmp_path / "direct", stores=20, days=3, seed=5)
    for name in ("store_status.csv", "menu_hours.csv", "timezones.csv"):
        assert (tmp_path / "cmd" / name).read_bytes() == (tmp_path / "direct" / name).read_bytes()
    assert "20 stores" in stdout.getvalue()
