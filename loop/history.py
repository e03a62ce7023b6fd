"""Daily figures: each store's business-time uptime, downtime, unobserved time and outages per local date.

Pure (arrays and DataFrames in, arrays out; no Django, no MongoDB). The figures of a store on its local
date D are, by construction, its timeline's (``loop.timeline.store_timeline``) over
``[D 00:00 local, D+1 00:00 local)``: every (store, date) pair gets a lane of its own on the lanes'
int64 axis (``loop.lanes``), with the pair's local midnight as lane time 0, and is measured with the
same ``Lanes`` methods and the same business intervals (``lanes._utc_intervals``: rules 4, 5 and 13)
as the timeline and the extended report. So, as for a timeline over that range:

* the counted polls of (s, D) are s's polls inside business hours with ``M_D <= t <= M_D+1``
  (a poll exactly at a local midnight counts for both dates it bounds);
* the nearest-poll status extends to the date's edges, never beyond its own counted polls: a date's
  figures depend on the polls of that date only (``dates_touched`` says which dates a poll changes);
* a pair without counted polls has no up or down time, and all its business time is unobserved;
* outages are cut at the date's edges (rule 12's boundaries).

Python loops run over distinct zones and chunks of dates only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop.lanes import (
    LANE_BITS,
    MAX_STORES,
    UNITS_PER_US,
    BusinessCalendar,
    Lanes,
    _merge,
    _utc_intervals,
    gap_units,
    localize_to_utc_us,
)
from loop.rules import DEFAULT_MAX_GAP_MINUTES, US_PER_SECOND, effective_zones, first_poll_per_instant

# (store, date) lanes per chunk: well under MAX_STORES, and a bounded memory per chunk.
PAIRS_PER_CHUNK = min(MAX_STORES - 1, 1 << 20)
# Midnight keys: store code << MID_BITS plus microseconds since the first midnight (2**44 us ~ 203 days).
MID_BITS = 44
UNITS_PER_SECOND = UNITS_PER_US * US_PER_SECOND


@dataclass(frozen=True)
class DailyFigures:
    """One row per (store, local date): ``code`` indexes the caller's store ids; times in seconds."""

    code: np.ndarray  # int64
    date: np.ndarray  # datetime64[D], the store's local date
    up_s: np.ndarray  # float64
    down_s: np.ndarray
    unobserved_s: np.ndarray
    outages: np.ndarray  # int64
    longest_s: np.ndarray  # float64: the longest outage

    def __len__(self) -> int:
        return len(self.code)

    def take(self, index: np.ndarray) -> DailyFigures:
        return DailyFigures(
            self.code[index],
            self.date[index],
            self.up_s[index],
            self.down_s[index],
            self.unobserved_s[index],
            self.outages[index],
            self.longest_s[index],
        )

    @classmethod
    def concat(cls, parts: list[DailyFigures]) -> DailyFigures:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))

    @classmethod
    def empty(cls) -> DailyFigures:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, "datetime64[D]"),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, np.int64),
            np.zeros(0),
        )


FIELDS = ("code", "date", "up_s", "down_s", "unobserved_s", "outages", "longest_s")


def store_zones(store_ids: np.ndarray, zones: pd.DataFrame) -> np.ndarray:
    """Each store's effective zone name (rule 3), as the timeline uses it."""
    return effective_zones(np.asarray(store_ids, dtype=object), zones)[0]


def local_dates(codes: np.ndarray, t_us: np.ndarray, zone_names: np.ndarray) -> np.ndarray:
    """The local date (datetime64[D]) of each instant in its store's zone."""
    out = np.empty(len(codes), dtype="datetime64[D]")
    zones_of = zone_names[codes]
    for zone in pd.unique(zones_of):
        mask = zones_of == zone
        utc = pd.DatetimeIndex(t_us[mask].astype("datetime64[us]")).tz_localize("UTC")
        out[mask] = utc.tz_convert(zone).tz_localize(None).to_numpy().astype("datetime64[D]")
    return out


