"""Property test: the extended report and store_timeline against a brute-force count per minute.

The brute force below samples every minute of the report week at its centre. Polls lie on
even minutes and hours, holiday rows, ``now`` and the gap on whole minutes, so every point
where the answer can change (interval ends, midpoints between polls, poll +- gap, window
starts) is a whole minute and each minute has one status. Business intervals are built the
literal way (tests/support/report_reference.wall_to_utc: zoneinfo, one date at a time), with
holiday dates replacing the weekly rows of their date; nothing here calls the engine's helpers.
Cases centre on DST changes so that gaps and repeated hours meet hours, holidays and polls.
The first test checks the extended report (and the timeline's week totals against it); the second
checks store_timeline on any range of up to 12 days minute by minute: segments, outages, open
time and local-day totals.

Deterministic by default; REPORT_PROPERTY_RANDOM=1 REPORT_PROPERTY_EXAMPLES=500 explores.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loop.report_engine import EXTENDED_COLUMNS, REPORT_COLUMNS, compute_report
from loop.timeline import store_timeline
from tests.support.report_frames import hours_frame, polls_frame, utc, zones_frame
from tests.support.report_reference import WEEK, WINDOWS, hours_row_span, merge_intervals

TOLERANCE = 0.006  # rounded figures vs exact counts
TRANSITIONS = [
    (zone, int(utc(iso).timestamp()))
    for zone, iso in (
        ("America/Chicago", "2024-03-10T08:00:00Z"),
        ("America/Chicago", "2024-11-03T07:00:00Z"),
        ("Europe/London", "2024-03-31T01:00:00Z"),
        ("Australia/Lord_Howe", "2024-04-06T15:00:00Z"),
        ("Australia/Lord_Howe", "2024-10-05T15:30:00Z"),
    )
]


@dataclass(frozen=True)
class Store:
    zone: str
    weekly: list[tuple[int, int, int]]  # day_of_week, start_s, end_s
    special: list[tuple[date, int | None, int | None]]  # date_local, start_s, end_s (None: closed)
    polls: list[tuple[str, int]]  # status, epoch seconds


@dataclass(frozen=True)
class Case:
    stores: dict[str, Store]
    now: int
    gap_minutes: int


def intervals(store: Store, start: int, end: int) -> list[tuple[float, float]]:
    """Merged UTC business intervals around [start, end] (rules 4, 5 and 13)."""
    tz = ZoneInfo(store.zone)
    if not store.weekly and not store.special:
        return [(-math.inf, math.inf)]
    weekly = store.weekly or [(d, 0, 0) for d in range(7)]  # 24x7 with holidays: one interval per date
    special_dates = {d for d, _, _ in store.special}
    day = datetime.fromtimestamp(start, tz).date() - timedelta(days=2)
    last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
    raw = []
    while day <= last:
        if day in special_dates:
            rows = [(s, e) for d, s, e in store.special if d == day and s is not None and e is not None]
        else:
            rows = [(s, e) for dow, s, e in weekly if dow == day.weekday()]
        for open_s, close_s in rows:
            lo, hi = hours_row_span(day, open_s, close_s, tz)
            if lo < hi:
                raw.append((lo, hi))
        day += timedelta(days=1)
    return merge_intervals(raw)


@dataclass(frozen=True)
class Minute:
    start: int  # epoch seconds; the minute [start, start + 60) has one answer
    open: bool
    state: str | None  # "up" | "down"; None when closed or nothing is counted
    observed: bool


def minutes(store: Store, start: int, end: int, gap_minutes: int) -> list[Minute]:
    """Each minute of [start, end), judged at its centre, with the polls counted for that range."""
    spans = intervals(store, start, end)
    starts = [lo for lo, _ in spans]

    def open_at(t: float) -> bool:
        i = bisect.bisect_right(starts, t) - 1
        return i >= 0 and t < spans[i][1]

    status: dict[int, str] = {}
    for st_, t in store.polls:
        status[t] = "inactive" if "inactive" in (st_, status.get(t)) else "active"
    counted = sorted((t, s) for t, s in status.items() if start <= t <= end and open_at(t))
    times = [t for t, _ in counted]
    out = []
    for minute in range(start, end, 60):
        centre = minute + 30
        if not open_at(centre):
            out.append(Minute(minute, False, None, False))
        elif not counted:
            out.append(Minute(minute, True, None, False))
        else:
            i = bisect.bisect_left(times, centre)
            near = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - centre))
            state = "up" if counted[near][1] == "active" else "down"
            out.append(Minute(minute, True, state, abs(times[near] - centre) <= gap_minutes * 60))
    return out


def down_runs(cells: list[Minute]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive down minutes (closed or up minutes end a run)."""
    runs: list[tuple[int, int]] = []
    for cell in cells:
        if cell.state != "down":
            continue
        if runs and runs[-1][1] == cell.start:
            runs[-1] = (runs[-1][0], cell.start + 60)
        else:
            runs.append((cell.start, cell.start + 60))
    return runs


