"""Seeded generator of Loop-shaped data sets (pure: numpy and pandas, no Django).

Writes ``store_status.csv``, ``menu_hours.csv`` and ``timezones.csv`` exactly in the
Loop 2025 shapes, at any scale, with the variety a real export has: multi-shift days,
overnight hours, ``23:59:59`` ends, ``end == start`` rows, closed weekdays, stores
without hours (24x7) or without a zone, a few invalid zone names, about 25% inactive
polls that come in runs, sparse and dense pollers, and status rows in no order.

Everything is vectorised. The status file is produced in blocks of stores (about
``chunk_rows`` polls each), each block shuffled and written at once, so memory stays
bounded whatever the scale. The output is a pure function of the arguments.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

STATUS_FILE = "store_status.csv"
HOURS_FILE = "menu_hours.csv"
ZONES_FILE = "timezones.csv"
STATUS_HEADER = "store_id,status,timestamp_utc"
HOURS_HEADER = "store_id,dayOfWeek,start_time_local,end_time_local"
ZONES_HEADER = "store_id,timezone_str"

# Newest poll of the real Loop 2025 export: the default "now" of generated sets.
DEFAULT_END = pd.Timestamp("2024-10-14 23:55:18.727055", tz="UTC")
# 1.85M polls / 3,678 stores / 60 days in the real export.
DEFAULT_POLLS_PER_STORE_PER_DAY = 8.4
LOOP_2025_STORES = 3678
DEFAULT_CHUNK_ROWS = 1_000_000
_CSV_SLICE_ROWS = 100_000  # hours and zones rows formatted at a time

# Zone mix close to the real 2025 file (all US zones).
ZONE_WEIGHTS: dict[str, float] = {
    "America/Chicago": 0.655,
    "America/New_York": 0.245,
    "America/Los_Angeles": 0.046,
    "America/Denver": 0.025,
    "America/Phoenix": 0.013,
    "America/Indiana/Indianapolis": 0.010,
    "America/Boise": 0.003,
    "America/Detroit": 0.0015,
    "Pacific/Honolulu": 0.0015,
}
# Names that are not IANA zones: the engine must fall back to America/Chicago.
INVALID_ZONES = (
    "America/Chicgo",
    "Mars/Olympus_Mons",
    "Central Standard Time",
    "America/New York",
)

SHARE_NO_HOURS = 0.10
SHARE_NO_ZONE = 0.05
SHARE_INVALID_ZONE = 0.005
# Hours patterns: share of the stores that have hours rows.
PATTERNS = ("standard", "split", "overnight", "allday", "same", "mixed")
PATTERN_SHARES = (0.45, 0.12, 0.15, 0.15, 0.05, 0.08)

_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S
_OUTAGE_MARGIN_US = 3 * _US_PER_DAY  # outages may start before the first poll
_MAX_OUTAGE_US = 20 * _US_PER_DAY


@dataclass
class GenerationSummary:
    out_dir: str
    stores: int
    days: int
    seed: int
    start: str
    end: str
    polls: int
    inactive_polls: int
    hours_rows: int
    zone_rows: int
    stores_without_hours: int
    stores_without_zone: int
    invalid_zone_rows: int
    hours_source: str
    seconds: float
    files: dict[str, int] = field(default_factory=dict)  # name -> size in bytes

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        share = self.inactive_polls / self.polls if self.polls else 0.0
        return (
            f"{self.stores} stores, {self.polls} polls ({share:.1%} inactive) over "
            f"{self.days} days up to {self.end}; {self.hours_rows} hours rows "
            f"({self.stores_without_hours} stores without hours), {self.zone_rows} zone rows "
            f"({self.stores_without_zone} stores without zone, {self.invalid_zone_rows} invalid); "
            f"hours and zones: {self.hours_source}; {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------------
# Small vectorised helpers


def _exact_counts(n: int, shares: tuple[float, ...]) -> np.ndarray:
    """Split n into integer counts proportional to shares (largest remainder)."""
    raw = np.asarray(shares, dtype=float) * n / sum(shares)
    counts = np.floor(raw).astype(np.int64)
    rest = n - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts


def _role_count(n: int, share: float, minimum: int) -> int:
    """Stores given a rare role: a share of n, but at least `minimum` once n is not tiny."""
    if n < 10:
        return 0
    return min(n, max(minimum, round(share * n)))


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.bytes(16 * n)
    return [str(uuid.UUID(bytes=raw[16 * i : 16 * i + 16], version=4)) for i in range(n)]


# "00".."99" as a (100, 2) uint8 table: digit pairs by lookup, not by 2-D arithmetic.
_PAIRS = np.array([f"{i:02d}" for i in range(100)], dtype="S2").view(np.uint8).reshape(100, 2)


def _fixed_bytes(strings: list[str] | np.ndarray) -> np.ndarray:
    """Strings -> (n, max_len) uint8 matrix padded with NUL (dropped when written)."""
    arr = np.asarray(strings, dtype="S")
    if arr.size == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    return arr.view(np.uint8).reshape(len(arr), arr.itemsize)


def _put_hms(mat: np.ndarray, col: int, seconds: np.ndarray) -> None:
    """Write 'HH:MM:SS' for seconds after midnight into mat[:, col:col + 8]."""
    mat[:, col : col + 2] = _PAIRS[seconds // 3600]
    mat[:, col + 2] = ord(":")
    mat[:, col + 3 : col + 5] = _PAIRS[seconds // 60 % 60]
    mat[:, col + 5] = ord(":")
    mat[:, col + 6 : col + 8] = _PAIRS[seconds % 60]


def format_hms(seconds: np.ndarray) -> np.ndarray:
    """Seconds after midnight -> array of 'HH:MM:SS' strings."""
    s = np.asarray(seconds, dtype=np.int64)
    mat = np.empty((len(s), 8), dtype=np.uint8)
    _put_hms(mat, 0, s)
    return mat.view("S8").ravel().astype(str)


TIMESTAMP_WIDTH = 31  # 'YYYY-MM-DD HH:MM:SS.ffffff UTC\n'


def _put_timestamps(mat: np.ndarray, col: int, us: np.ndarray) -> None:
    """Write epoch microseconds into mat[:, col:col + 31] as 'YYYY-MM-DD HH:MM:SS.ffffff UTC\n'
    with the fraction's trailing zeros (and a bare '.') set to NUL, as the real export
    writes them: 1 to 6 digits, or none. NUL bytes are dropped when the block is written."""
    days = us // _US_PER_DAY
    rem = us - days * _US_PER_DAY
    first = int(days.min())
    # A block spans few distinct dates: format each once and index the table.
    dates = np.arange(first, int(days.max()) + 1).astype("datetime64[D]")
    table = np.datetime_as_string(dates, unit="D").astype("S10").view(np.uint8).reshape(-1, 10)
    mat[:, col : col + 10] = table[days - first]
    mat[:, col + 10] = ord(" ")
    _put_hms(mat, col + 11, rem // _US_PER_S)
    frac = rem % _US_PER_S
    f = mat[:, col + 20 : col + 26]
    f[:, 0:2] = _PAIRS[frac // 10_000]
    f[:, 2:4] = _PAIRS[frac // 100 % 100]
    f[:, 4:6] = _PAIRS[frac % 100]
    keep = np.logical_or.accumulate((f != ord("0"))[:, ::-1], axis=1)[:, ::-1]
    f[~keep] = 0
    mat[:, col + 19] = np.where(keep[:, 0], ord("."), 0)
    mat[:, col + 26 : col + 31] = np.frombuffer(b" UTC\n", dtype=np.uint8)


def _write_csv(path: Path, header: str, columns: list[np.ndarray], trailing_newline: bool) -> int:
    """Write string columns as CSV (values never need quoting here), in slices of rows (bounded memory)."""
    with open(path, "wb") as fh:
        fh.write(header.encode())
        for first in range(0, len(columns[0]), _CSV_SLICE_ROWS):
            body = columns[0][first : first + _CSV_SLICE_ROWS].astype(object)
            for col in columns[1:]:
                body = body + "," + col[first : first + _CSV_SLICE_ROWS].astype(object)
            fh.write(("\n" + "\n".join(body.tolist())).encode())
        if trailing_newline:
            fh.write(b"\n")
    return path.stat().st_size


# ---------------------------------------------------------------------------
# Hours and zones


def _slot(rng: np.random.Generator, lo_h: float, hi_h: float, step_min: int, size: int) -> np.ndarray:
    """Random clock time in [lo_h, hi_h] hours on a grid of step_min minutes, in seconds."""
    steps = round((hi_h - lo_h) * 60 / step_min)
    return (lo_h * 3600 + rng.integers(0, steps + 1, size=size) * step_min * 60).astype(np.int64)


def _synthetic_hours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hours rows for n stores: (store index, weekday, start seconds, end seconds)."""
    last = 86_399  # 23:59:59
    shape = (n, 7)
    # "standard": one shift a day, later on weekends for some stores.
    std_s = np.repeat(_slot(rng, 6, 11, 30, n)[:, None], 7, axis=1)
    std_e = np.repeat(_slot(rng, 17, 23.5, 30, n)[:, None], 7, axis=1)
    std_e[rng.random(n) < 0.15] = last
    late_weekend = rng.random(n) < 0.35
    std_s[late_weekend, 5:] += 3600
    std_e[late_weekend, 5:] = np.minimum(std_e[late_weekend, 5:] + 3600, last)
    wobble = rng.random(shape) < 0.1
    std_e = np.where(wobble & (std_e < last - 1800), std_e + 1800, std_e)
    # "split": lunch and dinner shifts, sometimes touching or overlapping (to be merged).
    s1 = np.repeat(_slot(rng, 10, 11.5, 30, n)[:, None], 7, axis=1)
    e1 = np.repeat(_slot(rng, 14, 15, 30, n)[:, None], 7, axis=1)
    s2 = np.repeat(_slot(rng, 16.5, 18, 30, n)[:, None], 7, axis=1)
    e2 = np.repeat(_slot(rng, 21, 23, 30, n)[:, None], 7, axis=1)
    joined = rng.random(n)
    s2[joined < 0.10] = e1[joined < 0.10]
    s2[(joined >= 0.10) & (joined < 0.15)] = e1[(joined >= 0.10) & (joined < 0.15)] - 1800
    # "overnight": evening start, closes after midnight (end < start) most days.
    on_s = np.repeat(_slot(rng, 16, 22, 60, n)[:, None], 7, axis=1)
    on_e = np.repeat(_slot(rng, 0.5, 4, 30, n)[:, None], 7, axis=1)
    on_e = np.where(rng.random(shape) < 0.3, last, on_e)
    # "same": end == start, open 24 hours from that time.
    same = np.repeat(_slot(rng, 0, 6, 60, n)[:, None], 7, axis=1)

    pattern = np.repeat(np.arange(len(PATTERNS)), _exact_counts(n, PATTERN_SHARES))
    pattern = rng.permutation(pattern)
    day_pattern = np.repeat(pattern[:, None], 7, axis=1)
    mixed = day_pattern == PATTERNS.index("mixed")
    day_pattern[mixed] = rng.choice(
        [PATTERNS.index(p) for p in ("standard", "overnight", "same", "allday")], size=int(mixed.sum())
    )
    choices_s = [std_s, s1, on_s, np.zeros(shape, np.int64), same]
    choices_e = [std_e, e1, on_e, np.full(shape, last), same]
    start0 = np.choose(day_pattern, choices_s + [std_s])
    end0 = np.choose(day_pattern, choices_e + [std_e])

    # Closed weekdays: 30% of stores close one day a week, 10% of them two.
    closed = np.zeros(shape, dtype=bool)
    r = rng.random(n)
    day1 = rng.integers(0, 7, n)
    day2 = (day1 + 1 + rng.integers(0, 6, n)) % 7
    rows = np.arange(n)
    closed[rows[r < 0.3], day1[r < 0.3]] = True
    closed[rows[r < 0.1], day2[r < 0.1]] = True

    open0 = ~closed
    open1 = open0 & (day_pattern == PATTERNS.index("split"))
    store = np.concatenate([np.nonzero(open0)[0], np.nonzero(open1)[0]])
    dow = np.concatenate([np.nonzero(open0)[1], np.nonzero(open1)[1]])
    start = np.concatenate([start0[open0], s2[open1]])
    end = np.concatenate([end0[open0], e2[open1]])
    return store, dow, start, end


