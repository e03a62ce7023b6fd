"""Property tests: loop.alert_rules against the simple reference (tests/support/alert_reference.py).

Random small stores: whole-minute polls in bursts (so that stores are observed and go up, pending
and down) over 2-9 days around a DST change, random weekly hours (overnight and 24 h rows
included, or none: 24x7), some holiday rows, zones with 1 h and 30 min DST changes. Several
evaluation instants, each either a poll instant or any whole minute. Everything lies on whole
minutes, as the reference's 30 s walk needs.

The first test checks the reference itself against the report engine's timeline (loop/timeline.py,
property-tested on its own) on outages, so it runs before loop.alert_rules exists. The second
compares store_states at every instant and the alert sequence built with alert_changes.

Deterministic by default; ALERT_PROPERTY_RANDOM=1 ALERT_PROPERTY_EXAMPLES=300 explores.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loop.timeline import store_timeline
from tests.support.alert_reference import (
    DOWN,
    PENDING,
    drive_alerts,
    normalise_alerts,
    reference_alerts,
    reference_store_states,
)
from tests.support.report_frames import hours_frame, polls_frame, special_frame, utc, zones_frame

DAY_S = 86400
# (zone, an instant near one of its DST changes, or any instant for a zone without DST)
ANCHORS = [
    ("America/New_York", "2024-03-10T07:00:00Z"),
    ("America/New_York", "2024-11-03T06:00:00Z"),
    ("America/Chicago", "2024-11-03T07:00:00Z"),
    ("Europe/London", "2024-03-31T01:00:00Z"),
    ("Australia/Lord_Howe", "2024-10-05T15:30:00Z"),
    ("Asia/Kolkata", "2024-06-01T00:00:00Z"),
]
OTHER_ZONES = ["America/New_York", "Asia/Kolkata", "UTC", "Not/AZone"]  # an invalid name -> America/Chicago


@dataclass(frozen=True)
class Store:
    zone: str
    weekly: list[tuple[int, int, int]]  # day_of_week, start_s, end_s
    special: list[tuple[date, float, float]]  # date_local, start_s, end_s (NaN: closed all day)
    polls: list[tuple[str, int]]  # status, epoch seconds


@dataclass(frozen=True)
class Case:
    stores: dict[str, Store]
    times: list[int]  # increasing evaluation instants, epoch seconds
    gap_minutes: int
    down_minutes: int


minute_of_day = st.integers(0, 1439).map(lambda m: m * 60)
# end == start (24 h) one time in six; otherwise any end, so overnight rows are common.
weekly_row = st.tuples(st.integers(0, 6), minute_of_day, minute_of_day, st.integers(0, 5)).map(
    lambda r: (r[0], r[1], r[1] if r[3] == 0 else r[2])
)
daily = st.tuples(minute_of_day, minute_of_day).map(lambda r: [(d, r[0], r[1]) for d in range(7)])


@st.composite
def bursts(draw: st.DrawFn, start: int, days: int) -> list[tuple[str, int]]:
    """Runs of polls a few minutes apart with runs of one status, like a store going down and back up."""
    polls: list[tuple[str, int]] = []
    for _ in range(draw(st.integers(1, 4))):
        at = start + draw(st.integers(0, days * 1440)) * 60
        step = draw(st.integers(3, 45)) * 60
        status = draw(st.sampled_from(["active", "inactive"]))
        for _ in range(draw(st.integers(1, 14))):
            if draw(st.integers(0, 3)) == 0:
                status = "inactive" if status == "active" else "active"
            polls.append((status, at))
            if draw(st.integers(0, 9)) == 0:  # a duplicate at the same instant, maybe disagreeing
                polls.append((draw(st.sampled_from(["active", "inactive"])), at))
            at += step
    return polls


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone, anchor = draw(st.sampled_from(ANCHORS))
    days = draw(st.integers(2, 9))
    start = int(utc(anchor).timestamp()) - draw(st.integers(0, days * 1440)) * 60
    first_date = datetime.fromtimestamp(start, ZoneInfo(zone)).date()
    stores = {}
    for sid in draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True)):
        store_zone = draw(st.sampled_from([zone, zone, zone, *OTHER_ZONES]))
        # Mostly open stores (24x7 or daily hours), so that states other than closed come up often.
        weekly = draw(st.one_of(st.just([]), daily, daily, st.lists(weekly_row, min_size=1, max_size=6)))
        special = draw(
            st.lists(
                st.tuples(
                    st.integers(0, days).map(lambda k: first_date + timedelta(days=k)),
                    st.one_of(st.none(), st.tuples(minute_of_day, minute_of_day)),
                ).map(lambda r: (r[0], math.nan, math.nan) if r[1] is None else (r[0], float(r[1][0]), float(r[1][1]))),
                max_size=2,
            )
        )
        stores[sid] = Store(store_zone, weekly, special, draw(bursts(start, days)))
    poll_times = sorted({t for store in stores.values() for _, t in store.polls})
    gap, down = draw(st.sampled_from([60, 60, 30, 120])), draw(st.sampled_from([30, 30, 10, 45]))
    # Instants at the edges: G or G + 1 min after a store's last poll before a pause, D (+- 1 min)
    # after an active-to-inactive switch (its minute), and any whole minute after a poll.
    pauses, midpoints = [], []
    for store in stores.values():
        status: dict[int, str] = {}
        for st_, t in store.polls:
            status[t] = "inactive" if "inactive" in (st_, status.get(t)) else "active"
        times = sorted(status)
        pauses += [a for a, b in zip(times, [*times[1:], math.inf], strict=True) if b - a > gap * 60]
        midpoints += [
            (a + b) // 2 // 60 * 60
            for a, b in zip(times, times[1:], strict=False)
            if (status[a], status[b]) == ("active", "inactive")
        ]
    edges = [st.sampled_from(poll_times)]
    edges.append(st.tuples(st.sampled_from(pauses), st.sampled_from([gap, gap + 1])).map(lambda p: p[0] + p[1] * 60))
    if midpoints:
        edges.append(
            st.tuples(st.sampled_from(midpoints), st.sampled_from([down - 1, down, down + 1])).map(
                lambda p: p[0] + p[1] * 60
            )
        )
    edges.append(st.tuples(st.sampled_from(poll_times), st.integers(0, 2 * gap)).map(lambda p: p[0] + p[1] * 60))
    edges.append(st.integers(0, (days + 1) * 1440).map(lambda m: start + m * 60))
    picks = draw(st.lists(st.one_of(edges), min_size=2, max_size=10))
    return Case(stores, sorted(set(picks)), gap, down)


def _settings() -> settings:
    if os.environ.get("ALERT_PROPERTY_RANDOM"):
        return settings(
            max_examples=int(os.environ.get("ALERT_PROPERTY_EXAMPLES", "300")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
    return settings(
        max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
    )


def frames(case: Case, only: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    chosen = {k: v for k, v in case.stores.items() if only is None or k == only}
    polls = polls_frame(
        [(sid, s, pd.Timestamp(t, unit="s", tz="UTC")) for sid, store in chosen.items() for s, t in store.polls]
    )
    hours = hours_frame([(sid, *row) for sid, store in chosen.items() for row in store.weekly])
    zones = zones_frame([(sid, store.zone) for sid, store in chosen.items()])
    special = special_frame([(sid, d.isoformat(), s, e) for sid, store in chosen.items() for d, s, e in store.special])
    return polls, hours, zones, special


def stamp(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def same_time(a: object, b: object) -> bool:
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return pd.Timestamp(a) == pd.Timestamp(b)


@_settings()
@given(cases())
def test_reference_outages_agree_with_the_timeline(case: Case) -> None:
    """The reference's outage start and last outage end equal the timeline's outages over [t - 7d, t)."""
    polls, hours, zones, special = frames(case)
    for t in case.times:
        ids = sorted(sid for sid, store in case.stores.items() if any(ts <= t for _, ts in store.polls))
        ref = reference_store_states(
            store_ids=ids,
            polls=polls,
            hours=hours,
            special_hours=special,
            zones=zones,
            t=stamp(t),
            max_gap_minutes=case.gap_minutes,
            down_after_minutes=case.down_minutes,
        )
        for sid in ids:
            one = frames(case, only=sid)
            timeline = store_timeline(
                polls=one[0],
                hours=one[1],
                special_hours=one[3],
                zones=one[2],
                start=stamp(t - 7 * DAY_S),
                end=stamp(t),
                max_gap_minutes=case.gap_minutes,
            )
            row = ref.loc[sid]
            ends = [o.end_us for o in timeline.outages]
            if row["state"] in (DOWN, PENDING):
                # The outage going on at t: the timeline's last one when it reaches t, else none yet (length 0).
                going = [o for o in timeline.outages if o.end_us == t * 1_000_000]
                want_start = going[0].start_us if going else t * 1_000_000
                assert row["outage_start"] == pd.Timestamp(want_start, unit="us", tz="UTC"), (sid, t)
            if ends:
                assert row["last_outage_end"] == pd.Timestamp(max(ends), unit="us", tz="UTC"), (sid, t, row)
            else:
                assert pd.isna(row["last_outage_end"]), (sid, t, row)


@_settings()
@given(cases())
def test_store_states_and_alerts_match_the_reference(case: Case) -> None:
    alert_rules = pytest.importorskip("loop.alert_rules")
    polls, hours, zones, special = frames(case)
    options = {"max_gap_minutes": case.gap_minutes, "down_after_minutes": case.down_minutes}
    for t in case.times:
        # Every store given is evaluated, also one with no poll at or before t.
        ids = sorted(case.stores)
        kwargs = {"store_ids": ids, "polls": polls, "hours": hours, "special_hours": special, "zones": zones}
        want = reference_store_states(**kwargs, t=stamp(t), **options)
        got = alert_rules.store_states(**kwargs, t=stamp(t), **options)
        assert list(map(str, got.index)) == list(want.index), t
        for sid in ids:
            for column in ("state", "last_poll", "outage_start", "last_outage_end"):
                a, b = got.loc[sid, column], want.loc[sid, column]
                same = a == b if column == "state" else same_time(a, b)
                assert same, (sid, stamp(t), column, a, b)

    times = [stamp(t) for t in case.times]
    want_alerts = reference_alerts(polls, hours, special, zones, times, G=case.gap_minutes, D=case.down_minutes)
    got_alerts = drive_alerts(
        alert_rules.store_states,
        alert_rules.alert_changes,
        polls,
        hours,
        special,
        zones,
        times,
        G=case.gap_minutes,
        D=case.down_minutes,
    )
    assert normalise_alerts(got_alerts) == normalise_alerts(want_alerts)