def brute_force(store: Store, now: int, gap_minutes: int) -> dict[str, float]:
    """Every figure of one store's extended row, unrounded, by looking at each minute.

    Up, down and unobserved come in seconds per window; outages as a count and the longest in minutes.
    """
    cells = minutes(store, now - WEEK, now, gap_minutes)
    out: dict[str, float] = {f"{k}_{w}": 0 for k in ("up", "down", "unobserved") for w in WINDOWS}
    for cell in cells:
        if not cell.open:
            continue
        for name, (length, _) in WINDOWS.items():
            if cell.start >= now - length:
                if cell.state is not None:
                    out[f"{cell.state}_{name}"] += 60
                if not cell.observed:
                    out[f"unobserved_{name}"] += 60
    runs = down_runs(cells)
    out["outages"] = len(runs)
    out["longest"] = max(((hi - lo) // 60 for lo, hi in runs), default=0)
    return out


minute_of_day = st.integers(0, 1439).map(lambda m: m * 60)
weekly_row = st.tuples(st.integers(0, 6), minute_of_day, minute_of_day, st.integers(0, 5)).map(
    lambda r: (r[0], r[1], r[1] if r[3] == 0 else r[2])
)
# Near the transitions: 00:00-04:00 local on the change's Sunday.
weekly_near = st.tuples(st.just(6), st.integers(0, 16).map(lambda q: q * 900), minute_of_day)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone, transition = draw(st.sampled_from(TRANSITIONS))
    tz = ZoneInfo(zone)
    now = transition + draw(st.integers(-1 * 24 * 60, 4 * 24 * 60)) * 60
    change_day = datetime.fromtimestamp(transition, tz).date()
    stores = {}
    for sid in draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2, unique=True)):
        weekly = draw(st.one_of(st.just([]), st.lists(st.one_of(weekly_row, weekly_near), min_size=1, max_size=3)))
        special = draw(
            st.lists(
                st.tuples(
                    st.integers(-6, 3).map(lambda k: change_day + timedelta(days=k)),
                    st.one_of(st.none(), st.tuples(minute_of_day, minute_of_day)),
                ).map(lambda r: (r[0], None, None) if r[1] is None else (r[0], r[1][0], r[1][1])),
                max_size=3,
            )
        )
        polls = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["active", "inactive"]),
                    st.integers(-8 * 24 * 30, 24 * 30).map(lambda k: now + k * 120),  # even minutes
                ),
                max_size=25,
            )
        )
        stores[sid] = Store(zone, weekly, special, polls)
    return Case(stores, now, draw(st.sampled_from([1, 30, 60, 90, 600, 1440])))


