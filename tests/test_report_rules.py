"""Hand-computed cases for each rule of the report (docs/report_rules.md).

Every expected figure below was worked out by hand in the comments; the engine is never
used to produce an expected value. Times are given to the engine in UTC; comments give
the local time. America/Chicago is CDT (UTC-5) from 2024-03-10 08:00Z to 2024-11-03
07:00Z and CST (UTC-6) otherwise. Units: *_last_hour in minutes, day/week in hours.
"""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from loop.report_engine import REPORT_COLUMNS, compute_report, report_to_csv
from loop.rules import DEFAULT_TIMEZONE
from tests.support.report_frames import (
    ZERO,
    assert_row,
    figures,
    hours_frame,
    polls_frame,
    rows_by_store,
    run,
    utc,
    zones_frame,
)

CHI = "America/Chicago"

# The worked example of the issue: open Monday 09:00-12:00 Chicago; on Monday 2024-10-07
# (CDT) polls at 10:14 (15:14Z) active and 11:15 (16:15Z) inactive. Midpoint 10:44:30.
WORKED_HOURS = [("w", 0, "09:00", "12:00")]
WORKED_POLLS = [
    ("w", "inactive", "2024-10-07T16:15:00Z"),  # deliberately out of order
    ("w", "active", "2024-10-07T15:14:00Z"),
]


def test_default_timezone_constant() -> None:
    assert DEFAULT_TIMEZONE == CHI


# --- worked example -----------------------------------------------------------------


def test_worked_example_week() -> None:
    # now = Tue 2024-10-08 12:00 CDT = 17:00Z. Week [10-01 17:00Z, 10-08 17:00Z) holds
    # only Monday 10-07 09:00-12:00 (14:00Z-17:00Z); Monday 09-30 ended before it.
    # Up 09:00-10:44:30 = 104.5 min = 1.7417 h -> 1.74; down 10:44:30-12:00 = 75.5 min
    # = 1.2583 h -> 1.26. Day [Mon 12:00, Tue 12:00) and hour [Tue 11:00, 12:00): closed.
    now = utc("2024-10-08T17:00:00Z")
    result = run(WORKED_POLLS, WORKED_HOURS, [("w", CHI)], now=now)
    assert_row(result, "w", figures(0, 0, 1.74, 0, 0, 1.26))
    assert result.now == now
    assert result.polls_counted == 2
    assert list(result.report["store_id"]) == ["w"]


def test_worked_example_default_now_is_newest_poll() -> None:
    # now = newest poll = Mon 11:15 CDT (16:15Z).
    # Hour [10:15, 11:15): up 10:15-10:44:30 = 29.5 min, down 10:44:30-11:15 = 30.5 min.
    # Day [Sun 11:15, Mon 11:15): up 09:00-10:44:30 = 104.5 min = 1.74 h,
    #   down 10:44:30-11:15 = 30.5 min = 0.5083 h -> 0.51.
    # Week [Mon 09-30 11:15 CDT, ...): also the last 45 min (11:15-12:00) of Monday 09-30,
    #   before the first poll so active (unlimited extrapolation): 149.5 min = 2.4917 -> 2.49.
    result = run(WORKED_POLLS, WORKED_HOURS, [("w", CHI)])
    assert result.now == utc("2024-10-07T16:15:00Z")
    assert_row(result, "w", figures(29.5, 1.74, 2.49, 30.5, 0.51, 0.51))


def test_worked_example_mid_morning_now() -> None:
    # now = Mon 11:30 CDT (16:30Z). Hour [10:30, 11:30): up 14.5 min, down 45.5 min.
    # Day: up 104.5 min = 1.74 h; down 10:44:30-11:30 = 45.5 min = 0.7583 -> 0.76.
    # Week adds Monday 09-30 11:30-12:00 (active, extrapolated): 134.5 min = 2.2417 -> 2.24.
    result = run(WORKED_POLLS, WORKED_HOURS, [("w", CHI)], now="2024-10-07T16:30:00Z")
    assert_row(result, "w", figures(14.5, 1.74, 2.24, 45.5, 0.76, 0.76))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_resolution_does_not_matter(unit: str) -> None:
    # Same worked example; the database path may hand over ms, the CSV path us.
    result = compute_report(
        polls_frame(WORKED_POLLS, unit=unit),
        hours_frame(WORKED_HOURS),
        zones_frame([("w", CHI)]),
        now=utc("2024-10-08T17:00:00Z"),
    )
    assert_row(result, "w", figures(0, 0, 1.74, 0, 0, 1.26))


# --- business hours ------------------------------------------------------------------


