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

``Lanes`` (built by ``_build_lanes`` for any range) is shared with ``loop/timeline.py``,
which lays one store on one lane for its timeline: holiday hours, unobserved time and
outages (rules 10-13) have their one home here.
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
# The extended report's columns, after the Loop ones (rules 11-12 of docs/report_rules.md).
EXTENDED_COLUMNS = [
    "uptime_pct_last_hour",
    "uptime_pct_last_day",
    "uptime_pct_last_week",
    "unobserved_last_hour",
    "unobserved_last_day",
    "unobserved_last_week",
    "outages_last_week",
    "longest_outage_last_week",
]
# Rule 11: business time farther than this from its nearest counted poll is unobserved.
DEFAULT_MAX_GAP_MINUTES = 60
MIN_GAP_MINUTES = 1
MAX_GAP_MINUTES_ALLOWED = 1440
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
    *,
    special_hours: pd.DataFrame | None = None,
    extended: bool = False,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
) -> ReportResult:
    """Compute the report.

    ``polls``: store_id, status ("active"/"inactive"), timestamp_utc.
    ``hours``: store_id, day_of_week (0 = Monday), start_seconds, end_seconds (local).
    ``zones``: store_id, timezone_str.
    ``extra_store_ids``: stores known to have polls at or before ``now`` that
    are not in ``polls`` (the database path reads only the week's polls).
    ``special_hours``: store_id, date_local ("YYYY-MM-DD"), start_seconds, end_seconds
    (float; both NaN = closed all day): holiday hours (rule 13).
    ``extended``: add ``EXTENDED_COLUMNS`` after the Loop columns, with unobserved
    time measured against ``max_gap_minutes`` (rules 11-12).
    """
    warnings: list[str] = []
    columns_out = REPORT_COLUMNS + EXTENDED_COLUMNS if extended else REPORT_COLUMNS
    poll_us = _to_utc_us(polls["timestamp_utc"])
    if now is None:
        if len(poll_us) == 0:
            return ReportResult(_empty_report(columns_out), None, 0, warnings)
        now_us = int(poll_us.max())
    else:
        now_us = int(_to_utc_us(pd.Series([pd.Timestamp(now)]))[0])
    now_ts = pd.Timestamp(now_us, unit="us", tz="UTC")

    kept = poll_us <= now_us
    store_ids, codes = _store_codes(polls["store_id"], kept, extra_store_ids)
    if len(store_ids) == 0:
        return ReportResult(_empty_report(columns_out), now_ts, 0, warnings)
    if len(store_ids) >= MAX_STORES:
        raise ValueError(f"too many stores for one report ({len(store_ids)})")

    active = (polls["status"] == ACTIVE).to_numpy(dtype=bool)[kept]
    lanes = _build_lanes(
        store_ids=store_ids,
        poll_codes=codes,
        poll_us=poll_us[kept],
        poll_active=active,
        hours=hours,
        zones=zones,
        special_hours=special_hours,
        range_start_us=now_us - WEEK_US,
        range_end_us=now_us,
    )
    warnings.extend(lanes.warnings)
    lane_end = lanes.lane_end
    gap = _gap_units(max_gap_minutes) if extended else 0

    n = len(store_ids)
    columns: dict[str, np.ndarray] = {"store_id": store_ids}
    for name, length_us in WINDOWS_US.items():
        window_lo = lane_end - length_us * UNITS_PER_US
        lo = np.maximum(lanes.seg_lo, window_lo)
        hi = np.maximum(lanes.seg_hi, window_lo)
        business = lanes.business_between(lanes.poll_lane + lo, lanes.poll_lane + hi)
        up = np.bincount(lanes.poll_codes, weights=np.where(lanes.poll_active, business, 0), minlength=n)
        down = np.bincount(lanes.poll_codes, weights=np.where(lanes.poll_active, 0, business), minlength=n)
        unit = _window_unit_us(name)
        columns[f"uptime_{name}"] = np.round(up / UNITS_PER_US / unit, 2)
        columns[f"downtime_{name}"] = np.round(down / UNITS_PER_US / unit, 2)
        if extended:
            total = up + down
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = np.where(total > 0, 100.0 * up / total, np.nan)
            columns[f"uptime_pct_{name}"] = np.round(pct, 2)
            unobserved = lanes.unobserved_per_store(lo, hi, business, gap, window_lo)
            columns[f"unobserved_{name}"] = np.round(unobserved / UNITS_PER_US / unit, 2)
    if extended:
        count, longest = lanes.outages_per_store()
        columns["outages_last_week"] = count
        columns["longest_outage_last_week"] = np.round(longest / UNITS_PER_US / (60 * US_PER_SECOND), 2)
    report = pd.DataFrame({col: columns[col] for col in columns_out}, columns=columns_out)
    return ReportResult(report, now_ts, lanes.polls_counted, warnings)