def midnights_us(zone_names: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """UTC microseconds of 00:00 local of each date (columns) in each store's zone (rows); rule 5 for gaps."""
    out = np.empty((len(zone_names), len(dates)), dtype=np.int64)
    local = dates.astype("datetime64[us]")
    for zone in pd.unique(zone_names):
        out[zone_names == zone] = localize_to_utc_us(local, zone)
    return out


def dates_touched(codes: np.ndarray, t_us: np.ndarray, zone_names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code, date) pairs whose figures a poll of ``codes`` at ``t_us`` can change, distinct.

    A poll counts only for the dates whose closed range [M_D, M_D+1] holds it: its own local date,
    and the date before when it lies exactly at a local midnight."""
    if len(codes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, "datetime64[D]")
    date = local_dates(codes, t_us, zone_names)
    # At a midnight exactly: the date's own midnight equals t.
    own = np.empty(len(codes), dtype=np.int64)
    zones_of = zone_names[codes]
    for zone in pd.unique(zones_of):
        mask = zones_of == zone
        own[mask] = localize_to_utc_us(date[mask].astype("datetime64[us]"), zone)
    at_midnight = own == t_us
    all_codes = np.concatenate((codes, codes[at_midnight])).astype(np.int64)
    all_dates = np.concatenate((date, date[at_midnight] - 1))
    pairs = np.unique(np.stack((all_codes, all_dates.astype(np.int64)), axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1].astype("datetime64[D]")


def daily_figures(
    *,
    store_ids: np.ndarray,
    poll_codes: np.ndarray,
    poll_us: np.ndarray,
    poll_active: np.ndarray,
    hours: pd.DataFrame,
    zones: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    first_date: np.datetime64,
    last_date: np.datetime64,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    zone_names: np.ndarray | None = None,
    calendar: BusinessCalendar | None = None,
) -> DailyFigures:
    """Figures of every store of ``store_ids`` on every local date ``first_date``..``last_date``
    (or only the (code, date) ``pairs`` given, which must lie in that span), sorted by (code, date).

    ``poll_*``: the polls (codes into ``store_ids``) that can count, i.e. at least those between the
    first date's and the day after the last date's local midnights; more do no harm. ``zone_names``: each
    store's ``store_zones`` when the caller has them already. ``calendar``: the business intervals kept for
    these tables (``lanes.BusinessCalendar`` of the same hours, holidays and zones), instead of working
    them out again from ``hours`` and ``special_hours`` (the same intervals).
    """
    store_ids = np.asarray(store_ids, dtype=object)
    gap = gap_units(max_gap_minutes)
    first = np.asarray(first_date).astype("datetime64[D]")[()]
    last = np.asarray(last_date).astype("datetime64[D]")[()]
    if last < first or len(store_ids) == 0:
        return DailyFigures.empty()
    if zone_names is None:
        zone_names = store_zones(store_ids, zones)
    all_dates = np.arange(first, last + 2, dtype="datetime64[D]")  # type: ignore[call-overload]  # one more: each date's end
    mids = midnights_us(zone_names, all_dates)
    wanted = None
    if pairs is not None:
        wanted = np.zeros((len(store_ids), len(all_dates) - 1), dtype=bool)
        wanted[pairs[0].astype(np.int64), (pairs[1].astype("datetime64[D]") - first).astype(np.int64)] = True
    order = _sort_by_store_and_time(poll_codes, poll_us)
    if order is not None:
        poll_codes, poll_us, poll_active = poll_codes[order], poll_us[order], poll_active[order]
    n_dates = len(all_dates) - 1
    per_chunk = max(1, PAIRS_PER_CHUNK // max(1, len(store_ids)))
    stores_per_chunk = len(store_ids) if per_chunk > 1 else max(1, PAIRS_PER_CHUNK)
    pieces = []
    for s0 in range(0, len(store_ids), stores_per_chunk):
        s1 = min(len(store_ids), s0 + stores_per_chunk)
        lo, hi = np.searchsorted(poll_codes, [s0, s1])
        for d0 in range(0, n_dates, per_chunk):
            d1 = min(n_dates, d0 + per_chunk)
            chunk_wanted = None if wanted is None else wanted[s0:s1, d0:d1]
            if chunk_wanted is not None and not chunk_wanted.any():
                continue
            figures = _chunk(
                codes_offset=s0,
                store_ids=store_ids[s0:s1],
                zone_names=zone_names[s0:s1],
                mids=mids[s0:s1, d0 : d1 + 1],
                dates=all_dates[d0:d1],
                poll_codes=poll_codes[lo:hi] - s0,
                poll_us=poll_us[lo:hi],
                poll_active=poll_active[lo:hi],
                hours=hours,
                special_hours=special_hours,
                gap=gap,
                calendar=calendar,
            )
            if chunk_wanted is not None:
                figures = figures.take(chunk_wanted.ravel())
            pieces.append(figures)
    out = DailyFigures.concat(pieces)
    if len(pieces) > 1:
        out = out.take(np.lexsort((out.date, out.code)))
    return out


def _sort_by_store_and_time(codes: np.ndarray, t_us: np.ndarray) -> np.ndarray | None:
    """The order that sorts polls by (code, time), stable (``np.lexsort``'s); None when already sorted.

    Polls come as days sorted by (store, time) one after the other: one int64 key (code, then time) sorted
    stably merges those runs, much faster than a two-key lexsort."""
    if len(codes) < 2:
        return None
    codes = codes.astype(np.int64, copy=False)
    t0 = int(t_us.min())
    span = int(t_us.max()) - t0
    bits = max(1, span.bit_length())
    if codes.min() < 0 or int(codes.max()).bit_length() + bits > 62:
        return np.lexsort((t_us, codes))
    key = (codes << bits) + (t_us - t0)
    if bool((key[1:] >= key[:-1]).all()):
        return None
    return np.argsort(key, kind="stable")


def _first_poll_per_instant(pair: np.ndarray, time: np.ndarray, active: np.ndarray) -> np.ndarray:
    """``rules.first_poll_per_instant(pair, time, ~active)`` (the same positions in the same order), with one
    int64 key sorted stably instead of a three-key lexsort when (pair, time) fit in it (times are >= 0)."""
    if len(pair) == 0:
        return np.zeros(0, dtype=np.int64)
    bits = max(1, int(time.max()).bit_length())
    if int(time.min()) < 0 or int(pair.max()).bit_length() + bits + 1 > 62:
        return first_poll_per_instant(pair, time, ~active)
    # Within an instant the inactive poll first (rule 2): active sorts after inactive.
    key = (((pair.astype(np.int64) << bits) + time) << 1) + active.astype(np.int64)
    order = np.argsort(key, kind="stable")
    instant = key[order] >> 1
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = instant[1:] != instant[:-1]
    return order[starts]


def _chunk(
    *,
    codes_offset: int,
    store_ids: np.ndarray,
    zone_names: np.ndarray,
    mids: np.ndarray,
    dates: np.ndarray,
    poll_codes: np.ndarray,
    poll_us: np.ndarray,
    poll_active: np.ndarray,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    gap: int,
    calendar: BusinessCalendar | None = None,
) -> DailyFigures:
    """Figures of the stores x dates grid; pair p = store * len(dates) + date, lanes in that order."""
    ns, nd = len(store_ids), len(dates)
    n_pairs = ns * nd
    base = int(mids.min())
    # Each pair's range [M_j, M_j+1) and its lane end in lane units.
    pair_start = mids[:, :-1].ravel()
    lane_end = (mids[:, 1:].ravel() - pair_start) * UNITS_PER_US
    store_of_pair = np.repeat(np.arange(ns, dtype=np.int64), nd)

    # Business intervals (rules 4, 5, 13) of the local dates around the chunk, exactly as the timeline's.
    if calendar is not None:
        found = calendar.utc_intervals(store_ids, dates[0] - 2, dates[-1] + 2)
    else:
        found = _utc_intervals(store_ids, hours, special_hours, zone_names, dates[0] - 2, dates[-1] + 2)
    # Midnight keys of each store, strictly increasing over (store, date).
    mid_keys = (np.arange(ns, dtype=np.int64)[:, None] << MID_BITS) + (mids - base)
    flat_keys = mid_keys.ravel()
    c = found.codes.astype(np.int64)
    s_key = (c << MID_BITS) + (found.start_us - base)
    e_key = (c << MID_BITS) + (found.end_us - base)
    row0 = c * (nd + 1)
    # Pairs j with M_j < end and start <= M_j+1 (the timeline keeps an interval starting exactly at its
    # range end, one unit long: a poll at the end still counts when the store is open then).
    j_lo = np.searchsorted(flat_keys, s_key, side="left") - row0 - 1
    j_hi = np.searchsorted(flat_keys, e_key, side="left") - row0 - 1
    j_lo = np.clip(j_lo, 0, nd - 1)
    j_hi = np.clip(j_hi, -1, nd - 1)
    count = np.maximum(j_hi - j_lo + 1, 0)
    owner = np.repeat(np.arange(len(c)), count)
    j = np.repeat(j_lo, count) + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
    pair = c[owner] * nd + j
    iv_start = np.clip((found.start_us[owner] - pair_start[pair]) * UNITS_PER_US, 0, lane_end[pair] + 1)
    iv_end = np.clip((found.end_us[owner] - pair_start[pair]) * UNITS_PER_US, 0, lane_end[pair] + 1)
    # Always-open stores: the whole range of each of their pairs.
    always_pairs = (found.always_open.astype(np.int64)[:, None] * nd + np.arange(nd)[None, :]).ravel()
    pair = np.concatenate((pair, always_pairs))
    iv_start = np.concatenate((iv_start, np.zeros(len(always_pairs), dtype=np.int64)))
    iv_end = np.concatenate((iv_end, lane_end[always_pairs] + 1))
    keep = iv_end > iv_start
    starts, ends = _merge(pair[keep], iv_start[keep], iv_end[keep])
    cum_before = np.concatenate(([0], np.cumsum(ends - starts)[:-1])).astype(np.int64)

    # Polls of each pair: M_j <= t <= M_j+1 (a poll at a midnight belongs to both dates).
    p_key = (poll_codes.astype(np.int64) << MID_BITS) + (poll_us - base)
    prow = poll_codes.astype(np.int64) * (nd + 1)
    j_own = np.searchsorted(flat_keys, p_key, side="right") - prow - 1  # M_j <= t < M_j+1
    at_mid = (j_own >= 0) & (j_own <= nd) & (flat_keys[np.clip(prow + j_own, 0, len(flat_keys) - 1)] == p_key)
    idx = np.concatenate((np.arange(len(poll_us)), np.flatnonzero(at_mid)))
    jj = np.concatenate((j_own, j_own[at_mid] - 1))
    ok = (jj >= 0) & (jj < nd)
    idx, jj = idx[ok], jj[ok]
    p_pair = poll_codes[idx].astype(np.int64) * nd + jj
    p_time = (poll_us[idx] - pair_start[p_pair]) * UNITS_PER_US
    p_active = poll_active[idx]
    one = _first_poll_per_instant(p_pair, p_time, p_active)
    p_pair, p_time, p_active = p_pair[one], p_time[one], p_active[one]
    # Rule 6: only polls inside business hours count.
    lane = p_pair << LANE_BITS
    keys = lane + p_time
    at = np.searchsorted(starts, keys, side="right") - 1
    counted = (at >= 0) & (keys < ends[np.maximum(at, 0)])
    p_pair, lane, p_time, p_active = p_pair[counted], lane[counted], p_time[counted], p_active[counted]
    # Rule 7 with each pair's own lane end.
    same_as_next = p_pair[:-1] == p_pair[1:]
    midpoints = (p_time[:-1] + p_time[1:]) // 2
    seg_lo = np.concatenate(([0], np.where(same_as_next, midpoints, 0))).astype(np.int64)
    seg_hi = np.concatenate((np.where(same_as_next, midpoints, lane_end[p_pair[:-1]]), lane_end[p_pair[-1:]]))
    seg_hi = seg_hi.astype(np.int64)
    if len(p_pair) == 0:
        seg_lo, seg_hi = seg_lo[:0], seg_hi[:0]
    lanes = Lanes(
        store_ids=np.arange(n_pairs),
        range_start_us=0,
        lane_end=0,  # per pair here: lane_end[pair]; the methods used below do not read it
        starts=starts,
        ends=ends,
        cum_before=cum_before,
        poll_codes=p_pair,
        poll_lane=lane,
        poll_lane_time=p_time,
        poll_active=p_active,
        seg_lo=seg_lo,
        seg_hi=seg_hi,
        zone_names=zone_names,
        warnings=[],
    )
    business = lanes.business_between(lane + seg_lo, lane + seg_hi)
    up = np.bincount(p_pair, weights=np.where(p_active, business, 0), minlength=n_pairs)
    down = np.bincount(p_pair, weights=np.where(p_active, 0, business), minlength=n_pairs)
    a, b = lanes.observed_bounds(seg_lo, seg_hi, gap)
    away = business - lanes.business_between(lane + a, lane + b)
    unobserved = np.bincount(p_pair, weights=away, minlength=n_pairs)
    silent = np.ones(n_pairs, dtype=bool)
    silent[p_pair] = False
    silent_lane = np.flatnonzero(silent).astype(np.int64) << LANE_BITS
    unobserved[silent] = lanes.business_between(silent_lane, silent_lane + lane_end[silent])
    outages, longest = lanes.outages_per_store()
    return DailyFigures(
        code=store_of_pair + codes_offset,
        date=np.tile(dates, ns),
        up_s=up / UNITS_PER_SECOND,
        down_s=down / UNITS_PER_SECOND,
        unobserved_s=unobserved / UNITS_PER_SECOND,
        outages=outages.astype(np.int64),
        longest_s=longest / UNITS_PER_SECOND,
    )