def test_overnight_hours_cross_midnight() -> None:
    # Friday 22:00-02:00: Fri 10-11 22:00 CDT (10-12 03:00Z) to Sat 02:00 CDT (07:00Z).
    # Counted: Fri 23:00 (04:00Z) inactive, Sat 01:00 (06:00Z) active -- the latter only
    # counts because the Friday row runs into Saturday. Midpoint 05:00Z (00:00 CDT):
    # down 03:00-05:00Z = 2 h, up 05:00-07:00Z = 2 h.
    # Ignored (outside hours): Fri 21:30 (02:30Z) active -- if counted the switch would
    # move to 03:15Z; Sat 02:30 (07:30Z) inactive -- if counted the last switch 06:45Z.
    # now = Sat 12:00 CDT (17:00Z): day [Fri 17:00Z, Sat 17:00Z) holds it all; the
    # previous Friday's interval (10-05 03:00Z-07:00Z) is before the week; hour closed.
    polls = [
        ("n", "active", "2024-10-12T02:30:00Z"),
        ("n", "inactive", "2024-10-12T04:00:00Z"),
        ("n", "active", "2024-10-12T06:00:00Z"),
        ("n", "inactive", "2024-10-12T07:30:00Z"),
    ]
    result = run(polls, [("n", 4, "22:00", "02:00")], [("n", CHI)], now="2024-10-12T17:00:00Z")
    assert_row(result, "n", figures(0, 2, 2, 0, 2, 2))
    assert result.polls_counted == 2


def test_end_equals_start_means_24_hours() -> None:
    # Wednesday 10:00-10:00 = open from Wed 10:00 to Thu 10:00 local.
    # Wed 10-09 10:00 CDT = 15:00Z -> Thu 10-10 15:00Z, and Wed 10-02 15:00Z -> 10-03 15:00Z.
    # Polls: Wed 12:00 CDT (10-09 17:00Z) active, Thu 06:00 CDT (10-10 11:00Z) inactive;
    # 18 h apart, midpoint 10-10 02:00Z (Wed 21:00 CDT).
    # now = Thu 08:00 CDT = 10-10 13:00Z.
    # Hour [12:00Z, 13:00Z): open, after midpoint -> 60 min down.
    # Day [10-09 13:00Z, 10-10 13:00Z): open 15:00Z-13:00Z = 22 h: up 15:00Z-02:00Z = 11 h,
    #   down 02:00Z-13:00Z = 11 h.
    # Week [10-03 13:00Z, ...): also 10-03 13:00Z-15:00Z = 2 h, extrapolated active -> 13 h up.
    polls = [
        ("e", "active", "2024-10-09T17:00:00Z"),
        ("e", "inactive", "2024-10-10T11:00:00Z"),
    ]
    result = run(polls, [("e", 2, "10:00", "10:00")], [("e", CHI)], now="2024-10-10T13:00:00Z")
    assert_row(result, "e", figures(0, 11, 13, 60, 11, 11))


def test_end_23_59_59_is_taken_literally() -> None:
    # Tuesday 00:00-23:59:59 and Wednesday 00:00-01:00: the last second of Tuesday is
    # closed (no merge: the intervals do not touch). One poll Tue 12:00 CDT active.
    # now = Wed 10-09 00:30 CDT = 05:30Z.
    # Hour [Tue 23:30, Wed 00:30): 29 min 59 s + 30 min = 59 min 59 s = 59.983 -> 59.98
    #   (60.0 if 23:59:59 were read as midnight).
    # Day [Tue 00:30, Wed 00:30): 23 h 29 min 59 s + 30 min = 23.9997 h -> 24.0.
    # Week [Wed 10-02 00:30, ...): Wed 10-02 00:30-01:00 (0.5 h) + all of Tue 10-08 (23:59:59)
    #   + Wed 10-09 00:00-00:30 (0.5 h) = 24.9997 h -> 25.0.
    hours = [("t", 1, "00:00:00", "23:59:59"), ("t", 2, "00:00", "01:00")]
    polls = [("t", "active", "2024-10-08T17:00:00Z")]
    result = run(polls, hours, [("t", CHI)], now="2024-10-09T05:30:00Z")
    assert_row(result, "t", figures(59.98, 24.0, 25.0, 0, 0, 0))


