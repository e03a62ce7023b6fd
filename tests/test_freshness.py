"""loop.freshness: the data's lag in words (the dashboard's "data ends 3 h ago", a scheduled report's data_note).

Every expected text is worked by hand from the instants below."""

from __future__ import annotations

import datetime as dt

import pytest

from loop.freshness import data_lag_seconds, data_lag_text, lag_words

NEWEST = dt.datetime(2024, 10, 14, 23, 55, 18, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("now", "text"),
    [
        # 0 s, 59.9 s and a clock 5 min behind the data: under a minute.
        (NEWEST, "data ends less than a minute ago"),
        (NEWEST + dt.timedelta(seconds=59, microseconds=900_000), "data ends less than a minute ago"),
        (NEWEST - dt.timedelta(minutes=5), "data ends less than a minute ago"),
        # Whole minutes, rounded down: 60 s is 1 min, 59 min 59 s is 59 min.
        (NEWEST + dt.timedelta(seconds=60), "data ends 1 min ago"),
        (dt.datetime(2024, 10, 15, 0, 55, 17, tzinfo=dt.UTC), "data ends 59 min ago"),
        # From an hour on, hours rounded: 1 h 0 min 0 s is 1 h; 3 h 29 min is 3 h; 3 h 30 min 1 s is 4 h.
        (dt.datetime(2024, 10, 15, 0, 55, 18, tzinfo=dt.UTC), "data ends 1 h ago"),
        (NEWEST + dt.timedelta(hours=3, minutes=29), "data ends 3 h ago"),
        (NEWEST + dt.timedelta(hours=3, minutes=30, seconds=1), "data ends 4 h ago"),
        # 47 h 59 min is still hours (48 after rounding); 48 h exactly is days: 2.
        (NEWEST + dt.timedelta(hours=47, minutes=59), "data ends 48 h ago"),
        (NEWEST + dt.timedelta(hours=48), "data ends 2 days ago"),
        # 2026-12-05 12:00 - 2024-10-14 23:55:18 = 781 days 12 h 4 min 42 s = 781.503 days: 782.
        (dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC), "data ends 782 days ago"),
        # 781 days 11 h 55 min = 781.497 days: 781.
        (dt.datetime(2026, 12, 5, 11, 50, 18, tzinfo=dt.UTC), "data ends 781 days ago"),
    ],
)
def test_the_lag_is_said_in_minutes_hours_then_days(now: dt.datetime, text: str) -> None:
    assert data_lag_text(NEWEST, now) == text


def test_no_poll_is_no_data_yet() -> None:
    assert data_lag_text(None, NEWEST) == "no data yet"
    assert data_lag_seconds(None, NEWEST) is None


def test_the_lag_in_seconds_is_the_clock_minus_the_newest_poll() -> None:
    assert data_lag_seconds(NEWEST, NEWEST + dt.timedelta(hours=3, seconds=2)) == 10_802.0
    assert data_lag_seconds(NEWEST, NEWEST - dt.timedelta(seconds=30)) == -30.0


def test_a_scheduled_reports_note_says_the_lag_the_same_way() -> None:
    # loop.services.schedules' data_note: "data ends 5 h before this report's time" (docs/schedules.md).
    assert lag_words(dt.timedelta(hours=5)) == "5 h"
    assert lag_words(dt.timedelta(days=781, hours=11)) == "781 days"