def _group_rows(rng: np.random.Generator, store_idx: np.ndarray) -> np.ndarray:
    """Row order: grouped by store (stores in random order), rows of a store shuffled."""
    perm = rng.permutation(len(store_idx))
    rank = rng.permutation(int(store_idx.max()) + 1 if len(store_idx) else 0)
    return perm[np.argsort(rank[store_idx[perm]], kind="stable")]


def _synthetic_hours_zones(rng: np.random.Generator, ids: list[str], out: Path) -> tuple[int, int, int, int, int]:
    n = len(ids)
    id_arr = np.asarray(ids, dtype=object)
    order = rng.permutation(n)
    no_hours = order[: _role_count(n, SHARE_NO_HOURS, 2)]
    has_hours = np.setdiff1d(np.arange(n), no_hours)
    h_store, dow, start, end = _synthetic_hours(rng, len(has_hours))
    h_store = has_hours[h_store]
    o = _group_rows(rng, h_store)
    hours_rows = len(o)
    _write_csv(
        out / HOURS_FILE,
        HOURS_HEADER,
        [id_arr[h_store[o]], dow[o].astype(str).astype(object), format_hms(start[o]), format_hms(end[o])],
        trailing_newline=False,
    )

    order = rng.permutation(n)
    n_missing = _role_count(n, SHARE_NO_ZONE, 2)
    n_invalid = _role_count(n, SHARE_INVALID_ZONE, 2)
    with_zone = np.sort(order[n_missing:])
    names = list(ZONE_WEIGHTS)
    weights = np.array(list(ZONE_WEIGHTS.values()))
    zone = np.asarray(names, dtype=object)[rng.choice(len(names), size=len(with_zone), p=weights / weights.sum())]
    invalid_pos = rng.choice(len(with_zone), size=min(n_invalid, len(with_zone)), replace=False)
    zone[invalid_pos] = np.asarray(INVALID_ZONES, dtype=object)[np.arange(len(invalid_pos)) % len(INVALID_ZONES)]
    zo = rng.permutation(len(with_zone))
    _write_csv(out / ZONES_FILE, ZONES_HEADER, [id_arr[with_zone[zo]], zone[zo]], trailing_newline=False)
    return hours_rows, len(no_hours), len(with_zone), n_missing, len(invalid_pos)