def test_multi_shift_day_merges_overlaps_and_ignores_lunch_poll() -> None:
    # Tuesday rows 08:00-11:00, 10:00-12:00 (overlap), 13:00-17:00, 17:00-18:00 (touching)
    # -> merged 08:00-12:00 and 13:00-18:00 = 9 h (10 h if the overlap were counted twice).
    # Polls Tue 10-08: 09:00 CDT (14:00Z) active, 14:00 CDT (19:00Z) inactive; 12:30 CDT
    # (17:30Z) active is in the lunch gap and ignored. Midpoint 11:30.
    # Up 08:00-11:30 = 3.5 h; down 11:30-12:00 + 13:00-18:00 = 5.5 h.
    # (Counting the lunch poll would give up 4.25, down 4.75.)
    # now = Wed 00:00 CDT (05:00Z): day = all of Tuesday; Tue 10-01 is before the week.
    hours = [
        ("m", 1, "08:00", "11:00"),
        ("m", 1, "10:00", "12:00"),
        ("m", 1, "13:00", "17:00"),
        ("m", 1, "17:00", "18:00"),
    ]
    polls = [
        ("m", "inactive", "2024-10-08T19:00:00Z"),
        ("m", "active", "2024-10-08T17:30:00Z"),
        ("m", "active", "2024-10-08T14:00:00Z"),
    ]
    result = run(polls, hours, [("m", CHI)], now="2024-10-09T05:00:00Z")
    assert_row(result, "m", figures(0, 3.5, 3.5, 0, 5.5, 5.5))
    assert result.polls_counted == 2


def test_weekday_without_row_is_closed() -> None:
    # Open Monday and Wednesday 09:00-17:00 only; Tuesday is closed.
    # Polls: Mon 10-07 09:00 CDT (14:00Z) inactive, Tue 10-08 00:10 CDT (05:10Z) active
    # (closed day: ignored), Wed 10-09 12:00 CDT (17:00Z) inactive.
    # Everything open is inactive: Mon 8 h + Wed 8 h = 16 h down in the week
    # [Thu 10-03 00:00 CDT, Thu 10-10 00:00 CDT); day = Wednesday: 8 h down.
    # (If the Tuesday poll counted, Mon 16:35-17:00 would be up.)
    hours = [("c", 0, "09:00", "17:00"), ("c", 2, "09:00", "17:00")]
    polls = [
        ("c", "inactive", "2024-10-07T14:00:00Z"),
        ("c", "active", "2024-10-08T05:10:00Z"),
        ("c", "inactive", "2024-10-09T17:00:00Z"),
    ]
    result = run(polls, hours, [("c", CHI)], now="2024-10-10T05:00:00Z")
    assert_row(result, "c", figures(0, 0, 0, 0, 8, 16))


def test_store_without_hours_is_open_24x7() -> None:
    # "always" has no hours rows (another store has some) -> open all the time.
    # Polls 10-08 10:00Z active, 12:00Z inactive, midpoint 11:00Z; now = 13:00Z.
    # Hour [12:00Z, 13:00Z): 60 min down. Day [10-07 13:00Z, ...): up 22 h, down 2 h.
    # Week: up 168 - 2 = 166 h, down 2 h.
    polls = [
        ("always", "active", "2024-10-08T10:00:00Z"),
        ("always", "inactive", "2024-10-08T12:00:00Z"),
    ]
    hours = [("other", 0, "09:00", "10:00")]
    result = run(polls, hours, [("always", CHI)], now="2024-10-08T13:00:00Z")
    assert_row(result, "always", figures(0, 22, 166, 60, 2, 2))
    # A store that only appears in the hours data gets no row.
    assert list(result.report["store_id"]) == ["always"]


# --- time zones ----------------------------------------------------------------------


def test_missing_blank_and_invalid_zones_fall_back_to_chicago() -> None:
    # Three stores with the worked example's hours and polls (Chicago instants) but an
    # invalid, a missing and a blank zone: all are read as Chicago -> 1.74 / 1.26 h in the
    # week. Read as UTC, the polls (15:14Z, 16:15Z) would be outside 09:00-12:00 -> zeros.
    # Asia/Kolkata (UTC+5:30) shows the zone is applied: Monday 09:00-12:00 IST =
    # 03:30Z-06:30Z, polls 10:14 IST (04:44Z) active and 11:15 IST (05:45Z) inactive.
    stores = ["invalid", "missing", "blank"]
    hours = [(s, 0, "09:00", "12:00") for s in [*stores, "kolkata"]]
    polls = [
        (s, status, ts)
        for s in stores
        for status, ts in [("active", "2024-10-07T15:14:00Z"), ("inactive", "2024-10-07T16:15:00Z")]
    ]
    polls += [("kolkata", "active", "2024-10-07T04:44:00Z"), ("kolkata", "inactive", "2024-10-07T05:45:00Z")]
    zones = [("invalid", "Mars/Olympus_Mons"), ("blank", ""), ("kolkata", "Asia/Kolkata")]
    result = run(polls, hours, zones, now="2024-10-08T17:00:00Z")
    for store in [*stores, "kolkata"]:
        assert_row(result, store, figures(0, 0, 1.74, 0, 0, 1.26))
    assert any("Mars/Olympus_Mons" in w for w in result.warnings), result.warnings


# --- DST -----------------------------------------------------------------------------


