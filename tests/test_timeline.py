"""store_timeline (loop/timeline.py) on hand-computed cases.

Every expected figure is worked out by hand in the comments. America/Chicago is CDT
(UTC-5) until 2024-11-03 07:00Z and CST (UTC-6) after.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from loop.timeline import DaySummary, Segment, Span, Timeline, iso_times, store_timeline
from tests.support.report_frames import hours_frame, polls_frame, special_frame, utc, zones_frame

CHI = "America/Chicago"


def us(iso: str) -> int:
    return int(utc(iso).value // 1000)


def timeline(
    polls: list[tuple[str, str, str]],
    hours: list[tuple[str, int, str, str]],
    start: str,
    end: str,
    zone: str | None = CHI,
    special: list[tuple[str, str, float, float]] | None = None,
    gap: int = 60,
) -> Timeline:
    return store_timeline(
        polls=polls_frame(polls),
        hours=hours_frame(hours),
        special_hours=None if special is None else special_frame(special),
        zones=zones_frame([] if zone is None else [(next(iter(_store_ids(polls, hours, special))), zone)]),
        start=utc(start),
        end=utc(end),
        max_gap_minutes=gap,
    )


def _store_ids(*row_lists: list[tuple] | None) -> set[str]:
    """The store ids the rows name ("s" when none does: a zone alone then names the store)."""
    return {row[0] for rows in row_lists if rows for row in rows} or {"s"}


def test_worked_example_week() -> None:
    # Open Monday 09:00-12:00 CDT (14:00Z-17:00Z); polls 10:14 active, 11:15 inactive; midpoint 10:44:30.
    # G = 60 min: the active poll observes 09:14-11:14 of its territory [09:00, 10:44:30), so
    # 09:00-09:14 is unobserved; the inactive poll observes 10:15-12:15, its whole [10:44:30, 12:00).
    t = timeline(
        [("w", "active", "2024-10-07T15:14:00Z"), ("w", "inactive", "2024-10-07T16:15:00Z")],
        [("w", 0, "09:00", "12:00")],
        "2024-10-01T17:00:00Z",
        "2024-10-08T17:00:00Z",
    )
    assert t.segments == [
        Segment(us("2024-10-07T14:00:00Z"), us("2024-10-07T14:14:00Z"), "up", False),
        Segment(us("2024-10-07T14:14:00Z"), us("2024-10-07T15:44:30Z"), "up", True),
        Segment(us("2024-10-07T15:44:30Z"), us("2024-10-07T17:00:00Z"), "down", True),
    ]
    assert t.uptime_s == 104.5 * 60 and t.downtime_s == 75.5 * 60 and t.unobserved_s == 14 * 60
    assert t.outages == [Span(us("2024-10-07T15:44:30Z"), us("2024-10-07T17:00:00Z"))]
    assert t.outage_count == 1 and t.longest_outage_minutes == 75.5
    assert t.uptime_pct == 58.06  # 100 x 104.5 / 180 = 58.055..., rounded to 2 places as in the report
    assert t.open_intervals == [Span(us("2024-10-07T14:00:00Z"), us("2024-10-07T17:00:00Z"))]
    assert t.zone == CHI and t.max_gap_minutes == 60
    # Local dates 10-01 (from 12:00 CDT) to 10-08 (to 12:00 CDT): eight dates, one with business time.
    assert [d.date_local for d in t.days] == [f"2024-10-0{d}" for d in range(1, 9)]
    assert t.days[6] == DaySummary("2024-10-07", 104.5 * 60, 75.5 * 60, 14 * 60)
    assert all(d.uptime_s == d.downtime_s == d.unobserved_s == 0 for i, d in enumerate(t.days) if i != 6)


def test_closed_time_splits_an_outage_and_unobserved_time_is_apart() -> None:
    # Monday 2024-10-07 09:00-12:00 and 13:00-17:00 CDT, polls 10:00 and 14:00 (both inactive).
    # Territories split at 12:00. G = 60: first observes [09:00, 11:00], second [13:00, 15:00].
    # Segments: 09-11 down observed, 11-12 down unobserved, 13-15 down observed, 15-17 down unobserved.
    # Outages: 09:00-12:00 (180 min) and 13:00-17:00 (240 min). Unobserved 60 + 120 = 180 min.
    t = timeline(
        [("s", "inactive", "2024-10-07T15:00:00Z"), ("s", "inactive", "2024-10-07T19:00:00Z")],
        [("s", 0, "09:00", "12:00"), ("s", 0, "13:00", "17:00")],
        "2024-10-07T05:00:00Z",  # 00:00 CDT
        "2024-10-08T05:00:00Z",
    )
    assert [(s.status, s.observed, s.seconds / 3600) for s in t.segments] == [
        ("down", True, 2),
        ("down", False, 1),
        ("down", True, 2),
        ("down", False, 2),
    ]
    assert t.outages == [
        Span(us("2024-10-07T14:00:00Z"), us("2024-10-07T17:00:00Z")),
        Span(us("2024-10-07T18:00:00Z"), us("2024-10-07T22:00:00Z")),
    ]
    assert t.longest_outage_minutes == 240
    assert t.uptime_s == 0 and t.downtime_s == 7 * 3600 and t.unobserved_s == 3 * 3600
    assert t.uptime_pct == 0.0
    assert [d.date_local for d in t.days] == ["2024-10-07"]


def test_a_shorter_gap_leaves_more_unobserved() -> None:
    # Same first store and day with G = 30: the first poll observes 09:30-10:30, the second 13:30-14:30.
    # Unobserved: (3 h - 1 h) + (4 h - 1 h) = 5 h.
    t = timeline(
        [("s", "inactive", "2024-10-07T15:00:00Z"), ("s", "inactive", "2024-10-07T19:00:00Z")],
        [("s", 0, "09:00", "12:00"), ("s", 0, "13:00", "17:00")],
        "2024-10-07T05:00:00Z",
        "2024-10-08T05:00:00Z",
        gap=30,
    )
    assert t.unobserved_s == 5 * 3600 and t.max_gap_minutes == 30
    assert t.outage_count == 2  # observed or not, down time is an outage


def test_no_counted_polls_all_business_time_unobserved() -> None:
    # 24x7 (no hours) over two days, one poll after the range: no segments, 48 h unobserved.
    t = timeline([("z", "active", "2024-10-09T12:00:00Z")], [], "2024-10-07T00:00:00Z", "2024-10-09T00:00:00Z")
    assert t.segments == [] and t.outages == []
    assert t.uptime_s == 0 and t.downtime_s == 0 and t.unobserved_s == 48 * 3600
    assert t.uptime_pct is None and t.longest_outage_minutes == 0
    assert t.open_intervals == [Span(us("2024-10-07T00:00:00Z"), us("2024-10-09T00:00:00Z"))]
    # Local dates: 10-06 19:00 CDT to 10-08 19:00 CDT -> 5 h, 24 h, 19 h of unobserved time.
    assert [(d.date_local, d.unobserved_s / 3600) for d in t.days] == [
        ("2024-10-06", 5),
        ("2024-10-07", 24),
        ("2024-10-08", 19),
    ]


def test_fall_back_day_has_25_hours() -> None:
    # 24x7 store, local date 2024-11-03 runs 05:00Z (00:00 CDT) to 06:00Z next day (00:00 CST): 25 h.
    # One active poll at 12:00Z observes 11:00Z-13:00Z; 23 h unobserved.
    t = timeline(
        [("d", "active", "2024-11-03T12:00:00Z")], [], "2024-11-03T05:00:00Z", "2024-11-04T06:00:00Z", zone=CHI
    )
    assert t.days == [DaySummary("2024-11-03", 25 * 3600, 0, 23 * 3600)]
    assert t.uptime_s == 25 * 3600 and t.unobserved_s == 23 * 3600


def test_unknown_zone_uses_the_default() -> None:
    t = timeline([], [], "2024-10-07T00:00:00Z", "2024-10-07T01:00:00Z", zone="Not/AZone")
    assert t.zone == CHI
    t = timeline([], [], "2024-10-07T00:00:00Z", "2024-10-07T01:00:00Z", zone=None)
    assert t.zone == CHI and t.unobserved_s == 3600


def test_holiday_closed_day_on_a_24x7_store() -> None:
    # 24x7 store, 2024-12-25 (Wednesday) closed all day: open 12-24 00:00 CST (06:00Z) to 12-25
    # 00:00 CST (12-25 06:00Z), then from 12-26 00:00 CST (12-26 06:00Z). Polls: 12-24 12:00Z up,
    # 12-26 12:00Z down; midpoint 12-25 12:00Z lies in closed time, so 12-24 is all up (24 h) and
    # 12-26 all down (24 h); two open intervals; one outage (12-26, 1440 min).
    t = timeline(
        [("h", "active", "2024-12-24T12:00:00Z"), ("h", "inactive", "2024-12-26T12:00:00Z")],
        [],
        "2024-12-24T06:00:00Z",
        "2024-12-27T06:00:00Z",
        special=[("h", "2024-12-25", math.nan, math.nan)],
    )
    assert t.open_intervals == [
        Span(us("2024-12-24T06:00:00Z"), us("2024-12-25T06:00:00Z")),
        Span(us("2024-12-26T06:00:00Z"), us("2024-12-27T06:00:00Z")),
    ]
    assert t.uptime_s == 24 * 3600 and t.downtime_s == 24 * 3600
    assert t.outages == [Span(us("2024-12-26T06:00:00Z"), us("2024-12-27T06:00:00Z"))]
    assert [(d.date_local, d.uptime_s, d.downtime_s) for d in t.days] == [
        ("2024-12-24", 86400, 0),
        ("2024-12-25", 0, 0),
        ("2024-12-26", 0, 86400),
    ]


def test_holiday_hours_replace_the_weekly_row_and_keep_the_overnight_one() -> None:
    # Weekly: every day 18:00-02:00 (overnight). Special 2024-12-24 (Tuesday): 10:00-14:00.
    # Intervals starting on 12-23: 18:00 -> 12-24 02:00 (kept: it starts on D-1);
    # on 12-24 only 10:00-14:00 (the weekly 18:00-02:00 of 12-24 is gone).
    # CST = UTC-6. Range: 12-24 00:00 CST (06:00Z) to 12-25 06:00Z.
    # Business: 00:00-02:00 (2 h) + 10:00-14:00 (4 h) = 6 h, all unobserved (no polls).
    t = timeline(
        [],
        [("o", d, "18:00", "02:00") for d in range(7)],
        "2024-12-24T06:00:00Z",
        "2024-12-25T06:00:00Z",
        special=[("o", "2024-12-24", 10 * 3600, 14 * 3600)],
    )
    assert t.open_intervals == [
        Span(us("2024-12-24T06:00:00Z"), us("2024-12-24T08:00:00Z")),
        Span(us("2024-12-24T16:00:00Z"), us("2024-12-24T20:00:00Z")),
    ]
    assert t.unobserved_s == 6 * 3600


def test_range_checks() -> None:
    with pytest.raises(ValueError):
        timeline([], [], "2024-10-07T01:00:00Z", "2024-10-07T00:00:00Z")
    with pytest.raises(ValueError):
        timeline([], [], "2024-10-07T00:00:00Z", "2024-10-07T01:00:00Z", gap=0)
    with pytest.raises(ValueError):
        timeline([], [], "2024-10-07T00:00:00Z", "2024-10-07T01:00:00Z", gap=1441)


def test_a_31_day_range_fits() -> None:
    # One lane holds 31 days (longer than a report lane): 24x7, one poll in the middle, all up.
    t = timeline([("m", "active", "2024-10-15T00:00:00Z")], [], "2024-10-01T00:00:00Z", "2024-11-01T00:00:00Z")
    assert t.uptime_s == 31 * 86400 and t.unobserved_s == 31 * 86400 - 2 * 3600
    assert len(t.segments) == 3


def test_local_iso_shows_the_offset_of_the_date() -> None:
    # 14:00Z is 09:00 CDT (UTC-5) in October and 08:00 CST (UTC-6) in December.
    _, local = iso_times([us("2024-10-07T14:00:00Z"), us("2024-12-09T14:00:00Z")], CHI)
    assert local == ["2024-10-07T09:00:00-05:00", "2024-12-09T08:00:00-06:00"]


def test_iso_times_write_what_pandas_isoformat_writes() -> None:
    # The vectorised text against pandas' own, one Timestamp at a time: DST edges, whole seconds,
    # microseconds, a half-hour zone and a negative offset.
    zones = ["America/Chicago", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "America/St_Johns"]
    rng = np.random.default_rng(5)
    base = us("2024-03-09T00:00:00Z")
    instants = [
        us("2024-03-10T08:00:00Z"),  # Chicago springs forward
        us("2024-11-03T06:59:59.999999Z"),
        us("2024-11-03T07:00:00Z"),  # Chicago falls back
        *(base + rng.integers(0, 300 * 86_400_000_000, size=200)).tolist(),
        *(base + 1_000_000 * rng.integers(0, 300 * 86_400, size=50)).tolist(),  # whole seconds
    ]
    for zone in zones:
        utc, local = iso_times(instants, zone)
        for instant, utc_text, local_text in zip(instants, utc, local, strict=True):
            stamp = pd.Timestamp(instant, unit="us", tz="UTC")
            assert utc_text == stamp.tz_localize(None).isoformat() + "Z"
            assert local_text == stamp.tz_convert(zone).isoformat()