def _real_hours_zones(
    rng: np.random.Generator, n: int, real_dir: Path, out: Path
) -> tuple[list[str], tuple[int, int, int, int, int]]:
    """Ids, hours and zones taken from a real export: real stores (their own ids) first,
    then, past the number of real stores, replicas under new ids with the same rows."""
    hours = pd.read_csv(real_dir / HOURS_FILE, dtype=str, keep_default_na=False)
    zones = pd.read_csv(real_dir / ZONES_FILE, dtype=str, keep_default_na=False)
    real_ids = np.array(sorted(set(hours["store_id"]) | set(zones["store_id"])), dtype=object)
    if n <= len(real_ids):
        source = rng.choice(len(real_ids), size=n, replace=False)
        ids = real_ids[source].tolist()
    else:
        source = np.concatenate([rng.permutation(len(real_ids)), rng.integers(0, len(real_ids), n - len(real_ids))])
        ids = [str(x) for x in real_ids[source[: len(real_ids)]]] + _uuids(rng, n - len(real_ids))
    mapping = pd.DataFrame({"new_id": ids, "store_id": real_ids[source]})
    zone_cols = ["store_id", "timezone_str"]
    hours_cols = ["store_id", "dayOfWeek", "start_time_local", "end_time_local"]
    h = mapping.merge(hours, on="store_id", how="inner").drop(columns="store_id").rename(columns={"new_id": "store_id"})
    z = mapping.merge(zones, on="store_id", how="inner").drop(columns="store_id").rename(columns={"new_id": "store_id"})
    h = h[hours_cols].sample(frac=1.0, random_state=rng)
    h = h.iloc[np.argsort(pd.factorize(h["store_id"])[0], kind="stable")]  # grouped by store
    z = z[zone_cols].sample(frac=1.0, random_state=rng)
    for df, name, header in ((h, HOURS_FILE, HOURS_HEADER), (z, ZONES_FILE, ZONES_HEADER)):
        _write_csv(out / name, header, [df[c].to_numpy(dtype=object) for c in df.columns], trailing_newline=False)
    from zoneinfo import available_timezones

    valid = available_timezones()
    invalid = int((~z["timezone_str"].isin(valid)).sum())
    no_hours = n - h["store_id"].nunique()
    no_zone = n - z["store_id"].nunique()
    return ids, (len(h), no_hours, len(z), no_zone, invalid)