def _settings() -> settings:
    if os.environ.get("REPORT_PROPERTY_RANDOM"):
        return settings(
            max_examples=int(os.environ.get("REPORT_PROPERTY_EXAMPLES", "500")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
    return settings(
        max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
    )


def frames(case: Case, only: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    chosen = {k: v for k, v in case.stores.items() if only is None or k == only}
    polls = polls_frame(
        [(sid, s, pd.Timestamp(t, unit="s", tz="UTC")) for sid, store in chosen.items() for s, t in store.polls]
    )
    hours = hours_frame([(sid, *row) for sid, store in chosen.items() for row in store.weekly])
    zones = zones_frame([(sid, store.zone) for sid, store in chosen.items()])
    rows = [(sid, d, s, e) for sid, store in chosen.items() for d, s, e in store.special]
    special = pd.DataFrame(
        {
            "store_id": pd.Series([r[0] for r in rows], dtype="str"),
            "date_local": pd.Series([r[1].isoformat() for r in rows], dtype="str"),
            "start_seconds": pd.Series([math.nan if r[2] is None else r[2] for r in rows], dtype="float64"),
            "end_seconds": pd.Series([math.nan if r[3] is None else r[3] for r in rows], dtype="float64"),
        }
    )
    return polls, hours, zones, special


@_settings()
@given(cases())
def test_extended_report_and_timeline_match_brute_force(case: Case) -> None:
    polls, hours, zones, special = frames(case)
    now = pd.Timestamp(case.now, unit="s", tz="UTC")
    result = compute_report(
        polls, hours, zones, now=now, special_hours=special, extended=True, max_gap_minutes=case.gap_minutes
    )
    report = result.report.set_index("store_id")
    assert list(result.report.columns) == REPORT_COLUMNS + EXTENDED_COLUMNS
    for sid, store in case.stores.items():
        if not any(t <= case.now for _, t in store.polls):
            assert sid not in report.index
            continue
        want = brute_force(store, case.now, case.gap_minutes)
        row = report.loc[sid]
        for name, (_, unit) in WINDOWS.items():
            up, down = want[f"up_{name}"] / unit, want[f"down_{name}"] / unit
            assert abs(row[f"uptime_{name}"] - up) <= TOLERANCE, (sid, name, row[f"uptime_{name}"], up)
            assert abs(row[f"downtime_{name}"] - down) <= TOLERANCE, (sid, name)
            unobserved = want[f"unobserved_{name}"] / unit
            assert abs(row[f"unobserved_{name}"] - unobserved) <= TOLERANCE, (sid, name, row[f"unobserved_{name}"])
            pct = row[f"uptime_pct_{name}"]
            if up + down == 0:
                assert math.isnan(pct), (sid, name, pct)
            else:
                assert abs(pct - 100 * up / (up + down)) <= TOLERANCE, (sid, name, pct)
        assert row["outages_last_week"] == want["outages"], (sid, row["outages_last_week"], want["outages"])
        assert row["longest_outage_last_week"] == want["longest"], (sid, row["longest_outage_last_week"])

        # The same store's timeline over the report week: exact totals, equal to the report row.
        one_polls, one_hours, one_zones, one_special = frames(case, only=sid)
        timeline = store_timeline(
            polls=one_polls,
            hours=one_hours,
            special_hours=one_special,
            zones=one_zones,
            start=now - pd.Timedelta(days=7),
            end=now,
            max_gap_minutes=case.gap_minutes,
        )
        assert timeline.uptime_s == want["up_last_week"]
        assert timeline.downtime_s == want["down_last_week"]
        assert timeline.unobserved_s == want["unobserved_last_week"]
        assert timeline.outage_count == want["outages"]
        assert timeline.longest_outage_minutes == want["longest"]
        assert round(timeline.uptime_s / 3600, 2) == row["uptime_last_week"]
        assert round(timeline.downtime_s / 3600, 2) == row["downtime_last_week"]
        assert round(timeline.unobserved_s / 3600, 2) == row["unobserved_last_week"]
        days = timeline.days
        assert sum(d.uptime_s for d in days) == timeline.uptime_s
        assert sum(d.downtime_s for d in days) == timeline.downtime_s
        assert sum(d.unobserved_s for d in days) == timeline.unobserved_s
        assert sum(s.seconds for s in timeline.segments) == timeline.uptime_s + timeline.downtime_s


@st.composite
def ranges(draw: st.DrawFn) -> tuple[Case, int, int]:
    """A case and a timeline range [start, end) of whole minutes, up to 12 days, around its polls."""
    case = draw(cases())
    start = case.now + draw(st.integers(-10 * 24 * 60, 24 * 60)) * 60
    return case, start, start + draw(st.integers(0, 12 * 24 * 60)) * 60


@_settings()
@given(ranges())
def test_timeline_matches_brute_force_on_any_range(drawn: tuple[Case, int, int]) -> None:
    case, start, end = drawn
    for sid, store in case.stores.items():
        polls, hours, zones, special = frames(case, only=sid)
        t = store_timeline(
            polls=polls,
            hours=hours,
            special_hours=special,
            zones=zones,
            start=pd.Timestamp(start, unit="s", tz="UTC"),
            end=pd.Timestamp(end, unit="s", tz="UTC"),
            max_gap_minutes=case.gap_minutes,
        )
        cells = minutes(store, start, end, case.gap_minutes)
        us = 1_000_000
        # Every open minute lies in exactly one segment with its status and flag; closed ones in none.
        segments = sorted(t.segments, key=lambda g: g.start_us)
        starts = [g.start_us for g in segments]
        for cell in cells:
            centre = (cell.start + 30) * us
            i = bisect.bisect_right(starts, centre) - 1
            inside = i >= 0 and centre < segments[i].end_us
            if cell.state is None:
                assert not inside, (sid, cell)
            else:
                assert inside, (sid, cell)
                assert (segments[i].status, segments[i].observed) == (cell.state, cell.observed), (sid, cell)
        # Maximal: touching neighbours differ in status or flag.
        for a, b in zip(segments, segments[1:], strict=False):
            assert a.end_us <= b.start_us
            assert a.end_us < b.start_us or (a.status, a.observed) != (b.status, b.observed)
        up = sum(60 for c in cells if c.state == "up")
        down = sum(60 for c in cells if c.state == "down")
        unobserved = sum(60 for c in cells if c.open and not c.observed)
        assert (t.uptime_s, t.downtime_s, t.unobserved_s) == (up, down, unobserved), sid
        assert [(o.start_us // us, o.end_us // us) for o in t.outages] == down_runs(cells)
        open_total = sum(60 for c in cells if c.open)
        assert sum(o.seconds for o in t.open_intervals) == open_total
        # Local days: each minute belongs to the local date of its centre.
        tz = ZoneInfo(store.zone)
        per_day: dict[str, list[int]] = {}
        for cell in cells:
            day = datetime.fromtimestamp(cell.start + 30, tz).date().isoformat()
            totals = per_day.setdefault(day, [0, 0, 0])
            totals[0] += 60 if cell.state == "up" else 0
            totals[1] += 60 if cell.state == "down" else 0
            totals[2] += 60 if cell.open and not cell.observed else 0
        assert {d.date_local: [d.uptime_s, d.downtime_s, d.unobserved_s] for d in t.days} == per_day
