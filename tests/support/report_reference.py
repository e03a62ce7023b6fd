"""A deliberately simple reference for the report rules, shared by the property test and the command test.

It follows docs/report_rules.md literally, one store, one date and one interval at a
time, in plain Python: local wall times are converted with zoneinfo (not pandas),
ambiguous times take the earlier instant (the smaller UTC of the folds that round-trip),
nonexistent ones walk forward second by second to the first wall time that exists (the
instant the clocks jump). Figures use exact integer arithmetic in half seconds, so that
the midpoints between whole-second polls are exact. It lives here, not in a test module,
so that tests/test_generate_report_command.py can use it without importing a test module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FALLBACK_ZONE = "America/Chicago"
HOUR, DAY, WEEK = 3600, 86400, 7 * 86400
WINDOWS = {"last_hour": (HOUR, 60), "last_day": (DAY, 3600), "last_week": (WEEK, 3600)}

T = TypeVar("T", int, float)


@dataclass(frozen=True)
class Case:
    polls: list[tuple[str, str, int]]  # store_id, status, epoch seconds
    hours: list[tuple[str, int, int, int]]  # store_id, day_of_week, start_s, end_s
    zones: list[tuple[str, str]]  # store_id, timezone_str
    now: int | None  # epoch seconds


def ref_zone(name: str | None) -> ZoneInfo:
    if not name or not name.strip():
        return ZoneInfo(FALLBACK_ZONE)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(FALLBACK_ZONE)


def _round_trips(wall: datetime, tz: ZoneInfo) -> list[int]:
    """UTC epoch seconds of the folds of `wall` that really show `wall` on the clock."""
    found = []
    for fold in (0, 1):
        as_utc = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if as_utc.astimezone(tz).replace(tzinfo=None) == wall:
            found.append(int(as_utc.timestamp()))
    return found


def wall_to_utc(wall: datetime, tz: ZoneInfo) -> int:
    found = _round_trips(wall, tz)
    if found:
        return min(found)  # ambiguous -> the earlier instant
    # Nonexistent: the first wall time after the gap is the instant the clocks jump.
    probe = wall
    for _ in range(2 * 3600 + 1):
        probe += timedelta(seconds=1)
        found = _round_trips(probe, tz)
        if found:
            return min(found)
    raise AssertionError(f"no wall time after {wall} exists in {tz}")


def hours_row_span(day: date, open_s: int, close_s: int, tz: ZoneInfo) -> tuple[int, int]:
    """UTC epoch seconds [lo, hi) of one row of hours (seconds after local midnight) on local ``day``: a close
    at or before the open runs into the next day (overnight; 24 h when equal). Empty (lo >= hi) when DST
    swallows it."""
    end_day = day if close_s > open_s else day + timedelta(days=1)
    lo = wall_to_utc(datetime.combine(day, time()) + timedelta(seconds=open_s), tz)
    return lo, wall_to_utc(datetime.combine(end_day, time()) + timedelta(seconds=close_s), tz)


def business_intervals(rows: list[tuple[int, int, int]], tz: ZoneInfo, now: int) -> list[tuple[int, int]]:
    """Merged UTC [start, end) intervals that cover everything relevant to [now - 7d, now]."""
    if not rows:
        return [(now - WEEK - DAY, now + DAY)]  # 24x7
    first = datetime.fromtimestamp(now - WEEK, tz).date() - timedelta(days=2)
    last = datetime.fromtimestamp(now, tz).date() + timedelta(days=1)
    raw: list[tuple[int, int]] = []
    day: date = first
    while day <= last:
        for dow, start, end in rows:
            if day.weekday() != dow:
                continue
            lo, hi = hours_row_span(day, start, end, tz)
            if lo < hi:
                raw.append((lo, hi))
        day += timedelta(days=1)
    return merge_intervals(raw)


def merge_intervals(raw: list[tuple[T, T]]) -> list[tuple[T, T]]:
    """Sorted, with overlapping or touching intervals joined (one store's open time)."""
    merged: list[tuple[T, T]] = []
    for lo, hi in sorted(raw):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@dataclass
class RefResult:
    now: int | None
    rows: dict[str, dict[str, float]]  # unrounded figures
    business: dict[str, dict[str, float]]  # business time per window, report units
    counted: dict[str, int]  # counted polls per store
    polls_counted: int


def reference(case: Case) -> RefResult:
    now = case.now
    if now is None:
        if not case.polls:
            return RefResult(None, {}, {}, {}, 0)
        now = max(t for _, _, t in case.polls)
    # Dedupe: one status per (store, instant); inactive wins.
    status: dict[tuple[str, int], str] = {}
    for sid, st_, t in case.polls:
        if t <= now:
            status[(sid, t)] = "inactive" if "inactive" in (st_, status.get((sid, t))) else "active"
    stores = sorted({sid for sid, _ in status})
    zone_of = dict(case.zones)
    rows: dict[str, dict[str, float]] = {}
    business: dict[str, dict[str, float]] = {}
    counted_per_store: dict[str, int] = {}
    inf = float("inf")
    for sid in stores:
        tz = ref_zone(zone_of.get(sid))
        store_rows = [(d, s, e) for hs, d, s, e in case.hours if hs == sid]
        intervals = business_intervals(store_rows, tz, now)
        counted = sorted(
            (t, s)
            for (ps, t), s in status.items()
            if ps == sid and now - WEEK <= t <= now and any(lo <= t < hi for lo, hi in intervals)
        )
        counted_per_store[sid] = len(counted)
        # Status segments in half seconds: switch at each midpoint, unlimited at both ends.
        segments = []
        for i, (t, s) in enumerate(counted):
            lo = -inf if i == 0 else counted[i - 1][0] + t
            hi = inf if i == len(counted) - 1 else t + counted[i + 1][0]
            segments.append((lo, hi, s))
        row: dict[str, float] = {}
        biz: dict[str, float] = {}
        for name, (length, unit) in WINDOWS.items():
            window = (2 * (now - length), 2 * now)
            pieces = [(2 * lo, 2 * hi) for lo, hi in intervals]
            biz[name] = sum(_overlap(p, window) for p in pieces) / 2 / unit
            for kind, label in (("active", "uptime"), ("inactive", "downtime")):
                half_seconds = sum(
                    _overlap(_clip(p, window), (lo, hi)) for lo, hi, s in segments if s == kind for p in pieces
                )
                row[f"{label}_{name}"] = half_seconds / 2 / unit
        rows[sid] = row
        business[sid] = biz
    return RefResult(now, rows, business, counted_per_store, sum(counted_per_store.values()))


def _clip(piece: tuple[int, int], window: tuple[int, int]) -> tuple[float, float]:
    lo, hi = max(piece[0], window[0]), min(piece[1], window[1])
    return (lo, hi) if lo < hi else (0.0, 0.0)
