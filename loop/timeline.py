"""One store's timeline: when it was up, down or unobserved, its outages and daily totals.

Pure (DataFrames in, dataclasses out; no Django, no MongoDB). It runs the report
engine's lanes (``loop.lanes.build_lanes``: rules 3-7 and 13, the
holiday hours) for a single store over ``[start, end)``, so the rules have one home
and, over the report week, its totals equal the extended report's row for the store.
A single store needs a single lane, so the range may be longer than a lane of the
report (the API allows up to 31 days).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop.lanes import UNITS_PER_US, Lanes, build_lanes, gap_units, localize_to_utc_us, to_utc_us
from loop.rules import ACTIVE, DEFAULT_MAX_GAP_MINUTES, US_PER_SECOND, uptime_pct_or_none

UP = "up"
DOWN = "down"


@dataclass(frozen=True)
class Span:
    """A segment, an outage or an open interval: [start_us, end_us) in UTC microseconds since the epoch."""

    start_us: int
    end_us: int

    @property
    def seconds(self) -> float:
        return (self.end_us - self.start_us) / US_PER_SECOND


@dataclass(frozen=True)
class Segment(Span):
    """A maximal span of business time with one status and one observed flag (rule 10)."""

    status: str  # "up" | "down"
    observed: bool


@dataclass(frozen=True)
class DaySummary:
    """Totals of one local date of the store (split at local midnights), for daily bars."""

    date_local: str  # YYYY-MM-DD
    uptime_s: float
    downtime_s: float
    unobserved_s: float


@dataclass(frozen=True)
class Timeline:
    zone: str  # the zone actually used (unknown/blank -> default, like the report)
    start_us: int
    end_us: int
    max_gap_minutes: int
    segments: list[Segment]
    outages: list[Span]
    open_intervals: list[Span]  # business time inside [start, end), for charts (closed time = gaps)
    days: list[DaySummary]
    uptime_s: float
    downtime_s: float
    unobserved_s: float

    @property
    def uptime_pct(self) -> float | None:
        """``rules.uptime_pct`` of the range; None when it has neither up nor down time."""
        return uptime_pct_or_none(self.uptime_s, self.downtime_s)

    @property
    def outage_count(self) -> int:
        return len(self.outages)

    @property
    def longest_outage_minutes(self) -> float:
        return max((o.seconds for o in self.outages), default=0.0) / 60


def iso_times(instants_us: Sequence[int], zone: str) -> tuple[list[str], list[str]]:
    """Each instant as UTC ISO 8601 with ``Z`` and as local ISO 8601 with the zone's offset then.

    Vectorised because a week's timeline has hundreds of instants and a pandas Timestamp per
    instant cost more than the timeline itself. The text is what ``Timestamp.isoformat`` writes:
    microseconds only when there are any.
    """
    utc_us = np.asarray(instants_us, dtype=np.int64)
    utc = pd.DatetimeIndex(utc_us.astype("datetime64[us]")).tz_localize("UTC")
    wall_us = utc.tz_convert(zone).tz_localize(None).to_numpy().astype("datetime64[us]").view(np.int64)
    offset_s = (wall_us - utc_us) // US_PER_SECOND
    sign = np.where(offset_s < 0, "-", "+")
    magnitude = np.abs(offset_s)
    hh, mm, ss = magnitude // 3600, magnitude // 60 % 60, magnitude % 60
    offsets = [
        f"{g}{h:02d}:{m:02d}" + (f":{x:02d}" if x else "")
        for g, h, m, x in zip(sign.tolist(), hh.tolist(), mm.tolist(), ss.tolist(), strict=True)
    ]
    return _iso_text(utc_us, ["Z"] * len(offsets)), _iso_text(wall_us, offsets)


def _iso_text(wall_us: np.ndarray, suffixes: list[str]) -> list[str]:
    text = np.datetime_as_string(wall_us.astype("datetime64[us]"), unit="us").tolist()
    whole = (wall_us % US_PER_SECOND == 0).tolist()
    return [(t[:-7] if w else t) + suffix for t, w, suffix in zip(text, whole, suffixes, strict=True)]


def store_timeline(
    *,
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    zones: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
) -> Timeline:
    """The timeline of one store over ``[start, end)``.

    ``polls``, ``hours`` and ``zones`` are that store's rows in the engine's frame schemas (a
    store id column may hold only that store; its zone is read by ``rules.effective_zones``);
    the counted polls are those inside business hours with ``start <= t <= end`` (for the report's week, rule 6).
    Raises ``ValueError`` when ``end`` is before ``start`` or the gap is out of range.
    """
    gap = gap_units(max_gap_minutes)
    start_us = int(to_utc_us(pd.Series([pd.Timestamp(start)]))[0])
    end_us = int(to_utc_us(pd.Series([pd.Timestamp(end)]))[0])
    if end_us < start_us:
        raise ValueError("the timeline's end lies before its start")
    store_id = _the_store(polls, hours, special_hours, zones)
    poll_us = to_utc_us(polls["timestamp_utc"])
    kept = poll_us <= end_us
    lanes = build_lanes(
        store_ids=np.array([store_id], dtype=object),
        poll_codes=np.zeros(int(kept.sum()), dtype=np.int64),
        poll_us=poll_us[kept],
        poll_active=(polls["status"] == ACTIVE).to_numpy(dtype=bool)[kept],
        hours=hours.assign(store_id=store_id) if len(hours) else hours,
        zones=zones.assign(store_id=store_id) if len(zones) else zones,
        special_hours=None if special_hours is None else special_hours.assign(store_id=store_id),
        range_start_us=start_us,
        range_end_us=end_us,
    )
    zone = str(lanes.zone_names[0])
    seg_start, seg_end, seg_up, seg_observed = _segments(lanes, gap)
    out_start, out_end = _touching_runs(seg_start[~seg_up], seg_end[~seg_up])
    open_start, open_end = _open_intervals(lanes)

    up_units = float((seg_end - seg_start)[seg_up].sum())
    down_units = float((seg_end - seg_start)[~seg_up].sum())
    if len(seg_start):
        unobserved_units = float((seg_end - seg_start)[~seg_observed].sum())
    else:  # no counted polls: all business time of the range is unobserved
        unobserved_units = float((open_end - open_start).sum())

    def to_us(units: np.ndarray) -> list[int]:
        return [start_us + int(u) // UNITS_PER_US for u in units]

    def spans(lo: np.ndarray, hi: np.ndarray) -> list[Span]:
        return [Span(a, b) for a, b in zip(to_us(lo), to_us(hi), strict=True)]

    segments = [
        Segment(a, b, UP if up else DOWN, bool(obs))
        for a, b, up, obs in zip(to_us(seg_start), to_us(seg_end), seg_up, seg_observed, strict=True)
    ]
    return Timeline(
        zone=zone,
        start_us=start_us,
        end_us=end_us,
        max_gap_minutes=int(max_gap_minutes),
        segments=segments,
        outages=spans(out_start, out_end),
        open_intervals=spans(open_start, open_end),
        days=_days(lanes, zone, seg_start, seg_end, seg_up, seg_observed, open_start, open_end),
        uptime_s=_seconds(up_units),
        downtime_s=_seconds(down_units),
        unobserved_s=_seconds(unobserved_units),
    )


def _seconds(units: float) -> float:
    return units / UNITS_PER_US / US_PER_SECOND


def _the_store(*frames: pd.DataFrame | None) -> str:
    """The one store id the frames describe ("" when none names it)."""
    ids: set[str] = set()
    for frame in frames:
        if frame is not None and len(frame):
            ids.update(str(value) for value in pd.unique(frame["store_id"].to_numpy(dtype=object)))
    if len(ids) > 1:
        raise ValueError(f"store_timeline takes one store's rows, got {len(ids)} stores")
    return ids.pop() if ids else ""


def _segments(lanes: Lanes, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, up, observed) of the maximal segments in lane time (one lane: key == time)."""
    lo, hi = lanes.seg_lo, lanes.seg_hi
    a, b = lanes.observed_bounds(lo, hi, gap)
    # Each territory in three pieces: unobserved before, observed around its poll, unobserved after.
    piece_lo = np.stack((lo, a, b), axis=1).ravel()
    piece_hi = np.stack((a, b, hi), axis=1).ravel()
    piece_up = np.repeat(lanes.poll_active, 3)
    piece_obs = np.tile([False, True, False], len(lo))
    keep = piece_hi > piece_lo
    piece_lo, piece_hi, piece_up, piece_obs = piece_lo[keep], piece_hi[keep], piece_up[keep], piece_obs[keep]
    # Intersect the pieces with the business intervals they touch.
    first = np.searchsorted(lanes.ends, piece_lo, side="right")
    last = np.searchsorted(lanes.starts, piece_hi, side="left") - 1
    count = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(len(piece_lo)), count)
    interval = np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    start = np.maximum(piece_lo[owner], lanes.starts[interval])
    end = np.minimum(piece_hi[owner], lanes.ends[interval])
    up, observed = piece_up[owner], piece_obs[owner]
    # Merge neighbours that touch and agree on status and observed flag.
    new = np.ones(len(start), dtype=bool)
    new[1:] = (start[1:] != end[:-1]) | (up[1:] != up[:-1]) | (observed[1:] != observed[:-1])
    head, tail = _run_bounds(new)
    return start[head], end[tail], up[head], observed[head]


