"""The uptime/downtime report engine: DataFrames in, DataFrame out.

Pure pandas/numpy (no Django, no MongoDB) so the offline command, the Celery
worker and the tests all run exactly the same computation. The rules it
implements are written out in ``docs/report_rules.md``.

How it stays vectorised: every store gets its own "lane" on one int64 axis
(``store_code << LANE_BITS`` plus time since the week's start), so one sorted
array of merged business intervals serves all stores at once. The business
time between two instants of a store is then a difference of two lookups in
the cumulative business time ``G`` (``np.searchsorted``), and nearest-poll
segments are summed with ``np.bincount``. Python loops run only over distinct
time zones, which do not grow with the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loop.rules import (
    ACTIVE,
    DEFAULT_TIMEZONE,
    US_PER_HOUR,
    US_PER_SECOND,
    WEEK_US,
    first_poll_per_instant,
    known_time_zones,
)

REPORT_COLUMNS = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]
# Lane time is in half microseconds so that midpoints of two polls stay exact integers.
UNITS_PER_US = 2
# 2**41 half-microseconds is ~12.7 days (> one week) and leaves 2**22 lanes (~4M stores).
LANE_BITS = 41
MAX_STORES = 1 << (63 - LANE_BITS - 1)

WINDOWS_US = {"last_hour": US_PER_HOUR, "last_day": 24 * US_PER_HOUR, "last_week": WEEK_US}
# Clock gaps last at most a few hours; a day bounds the search for a gap's end.
MAX_GAP_MINUTES = 24 * 60
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ReportResult:
    """The report plus what a caller should tell the user about the input."""

    report: pd.DataFrame
    now: pd.Timestamp | None
    polls_counted: int
    warnings: list[str] = field(default_factory=list)

    @property
    def stores(self) -> int:
        return len(self.report)


def compute_report(
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    zones: pd.DataFrame,
    now: pd.Timestamp | None = None,
    extra_store_ids: Sequence[str] | None = None,
) -> ReportResult:
    """Compute the report.

    ``polls``: store_id, status ("active"/"inactive"), timestamp_utc.
    ``hours``: store_id, day_of_week (0 = Monday), start_seconds, end_seconds (local).
    ``zones``: store_id, timezone_str.
    ``extra_store_ids``: stores known to have polls at or before ``now`` that
    are not in ``polls`` (the database path reads only the week's polls).
    """
    warnings: list[str] = []
    poll_us = _to_utc_us(polls["timestamp_utc"])
    if now is None:
        if len(poll_us) == 0:
            return ReportResult(_empty_report(), None, 0, warnings)
        now_us = int(poll_us.max())
    else:
        now_us = int(_to_utc_us(pd.Series([pd.Timestamp(now)]))[0])
    now_ts = pd.Timestamp(now_us, unit="us", tz="UTC")

    kept = poll_us <= now_us
    store_ids, codes = _store_codes(polls["store_id"], kept, extra_store_ids)
    if len(store_ids) == 0:
        return ReportResult(_empty_report(), now_ts, 0, warnings)
    if len(store_ids) >= MAX_STORES:
        raise ValueError(f"too many stores for one report ({len(store_ids)})")

    week_start_us = now_us - WEEK_US
    lane_end = (now_us - week_start_us) * UNITS_PER_US
    in_week = poll_us[kept] >= week_start_us
    poll_codes = codes[in_week]
    poll_lane_time = (poll_us[kept][in_week] - week_start_us) * UNITS_PER_US
    poll_active = (polls["status"] == ACTIVE).to_numpy(dtype=bool)[kept][in_week]
    one_per_instant = first_poll_per_instant(poll_codes, poll_lane_time, ~poll_active)
    poll_codes, poll_lane_time, poll_active = (
        poll_codes[one_per_instant],
        poll_lane_time[one_per_instant],
        poll_active[one_per_instant],
    )

    starts, ends, zone_warnings = _business_intervals(store_ids, hours, zones, week_start_us, now_us, lane_end)
    warnings.extend(zone_warnings)
    cum_before = np.concatenate(([0], np.cumsum(ends - starts)[:-1])).astype(np.int64)

    def business_time_until(keys: np.ndarray) -> np.ndarray:
        """G(key): business time of all lanes from their start up to ``key``."""
        idx = np.searchsorted(starts, keys, side="right") - 1
        safe = np.maximum(idx, 0)
        inside = np.minimum(keys - starts[safe], ends[safe] - starts[safe])
        return np.where(idx >= 0, cum_before[safe] + inside, 0)

    # Rule 6: only polls inside business hours count (start inclusive, end exclusive).
    lane = poll_codes.astype(np.int64) << LANE_BITS
    keys = lane + poll_lane_time
    idx = np.searchsorted(starts, keys, side="right") - 1
    counted = (idx >= 0) & (keys < ends[np.maximum(idx, 0)])
    poll_codes, lane, poll_lane_time, poll_active = (
        poll_codes[counted],
        lane[counted],
        poll_lane_time[counted],
        poll_active[counted],
    )

    # Rule 7: each counted poll owns the time up to the midpoints with its neighbours.
    same_as_next = poll_codes[:-1] == poll_codes[1:]
    midpoints = (poll_lane_time[:-1] + poll_lane_time[1:]) // 2
    seg_lo = np.concatenate(([0], np.where(same_as_next, midpoints, 0)))
    seg_hi = np.concatenate((np.where(same_as_next, midpoints, lane_end), [lane_end]))

    n = len(store_ids)
    columns: dict[str, np.ndarray] = {"store_id": store_ids}
    figures: dict[str, np.ndarray] = {}
    for name, length_us in WINDOWS_US.items():
        window_lo = (now_us - length_us - week_start_us) * UNITS_PER_US
        lo = np.maximum(seg_lo, window_lo)
        hi = np.maximum(seg_hi, window_lo)
        business = business_time_until(lane + hi) - business_time_until(lane + lo)
        up = np.bincount(poll_codes, weights=np.where(poll_active, business, 0), minlength=n)
        down = np.bincount(poll_codes, weights=np.where(poll_active, 0, business), minlength=n)
        unit = 60 * US_PER_SECOND if name == "last_hour" else US_PER_HOUR
        figures[f"uptime_{name}"] = np.round(up / UNITS_PER_US / unit, 2)
        figures[f"downtime_{name}"] = np.round(down / UNITS_PER_US / unit, 2)
    columns.update({col: figures[col] for col in REPORT_COLUMNS[1:]})
    report = pd.DataFrame(columns, columns=REPORT_COLUMNS)
    return ReportResult(report, now_ts, int(counted.sum()), warnings)


def report_to_csv(report: pd.DataFrame) -> str:
    """The report as CSV text, safe to open in a spreadsheet."""
    safe = report.copy()
    ids = safe["store_id"].astype(str)
    risky = ids.str.startswith(FORMULA_PREFIXES)
    # A leading apostrophe makes spreadsheets show the text instead of evaluating it.
    safe["store_id"] = ids.where(~risky, "'" + ids)
    return safe.to_csv(index=False, lineterminator="\n", float_format="%.2f")


def _empty_report() -> pd.DataFrame:
    frame = pd.DataFrame({col: pd.Series(dtype="float64") for col in REPORT_COLUMNS})
    frame["store_id"] = frame["store_id"].astype(object)
    return frame


def _to_utc_us(timestamps: pd.Series) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (naive values are UTC)."""
    values = pd.to_datetime(timestamps, utc=True)
    return values.dt.tz_convert(None).to_numpy(dtype="datetime64[us]").view(np.int64)


def _store_codes(
    poll_store_ids: pd.Series, kept: np.ndarray, extra_store_ids: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ids of the stores with kept polls (plus extras) and each kept poll's index in them."""
    # Factorising the column as it is (often Arrow-backed) avoids a copy to Python objects.
    codes, uniques = pd.factorize(poll_store_ids)
    codes = codes[kept]
    present = np.zeros(len(uniques), dtype=bool)
    present[codes] = True
    ids = np.asarray(uniques, dtype=object)[present].astype(str)
    if extra_store_ids is not None and len(extra_store_ids):
        ids = np.union1d(ids, np.asarray(list(extra_store_ids), dtype=str))
    ids = np.unique(ids)
    # Map the factorised codes onto positions in the sorted id list.
    position = np.full(len(uniques), -1, dtype=np.int64)
    position[present] = np.searchsorted(ids, np.asarray(uniques, dtype=object)[present].astype(str))
    return ids.astype(object), position[codes]


def _store_zones(store_ids: np.ndarray, zones: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Each store's zone name; missing, blank or unknown names become the default."""
    warnings: list[str] = []
    zone_of = pd.Series(DEFAULT_TIMEZONE, index=pd.Index(store_ids, dtype=object), dtype=object)
    if len(zones):
        given = zones.drop_duplicates("store_id", keep="last")
        given = given[given["store_id"].isin(zone_of.index)]
        names = given["timezone_str"].astype(object).where(given["timezone_str"].notna(), "")
        names = names.astype(str).str.strip()
        known = known_time_zones()
        unknown_mask = (names != "") & ~names.isin(known)
        for bad_name, count in names[unknown_mask].value_counts().sort_index().items():
            warnings.append(f"unknown time zone {bad_name!r} for {count} store(s); using {DEFAULT_TIMEZONE}")
        names = names.where(names.isin(known), DEFAULT_TIMEZONE)
        zone_of.loc[given["store_id"].astype(object).to_numpy()] = names.to_numpy()
    return zone_of.to_numpy(), warnings


def _business_intervals(
    store_ids: np.ndarray,
    hours: pd.DataFrame,
    zones: pd.DataFrame,
    week_start_us: int,
    now_us: int,
    lane_end: int,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Merged business intervals of every store as sorted global lane keys.

    Intervals are clipped to the week; their ends are allowed one unit past
    ``now`` so that a poll exactly at ``now`` inside open hours still counts.
    """
    store_index = pd.Index(store_ids, dtype=object)
    code = store_index.get_indexer(hours["store_id"].astype(object).to_numpy())
    rows = hours.loc[code >= 0, ["day_of_week", "start_seconds", "end_seconds"]].copy()
    rows["code"] = code[code >= 0]

    has_hours = np.zeros(len(store_ids), dtype=bool)
    has_hours[rows["code"].to_numpy()] = True
    always_open = np.flatnonzero(~has_hours)
    clip_hi = lane_end + 1

    zone_names, warnings = _store_zones(store_ids, zones)
    local_starts, local_ends, local_codes = _local_intervals(rows, week_start_us, now_us)
    utc_start = np.empty(len(local_codes), dtype=np.int64)
    utc_end = np.empty(len(local_codes), dtype=np.int64)
    interval_zones = zone_names[local_codes]
    for zone in pd.unique(interval_zones):
        mask = interval_zones == zone
        utc_start[mask] = _localize_to_utc_us(local_starts[mask], zone)
        utc_end[mask] = _localize_to_utc_us(local_ends[mask], zone)

    start = np.clip((utc_start - week_start_us) * UNITS_PER_US, 0, clip_hi)
    end = np.clip((utc_end - week_start_us) * UNITS_PER_US, 0, clip_hi)
    codes = np.concatenate((local_codes, always_open)).astype(np.int64)
    start = np.concatenate((start, np.zeros(len(always_open), dtype=np.int64)))
    end = np.concatenate((end, np.full(len(always_open), clip_hi, dtype=np.int64)))
    nonempty = end > start
    starts, ends = _merge(codes[nonempty], start[nonempty], end[nonempty])
    return starts, ends, warnings


def _local_intervals(rows: pd.DataFrame, week_start_us: int, now_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Naive local start/end (datetime64[us]) of each hours row on each date near the week.

    Dates run from two days before the week's start to one day after ``now``
    (UTC dates), which covers every zone offset and overnight intervals.
    """
    first = np.datetime64(week_start_us, "us").astype("datetime64[D]") - 2
    last = np.datetime64(now_us, "us").astype("datetime64[D]") + 1
    dates = np.arange(first, last + 1, dtype="datetime64[D]")
    # 1970-01-01 was a Thursday: weekday index 3 with Monday = 0.
    weekdays = (dates.astype(np.int64) + 3) % 7
    calendar = pd.DataFrame({"day_of_week": weekdays, "date": dates})
    rows = rows.astype({"day_of_week": np.int64})
    joined = rows.merge(calendar, on="day_of_week", how="inner")

    date_us = joined["date"].to_numpy().astype("datetime64[us]")
    start_s = joined["start_seconds"].to_numpy(dtype=np.int64)
    end_s = joined["end_seconds"].to_numpy(dtype=np.int64)
    # end <= start: the interval ends on the next local date (end == start is 24 h).
    end_s = np.where(end_s <= start_s, end_s + 86400, end_s)
    local_start = date_us + (start_s * US_PER_SECOND).astype("timedelta64[us]")
    local_end = date_us + (end_s * US_PER_SECOND).astype("timedelta64[us]")
    return local_start, local_end, joined["code"].to_numpy(dtype=np.int64)


def _localize_to_utc_us(local: np.ndarray, zone: str) -> np.ndarray:
    """Wall times of one zone to UTC: ambiguous -> earlier, nonexistent -> the end of the gap.

    pandas' ``nonexistent="shift_forward"`` assumes one-hour gaps (wrong for
    Australia/Lord_Howe's 30 minutes), so wall times in a gap are stepped
    forward a minute at a time, only for those few rows, until they exist.
    """
    wall = pd.DatetimeIndex(local)
    utc = wall.tz_localize(zone, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="NaT")
    result = utc.tz_convert(None).to_numpy(dtype="datetime64[us]").view(np.int64).copy()
    pending = np.flatnonzero(utc.isna())
    stepped = wall[pending].floor("min")
    for _ in range(MAX_GAP_MINUTES):
        if len(pending) == 0:
            break
        stepped = stepped + pd.Timedelta(minutes=1)
        attempt = stepped.tz_localize(zone, ambiguous=np.ones(len(stepped), dtype=bool), nonexistent="NaT")
        found = ~attempt.isna()
        result[pending[found]] = attempt[found].tz_convert(None).to_numpy(dtype="datetime64[us]").view(np.int64)
        pending, stepped = pending[~found], stepped[~found]
    return result


def _merge(codes: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping or touching intervals per store; return global lane keys."""
    order = np.lexsort((start, codes))
    codes, start, end = codes[order], start[order], end[order]
    if len(codes) == 0:
        return np.array([-1], dtype=np.int64), np.array([-1], dtype=np.int64)
    running_end = pd.Series(end).groupby(codes).cummax().to_numpy()
    new_run = np.ones(len(codes), dtype=bool)
    new_run[1:] = (codes[1:] != codes[:-1]) | (start[1:] > running_end[:-1])
    run_first = np.flatnonzero(new_run)
    lane = codes[run_first] << LANE_BITS
    # A leading empty sentinel keeps lookups valid even when no store has any hours.
    merged_start = np.concatenate(([-1], lane + start[run_first]))
    merged_end = np.concatenate(([-1], lane + np.maximum.reduceat(end, run_first)))
    return merged_start, merged_end