# ---------------------------------------------------------------------------
# Polls


def _poll_block(
    rng: np.random.Generator,
    counts: np.ndarray,
    periodic: np.ndarray,
    inactive_share: np.ndarray,
    outage_mean_us: np.ndarray,
    start_us: int,
    span_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polls of a block of stores: (store index in block, epoch us, inactive flag)."""
    m = len(counts)
    total = int(counts.sum())
    store = np.repeat(np.arange(m), counts)
    first = np.cumsum(counts) - counts
    k = np.arange(total) - np.repeat(first, counts)
    # Poisson pollers: uniform times. Periodic pollers: a regular grid with jitter.
    uniform = rng.random(total)
    phase = np.repeat(rng.random(m), counts)
    grid = (k + phase + rng.normal(0.0, 0.1, total)) / np.repeat(counts, counts)
    frac = np.where(np.repeat(periodic, counts), np.clip(grid, 0.0, 1.0), uniform)
    t = start_us + np.minimum((frac * span_us).astype(np.int64), span_us)
    del uniform, grid, frac, k

    # Status: each store has outages (a Poisson number, exponential lengths); a poll is
    # inactive when it falls inside one. That gives runs of inactive polls, and a
    # covered share of 1 - exp(-rate * mean) = inactive_share per store.
    window = span_us + _OUTAGE_MARGIN_US
    rate = -np.log1p(-inactive_share) / outage_mean_us
    n_out = rng.poisson(rate * window)
    o_store = np.repeat(np.arange(m), n_out)
    o_start = rng.integers(0, window, size=len(o_store))
    o_len = np.minimum(rng.exponential(1.0, len(o_store)) * np.repeat(outage_mean_us, n_out), _MAX_OUTAGE_US)
    stride = window + _MAX_OUTAGE_US + 1  # keys of one store never reach the next one's
    o_key = o_store * stride + o_start
    order = np.argsort(o_key, kind="stable")
    o_key = o_key[order]
    o_end = np.maximum.accumulate(o_key + o_len.astype(np.int64)[order]) if len(o_key) else o_key
    p_key = store * stride + (t - start_us + _OUTAGE_MARGIN_US)
    pos = np.searchsorted(o_key, p_key, side="right") - 1
    inactive = (pos >= 0) & (o_end[np.maximum(pos, 0)] > p_key)
    del p_key, pos
    return store, t, inactive


def generate_dataset(
    out_dir: str | Path,
    stores: int,
    days: int = 60,
    seed: int = 0,
    end: pd.Timestamp = DEFAULT_END,
    real_dir: Path | None = None,
    polls_per_store_per_day: float = DEFAULT_POLLS_PER_STORE_PER_DAY,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> GenerationSummary:
    """Write the three Loop CSVs for `stores` stores polled over `days` days up to `end`.

    With `real_dir` holding menu_hours.csv and timezones.csv (a real export), hours and
    zones come from there (real store ids, replicated under new ids past the number of
    real stores); otherwise they are synthetic. Polls are always synthetic.
    """
    t_begin = time.perf_counter()
    if stores < 1 or days < 1:
        raise ValueError("stores and days must be at least 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    end_ts = pd.Timestamp(end)
    end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts.tz_convert("UTC")
    end_us = (end_ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "us")
    span_us = days * _US_PER_DAY
    start_us = end_us - span_us

    seeds = np.random.SeedSequence(seed).spawn(3)
    meta_rng = np.random.default_rng(seeds[0])
    use_real = (
        real_dir is not None and (Path(real_dir) / HOURS_FILE).is_file() and (Path(real_dir) / ZONES_FILE).is_file()
    )
    if use_real:
        assert real_dir is not None
        ids, hz = _real_hours_zones(meta_rng, stores, Path(real_dir), out)
        source = f"real ({Path(real_dir) / HOURS_FILE}, {Path(real_dir) / ZONES_FILE})"
    else:
        ids = _uuids(meta_rng, stores)
        hz = _synthetic_hours_zones(meta_rng, ids, out)
        source = "synthetic"
    hours_rows, no_hours, zone_rows, no_zone, invalid = hz

    # Per-store polling and outage profiles.
    prng = np.random.default_rng(seeds[1])
    sigma = 0.9  # sparse (about 1/day) to dense (about hourly) pollers
    mult = prng.lognormal(-(sigma**2) / 2, sigma, stores)
    rate = polls_per_store_per_day * mult / mult.mean()
    counts = np.maximum(prng.poisson(rate * days), 1)
    periodic = prng.random(stores) < 0.5
    inactive_share = np.clip(prng.beta(2.0, 6.0, stores), 0.0, 0.95)
    outage_mean_us = np.exp(prng.normal(np.log(3 * 3600), 1.0, stores)) * _US_PER_S
    anchor = int(prng.integers(0, stores))  # the store whose poll sits exactly at `end`

    id_bytes = _fixed_bytes(ids)
    active_bytes = _fixed_bytes(["active", "inactive"])
    cum = np.cumsum(counts)
    bounds = np.searchsorted(cum, np.arange(chunk_rows, int(cum[-1]), chunk_rows), side="left") + 1
    bounds = np.unique(np.concatenate([[0], bounds, [stores]]))
    block_seeds = seeds[2].spawn(len(bounds) - 1)
    polls = inactive_total = 0
    with open(out / STATUS_FILE, "wb") as fh:
        fh.write((STATUS_HEADER + "\n").encode())
        for b, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            brng = np.random.default_rng(block_seeds[b])
            store, t, inactive = _poll_block(
                brng, counts[lo:hi], periodic[lo:hi], inactive_share[lo:hi], outage_mean_us[lo:hi], start_us, span_us
            )
            if lo <= anchor < hi:
                t[np.searchsorted(store, anchor - lo)] = end_us
            perm = brng.permutation(len(t))
            store, t, inactive = store[perm] + lo, t[perm], inactive[perm]
            # One NUL-padded byte row per line; dropping the NULs gives the CSV text.
            w_id, w_st = id_bytes.shape[1], active_bytes.shape[1]
            mat = np.empty((len(t), w_id + w_st + 2 + TIMESTAMP_WIDTH), dtype=np.uint8)
            mat[:, :w_id] = id_bytes[store]
            mat[:, w_id] = ord(",")
            mat[:, w_id + 1 : w_id + 1 + w_st] = active_bytes[inactive.astype(np.int64)]
            mat[:, w_id + 1 + w_st] = ord(",")
            _put_timestamps(mat, w_id + 2 + w_st, t)
            fh.write(mat[mat != 0].tobytes())
            polls += len(t)
            inactive_total += int(inactive.sum())
            del mat, store, t, inactive, perm

    files = {name: (out / name).stat().st_size for name in (STATUS_FILE, HOURS_FILE, ZONES_FILE)}
    return GenerationSummary(
        out_dir=str(out),
        stores=stores,
        days=days,
        seed=seed,
        start=str(pd.Timestamp(start_us, unit="us", tz="UTC")),
        end=str(end_ts),
        polls=polls,
        inactive_polls=inactive_total,
        hours_rows=hours_rows,
        zone_rows=zone_rows,
        stores_without_hours=no_hours,
        stores_without_zone=no_zone,
        invalid_zone_rows=invalid,
        hours_source=source,
        seconds=round(time.perf_counter() - t_begin, 2),
        files=files,
    )
