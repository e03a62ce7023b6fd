"""Cron slots of report schedules (loop/cron.py), in the schedule's zone, across DST changes.

Every expected instant below is worked out by hand from the zone's rules: New York is EST (UTC-5) until
02:00 on 2026-03-08, when clocks jump to 03:00 EDT (UTC-4), and EDT until 02:00 on 2026-11-01, when they
go back to 01:00 EST; London is BST (UTC+1) until 02:00 on 2026-10-25, then GMT.
"""

from __future__ import annotations

import datetime as dt

import pytest

from loop.cron import CronError, parse_cron, parse_zone, slot_after, slot_at_or_before

NY = parse_zone("America/New_York")


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


def slots(cron: str, zone: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    parsed, tz = parse_cron(cron), parse_zone(zone)
    found = []
    at = start
    for _ in range(count):
        nxt = slot_after(parsed, tz, at)
        assert nxt is not None
        found.append(nxt)
        at = nxt
    return found


def test_monday_nine_in_new_york_moves_an_hour_in_utc_when_dst_starts() -> None:
    # Mon 2026-03-02 09:00 EST = 14:00 UTC; Mon 2026-03-09 09:00 EDT = 13:00 UTC.
    assert slots("0 9 * * MON", "America/New_York", utc(2026, 3, 1), 2) == [utc(2026, 3, 2, 14), utc(2026, 3, 9, 13)]


def test_a_wall_time_skipped_by_spring_forward_runs_after_the_gap() -> None:
    # 02:30 on 2026-03-08 does not exist in New York: it fires at 03:30 EDT (07:30 UTC), once.
    assert slots("30 2 * * *", "America/New_York", utc(2026, 3, 7), 3) == [
        utc(2026, 3, 7, 7, 30),  # 02:30 EST
        utc(2026, 3, 8, 7, 30),  # "02:30" -> 03:30 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_a_wall_time_repeated_by_fall_back_runs_once_the_first_time() -> None:
    # 01:30 happens twice on 2026-11-01 (05:30 UTC in EDT, 06:30 UTC in EST): one slot, the first.
    assert slots("30 1 * * *", "America/New_York", utc(2026, 10, 31), 3) == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_every_minute_across_both_changes_never_repeats_an_instant() -> None:
    # Spring forward: 01:59 EST (06:59 UTC) is followed by 03:00 EDT (07:00 UTC; "02:00"-"02:59" share those).
    spring = slots("* * * * *", "America/New_York", utc(2026, 3, 8, 6, 58), 3)
    assert spring == [utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 1)]
    # Fall back: 01:59 EDT (05:59 UTC), then the repeated hour is skipped, then 02:00 EST (07:00 UTC).
    fall = slots("* * * * *", "America/New_York", utc(2026, 11, 1, 5, 58), 2)
    assert fall == [utc(2026, 11, 1, 5, 59), utc(2026, 11, 1, 7, 0)]


def test_london_daily_nine_when_bst_ends() -> None:
    assert slots("0 9 * * *", "Europe/London", utc(2026, 10, 24), 2) == [utc(2026, 10, 24, 8), utc(2026, 10, 25, 9)]


def test_the_newest_slot_at_or_before_an_instant_includes_it() -> None:
    cron = parse_cron("0 9 * * MON")
    assert slot_at_or_before(cron, NY, utc(2026, 3, 9, 13)) == utc(2026, 3, 9, 13)
    assert slot_at_or_before(cron, NY, utc(2026, 3, 9, 12, 59)) == utc(2026, 3, 2, 14)
    # Saturday 2026-12-05: the Monday before, 09:00 EST.
    assert slot_at_or_before(cron, NY, utc(2026, 12, 5, 11)) == utc(2026, 11, 30, 14)
    # In the repeated hour (06:30 UTC = 01:30 EST): the newest slot of "* * * * *" is 01:59 EDT.
    assert slot_at_or_before(parse_cron("* * * * *"), NY, utc(2026, 11, 1, 6, 30)) == utc(2026, 11, 1, 5, 59)


def test_day_of_month_and_weekday_both_given_match_either() -> None:
    # Vixie cron: the 13th or any Friday. 2026-02-13 is a Friday; 2026-02-06 a Friday; 2026-03-13 a Friday.
    found = slots("0 0 13 * FRI", "UTC", utc(2026, 2, 1), 4)
    assert found == [utc(2026, 2, 6), utc(2026, 2, 13), utc(2026, 2, 20), utc(2026, 2, 27)]
    assert slots("0 0 13 * *", "UTC", utc(2026, 2, 1), 2) == [utc(2026, 2, 13), utc(2026, 3, 13)]


def test_fields_names_steps_ranges_and_macros() -> None:
    cron = parse_cron("*/15 9-17/4 * JAN-MAR mon-fri")
    assert cron.minutes == (0, 15, 30, 45) and cron.hours == (9, 13, 17)
    assert cron.months == frozenset({1, 2, 3}) and cron.weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})  # 7 is Sunday too
    assert parse_cron("@weekly").weekdays == frozenset({0}) and parse_cron("@daily").hours == (0,)
    assert parse_cron("5/20 * * * *").minutes == (5, 25, 45)
    assert slots("0 0 29 2 *", "UTC", utc(2026, 1, 1), 1) == [utc(2028, 2, 29)]


