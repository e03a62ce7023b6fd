"""Lanes: every store's business intervals and counted polls on one int64 axis (rules 3-7 and 13).

Pure numpy/pandas. The report engine (``loop.report_engine``) lays every store of a report on
its own lane over the report week; the timeline (``loop.timeline``) lays one store on one lane
over any range. Both measure business time, unobserved time and outages (rules 10-13) on the
same ``Lanes``, so those rules have this one home.

How it stays vectorised: every store gets its own lane on one int64 axis
(``store_code << LANE_BITS`` plus time since the range's start), so one sorted
array of merged business intervals serves all stores at once. The business
time between two instants of a store is then a difference of two lookups in
the cumulative business time (``np.searchsorted``), and nearest-poll segments
are summed with ``np.bincount``. Python loops run only over distinct time
zones, which do not grow with the data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop.rules import (
    DEFAULT_TIMEZONE,
    US_PER_SECOND,
    effective_zones,
    first_poll_per_instant,
    gap_problem,
    zone_warnings,
    zones_and_bad_names,
)

# Lane time is in half microseconds so that midpoints of two polls stay exact integers.
UNITS_PER_US = 2
# 2**41 half-microseconds is ~12.7 days (> one week) and leaves 2**22 lanes (~4M stores).
LANE_BITS = 41
MAX_STORES = 1 << (63 - LANE_BITS - 1)
# Clock gaps (DST) last at most a few hours; a day bounds the search for a gap's end.
DST_SEARCH_MINUTES = 24 * 60


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


def build_lanes(
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
    calendar: BusinessCalendar | None = None,
) -> Lanes:
    """Business intervals and counted polls (rules 3-7, 13) of ``store_ids`` for [start, end].

    ``poll_*`` hold the polls at or before ``range_end_us`` (any store order); polls
    before ``range_start_us`` are dropped here. ``calendar``: built from these ``hours``, ``zones`` and
    ``special_hours``, it saves working their intervals out again.
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

    if calendar is not None:
        starts, ends, zone_names, warnings = calendar.intervals(store_ids, range_start_us, range_end_us, lane_end)
    else:
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


def gap_units(max_gap_minutes: int) -> int:
    """G (rule 11) in lane units; ValueError when it is not an allowed G (``rules.gap_problem``)."""
    problem = gap_problem(max_gap_minutes)
    if problem is not None:
        raise ValueError(f"max_gap_minutes {problem}, not {max_gap_minutes!r}")
    return int(max_gap_minutes) * 60 * US_PER_SECOND * UNITS_PER_US


def to_utc_us(timestamps: pd.Series) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (naive values are UTC)."""
    values = pd.to_datetime(timestamps, utc=True)
    return values.dt.tz_convert(None).to_numpy(dtype="datetime64[us]").view(np.int64)


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
    zone_names, warnings = effective_zones(store_ids, zones)
    found = _utc_intervals(store_ids, hours, special_hours, zone_names, *_dates_around(range_start_us, range_end_us))
    return (*_lane_intervals(found, range_start_us, lane_end), zone_names, warnings)


@dataclass(frozen=True)
class _UtcIntervals:
    """Business intervals in UTC microseconds (code = position in the store ids), and who is always open."""

    codes: np.ndarray
    start_us: np.ndarray
    end_us: np.ndarray
    always_open: np.ndarray  # codes of the stores without any hours row


def _dates_around(range_start_us: int, range_end_us: int) -> tuple[np.datetime64, np.datetime64]:
    """The UTC dates whose local hours can touch the range: two days before its start to one after its end
    (every zone offset, and overnight intervals)."""
    first = np.datetime64(range_start_us, "us").astype("datetime64[D]") - 2
    last = np.datetime64(range_end_us, "us").astype("datetime64[D]") + 1
    return first, last


def _utc_intervals(
    store_ids: np.ndarray,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    zone_names: np.ndarray,
    first: np.datetime64,
    last: np.datetime64,
) -> _UtcIntervals:
    """Each store's business intervals on the local dates ``first``..``last`` (rules 4, 5 and 13), in UTC."""
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

    local_starts, local_ends, local_codes = _local_intervals(rows, special, first, last)
    utc_start = np.empty(len(local_codes), dtype=np.int64)
    utc_end = np.empty(len(local_codes), dtype=np.int64)
    interval_zones = zone_names[local_codes]
    for zone in pd.unique(interval_zones):
        mask = interval_zones == zone
        utc_start[mask] = localize_to_utc_us(local_starts[mask], zone)
        utc_end[mask] = localize_to_utc_us(local_ends[mask], zone)
    return _UtcIntervals(local_codes.astype(np.int64), utc_start, utc_end, np.flatnonzero(~has_hours))


def _lane_intervals(found: _UtcIntervals, range_start_us: int, lane_end: int) -> tuple[np.ndarray, np.ndarray]:
    """The intervals clipped to the range (an always-open store: the whole range), merged, as lane keys."""
    clip_hi = lane_end + 1
    start = np.clip((found.start_us - range_start_us) * UNITS_PER_US, 0, clip_hi)
    end = np.clip((found.end_us - range_start_us) * UNITS_PER_US, 0, clip_hi)
    codes = np.concatenate((found.codes, found.always_open)).astype(np.int64)
    start = np.concatenate((start, np.zeros(len(found.always_open), dtype=np.int64)))
    end = np.concatenate((end, np.full(len(found.always_open), clip_hi, dtype=np.int64)))
    nonempty = end > start
    return _merge(codes[nonempty], start[nonempty], end[nonempty])


