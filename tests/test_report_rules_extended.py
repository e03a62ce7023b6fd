"""The worked examples of docs/report_rules.md for segments, unobserved time, outages and holiday
hours (rules 10-13) and the extended columns. Every expected figure is computed by hand in the
comments and in the doc; the engine never produces an expected value.

America/Chicago: CDT (UTC-5) 2024-03-10 08:00Z .. 2024-11-03 07:00Z, CST (UTC-6) otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loop.datagen import generate_dataset
from loop.report_engine import EXTENDED_COLUMNS, REPORT_COLUMNS, compute_report, report_to_csv
from loop.sources.locate import locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import read_hours, read_status, read_zones
from loop.timeline import store_timeline
from tests.support.report_frames import hours_frame, polls_frame, special_frame, utc, zones_frame

CHI = "America/Chicago"
NAN = math.nan
COLUMNS = REPORT_COLUMNS[1:] + EXTENDED_COLUMNS


def extended_row(
    polls: list[tuple[str, str, str]],
    hours: list[tuple[str, int, str, str]],
    zones: list[tuple[str, str]],
    now: str,
    special: list[tuple[str, str, float, float]] | None = None,
    gap: int = 60,
) -> dict[str, float]:
    result = compute_report(
        polls_frame(polls),
        hours_frame(hours),
        zones_frame(zones),
        now=utc(now),
        special_hours=None if special is None else special_frame(special),
        extended=True,
        max_gap_minutes=gap,
    )
    assert list(result.report.columns) == REPORT_COLUMNS + EXTENDED_COLUMNS
    assert len(result.report) == 1
    return {c: float(result.report.iloc[0][c]) for c in COLUMNS}


def expect(*values: float) -> dict[str, float]:
    """Loop up h/d/w, down h/d/w, then pct h/d/w, unobserved h/d/w, outages, longest."""
    return dict(zip(COLUMNS, values, strict=True))


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    bad = {
        c: (got[c], want[c])
        for c in want
        if not (math.isnan(got[c]) and math.isnan(want[c])) and not abs(got[c] - want[c]) < 1e-9
    }
    assert not bad, bad


# Example A (rules 10 and 11): the Loop worked example, now Tue 2024-10-08 12:00 CDT (17:00Z).
A_POLLS = [("w", "active", "2024-10-07T15:14:00Z"), ("w", "inactive", "2024-10-07T16:15:00Z")]
A_HOURS = [("w", 0, "09:00", "12:00")]


def test_example_a_unobserved_time() -> None:
    # Up 104.5 min (1.74 h), down 75.5 min (1.26 h); uptime % = 100 x 104.5 / 180 = 58.06.
    # G = 60: the 10:14 poll observes 09:14-11:14, so 09:00-09:14 of its territory is unobserved
    # (14 min = 0.23 h); the 11:15 poll observes 10:15-12:15, all of [10:44:30, 12:00).
    # Last day [Mon 12:00, Tue 12:00) and hour: closed, so their % is empty and nothing is unobserved.
    # One outage: 10:44:30-12:00 = 75.5 min.
    row = extended_row(A_POLLS, A_HOURS, [("w", CHI)], "2024-10-08T17:00:00Z")
    assert_same(row, expect(0, 0, 1.74, 0, 0, 1.26, NAN, NAN, 58.06, 0, 0, 0.23, 1, 75.5))


def test_example_a_with_a_ten_minute_gap() -> None:
    # G = 10: 10:14 observes 10:04-10:24 of [09:00, 10:44:30) -> 104.5 - 20 = 84.5 min unobserved;
    # 11:15 observes 11:05-11:25 of [10:44:30, 12:00) -> 75.5 - 20 = 55.5 min; 140 min = 2.33 h.
    row = extended_row(A_POLLS, A_HOURS, [("w", CHI)], "2024-10-08T17:00:00Z", gap=10)
    assert row["unobserved_last_week"] == 2.33
    assert row["uptime_last_week"] == 1.74  # the Loop columns do not depend on G


def test_example_a_segments() -> None:
    t = store_timeline(
        polls=polls_frame(A_POLLS),
        hours=hours_frame(A_HOURS),
        special_hours=None,
        zones=zones_frame([("w", CHI)]),
        start=utc("2024-10-01T17:00:00Z"),
        end=utc("2024-10-08T17:00:00Z"),
    )
    # 09:00-09:14 up unobserved, 09:14-10:44:30 up observed, 10:44:30-12:00 down observed (CDT).
    got = [
        (pd.Timestamp(s.start_us, unit="us"), pd.Timestamp(s.end_us, unit="us"), s.status, s.observed)
        for s in t.segments
    ]
    assert got == [
        (pd.Timestamp("2024-10-07 14:00"), pd.Timestamp("2024-10-07 14:14"), "up", False),
        (pd.Timestamp("2024-10-07 14:14"), pd.Timestamp("2024-10-07 15:44:30"), "up", True),
        (pd.Timestamp("2024-10-07 15:44:30"), pd.Timestamp("2024-10-07 17:00"), "down", True),
    ]


def test_example_b_outages_split_by_closed_time_and_cut_at_the_window_start() -> None:
    # Monday 09:00-12:00 and 13:00-17:00; inactive polls Mon 2024-10-07 10:00 and 14:00 CDT.
    # now = Mon 2024-10-14 11:00 CDT (16:00Z): week [10-07 11:00, 10-14 11:00) CDT. The 10:00 poll
    # lies before the week and does not count; the 14:00 poll is the only counted one: all down.
    # Business in the week: 10-07 11:00-12:00 (1 h) + 13:00-17:00 (4 h) + 10-14 09:00-11:00 (2 h) = 7 h.
    # Outages: 11:00-12:00 (its part inside the week: 60 min), 13:00-17:00 (240), 10-14 09:00-11:00
    # (120): 3, longest 240. G = 60 observes 13:00-15:00: unobserved 7 - 2 = 5 h.
    # Day [10-13 11:00, 10-14 11:00): 09:00-11:00 = 2 h down, unobserved. Hour [10:00, 11:00): 60 min.
    row = extended_row(
        [("s", "inactive", "2024-10-07T15:00:00Z"), ("s", "inactive", "2024-10-07T19:00:00Z")],
        [("s", 0, "09:00", "12:00"), ("s", 0, "13:00", "17:00")],
        [("s", CHI)],
        "2024-10-14T16:00:00Z",
    )
    assert_same(row, expect(0, 0, 0, 60, 2, 7, 0, 0, 0, 60, 2, 5, 3, 240))


def test_example_c_a_closed_holiday_on_a_24x7_store() -> None:
    # No weekly rows (24x7); 2024-12-25 closed all day: closed 12-25 00:00 CST (06:00Z) to 12-26 06:00Z.
    # Polls 12-24 12:00Z active, 12-26 12:00Z inactive; now = 12-27 06:00Z. Week [12-20 06:00Z, now):
    # 7 days - 24 h = 144 h of business. The midpoint (12-25 12:00Z) is closed time, so up runs to
    # 12-25 06:00Z (120 h) and down from 12-26 06:00Z (24 h). % week = 100 x 120 / 144 = 83.33.
    # G = 60: each poll observes 2 h: unobserved week 144 - 4 = 140 h, day 24 - 2 = 22 h, hour 60 min.
    # One outage, 12-26 06:00Z-12-27 06:00Z = 1440 min.
    polls = [("x", "active", "2024-12-24T12:00:00Z"), ("x", "inactive", "2024-12-26T12:00:00Z")]
    row = extended_row(polls, [], [("x", CHI)], "2024-12-27T06:00:00Z", special=[("x", "2024-12-25", NAN, NAN)])
    assert_same(row, expect(0, 0, 120, 60, 24, 24, 0, 0, 83.33, 60, 22, 140, 1, 1440))
    # Without the holiday the store is open throughout: up to the midpoint 12-25 12:00Z = 126 h,
    # down 42 h, and the outage runs from 12-25 12:00Z to now: 42 h = 2520 min.
    row = extended_row(polls, [], [("x", CHI)], "2024-12-27T06:00:00Z")
    assert (row["uptime_last_week"], row["downtime_last_week"], row["longest_outage_last_week"]) == (126, 42, 2520)


def test_example_d_holiday_hours_on_the_spring_forward_date() -> None:
    # Weekly Sunday 09:00-17:00. Special Sunday 2024-03-10 (clocks 02:00 CST -> 03:00 CDT at 08:00Z):
    # 01:30-03:30 -> 01:30 CST = 07:30Z, 03:30 CDT = 08:30Z: open 1 h that date, not 8.
    # One active poll at 08:00Z. now = 03-10 20:00Z. Week [03-03 20:00Z, now): Sunday 03-03 09:00-17:00
    # CST = 15:00Z-23:00Z, 3 h inside the week, + 1 h = 4 h, all up. Day [03-09 20:00Z, now): 1 h.
    # Hour [19:00Z, 20:00Z): closed, % empty. G = 60 observes 07:00Z-09:00Z: 03-03's 3 h unobserved.
    row = extended_row(
        [("h", "active", "2024-03-10T08:00:00Z")],
        [("h", 6, "09:00", "17:00")],
        [("h", CHI)],
        "2024-03-10T20:00:00Z",
        special=[("h", "2024-03-10", 5400, 12600)],
    )
    assert_same(row, expect(0, 1, 4, 0, 0, 0, NAN, 100, 100, 0, 0, 3, 0, 0))


def test_example_e_special_date_keeps_the_overnight_interval_of_the_day_before() -> None:
    # Daily 18:00-02:00. Special 2024-12-24: 10:00-14:00. Intervals starting 12-23: 18:00 -> 12-24 02:00
    # (kept); on 12-24 only 10:00-14:00. One active poll at 12-24 12:00 CST (18:00Z).
    # now = 12-24 14:00 CST (20:00Z). Last day [12-23 14:00, 12-24 14:00) CST: 18:00-02:00 (8 h) +
    # 10:00-14:00 (4 h) = 12 h up. Without the special row the day would hold only 8 h.
    hours = [("o", d, "18:00", "02:00") for d in range(7)]
    polls = [("o", "active", "2024-12-24T18:00:00Z")]
    row = extended_row(polls, hours, [("o", CHI)], "2024-12-24T20:00:00Z", special=[("o", "2024-12-24", 36000, 50400)])
    assert row["uptime_last_day"] == 12
    # ... and 12-24 12:00 is then outside the weekly hours: the poll does not count, no row figures.
    row = extended_row(polls, hours, [("o", CHI)], "2024-12-24T20:00:00Z")
    assert row["uptime_last_day"] == 0 and row["unobserved_last_day"] == 8


def test_loop_columns_unchanged_by_the_extended_flag() -> None:
    polls = polls_frame(A_POLLS + [("z", "inactive", "2024-10-05T10:00:00Z")])
    args = (polls, hours_frame(A_HOURS), zones_frame([("w", CHI)]))
    loop = compute_report(*args, now=utc("2024-10-08T17:00:00Z"))
    extended = compute_report(*args, now=utc("2024-10-08T17:00:00Z"), extended=True)
    assert list(loop.report.columns) == REPORT_COLUMNS
    pd.testing.assert_frame_equal(loop.report, extended.report[REPORT_COLUMNS])
    assert report_to_csv(extended.report).splitlines()[0] == ",".join(REPORT_COLUMNS + EXTENDED_COLUMNS)


def test_empty_pct_cells_are_empty_in_the_csv() -> None:
    result = compute_report(
        polls_frame(A_POLLS),
        hours_frame(A_HOURS),
        zones_frame([("w", CHI)]),
        now=utc("2024-10-08T17:00:00Z"),
        extended=True,
    )
    line = report_to_csv(result.report).splitlines()[1]
    assert line == "w,0.00,0.00,1.74,0.00,0.00,1.26,,,58.06,0.00,0.00,0.23,1,75.50"


def test_no_polls_gives_an_empty_extended_frame() -> None:
    empty = compute_report(polls_frame([]), hours_frame([]), zones_frame([]), extended=True)
    assert list(empty.report.columns) == REPORT_COLUMNS + EXTENDED_COLUMNS and len(empty.report) == 0


@pytest.mark.parametrize("gap", [0, 1441, -5])
def test_gap_out_of_range(gap: int) -> None:
    with pytest.raises(ValueError, match="max_gap_minutes"):
        compute_report(polls_frame(A_POLLS), hours_frame(A_HOURS), zones_frame([]), extended=True, max_gap_minutes=gap)


def test_report_and_timeline_agree_on_random_stores_of_a_generated_set(tmp_path: Path) -> None:
    # The invariant of the issue on a seeded Loop-shaped set: for random stores, the timeline over the
    # report week rounds to the extended row (up, down, unobserved, outages, longest).
    sources = locate_sources(Path(generate_dataset(tmp_path, stores=40, days=10, seed=7).out_dir))
    problems = RowProblems()
    polls = read_status(sources.status, problems)
    hours = read_hours(sources.hours, problems)
    zones = read_zones(sources.zones, problems)
    result = compute_report(polls, hours, zones, extended=True, max_gap_minutes=45)
    report = result.report.set_index("store_id")
    rng = np.random.default_rng(3)
    for sid in rng.choice(report.index.to_numpy(), size=12, replace=False):
        t = store_timeline(
            polls=polls[polls["store_id"] == sid],
            hours=hours[hours["store_id"] == sid],
            special_hours=None,
            zones=zones[zones["store_id"] == sid],
            start=result.now - pd.Timedelta(days=7),
            end=result.now,
            max_gap_minutes=45,
        )
        row = report.loc[sid]
        assert round(t.uptime_s / 3600, 2) == row["uptime_last_week"]
        assert round(t.downtime_s / 3600, 2) == row["downtime_last_week"]
        assert round(t.unobserved_s / 3600, 2) == row["unobserved_last_week"]
        assert t.outage_count == row["outages_last_week"]
        assert round(t.longest_outage_minutes, 2) == row["longest_outage_last_week"]