def test_spring_forward_sunday_chicago() -> None:
    # Sunday 2024-03-10: 02:00 CST jumps to 03:00 CDT at 08:00Z. now = 08:30Z (03:30 CDT).
    # Week [03-03 08:30Z, 03-10 08:30Z); hour [07:30Z, 08:30Z); day [03-09 08:30Z, ...).
    hours = [
        # 01:30 CST = 07:30Z; 02:30 does not exist -> 03:00 CDT = 08:00Z: 30 min.
        ("gap_end", 6, "01:30", "02:30"),
        # 02:10 and 02:50 both in the gap -> both 08:00Z: empty, dropped.
        ("in_gap", 6, "02:10", "02:50"),
        # 01:00 CST = 07:00Z -> 03:00 CDT = 08:00Z: 1 h (2 h of wall clock).
        ("wide", 6, "01:00", "03:00"),
        # Saturday 23:00 CST (03-10 05:00Z) -> Sunday 02:30 -> 08:00Z: 3 h.
        ("overnight", 5, "23:00", "02:30"),
    ]
    polls = [
        # 07:35Z active, 07:55Z inactive: midpoint 07:45Z -> 15 min up, 15 min down.
        ("gap_end", "active", "2024-03-10T07:35:00Z"),
        ("gap_end", "inactive", "2024-03-10T07:55:00Z"),
        # 03:20 CDT: outside the (empty) interval -> no counted polls -> zeros.
        # (Mapping the gap with the old offset would make it 08:10Z-08:50Z and count it.)
        ("in_gap", "active", "2024-03-10T08:20:00Z"),
        # One inactive poll. Day: 1 h. Hour: 07:30Z-08:00Z = 30 min. Week: also the previous
        # Sunday 03-03 01:00-03:00 CST = 07:00Z-09:00Z, of which 08:30Z-09:00Z = 0.5 h.
        ("wide", "inactive", "2024-03-10T07:10:00Z"),
        # One active poll. Hour 07:30Z-08:00Z = 30 min; day and week 3 h (the previous
        # Saturday's 03-03 05:00Z-08:30Z ends at the week's start).
        ("overnight", "active", "2024-03-10T06:00:00Z"),
    ]
    zones = [(s, CHI) for s in ["gap_end", "in_gap", "wide", "overnight"]]
    result = run(polls, hours, zones, now="2024-03-10T08:30:00Z")
    assert_row(result, "gap_end", figures(15, 0.25, 0.25, 15, 0.25, 0.25))
    assert_row(result, "in_gap", ZERO)
    assert_row(result, "wide", figures(0, 0, 0, 30, 1, 1.5))
    assert_row(result, "overnight", figures(30, 3, 3, 0, 0, 0))


def test_fall_back_sunday_chicago() -> None:
    # Sunday 2024-11-03: 02:00 CDT falls back to 01:00 CST at 07:00Z; 01:00-01:59:59 occurs
    # twice (CDT 06:00Z-07:00Z, then CST 07:00Z-08:00Z). now = 08:30Z (02:30 CST).
    # Hour [07:30Z, 08:30Z); day [11-02 08:30Z, ...); week [10-27 08:30Z, ...).
    hours = [
        # 01:00 ambiguous -> earlier = 01:00 CDT = 06:00Z; 02:00 CST = 08:00Z: 2 h.
        ("one_to_two", 6, "01:00", "02:00"),
        # 00:30 CDT = 05:30Z; 01:30 ambiguous -> earlier = 06:30Z: 1 h.
        ("amb_end", 6, "00:30", "01:30"),
    ]
    polls = [
        # 06:30Z active, 07:30Z inactive, midpoint 07:00Z: up 06:00-07:00Z = 1 h,
        # down 07:00-08:00Z = 1 h; hour: 07:30Z-08:00Z down = 30 min. The previous Sunday
        # (10-27 06:00Z-07:00Z) is before the week. (Taking the later 01:00 would give 1 h.)
        ("one_to_two", "active", "2024-11-03T06:30:00Z"),
        ("one_to_two", "inactive", "2024-11-03T07:30:00Z"),
        # 01:10 CDT (06:10Z) inactive counts; 01:10 CST (07:10Z) active is after the
        # interval's end (06:30Z) and is ignored: 1 h down in day and week, hour closed.
        ("amb_end", "inactive", "2024-11-03T06:10:00Z"),
        ("amb_end", "active", "2024-11-03T07:10:00Z"),
    ]
    zones = [("one_to_two", CHI), ("amb_end", CHI)]
    result = run(polls, hours, zones, now="2024-11-03T08:30:00Z")
    assert_row(result, "one_to_two", figures(0, 1, 1, 30, 1, 1))
    assert_row(result, "amb_end", figures(0, 0, 0, 0, 1, 1))