def _window_unit_us(name: str) -> int:
    """Report units: minutes for the last hour, hours for the day and the week."""
    return 60 * US_PER_SECOND if name == "last_hour" else US_PER_HOUR


def _gap_units(max_gap_minutes: int) -> int:
    if not MIN_GAP_MINUTES <= int(max_gap_minutes) <= MAX_GAP_MINUTES_ALLOWED:
        raise ValueError(f"max_gap_minutes must be {MIN_GAP_MINUTES}-{MAX_GAP_MINUTES_ALLOWED}, not {max_gap_minutes}")
    return int(max_gap_minutes) * 60 * US_PER_SECOND * UNITS_PER_US


@dataclass
class Lanes:
    """Every store's merged business intervals and counted polls on one int64 axis.

    A key is ``code << LANE_BITS`` plus the time since the range's start in half
    microseconds. ``seg_lo``/``seg_hi`` are each counted poll's nearest-poll
    territory (rule 7) in lane time, unlimited ends clipped to [0, lane_end).
    """

    store_ids: np.ndarray
    range_start_us: int
    lane_end: int
    starts: np.ndarray
    ends: np.ndarray
    cum_before: np.ndarray
    poll_codes: np.ndarray
    poll_lane: np.ndarray
    poll_lane_time: np.ndarray
    poll_active: np.ndarray
    seg_lo: np.ndarray
    seg_hi: np.ndarray
    zone_names: np.ndarray
    warnings: list[str]

    @property
    def polls_counted(self) -> int:
        return len(self.poll_codes)

    def business_time_until(self, keys: np.ndarray) -> np.ndarray:
        """G(key): business time of all lanes from their start up to ``key``."""
        idx = np.searchsorted(self.starts, keys, side="right") - 1
        safe = np.maximum(idx, 0)
        inside = np.minimum(keys - self.starts[safe], self.ends[safe] - self.starts[safe])
        return np.where(idx >= 0, self.cum_before[safe] + inside, 0)

    def business_between(self, lo_keys: np.ndarray, hi_keys: np.ndarray) -> np.ndarray:
        return self.business_time_until(hi_keys) - self.business_time_until(lo_keys)

    def observed_bounds(self, lo: np.ndarray, hi: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
        """The part [a, b) of each territory [lo, hi) within ``gap`` of its poll (rule 11)."""
        return np.clip(self.poll_lane_time - gap, lo, hi), np.clip(self.poll_lane_time + gap, lo, hi)

    def unobserved_per_store(
        self, lo: np.ndarray, hi: np.ndarray, business: np.ndarray, gap: int, window_lo: int
    ) -> np.ndarray:
        """Unobserved business time per store in [window_lo, lane_end) (rule 11).

        ``lo``/``hi``: the counted polls' territories clipped to the window; ``business``: the
        business time inside each.
        """
        n = len(self.store_ids)
        a, b = self.observed_bounds(lo, hi, gap)
        lane = self.poll_lane
        away = business - self.business_between(lane + a, lane + b)
        unobserved = np.bincount(self.poll_codes, weights=away, minlength=n)
        # A store without counted polls: all its business time in the window is unobserved.
        silent = np.ones(n, dtype=bool)
        silent[self.poll_codes] = False
        silent_lane = np.flatnonzero(silent).astype(np.int64) << LANE_BITS
        unobserved[silent] = self.business_between(silent_lane + window_lo, silent_lane + self.lane_end)
        return unobserved

    def outage_runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(code, lo_key, hi_key) of each run of consecutive down territories of one store (rule 12)."""
        down = np.flatnonzero(~self.poll_active)
        if len(down) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        codes = self.poll_codes[down]
        new_run = np.ones(len(down), dtype=bool)
        new_run[1:] = (down[1:] != down[:-1] + 1) | (codes[1:] != codes[:-1])
        first = np.flatnonzero(new_run)
        last = np.concatenate((first[1:], [len(down)])) - 1
        lane = codes[first].astype(np.int64) << LANE_BITS
        lo = lane + self.seg_lo[down[first]]
        hi = lane + self.seg_hi[down[last]]
        keep = hi > lo
        return codes[first][keep], lo[keep], hi[keep]

    def outages_per_store(self) -> tuple[np.ndarray, np.ndarray]:
        """Outage count and longest outage (lane units) per store over the whole range.

        A down run is split by closed time: its outages are its intersections with the
        merged business intervals it touches (first, last and any full ones between).
        """
        n = len(self.store_ids)
        codes, lo, hi = self.outage_runs()
        first = np.searchsorted(self.ends, lo, side="right")  # first interval ending after lo
        last = np.searchsorted(self.starts, hi, side="left") - 1  # last interval starting before hi
        pieces = np.maximum(last - first + 1, 0)
        has = pieces > 0
        codes, lo, hi, first, last, pieces = codes[has], lo[has], hi[has], first[has], last[has], pieces[has]
        head = np.minimum(self.ends[first], hi) - np.maximum(self.starts[first], lo)
        tail = np.minimum(self.ends[last], hi) - np.maximum(self.starts[last], lo)
        longest = np.maximum(head, tail)
        middle = pieces > 2
        if middle.any():
            lengths = np.concatenate((self.ends - self.starts, [0]))
            bounds = np.empty(2 * int(middle.sum()), dtype=np.int64)
            bounds[0::2] = first[middle] + 1
            bounds[1::2] = last[middle]
            longest[middle] = np.maximum(longest[middle], np.maximum.reduceat(lengths, bounds)[0::2])
        count = np.bincount(codes, weights=pieces, minlength=n).astype(np.int64)
        per_store = np.zeros(n, dtype=np.int64)
        np.maximum.at(per_store, codes, longest)
        return count, per_store


def _build_lanes(
    *,
    store_ids: np.ndarray,
    poll_codes: np.ndarray,
    poll_us: np.ndarray,
    poll_active: np.ndarray,
    hours: pd.DataFrame,
    zones: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    range_start_us: int,
    range_end_us: int,
) -> Lanes:
    """Business intervals and counted polls (rules 3-7, 13) of ``store_ids`` for [start, end].

    ``poll_*`` hold the polls at or before ``range_end_us`` (any store order); polls
    before ``range_start_us`` are dropped here.
    """
    lane_end = (range_end_us - range_start_us) * UNITS_PER_US
    if len(store_ids) > 1 and lane_end + 1 >= 1 << LANE_BITS:
        raise ValueError("the range is too long for one lane per store")
    in_range = poll_us >= range_start_us
    codes = poll_codes[in_range]
    lane_time = (poll_us[in_range] - range_start_us) * UNITS_PER_US
    active = poll_active[in_range]
    one_per_instant = first_poll_per_instant(codes, lane_time, ~active)
    codes, lane_time, active = codes[one_per_instant], lane_time[one_per_instant], active[one_per_instant]

    starts, ends, zone_names, warnings = _business_intervals(
        store_ids, hours, zones, special_hours, range_start_us, range_end_us, lane_end
    )
    cum_before = np.concatenate(([0], np.cumsum(ends - starts)[:-1])).astype(np.int64)

    # Rule 6: only polls inside business hours count (start inclusive, end exclusive).
    lane = codes.astype(np.int64) << LANE_BITS
    keys = lane + lane_time
    idx = np.searchsorted(starts, keys, side="right") - 1
    counted = (idx >= 0) & (keys < ends[np.maximum(idx, 0)])
    codes, lane, lane_time, active = codes[counted], lane[counted], lane_time[counted], active[counted]

    # Rule 7: each counted poll owns the time up to the midpoints with its neighbours.
    same_as_next = codes[:-1] == codes[1:]
    midpoints = (lane_time[:-1] + lane_time[1:]) // 2
    seg_lo = np.concatenate(([0], np.where(same_as_next, midpoints, 0))).astype(np.int64)
    seg_hi = np.concatenate((np.where(same_as_next, midpoints, lane_end), [lane_end])).astype(np.int64)
    if len(codes) == 0:
        seg_lo, seg_hi = seg_lo[:0], seg_hi[:0]
    return Lanes(
        store_ids=store_ids,
        range_start_us=range_start_us,
        lane_end=lane_end,
        starts=starts,
        ends=ends,
        cum_before=cum_before,
        poll_codes=codes.astype(np.int64),
        poll_lane=lane,
        poll_lane_time=lane_time,
        poll_active=active,
        seg_lo=seg_lo,
        seg_hi=seg_hi,
        zone_names=zone_names,
        warnings=warnings,
    )


def report_to_csv(report: pd.DataFrame) -> str:
    """The report as CSV text, safe to open in a spreadsheet."""
    safe = report.copy()
    ids = safe["store_id"].astype(str)
    risky = ids.str.startswith(FORMULA_PREFIXES)
    # A leading apostrophe makes spreadsheets show the text instead of evaluating it.
    safe["store_id"] = ids.where(~risky, "'" + ids)
    return safe.to_csv(index=False, lineterminator="\n", float_format="%.2f")


def _empty_report(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({col: pd.Series(dtype="float64") for col in columns})
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
    if len(store_ids) == 1:
        # One store (a timeline): the same rule on one value, without the frame machinery.
        mine = zones["timezone_str"].to_numpy(dtype=object)[zones["store_id"].to_numpy(dtype=object) == store_ids[0]]
        name = mine[-1] if len(mine) and isinstance(mine[-1], str) else ""
        name = name.strip()
        if name and name not in known_time_zones():
            warnings.append(f"unknown time zone {name!r} for 1 store(s); using {DEFAULT_TIMEZONE}")
        zone = name if name in known_time_zones() else DEFAULT_TIMEZONE
        return np.array([zone], dtype=object), warnings
    zone_of = pd.Series(DEFAULT_TIMEZONE, index=pd.Index(store_ids, dtype=object), dtype=object)
    if len(zones):
        given = zones.drop_duplicates("store_id", keep="last")
        given = given[given["store_id"].isin(zone_of.index)]
        names = given["timezone_str"].astype(object).where(given["timezone_str"].notna(), "")
        names = names.astype(str).str.strip()
        # Check each distinct name once (isin against all of tzdata costs ~15 ms per call).
        known_set = known_time_zones()
        known = [name for name in pd.unique(names.to_numpy()) if name in known_set]
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
    special_hours: pd.DataFrame | None,
    range_start_us: int,
    range_end_us: int,
    lane_end: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Merged business intervals of every store as sorted global lane keys, and each store's zone.

    Intervals are clipped to the range; their ends are allowed one unit past
    its end so that a poll exactly at ``now`` inside open hours still counts.
    """
    store_index = pd.Index(store_ids, dtype=object)
    code = store_index.get_indexer(hours["store_id"].astype(object).to_numpy())
    rows = hours.loc[code >= 0, ["day_of_week", "start_seconds", "end_seconds"]].copy()
    rows["code"] = code[code >= 0]
    special = _special_rows(store_index, special_hours)

    has_hours = np.zeros(len(store_ids), dtype=bool)
    has_hours[rows["code"].to_numpy()] = True
    # Rule 13: a 24x7 store with special dates becomes one 00:00-00:00 interval per local date,
    # so that a special date can replace its own date's interval.
    daily = np.setdiff1d(pd.unique(special["code"].to_numpy()), np.flatnonzero(has_hours))
    if len(daily):
        all_week = pd.DataFrame(
            {
                "day_of_week": np.tile(np.arange(7, dtype=np.int64), len(daily)),
                "start_seconds": 0,
                "end_seconds": 0,
                "code": np.repeat(daily.astype(np.int64), 7),
            }
        )
        rows = pd.concat([rows, all_week], ignore_index=True)
        has_hours[daily] = True
    always_open = np.flatnonzero(~has_hours)
    clip_hi = lane_end + 1

    zone_names, warnings = _store_zones(store_ids, zones)
    local_starts, local_ends, local_codes = _local_intervals(rows, special, range_start_us, range_end_us)
    utc_start = np.empty(len(local_codes), dtype=np.int64)
    utc_end = np.empty(len(local_codes), dtype=np.int64)
    interval_zones = zone_names[local_codes]
    for zone in pd.unique(interval_zones):
        mask = interval_zones == zone
        utc_start[mask] = _localize_to_utc_us(local_starts[mask], zone)
        utc_end[mask] = _localize_to_utc_us(local_ends[mask], zone)

    start = np.clip((utc_start - range_start_us) * UNITS_PER_US, 0, clip_hi)
    end = np.clip((utc_end - range_start_us) * UNITS_PER_US, 0, clip_hi)
    codes = np.concatenate((local_codes, always_open)).astype(np.int64)
    start = np.concatenate((start, np.zeros(len(always_open), dtype=np.int64)))
    end = np.concatenate((end, np.full(len(always_open), clip_hi, dtype=np.int64)))
    nonempty = end > start
    starts, ends = _merge(codes[nonempty], start[nonempty], end[nonempty])
    return starts, ends, zone_names, warnings


def _special_rows(store_index: pd.Index, special_hours: pd.DataFrame | None) -> pd.DataFrame:
    """Holiday rows of the report's stores: code, date (datetime64[D]), start/end seconds (NaN = closed)."""
    if special_hours is None or len(special_hours) == 0:
        return pd.DataFrame(
            {
                "code": np.zeros(0, dtype=np.int64),
                "date": np.zeros(0, dtype="datetime64[D]"),
                "start_seconds": np.zeros(0),
                "end_seconds": np.zeros(0),
            }
        )
    code = store_index.get_indexer(special_hours["store_id"].astype(object).to_numpy())
    known = code >= 0
    return pd.DataFrame(
        {
            "code": code[known].astype(np.int64),
            "date": pd.to_datetime(special_hours["date_local"].to_numpy()[known], format="%Y-%m-%d")
            .to_numpy()
            .astype("datetime64[D]"),
            "start_seconds": special_hours["start_seconds"].to_numpy(dtype=np.float64)[known],
            "end_seconds": special_hours["end_seconds"].to_numpy(dtype=np.float64)[known],
        }
    )


def _local_intervals(
    rows: pd.DataFrame, special: pd.DataFrame, range_start_us: int, range_end_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Naive local start/end (datetime64[us]) of each hours row on each date near the range.

    Dates run from two days before the range's start to one day after its end
    (UTC dates), which covers every zone offset and overnight intervals. On a
    store's special date the weekly rows give way to its special rows (rule 13).
    """
    first = np.datetime64(range_start_us, "us").astype("datetime64[D]") - 2
    last = np.datetime64(range_end_us, "us").astype("datetime64[D]") + 1
    dates = np.arange(first, last + 1, dtype="datetime64[D]")
    # 1970-01-01 was a Thursday: weekday index 3 with Monday = 0.
    weekdays = (dates.astype(np.int64) + 3) % 7
    # Every (row, date) pair with the row's weekday (the order is irrelevant: _merge sorts).
    row_of, date_of = np.nonzero(rows["day_of_week"].to_numpy(dtype=np.int64)[:, None] == weekdays[None, :])
    joined_dates = dates[date_of]
    date_us = joined_dates.astype("datetime64[us]")
    start_s = rows["start_seconds"].to_numpy(dtype=np.int64)[row_of]
    end_s = rows["end_seconds"].to_numpy(dtype=np.int64)[row_of]
    codes = rows["code"].to_numpy(dtype=np.int64)[row_of]
    if len(special):
        special = special[(special["date"] >= first) & (special["date"] <= last)]
        span = np.int64(len(dates))
        special_days = special["date"].to_numpy().astype("datetime64[D]").astype(np.int64) - first.astype(np.int64)
        special_keys = special["code"].to_numpy(dtype=np.int64) * span + special_days
        weekly_days = date_of.astype(np.int64)
        weekly = ~np.isin(codes * span + weekly_days, special_keys)
        opened = special[special["start_seconds"].notna() & special["end_seconds"].notna()]
        date_us = np.concatenate((date_us[weekly], opened["date"].to_numpy().astype("datetime64[us]")))
        start_s = np.concatenate((start_s[weekly], opened["start_seconds"].to_numpy().astype(np.int64)))
        end_s = np.concatenate((end_s[weekly], opened["end_seconds"].to_numpy().astype(np.int64)))
        codes = np.concatenate((codes[weekly], opened["code"].to_numpy(dtype=np.int64)))
    # end <= start: the interval ends on the next local date (end == start is 24 h).
    end_s = np.where(end_s <= start_s, end_s + 86400, end_s)
    local_start = date_us + (start_s * US_PER_SECOND).astype("timedelta64[us]")
    local_end = date_us + (end_s * US_PER_SECOND).astype("timedelta64[us]")
    return local_start, local_end, codes


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
