"""Hand-worked cases of the alert rules (store states at an instant t, and alerts over evaluations).

Every expected value is worked out by hand in the comments. Each case runs against the simple
reference (tests/support/alert_reference.py) and against loop.alert_rules, so the hand values judge
both. Times are UTC ("Z"); local times are given in comments. America/Chicago is CDT (UTC-5) in
October 2024 and CST (UTC-6) in December.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
import pytest

from tests.support.alert_reference import (
    drive_alerts,
    normalise_alerts,
    reference_alerts,
    reference_store_states,
)
from tests.support.report_frames import hours_frame, polls_frame, special_frame, utc, zones_frame

NAN = math.nan
CHI = "America/Chicago"
DAILY_9_17 = [(d, "09:00", "17:00") for d in range(7)]


@pytest.fixture(params=["reference", "loop"])
def store_states(request: pytest.FixtureRequest) -> Callable[..., pd.DataFrame]:
    if request.param == "reference":
        return reference_store_states
    return pytest.importorskip("loop.alert_rules").store_states


@pytest.fixture(params=["reference", "loop"])
def run_alerts(request: pytest.FixtureRequest) -> Callable[..., list[dict[str, object]]]:
    if request.param == "reference":
        return reference_alerts
    module = pytest.importorskip("loop.alert_rules")
    return lambda *args, **kwargs: drive_alerts(module.store_states, module.alert_changes, *args, **kwargs)


def T(value: str) -> pd.Timestamp:
    return utc(value)


def check(
    store_states: Callable[..., pd.DataFrame],
    *,
    polls: list[tuple[str, str, str]],
    t: str,
    expect: dict[str, dict[str, str | None]],
    hours: Sequence[tuple[str, int, str, str]] = (),
    zones: Sequence[tuple[str, str]] = (),
    special: list[tuple[str, str, float, float]] | None = None,
    **options: int,
) -> None:
    """Run store_states for the stores in `expect`; compare the fields given (None = NaT)."""
    got = store_states(
        store_ids=list(expect),
        polls=polls_frame(polls),
        hours=hours_frame(hours),
        special_hours=None if special is None else special_frame(special),
        zones=zones_frame(zones),
        t=T(t),
        **options,
    )
    assert sorted(map(str, got.index)) == sorted(expect)
    assert list(map(str, got.index)) == sorted(expect)  # sorted as text
    for sid, fields in expect.items():
        row = got.loc[sid]
        for name, want in fields.items():
            value = row[name]
            if name == "state":
                assert value == want, (sid, name, value, want)
            elif want is None:
                assert pd.isna(value), (sid, name, value)
            else:
                assert not pd.isna(value) and pd.Timestamp(value) == T(want), (sid, name, value, want)


NOTHING = {"outage_start": None, "last_outage_end": None}


# --- closed -------------------------------------------------------------------------------------


def test_closed_at_interval_end_open_at_its_start(store_states) -> None:
    # Monday 09:00-12:00 CDT = 14:00Z-17:00Z on 2024-10-07.
    hours = [("s", 0, "09:00", "12:00")]
    zones = [("s", CHI)]
    # t = 12:00 CDT, the interval end: closed (end-exclusive); the 11:30 poll still counts.
    check(
        store_states,
        polls=[("s", "active", "2024-10-07T16:30Z")],
        hours=hours,
        zones=zones,
        t="2024-10-07T17:00Z",
        expect={"s": {"state": "closed", "last_poll": "2024-10-07T16:30Z", **NOTHING}},
    )
    # t = 09:00 CDT, the interval start: open, and a poll at 09:00 counts (start-inclusive) -> up.
    check(
        store_states,
        polls=[("s", "active", "2024-10-07T14:00Z")],
        hours=hours,
        zones=zones,
        t="2024-10-07T14:00Z",
        expect={"s": {"state": "up", "last_poll": "2024-10-07T14:00Z", **NOTHING}},
    )


# --- unknown ------------------------------------------------------------------------------------


def test_unknown_without_counted_poll(store_states) -> None:
    # The only poll, 08:30 CDT, is before the 09:00 opening: not counted. t = 09:30 CDT -> unknown.
    # Store "late" has a poll after t only: ignored, so it is unknown too.
    check(
        store_states,
        polls=[("s", "inactive", "2024-10-07T13:30Z"), ("late", "active", "2024-10-07T14:31Z")],
        hours=[("s", 0, "09:00", "12:00"), ("late", 0, "09:00", "12:00")],
        zones=[("s", CHI), ("late", CHI)],
        t="2024-10-07T14:30Z",
        expect={
            "late": {"state": "unknown", "last_poll": None, **NOTHING},
            "s": {"state": "unknown", "last_poll": None, **NOTHING},
        },
    )


def test_latest_poll_exactly_g_before_is_observed_one_second_more_is_unknown(store_states) -> None:
    hours = [("a", 0, "09:00", "12:00"), ("b", 0, "09:00", "12:00")]
    zones = [("a", CHI), ("b", CHI)]
    # t = 11:00 CDT (16:00Z). a: active poll at 10:00 CDT, exactly 60 min before -> up.
    # b: active poll at 09:59:59 CDT, 60 min 1 s before -> unknown.
    check(
        store_states,
        polls=[("a", "active", "2024-10-07T15:00Z"), ("b", "active", "2024-10-07T14:59:59Z")],
        hours=hours,
        zones=zones,
        t="2024-10-07T16:00Z",
        expect={
            "a": {"state": "up", "last_poll": "2024-10-07T15:00Z", **NOTHING},
            "b": {"state": "unknown", "last_poll": "2024-10-07T14:59:59Z", **NOTHING},
        },
    )
    # With G = 59, a's poll 60 min before t is unobserved -> unknown.
    check(
        store_states,
        polls=[("a", "active", "2024-10-07T15:00Z")],
        hours=hours,
        zones=zones,
        t="2024-10-07T16:00Z",
        max_gap_minutes=59,
        expect={"a": {"state": "unknown", "last_poll": "2024-10-07T15:00Z"}},
    )


def test_inactive_but_unobserved_is_unknown_with_no_outage_start(store_states) -> None:
    # Inactive poll at 09:30 CDT, t = 11:00 CDT: 90 min > G -> unknown; outage_start only for down/pending.
    # The down time 09:00-11:00 (all nearest to the 09:30 poll) ends at t: last_outage_end = t.
    check(
        store_states,
        polls=[("s", "inactive", "2024-10-07T14:30Z")],
        hours=[("s", 0, "09:00", "12:00")],
        zones=[("s", CHI)],
        t="2024-10-07T16:00Z",
        expect={"s": {"state": "unknown", "outage_start": None, "last_outage_end": "2024-10-07T16:00Z"}},
    )


# --- pending / down -----------------------------------------------------------------------------


def test_pending_then_down(store_states) -> None:
    hours = [("s", 0, "09:00", "12:00")]
    zones = [("s", CHI)]
    # Active 10:00 CDT (15:00Z), inactive 10:40 CDT (15:40Z): switch at the midpoint 10:20 (15:20Z).
    # t = 15:40Z: inactive for 20 min < 30 -> pending.
    check(
        store_states,
        polls=[("s", "active", "2024-10-07T15:00Z"), ("s", "inactive", "2024-10-07T15:40Z")],
        hours=hours,
        zones=zones,
        t="2024-10-07T15:40Z",
        expect={
            "s": {
                "state": "pending",
                "last_poll": "2024-10-07T15:40Z",
                "outage_start": "2024-10-07T15:20Z",
                "last_outage_end": "2024-10-07T15:40Z",
            }
        },
    )
    # Active 10:00, inactive 10:31 and 11:00 CDT: midpoint 10:00 + 31/2 min = 10:15:30 CDT = 15:15:30Z.
    # t = 11:00 CDT (16:00Z): 44.5 min >= 30 -> down.
    check(
        store_states,
        polls=[
            ("s", "active", "2024-10-07T15:00Z"),
            ("s", "inactive", "2024-10-07T15:31Z"),
            ("s", "inactive", "2024-10-07T16:00Z"),
        ],
        hours=hours,
        zones=zones,
        t="2024-10-07T16:00Z",
        expect={
            "s": {
                "state": "down",
                "last_poll": "2024-10-07T16:00Z",
                "outage_start": "2024-10-07T15:15:30Z",
                "last_outage_end": "2024-10-07T16:00Z",
            }
        },
    )


def test_down_threshold_is_inclusive(store_states) -> None:
    # Active 10:00 CDT, inactive 10:20 CDT: outage from 10:10 CDT (15:10Z).
    polls = [("s", "active", "2024-10-07T15:00Z"), ("s", "inactive", "2024-10-07T15:20Z")]
    hours = [("s", 0, "09:00", "12:00")]
    zones = [("s", CHI)]
    # t = 10:39 CDT: 29 min -> pending; t = 10:40 CDT: exactly 30 min -> down.
    for t, state in (("2024-10-07T15:39Z", "pending"), ("2024-10-07T15:40Z", "down")):
        check(
            store_states,
            polls=polls,
            hours=hours,
            zones=zones,
            t=t,
            expect={"s": {"state": state, "outage_start": "2024-10-07T15:10Z"}},
        )
    # D = 45: at 10:40 CDT the same 30 min outage is only pending.
    check(
        store_states,
        polls=polls,
        hours=hours,
        zones=zones,
        t="2024-10-07T15:40Z",
        down_after_minutes=45,
        expect={"s": {"state": "pending", "outage_start": "2024-10-07T15:10Z"}},
    )


def test_outage_start_clipped_at_business_interval_start(store_states) -> None:
    # Daily 09:00-17:00 CDT. Active Monday 16:00 CDT (21:00Z); inactive Tuesday 09:10 and 09:50 CDT.
    # Midpoint of Mon 16:00 and Tue 09:10 = Mon 16:00 + 17 h 10 min / 2 = Tue 00:35 CDT: closed time,
    # so Tuesday is down from its opening, 09:00 CDT = 14:00Z. t = Tue 09:50 CDT (14:50Z): 50 min -> down.
    check(
        store_states,
        polls=[
            ("s", "active", "2024-10-07T21:00Z"),
            ("s", "inactive", "2024-10-08T14:10Z"),
            ("s", "inactive", "2024-10-08T14:50Z"),
        ],
        hours=[("s", *row) for row in DAILY_9_17],
        zones=[("s", CHI)],
        t="2024-10-08T14:50Z",
        expect={
            "s": {
                "state": "down",
                "last_poll": "2024-10-08T14:50Z",
                "outage_start": "2024-10-08T14:00Z",
                "last_outage_end": "2024-10-08T14:50Z",
            }
        },
    )


def test_observed_by_a_poll_of_the_previous_interval(store_states) -> None:
    # Monday 07:00-08:40 and 09:00-12:00 CDT. Inactive poll 08:30 CDT (13:30Z); t = 09:10 CDT (14:10Z):
    # 40 min <= G, so observed and inactive; the outage can not cross 08:40-09:00 (closed), so it
    # starts at 09:00 CDT = 14:00Z and has lasted 10 min -> pending.
    check(
        store_states,
        polls=[("s", "inactive", "2024-10-07T13:30Z")],
        hours=[("s", 0, "07:00", "08:40"), ("s", 0, "09:00", "12:00")],
        zones=[("s", CHI)],
        t="2024-10-07T14:10Z",
        expect={"s": {"state": "pending", "last_poll": "2024-10-07T13:30Z", "outage_start": "2024-10-07T14:00Z"}},
    )


def test_pending_with_no_length_at_interval_start(store_states) -> None:
    # Monday 09:00-12:00 CDT; inactive poll exactly at the opening 09:00 CDT (14:00Z) and t = 14:00Z:
    # the outage starts at t (closed before), 0 min < 30 -> pending.
    # It holds no down business time yet, so it is not the latest outage: t - 7 d = 09-30 14:00Z is the
    # previous Monday's opening, and that whole interval is down (the only counted poll is inactive and
    # its status extends backwards), so the latest outage ended at 09-30 12:00 CDT = 17:00Z.
    check(
        store_states,
        polls=[("s", "inactive", "2024-10-07T14:00Z")],
        hours=[("s", 0, "09:00", "12:00")],
        zones=[("s", CHI)],
        t="2024-10-07T14:00Z",
        expect={"s": {"state": "pending", "outage_start": "2024-10-07T14:00Z", "last_outage_end": "2024-09-30T17:00Z"}},
    )


def test_24x7_outage_runs_across_midnight(store_states) -> None:
    # Active 23:00 CDT Mon (04:00Z Tue), inactive 23:40 CDT (04:40Z) and 00:30 CDT Tue (05:30Z).
    # Midpoint 23:20 CDT = 04:20Z. t = 05:30Z: 70 min -> down.
    # "none": no hours rows (24x7); "rows": seven 00:00-00:00 rows, whose days touch at midnight and merge.
    # "gap": 00:00-23:59 daily: closed 23:59-00:00, so the outage restarts at 00:00 CDT = 05:00Z, 30 min -> down.
    polls = [
        (sid, status, ts)
        for sid in ("gap", "none", "rows")
        for status, ts in (
            ("active", "2024-10-08T04:00Z"),
            ("inactive", "2024-10-08T04:40Z"),
            ("inactive", "2024-10-08T05:30Z"),
        )
    ]
    check(
        store_states,
        polls=polls,
        hours=[("rows", d, "00:00", "00:00") for d in range(7)] + [("gap", d, "00:00", "23:59") for d in range(7)],
        zones=[("gap", CHI), ("none", CHI), ("rows", CHI)],
        t="2024-10-08T05:30Z",
        expect={
            "gap": {"state": "down", "outage_start": "2024-10-08T05:00Z", "last_outage_end": "2024-10-08T05:30Z"},
            "none": {"state": "down", "outage_start": "2024-10-08T04:20Z", "last_outage_end": "2024-10-08T05:30Z"},
            "rows": {"state": "down", "outage_start": "2024-10-08T04:20Z", "last_outage_end": "2024-10-08T05:30Z"},
        },
    )


def test_outage_start_clipped_at_week_start(store_states) -> None:
    # 24x7. t = 2024-10-14 17:00Z, so t - 7 d = 2024-10-07 17:00Z.
    # Active 10-07 16:50Z lies before the range: not counted (counted, the midpoint with the 17:20Z
    # poll would be 17:05Z). Inactive 17:20Z and t -> all the range is down: start clipped to t - 7 d.
    check(
        store_states,
        polls=[
            ("s", "active", "2024-10-07T16:50Z"),
            ("s", "inactive", "2024-10-07T17:20Z"),
            ("s", "inactive", "2024-10-14T17:00Z"),
        ],
        zones=[("s", CHI)],
        t="2024-10-14T17:00Z",
        expect={"s": {"state": "down", "outage_start": "2024-10-07T17:00Z", "last_poll": "2024-10-14T17:00Z"}},
    )
    # A poll exactly at t - 7 d counts: active there, inactive at 10-08 17:00Z -> midpoint
    # 10-08 05:00Z (the 10-07 16:50Z poll is still out of range).
    check(
        store_states,
        polls=[
            ("s", "active", "2024-10-07T17:00Z"),
            ("s", "inactive", "2024-10-08T17:00Z"),
            ("s", "inactive", "2024-10-14T17:00Z"),
        ],
        zones=[("s", CHI)],
        t="2024-10-14T17:00Z",
        expect={"s": {"state": "down", "outage_start": "2024-10-08T05:00Z"}},
    )


# --- holiday hours, duplicates, DST -------------------------------------------------------------


def test_holiday_hours_close_a_day_and_open_another(store_states) -> None:
    # Daily 09:00-17:00 CST. "h" is closed on 2024-12-25 and open only 06:00-08:00 CST on 12-26.
    # "w" has the weekly hours only.
    hours = [(sid, *row) for sid in ("h", "w") for row in DAILY_9_17]
    zones = [("h", CHI), ("w", CHI)]
    special = [("h", "2024-12-25", NAN, NAN), ("h", "2024-12-26", 6 * 3600, 8 * 3600)]
    # Polls: active 12-24 16:30 CST (22:30Z) and 12-25 11:30 CST (17:30Z). t = 12-25 12:00 CST (18:00Z).
    # h: closed at t; its 12-25 poll is outside business hours, the latest counted is 12-24 22:30Z.
    # w: open, active 30 min ago -> up.
    polls = [(sid, "active", ts) for sid in ("h", "w") for ts in ("2024-12-24T22:30Z", "2024-12-25T17:30Z")]
    check(
        store_states,
        polls=polls,
        hours=hours,
        zones=zones,
        special=special,
        t="2024-12-25T18:00Z",
        expect={
            "h": {"state": "closed", "last_poll": "2024-12-24T22:30Z", **NOTHING},
            "w": {"state": "up", "last_poll": "2024-12-25T17:30Z", **NOTHING},
        },
    )
    # 12-26: inactive polls 06:10 and 07:00 CST (12:10Z, 13:00Z); t = 07:00 CST (13:00Z).
    # h is open 06:00-08:00 CST (12:00Z-14:00Z); the midpoint with 12-24 22:30Z (12-25 17:20Z) is in the
    # closed holiday, so the outage starts at 06:00 CST = 12:00Z: 60 min -> down. w is closed at 07:00.
    polls += [(sid, "inactive", ts) for sid in ("h", "w") for ts in ("2024-12-26T12:10Z", "2024-12-26T13:00Z")]
    check(
        store_states,
        polls=polls,
        hours=hours,
        zones=zones,
        special=special,
        t="2024-12-26T13:00Z",
        expect={
            "h": {"state": "down", "outage_start": "2024-12-26T12:00Z", "last_poll": "2024-12-26T13:00Z"},
            "w": {"state": "closed", "last_poll": "2024-12-25T17:30Z", **NOTHING},
        },
    )


def test_duplicate_polls_inactive_wins(store_states) -> None:
    # Active 09:20 CDT (14:20Z); at 10:00 CDT (15:00Z) both an active and an inactive poll, in either
    # order. Inactive wins: switch at the midpoint 09:40 CDT = 14:40Z; t = 15:00Z: 20 min -> pending.
    polls = [
        ("a", "active", "2024-10-07T14:20Z"),
        ("a", "inactive", "2024-10-07T15:00Z"),
        ("a", "active", "2024-10-07T15:00Z"),
        ("b", "active", "2024-10-07T14:20Z"),
        ("b", "active", "2024-10-07T15:00Z"),
        ("b", "inactive", "2024-10-07T15:00Z"),
    ]
    want = {"state": "pending", "last_poll": "2024-10-07T15:00Z", "outage_start": "2024-10-07T14:40Z"}
    check(
        store_states,
        polls=polls,
        hours=[("a", 0, "09:00", "12:00"), ("b", 0, "09:00", "12:00")],
        zones=[("a", CHI), ("b", CHI)],
        t="2024-10-07T15:00Z",
        expect={"a": want, "b": want},
    )


def test_dst_spring_forward_new_york(store_states) -> None:
    # America/New_York springs forward on Sunday 2024-03-10 at 07:00Z (02:00 EST -> 03:00 EDT).
    ny = "America/New_York"
    # "a": Sunday 01:00-05:00: 01:00 EST = 06:00Z, 05:00 EDT = 09:00Z.
    # Active 01:30 EST (06:30Z), inactive 03:10 EDT (07:10Z) and 03:50 EDT (07:50Z).
    # Midpoint of 06:30Z and 07:10Z = 06:50Z (01:50 EST); t = 07:50Z: 60 min -> down.
    # "b": Sunday 02:30-05:00: 02:30 does not exist on 03-10 and becomes 03:00 EDT = 07:00Z.
    # Active Sunday 03-03 04:00 EST (09:00Z; inside the week from 03-03 07:50Z), inactive 03:20 EDT (07:20Z).
    # Their midpoint falls in the closed week, so the outage starts at the opening 07:00Z: 50 min -> down.
    check(
        store_states,
        polls=[
            ("a", "active", "2024-03-10T06:30Z"),
            ("a", "inactive", "2024-03-10T07:10Z"),
            ("a", "inactive", "2024-03-10T07:50Z"),
            ("b", "active", "2024-03-03T09:00Z"),
            ("b", "inactive", "2024-03-10T07:20Z"),
        ],
        hours=[("a", 6, "01:00", "05:00"), ("b", 6, "02:30", "05:00")],
        zones=[("a", ny), ("b", ny)],
        t="2024-03-10T07:50Z",
        expect={
            "a": {"state": "down", "outage_start": "2024-03-10T06:50Z", "last_poll": "2024-03-10T07:50Z"},
            "b": {"state": "down", "outage_start": "2024-03-10T07:00Z", "last_poll": "2024-03-10T07:20Z"},
        },
    )
    # At 09:00Z (05:00 EDT) both are closed; "a"'s outage ended at the close, 09:00Z.
    check(
        store_states,
        polls=[("a", "active", "2024-03-10T06:30Z"), ("a", "inactive", "2024-03-10T07:10Z")],
        hours=[("a", 6, "01:00", "05:00")],
        zones=[("a", ny)],
        t="2024-03-10T09:00Z",
        expect={"a": {"state": "closed", "outage_start": None, "last_outage_end": "2024-03-10T09:00Z"}},
    )


# --- last_outage_end ----------------------------------------------------------------------------


def test_last_outage_end_of_up_and_closed_stores(store_states) -> None:
    hours = [("c", 0, "09:00", "12:00"), ("u", 0, "09:00", "12:00")]
    zones = [("c", CHI), ("u", CHI)]
    # u: active 09:10, inactive 09:40, active 10:20 CDT; midpoints 09:25 and 10:00 CDT.
    # t = 10:30 CDT (15:30Z): up; the outage 09:25-10:00 ended at 10:00 CDT = 15:00Z.
    # c: active 10:00, inactive 11:30 CDT; down from the midpoint 10:45 to the close 12:00 CDT (17:00Z).
    # t = 13:00 CDT (18:00Z): closed; the outage ended at 17:00Z. u at 18:00Z: closed, still 15:00Z.
    polls = [
        ("u", "active", "2024-10-07T14:10Z"),
        ("u", "inactive", "2024-10-07T14:40Z"),
        ("u", "active", "2024-10-07T15:20Z"),
        ("c", "active", "2024-10-07T15:00Z"),
        ("c", "inactive", "2024-10-07T16:30Z"),
    ]
    check(
        store_states,
        polls=polls,
        hours=hours,
        zones=zones,
        t="2024-10-07T15:30Z",
        expect={
            "u": {
                "state": "up",
                "last_poll": "2024-10-07T15:20Z",
                "outage_start": None,
                "last_outage_end": "2024-10-07T15:00Z",
            }
        },
    )
    check(
        store_states,
        polls=polls,
        hours=hours,
        zones=zones,
        t="2024-10-07T18:00Z",
        expect={
            "c": {
                "state": "closed",
                "last_poll": "2024-10-07T16:30Z",
                "outage_start": None,
                "last_outage_end": "2024-10-07T17:00Z",
            },
            "u": {"state": "closed", "last_outage_end": "2024-10-07T15:00Z"},
        },
    )


# --- alerts -------------------------------------------------------------------------------------

# Store "s": Monday 09:00-13:00 CDT = 14:00Z-18:00Z on 2024-10-07. Store "o": 24x7, active at every
# evaluation instant (so that each t is the newest poll), never alerts.
ALERT_TIMES = ["14:00", "14:20", "14:40", "15:31", "15:40", "15:50", "16:00", "16:40", "17:10", "18:00"]
S_POLLS = [
    ("14:00", "active"),
    ("14:20", "inactive"),  # outage from the midpoint 14:10Z
    ("14:30", "inactive"),
    ("15:40", "inactive"),
    ("15:44", "active"),  # between evaluations: up 15:42-15:46
    ("15:48", "inactive"),
    ("16:00", "active"),  # down 15:46-15:54, up from 15:54
    ("16:40", "inactive"),  # outage from 16:20Z
    ("17:10", "inactive"),
]


def _day(hhmm: str) -> str:
    return f"2024-10-07T{hhmm}Z"


def test_alert_sequence(run_alerts) -> None:
    # Evaluations (Z) and the state of s:
    #  14:00 up | 14:20 pending (10 min) | 14:40 down (14:10-14:40 = 30 min): alert 1 opens, started 14:10
    #  15:31 unknown (14:30 poll is 61 min old): stays open | 15:40 down: stays open, no second alert
    #  15:50 pending (outage 15:46-15:50): stays open
    #  16:00 up: resolves "up"; latest outage ending by then is 15:46-15:54 -> ended_at 15:54
    #  16:40 pending (16:20-16:40) | 17:10 down (50 min): alert 2 opens, started 16:20
    #  18:00 closed (13:00 CDT, end-exclusive): resolves "closed", ended_at = the close, 18:00.
    polls = polls_frame(
        [("s", status, _day(hhmm)) for hhmm, status in S_POLLS] + [("o", "active", _day(hhmm)) for hhmm in ALERT_TIMES]
    )
    got = run_alerts(
        polls,
        hours_frame([("s", 0, "09:00", "13:00")]),
        None,
        zones_frame([("s", CHI), ("o", CHI)]),
        [T(_day(hhmm)) for hhmm in ALERT_TIMES],
    )
    assert normalise_alerts(got) == [
        ("s", T(_day("14:10")), T(_day("14:40")), T(_day("16:00")), "up", T(_day("15:54"))),
        ("s", T(_day("16:20")), T(_day("17:10")), T(_day("18:00")), "closed", T(_day("18:00"))),
    ]


def test_alert_left_open_and_stores_without_polls_yet(run_alerts) -> None:
    # Only the first three evaluations: alert 1 is open at the end. "late" first polls at 14:40Z
    # (inactive, 24x7): one poll, inactive back to t - 7 d -> down at once: opens with started = t - 7 d.
    polls = polls_frame(
        [("s", status, _day(hhmm)) for hhmm, status in S_POLLS[:3]] + [("late", "inactive", _day("14:40"))]
    )
    got = run_alerts(
        polls,
        hours_frame([("s", 0, "09:00", "13:00")]),
        None,
        zones_frame([("s", CHI), ("late", CHI)]),
        [T(_day(hhmm)) for hhmm in ALERT_TIMES[:3]],
    )
    assert normalise_alerts(got) == [
        ("late", T("2024-09-30T14:40Z"), T(_day("14:40")), None, None, None),
        ("s", T(_day("14:10")), T(_day("14:40")), None, None, None),
    ]


def test_alert_changes_directly() -> None:
    alert_rules = pytest.importorskip("loop.alert_rules")
    t = T("2024-10-07T16:00Z")
    nat = pd.NaT
    # Hand-made states at t (columns of store_states); open alerts for b, c, d, e, f.
    rows = {
        "a": ("down", T("2024-10-07T15:55Z"), T("2024-10-07T15:20Z"), t),  # down, no alert -> opens
        "b": ("down", T("2024-10-07T15:55Z"), T("2024-10-07T15:00Z"), t),  # already open -> nothing
        "c": ("pending", T("2024-10-07T15:55Z"), T("2024-10-07T15:50Z"), t),  # stays open
        "d": ("unknown", T("2024-10-07T14:00Z"), nat, T("2024-10-07T15:00Z")),  # stays open
        "e": ("up", T("2024-10-07T15:59Z"), nat, T("2024-10-07T15:40Z")),  # resolves up
        "f": ("closed", T("2024-10-07T16:50Z"), nat, T("2024-10-07T17:00Z")),  # resolves closed
        "g": ("up", T("2024-10-07T15:59Z"), nat, nat),  # nothing open -> nothing
        "h": ("pending", T("2024-10-07T15:55Z"), T("2024-10-07T15:50Z"), t),  # short, no alert -> nothing
    }
    states = pd.DataFrame.from_dict(
        rows, orient="index", columns=["state", "last_poll", "outage_start", "last_outage_end"]
    ).rename_axis("store_id")
    changes = alert_rules.alert_changes(states=states, open_store_ids={"b", "c", "d", "e", "f"}, t=t)
    opened = [(str(r["store_id"]), pd.Timestamp(r["started_at"])) for r in changes.opened.to_dict("records")]
    assert opened == [("a", T("2024-10-07T15:20Z"))]
    resolved = sorted(
        (str(r["store_id"]), r["resolution"], pd.Timestamp(r["ended_at"])) for r in changes.resolved.to_dict("records")
    )
    assert resolved == [("e", "up", T("2024-10-07T15:40Z")), ("f", "closed", T("2024-10-07T17:00Z"))]