def test_fall_back_sunday_is_25_hours_and_the_day_window_24() -> None:
    # Sunday 00:00-00:00 (end == start): Sun 11-03 00:00 CDT (05:00Z) to Mon 11-04 00:00
    # CST (06:00Z) = 25 h. One active poll Sunday 12:00Z. now = Mon 00:00 CST = 11-04 06:00Z.
    # Hour [05:00Z, 06:00Z): 60 min. Day [11-03 06:00Z, 11-04 06:00Z): rolling 24 h, all open.
    # Week: the 25 h Sunday; the previous Sunday (10-27 05:00Z-10-28 05:00Z) is before it.
    polls = [("s", "active", "2024-11-03T12:00:00Z")]
    result = run(polls, [("s", 6, "00:00", "00:00")], [("s", CHI)], now="2024-11-04T06:00:00Z")
    assert_row(result, "s", figures(60, 24, 25, 0, 0, 0))


def test_spring_forward_sunday_is_23_hours() -> None:
    # Sunday 00:00-00:00: Sun 03-10 00:00 CST (06:00Z) to Mon 03-11 00:00 CDT (05:00Z) = 23 h.
    # One inactive poll Sunday 12:00Z. now = Mon 00:00 CDT = 03-11 05:00Z.
    # Hour [04:00Z, 05:00Z): 60 min. Day [03-10 05:00Z, 03-11 05:00Z): 23 h.
    # Week [03-04 05:00Z, ...): also the previous Sunday's tail 03-04 05:00Z-06:00Z: 24 h.
    polls = [("s", "inactive", "2024-03-10T12:00:00Z")]
    result = run(polls, [("s", 6, "00:00", "00:00")], [("s", CHI)], now="2024-03-11T05:00:00Z")
    assert_row(result, "s", figures(0, 0, 0, 60, 23, 24))


def test_spring_forward_half_hour_gap_lord_howe() -> None:
    # Australia/Lord_Howe springs forward 30 min on Sunday 2024-10-06: 02:00 LHST (+10:30)
    # becomes 02:30 LHDT (+11) at 2024-10-05 15:30Z; wall times 02:00-02:29 do not exist.
    # now = 16:30Z. Hour [15:30Z, 16:30Z); week [09-28 16:30Z, ...).
    hours = [
        # 02:15 -> the instant the gap ends, 02:30 LHDT = 15:30Z; 03:00 LHDT = 16:00Z: 30 min.
        # One active poll 15:45Z: 30 min in the hour, 0.5 h in day and week (the previous
        # Sunday's 09-28 15:45Z-16:30Z ends at the week's start).
        ("lh_start", 6, "02:15", "03:00"),
        # 01:00 LHST = 14:30Z; 02:15 -> 15:30Z: 1 h. One inactive poll 15:00Z: 1 h down in
        # day and week (the previous Sunday's 09-28 14:30Z-15:45Z is before the week).
        ("lh_end", 6, "01:00", "02:15"),
    ]
    polls = [
        ("lh_start", "active", "2024-10-05T15:45:00Z"),
        ("lh_end", "inactive", "2024-10-05T15:00:00Z"),
    ]
    zones = [("lh_start", "Australia/Lord_Howe"), ("lh_end", "Australia/Lord_Howe")]
    result = run(polls, hours, zones, now="2024-10-05T16:30:00Z")
    assert_row(result, "lh_start", figures(30, 0.5, 0.5, 0, 0, 0))
    assert_row(result, "lh_end", figures(0, 0, 0, 0, 1, 1))


# --- which polls count -----------------------------------------------------------------


def test_polls_outside_business_hours_are_ignored() -> None:
    # Monday 09:00-12:00 CDT = 14:00Z-17:00Z on 10-07; now = Tue 17:00Z (day/hour closed).
    # "outside": 08:30 (13:30Z) inactive, 12:00 (17:00Z, end is exclusive) inactive,
    #   13:00 (18:00Z) inactive and Sunday 10:00 (10-06 15:00Z) inactive are all ignored;
    #   only 11:00 (16:00Z) active counts -> 3 h up. (Counting 12:00 would make
    #   11:30-12:00 down; counting 08:30 would make 09:00-09:45 down.)
    # "start_edge": 09:00:00 (14:00Z, start is inclusive) inactive and 11:30 (16:30Z)
    #   active both count, midpoint 10:15 -> down 1.25 h, up 1.75 h.
    hours = [("outside", 0, "09:00", "12:00"), ("start_edge", 0, "09:00", "12:00")]
    polls = [
        ("outside", "inactive", "2024-10-07T13:30:00Z"),
        ("outside", "active", "2024-10-07T16:00:00Z"),
        ("outside", "inactive", "2024-10-07T17:00:00Z"),
        ("outside", "inactive", "2024-10-07T18:00:00Z"),
        ("outside", "inactive", "2024-10-06T15:00:00Z"),
        ("start_edge", "inactive", "2024-10-07T14:00:00Z"),
        ("start_edge", "active", "2024-10-07T16:30:00Z"),
    ]
    zones = [("outside", CHI), ("start_edge", CHI)]
    result = run(polls, hours, zones, now="2024-10-08T17:00:00Z")
    assert_row(result, "outside", figures(0, 0, 3, 0, 0, 0))
    assert_row(result, "start_edge", figures(0, 0, 1.75, 0, 0, 1.25))
    assert result.polls_counted == 3