def test_monday_nine_in_new_york_moves_back_when_dst_ends() -> None:
    # Mon 2026-10-26 09:00 EDT = 13:00 UTC; Mon 2026-11-02 09:00 EST = 14:00 UTC.
    assert slots("0 9 * * MON", "America/New_York", utc(2026, 10, 25), 2) == [
        utc(2026, 10, 26, 13),
        utc(2026, 11, 2, 14),
    ]


def test_every_quarter_hour_over_the_repeated_hour_runs_it_once() -> None:
    # 01:45 EDT (05:45 UTC), then 01:00-01:45 EST (06:00-06:45 UTC) are repeats, then 02:00 EST (07:00 UTC).
    assert slots("*/15 * * * *", "America/New_York", utc(2026, 11, 1, 5, 40), 3) == [
        utc(2026, 11, 1, 5, 45),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 7, 15),
    ]
    assert slot_at_or_before(parse_cron("*/15 * * * *"), NY, utc(2026, 11, 1, 6, 50)) == utc(2026, 11, 1, 5, 45)


def test_a_skipped_wall_time_and_the_one_it_lands_on_are_one_slot() -> None:
    # "02:30" does not exist on 2026-03-08 and fires at 03:30 EDT (07:30 UTC), the instant of 03:30 itself.
    assert slots("30 2,3 * * *", "America/New_York", utc(2026, 3, 8), 2) == [
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 9, 6, 30),
    ]
    cron = parse_cron("30 2 * * *")
    assert slot_at_or_before(cron, NY, utc(2026, 3, 8, 7, 29)) == utc(2026, 3, 7, 7, 30)  # 02:30 EST the day before
    assert slot_at_or_before(cron, NY, utc(2026, 3, 8, 7, 30)) == utc(2026, 3, 8, 7, 30)


def test_read_as_written_where_croniter_reads_otherwise() -> None:
    # docs/schedules.md "Why our own parser": croniter reads an equal range as the whole cycle, and a day of
    # month covering 1-31 next to a weekday field with a star as "every day AND that weekday".
    assert parse_cron("5-5 * * * *").minutes == (5,)
    assert parse_cron("0 0 1-1 * MON-MON").days == frozenset({1})
    assert parse_cron("0 0 1-1 * MON-MON").weekdays == frozenset({1})
    # Both day fields restricted: either matches, so every day (2026-02-02 is a Monday, not in */2).
    assert slots("0 0 1-31 * */2", "UTC", utc(2026, 2, 1), 2) == [utc(2026, 2, 2), utc(2026, 2, 3)]


def test_the_29th_of_february_back_and_over_2100() -> None:
    feb29 = parse_cron("0 0 29 2 *")
    assert slot_at_or_before(feb29, parse_zone("UTC"), utc(2028, 2, 28, 23, 59)) == utc(2024, 2, 29)
    assert slots("0 0 29 2 *", "UTC", utc(2096, 3, 1), 1) == [utc(2104, 2, 29)]  # 2100 is not a leap year
    # With a weekday too, either: the newest February Monday (2026-02-23) before 2026-12-05.
    assert slot_at_or_before(parse_cron("0 0 29 2 MON"), parse_zone("UTC"), utc(2026, 12, 5)) == utc(2026, 2, 23)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),  # seconds: more than once a minute is not a schedule
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "runs backwards"),
        ("0 0 31 2 *", "no allowed month has day 31"),
        ("0 0 * * FUNDAY", "day of week"),
        ("x * * * *", "not a number"),
        ("1,,2 * * * *", "empty list item"),
        # croniter's extensions are not ours; R would pick a random minute in each process (no one slot).
        ("0 0 L * *", "day of month"),
        ("0 0 15W * *", "day of month"),
        ("0 0 ? * *", "day of month"),
        ("0 0 * * 5#3", "day of week"),
        ("R * * * *", "minute"),
        ("0 0 * * SAT-SUN", "runs backwards"),
    ],
)
def test_bad_expressions_are_refused_with_the_field(text: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        parse_cron(text)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "america/new_york", "", " UTC", "EST5EDT "])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(CronError, match="unknown time zone"):
        parse_zone(name)