def _touching_runs(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of spans where each starts where the previous ends (down segments -> outages, rule 12)."""
    new = np.ones(len(start), dtype=bool)
    new[1:] = start[1:] != end[:-1]
    head, tail = _run_bounds(new)
    return start[head], end[tail]


def _run_bounds(new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last position of each run, given a flag per position that starts a run."""
    head = np.flatnonzero(new)
    tail = np.concatenate((head[1:], [len(new)])).astype(np.int64) - 1
    return head, tail[: len(head)]


def _open_intervals(lanes: Lanes) -> tuple[np.ndarray, np.ndarray]:
    """Business intervals inside [0, lane_end) (the merged list's sentinel dropped)."""
    starts = lanes.starts[lanes.starts >= 0]
    ends = np.minimum(lanes.ends[lanes.starts >= 0], lanes.lane_end)
    keep = ends > starts
    return starts[keep], ends[keep]


def _days(
    lanes: Lanes,
    zone: str,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    seg_up: np.ndarray,
    seg_observed: np.ndarray,
    open_start: np.ndarray,
    open_end: np.ndarray,
) -> list[DaySummary]:
    """Per local date touching the range: up, down and unobserved seconds (cut at local midnights)."""
    first_utc = pd.Timestamp(lanes.range_start_us, unit="us", tz="UTC")
    last_utc = pd.Timestamp(lanes.range_start_us + lanes.lane_end // UNITS_PER_US, unit="us", tz="UTC")
    first = first_utc.tz_convert(zone).date()
    last = last_utc.tz_convert(zone).date()
    dates = np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 2, dtype="datetime64[D]")
    midnights_us = localize_to_utc_us(dates.astype("datetime64[us]"), zone)
    cuts = np.clip((midnights_us - lanes.range_start_us) * UNITS_PER_US, 0, lanes.lane_end)

    def per_day(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray) -> np.ndarray:
        # Time of [lo, hi) spans on each day [cuts[k], cuts[k+1]), spans weighted 0/1.
        total = np.zeros(len(dates) - 1)
        for k in range(len(dates) - 1):
            inside = np.clip(np.minimum(hi, cuts[k + 1]) - np.maximum(lo, cuts[k]), 0, None)
            total[k] = float((inside * weight).sum())
        return total

    if len(seg_start):
        up = per_day(seg_start, seg_end, seg_up.astype(np.int64))
        down = per_day(seg_start, seg_end, (~seg_up).astype(np.int64))
        unobserved = per_day(seg_start, seg_end, (~seg_observed).astype(np.int64))
    else:
        up = down = np.zeros(len(dates) - 1)
        unobserved = per_day(open_start, open_end, np.ones(len(open_start), dtype=np.int64))
    # A date with no time in the range (e.g. the range ends at its midnight) is left out.
    return [
        DaySummary(str(dates[k]), float(_seconds(up[k])), float(_seconds(down[k])), float(_seconds(unobserved[k])))
        for k in range(len(dates) - 1)
        if cuts[k + 1] > cuts[k]
    ]