def test_polls_older_than_a_week_are_ignored() -> None:
    # Monday 09:00-12:00 CDT; now = Mon 10-07 11:00 CDT = 16:00Z; week starts 09-30 16:00Z
    # (Mon 11:00 CDT), so the week holds 09-30 16:00Z-17:00Z (1 h) and 10-07 14:00Z-16:00Z (2 h).
    # "old": 09-30 15:00Z inactive is before the week -> ignored; 10-07 15:00Z active
    #   extrapolates over all 3 h. (Counting the old poll would make 09-30 down.)
    #   Hour [15:00Z, 16:00Z): 60 min up. Day [10-06 16:00Z, ...): 2 h up.
    # "boundary": 09-30 16:00Z inactive is exactly now - 7 days (included) and in hours;
    #   midpoint with 10-07 15:00Z is 83.5 h later (10-04 03:30Z): 09-30 part (1 h) down,
    #   10-07 part (2 h) up.
    hours = [("old", 0, "09:00", "12:00"), ("boundary", 0, "09:00", "12:00")]
    polls = [
        ("old", "inactive", "2024-09-30T15:00:00Z"),
        ("old", "active", "2024-10-07T15:00:00Z"),
        ("boundary", "inactive", "2024-09-30T16:00:00Z"),
        ("boundary", "active", "2024-10-07T15:00:00Z"),
    ]
    zones = [("old", CHI), ("boundary", CHI)]
    result = run(polls, hours, zones, now="2024-10-07T16:00:00Z")
    assert_row(result, "old", figures(60, 2, 3, 0, 0, 0))
    assert_row(result, "boundary", figures(60, 2, 2, 0, 0, 1))
    assert result.polls_counted == 3


def test_explicit_now_ignores_later_polls() -> None:
    # 24x7 store. Polls 10-08 10:00Z inactive, 12:00Z active, 12:40Z inactive (after now).
    # now = 12:30Z; midpoint 11:00Z. Hour [11:30Z, 12:30Z): 60 min up (counting the 12:40Z
    # poll would give 50 up / 10 down). Day: up 11:00Z-12:30Z = 1.5 h, down 22.5 h.
    # Week: up 1.5 h, down 168 - 1.5 = 166.5 h.
    # "future" has only a poll after now -> no row.
    polls = [
        ("later", "inactive", "2024-10-08T10:00:00Z"),
        ("later", "active", "2024-10-08T12:00:00Z"),
        ("later", "inactive", "2024-10-08T12:40:00Z"),
        ("future", "active", "2024-10-08T13:00:00Z"),
    ]
    now = utc("2024-10-08T12:30:00Z")
    result = run(polls, now=now)
    assert result.now == now
    assert_row(result, "later", figures(60, 1.5, 1.5, 0, 22.5, 166.5))
    assert list(result.report["store_id"]) == ["later"]
    assert result.polls_counted == 2


def test_default_now_is_the_newest_poll_of_all_stores() -> None:
    # Newest poll is b's 12:00Z: now = 12:00Z. a (24x7, one active poll at 10:00Z):
    # all windows fully up: 60 min, 24 h, 168 h. b's poll is at now (<= now counts).
    polls = [
        ("a", "active", "2024-10-08T10:00:00Z"),
        ("b", "inactive", "2024-10-08T12:00:00Z"),
    ]
    result = run(polls)
    assert result.now == utc("2024-10-08T12:00:00Z")
    assert_row(result, "a", figures(60, 24, 168, 0, 0, 0))
    assert_row(result, "b", figures(0, 0, 0, 60, 24, 168))


def test_single_poll_extrapolates_to_all_business_hours() -> None:
    # Monday and Wednesday 09:00-12:00; one poll Wed 10-09 10:00 CDT (15:00Z) inactive.
    # now = Thu 10-10 00:00 CDT (05:00Z): week holds Mon 10-07 and Wed 10-09 = 6 h down;
    # day [Wed 00:00, Thu 00:00) = 3 h down; hour closed.
    hours = [("one", 0, "09:00", "12:00"), ("one", 2, "09:00", "12:00")]
    polls = [("one", "inactive", "2024-10-09T15:00:00Z")]
    result = run(polls, hours, [("one", CHI)], now="2024-10-10T05:00:00Z")
    assert_row(result, "one", figures(0, 0, 0, 0, 3, 6))