class BusinessCalendar:
    """Every store's business intervals in UTC, worked out once per span of dates and reused.

    The alert evaluation lays the same stores on the same few dates every few seconds; while the hours,
    holidays and zones stay the same (the caller keys a calendar on their stored versions), only the
    clipping to each evaluation's range is left to do. The intervals are exactly ``_business_intervals``'
    (each store's are its own: working them out for every store at once changes none).
    """

    # The evaluation's spans and the daily figures' (the dates around an hourly batch's).
    SPANS_KEPT = 8

    def __init__(self, *, hours: pd.DataFrame, zones: pd.DataFrame, special_hours: pd.DataFrame | None) -> None:
        self._hours = hours.astype({"store_id": object})
        self._special = special_hours
        named = [self._hours["store_id"], zones["store_id"].astype(object)]
        if special_hours is not None:
            named.append(special_hours["store_id"].astype(object))
        self.store_ids = np.unique(pd.concat(named, ignore_index=True).astype(str).to_numpy(dtype=object))
        zones = zones.astype({"store_id": object, "timezone_str": object})
        self._zone_names, self._bad_names = zones_and_bad_names(self.store_ids, zones)
        self._index = pd.Index(self.store_ids, dtype=object)
        self._spans: dict[tuple[np.datetime64, np.datetime64], _UtcIntervals] = {}
        self._lock = threading.Lock()

    def _span(self, first: np.datetime64, last: np.datetime64) -> _UtcIntervals:
        with self._lock:  # the evaluation and a batch's daily figures may ask at once
            found = self._spans.get((first, last))
        if found is None:
            found = _utc_intervals(self.store_ids, self._hours, self._special, self._zone_names, first, last)
            with self._lock:
                if len(self._spans) >= self.SPANS_KEPT:
                    self._spans.pop(next(iter(self._spans)))
                self._spans[(first, last)] = found
        return found

    def intervals(
        self, store_ids: np.ndarray, range_start_us: int, range_end_us: int, lane_end: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """What ``_business_intervals`` answers for these stores and this range."""
        position = self._index.get_indexer(pd.Index(store_ids, dtype=object))
        # A store the calendar does not know has no hours and no zone row: always open, in the default zone.
        # (through a sentinel at the end, which position -1 reads)
        zone_names = np.append(self._zone_names, DEFAULT_TIMEZONE).astype(object)[position]
        bad_names = np.append(self._bad_names, "").astype(object)[position]
        found = self._remap(position, self._span(*_dates_around(range_start_us, range_end_us)))
        return (*_lane_intervals(found, range_start_us, lane_end), zone_names, zone_warnings(bad_names))

    def utc_intervals(self, store_ids: np.ndarray, first: np.datetime64, last: np.datetime64) -> _UtcIntervals:
        """What ``_utc_intervals`` answers for these stores (each in its zone by rule 3, as the calendar's
        tables say) on the local dates ``first``..``last``, codes = positions in ``store_ids``."""
        position = self._index.get_indexer(pd.Index(store_ids, dtype=object))
        return self._remap(position, self._span(first, last))

    def _remap(self, position: np.ndarray, span: _UtcIntervals) -> _UtcIntervals:
        """A span's intervals in the caller's codes (``position``: each caller store's calendar code, -1 when
        the calendar does not know it: always open)."""
        known = position >= 0
        # Calendar code -> the caller's code (-1: a store the caller did not ask for).
        to_caller = np.full(len(self.store_ids), -1, dtype=np.int64)
        to_caller[position[known]] = np.flatnonzero(known)
        mine = to_caller[span.codes] >= 0
        always = np.zeros(len(position), dtype=bool)
        always[~known] = True
        always[np.flatnonzero(known)] = np.isin(position[known], span.always_open)
        return _UtcIntervals(
            to_caller[span.codes[mine]], span.start_us[mine], span.end_us[mine], np.flatnonzero(always)
        )


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
    code = store_index.get_indexer(pd.Index(special_hours["store_id"].astype(object)))
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
    rows: pd.DataFrame, special: pd.DataFrame, first: np.datetime64, last: np.datetime64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Naive local start/end (datetime64[us]) of each hours row on each date near the range.

    Dates run from two days before the range's start to one day after its end
    (UTC dates), which covers every zone offset and overnight intervals. On a
    store's special date the weekly rows give way to its special rows (rule 13).
    """
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


def localize_to_utc_us(local: np.ndarray, zone: str) -> np.ndarray:
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
    for _ in range(DST_SEARCH_MINUTES):
        if len(pending) == 0:
            break
        stepped = stepped + pd.Timedelta(minutes=1)
        attempt = stepped.tz_localize(zone, ambiguous=np.ones(len(stepped), dtype=bool), nonexistent="NaT")
        found = ~np.asarray(attempt.isna(), dtype=bool)
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