def test_store_without_counted_polls_gets_a_zero_row() -> None:
    # "outside": Monday 09:00-12:00, only poll Mon 13:00 CDT (18:00Z) -> no counted poll.
    # "ancient": 24x7, only poll a month before now: a valid poll at or before now but
    # older than the week -> row of zeros.
    hours = [("outside", 0, "09:00", "12:00")]
    polls = [
        ("outside", "active", "2024-10-07T18:00:00Z"),
        ("ancient", "active", "2024-09-01T00:00:00Z"),
    ]
    result = run(polls, hours, [("outside", CHI)], now="2024-10-08T17:00:00Z")
    assert_row(result, "outside", ZERO)
    assert_row(result, "ancient", ZERO)
    assert list(result.report["store_id"]) == ["ancient", "outside"]
    assert result.polls_counted == 0


def test_no_polls_at_all_gives_an_empty_report() -> None:
    result = run([], [("x", 0, "09:00", "12:00")], [("x", CHI)])
    assert list(result.report.columns) == REPORT_COLUMNS
    assert len(result.report) == 0
    assert result.now is None
    assert report_to_csv(result.report) == ",".join(REPORT_COLUMNS) + "\n"


# --- windows, units, rounding ----------------------------------------------------------


def test_windows_are_rolling_not_calendar() -> None:
    # Monday 23:00-00:00 (overnight, ends Tue 00:00) and Tuesday 00:00-01:00: merged
    # Mon 23:00-Tue 01:00 CDT = 10-08 04:00Z-06:00Z (and 10-01 04:00Z-06:00Z a week before).
    # Polls Mon 23:10 CDT (04:10Z) inactive, Tue 00:20 CDT (05:20Z) active: midpoint 04:45Z.
    # now = Tue 00:30 CDT = 05:30Z.
    # Hour [Mon 23:30, Tue 00:30) spans both dates: down 15 min, up 45 min.
    # Day [Mon 00:30, Tue 00:30): open 04:00Z-05:30Z: down 0.75 h, up 0.75 h (a calendar
    #   "today" would hold only 00:00-00:30).
    # Week [10-01 05:30Z, ...): also 10-01 05:30Z-06:00Z, before the first poll -> inactive:
    #   down 1.25 h.
    hours = [("r", 0, "23:00", "00:00"), ("r", 1, "00:00", "01:00")]
    polls = [
        ("r", "inactive", "2024-10-08T04:10:00Z"),
        ("r", "active", "2024-10-08T05:20:00Z"),
    ]
    result = run(polls, hours, [("r", CHI)], now="2024-10-08T05:30:00Z")
    assert_row(result, "r", figures(45, 0.75, 0.75, 15, 0.75, 1.25))


def test_units_and_rounding() -> None:
    # 24x7; now = 10-08 12:00:00Z; polls now-3000 s (11:10:00Z) active and now-1000 s
    # (11:43:20Z) inactive: midpoint now-2000 s (11:26:40Z).
    # Hour: up 1600 s = 26.667 min -> 26.67; down 2000 s = 33.333 min -> 33.33.
    # Day: up 84400 s = 23.444 h -> 23.44; down 2000 s = 0.5556 h -> 0.56.
    # Week: up 602800 s = 167.444 h -> 167.44; down 0.56.
    polls = [
        ("u", "active", "2024-10-08T11:10:00Z"),
        ("u", "inactive", "2024-10-08T11:43:20Z"),
    ]
    result = run(polls, now="2024-10-08T12:00:00Z")
    assert_row(result, "u", figures(26.67, 23.44, 167.44, 33.33, 0.56, 0.56))
    for column in REPORT_COLUMNS[1:]:
        value = float(result.report[column].iloc[0])
        assert value == round(value, 2)


def test_uptime_plus_downtime_is_business_time() -> None:
    # Business time in the windows, by hand (now = Tue 10-08 17:00Z): worked example week
    # 3 h; a two-shift Tuesday (below); 24x7: 60 min, 24 h, 168 h. The "m" poll at 19:00Z
    # is after now and ignored.
    polls = [
        *WORKED_POLLS,
        ("m", "active", "2024-10-08T14:00:00Z"),
        ("m", "inactive", "2024-10-08T15:37:13Z"),
        ("m", "active", "2024-10-08T19:00:00Z"),
        ("z", "inactive", "2024-10-03T01:02:03Z"),
        ("z", "active", "2024-10-06T07:08:09Z"),
        ("z", "inactive", "2024-10-08T16:59:58Z"),
    ]
    hours = [*WORKED_HOURS, ("m", 1, "08:00", "12:00"), ("m", 1, "13:00", "18:00")]
    zones = [("w", CHI), ("m", CHI)]
    report = run(polls, hours, zones, now="2024-10-08T17:00:00Z").report.set_index("store_id")

    def total(store: str, window: str) -> float:
        return float(report.at[store, f"uptime_{window}"] + report.at[store, f"downtime_{window}"])

    # Tolerance: two figures each rounded to 2 decimals.
    assert total("w", "last_week") == pytest.approx(3, abs=0.011)
    # now = Tue 10-08 12:00 CDT: for "m" the day holds Tue 08:00-12:00 = 4 h; the week
    # [Tue 10-01 12:00 CDT, ...) also holds Tue 10-01 13:00-18:00 = 5 h -> 9 h.
    assert total("m", "last_day") == pytest.approx(4, abs=0.011)
    assert total("m", "last_week") == pytest.approx(9, abs=0.011)
    assert total("z", "last_hour") == pytest.approx(60, abs=0.011)
    assert total("z", "last_day") == pytest.approx(24, abs=0.011)
    assert total("z", "last_week") == pytest.approx(168, abs=0.011)


# --- duplicates ----------------------------------------------------------------------


@pytest.mark.parametrize("first", ["active", "inactive"])
def test_duplicate_polls_count_once_and_inactive_wins(first: str) -> None:
    # 24x7. 10-08 10:00Z reported both active and inactive -> inactive; 12:00Z active twice
    # -> one active poll. now = 12:00Z, midpoint 11:00Z.
    # Hour: 60 min up. Day: down 10-07 12:00Z-10-08 11:00Z = 23 h, up 1 h. Week: down 167 h.
    second = "inactive" if first == "active" else "active"
    polls = [
        ("d", first, "2024-10-08T10:00:00Z"),
        ("d", "active", "2024-10-08T12:00:00Z"),
        ("d", second, "2024-10-08T10:00:00Z"),
        ("d", "active", "2024-10-08T12:00:00Z"),
    ]
    result = run(polls, now="2024-10-08T12:00:00Z")
    assert_row(result, "d", figures(60, 1, 1, 0, 23, 167))
    assert result.polls_counted == 2


# --- output ----------------------------------------------------------------------------


def _parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_report_rows_sorted_as_strings_and_csv_header() -> None:
    # Ids compare as text: "007" < "10" < "9" < "a" < "b"; "007" keeps its zeros.
    ids = ["b", "10", "9", "a", "007"]
    polls = [(sid, "active", "2024-10-08T12:00:00Z") for sid in ids]
    result = run(polls)
    assert list(result.report.columns) == REPORT_COLUMNS
    assert list(result.report["store_id"]) == ["007", "10", "9", "a", "b"]

    text = report_to_csv(result.report)
    assert "\r" not in text
    assert text.endswith("\n")
    lines = text.split("\n")
    assert lines[0] == (
        "store_id,uptime_last_hour,uptime_last_day,uptime_last_week,"
        "downtime_last_hour,downtime_last_day,downtime_last_week"
    )
    rows = _parse_csv(text)
    assert [r[0] for r in rows[1:]] == ["007", "10", "9", "a", "b"]
    # 24x7 with one active poll at now: 60 min, 24 h, 168 h up.
    for row in rows[1:]:
        assert [float(x) for x in row[1:]] == [60, 24, 168, 0, 0, 0]


def test_csv_neutralises_formula_store_ids() -> None:
    ids = ["=1+1", "+cmd", "-2", "@SUM(A1)", "plain"]
    polls = [(sid, "inactive", "2024-10-08T12:00:00Z") for sid in ids]
    report = run(polls).report
    # The report frame itself keeps the real ids; only the CSV text is guarded.
    assert sorted(report["store_id"]) == sorted(ids)
    rows = _parse_csv(report_to_csv(report))
    assert rows[0] == REPORT_COLUMNS
    written = [r[0] for r in rows[1:]]
    assert len(written) == len(ids)
    for sid in ids:
        matches = [w for w in written if sid in w]
        assert len(matches) == 1, (sid, written)
        cell = matches[0]
        assert cell[:1] not in {"=", "+", "-", "@"}, cell
        if sid == "plain":
            assert cell == "plain"
    for row in rows[1:]:
        assert [float(x) for x in row[1:]] == [0, 0, 0, 60, 24, 168]


def test_report_frame_types() -> None:
    result = run(WORKED_POLLS, WORKED_HOURS, [("w", CHI)], now="2024-10-08T17:00:00Z")
    report = result.report
    assert isinstance(report, pd.DataFrame)
    for column in REPORT_COLUMNS[1:]:
        assert pd.api.types.is_float_dtype(report[column]), (column, report[column].dtype)
    assert rows_by_store(result)["w"]["uptime_last_week"] == 1.74
