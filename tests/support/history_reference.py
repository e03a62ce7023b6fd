"""Issue 19's reference set and brute force for daily figures, shared by the in-process test
(``tests/test_history.py``) and the real stack's (``tests/integration/test_history_http.py``).

A generated set of six stores over 15 local dates across two DST changes (London 2024-10-27, Chicago
2024-11-03), with overnight, 24-hour and 24x7 hours, holiday hours (closed, special hours on a DST
date), polls exactly at local midnights, and one store's hours and another's zone changed half way.

The brute force knows nothing of the engine: business intervals are built date by date with zoneinfo
(``tests.support.report_reference.wall_to_utc``), and each minute of each local date [00:00, next 00:00)
is judged at its centre with the polls of that date's closed range. Polls lie on even minutes and every
rule's edge on a whole minute, so the counts are exact.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.report_reference import hours_row_span, merge_intervals, wall_to_utc

FIRST = date(2024, 10, 25)
LAST = date(2024, 11, 5)
GAP_S = 3600
CHANGE_AT = datetime(2024, 10, 31, 12, tzinfo=UTC)  # hours of s3 and zone of s4 change here (hour by hour)


@dataclass
class Store:
    zone: str | None  # None: no zone row (the default zone)
    weekly: list[tuple[int, str, str]] = field(default_factory=list)
    special: list[tuple[str, str | None, str | None]] = field(default_factory=list)


def initial_stores() -> dict[str, Store]:
    weekdays = [(d, "09:00:00", "17:00:00") for d in range(5)]
    return {
        "s1": Store(
            "America/Chicago",
            [*weekdays, (5, "22:00:00", "02:00:00"), (6, "01:00:00", "03:00:00")],
            [("2024-10-31", None, None), ("2024-11-01", "10:00:00", "10:00:00")],
        ),
        "s2": Store("Europe/London", [], [("2024-10-27", "00:30:00", "01:30:00")]),
        "s3": Store("Asia/Kolkata", [(d, "06:00:00", "23:30:00") for d in range(7)]),
        "s4": Store("America/Denver", [(d, "20:00:00", "04:00:00") for d in range(7)], [("2024-11-03", None, None)]),
        "s5": Store("America/Chicago", [(2, "05:00:00", "05:00:00"), (4, "12:00:00", "13:00:00")]),
        "s6": Store(None),
    }


def final_stores() -> dict[str, Store]:
    out = initial_stores()
    out["s3"] = Store("Asia/Kolkata", [(d, "08:00:00", "20:00:00") for d in range(6)])
    out["s4"] = Store("America/Phoenix", out["s4"].weekly, out["s4"].special)
    return out


def generate_polls(seed: int = 19) -> list[tuple[str, str, int]]:
    """(store, status, epoch seconds) on even minutes, about hourly, with down streaks and midnight polls."""
    rng = random.Random(seed)
    start = int(datetime.combine(FIRST, time(), UTC).timestamp())
    end = int(datetime.combine(LAST, time(), UTC).timestamp())
    polls = []
    for sid in initial_stores():
        down = False
        first_hour = start + rng.randrange(0, 36) * 3600  # stores start on different dates
        for hour in range(first_hour, end, 3600):
            if rng.random() < 0.15:
                continue  # a missed poll: unobserved time
            if rng.random() < 0.12:
                down = not down
            polls.append((sid, "inactive" if down else "active", hour + 120 * rng.randrange(0, 30)))
    # Exactly at local midnights (they count for both dates they bound).
    for sid, zone, day in (("s1", "America/Chicago", date(2024, 10, 29)), ("s3", "Asia/Kolkata", date(2024, 11, 2))):
        polls.append((sid, "inactive", wall_to_utc(datetime.combine(day, time()), ZoneInfo(zone))))
    return sorted(polls, key=lambda p: p[2])


# --- the brute force ---------------------------------------------------------------------------------


def seconds(clock: str) -> int:
    h, m, s = (int(x) for x in clock.split(":"))
    return h * 3600 + m * 60 + s


def zone_of(store: Store) -> ZoneInfo:
    return ZoneInfo(store.zone or "America/Chicago")


def open_spans(store: Store, first: date, last: date) -> list[tuple[int, int]]:
    """Merged UTC business intervals of the local dates first-1 .. last+1 (24x7: one span)."""
    tz = zone_of(store)
    if not store.weekly and not store.special:
        return [(-(10**12), 10**12)]
    weekly = store.weekly or [(d, "00:00:00", "00:00:00") for d in range(7)]
    special = {d: [] for d, _, _ in store.special}
    for d, a, b in store.special:
        if a is not None and b is not None:
            special[d].append((a, b))
    raw = []
    day = first - timedelta(days=1)
    while day <= last + timedelta(days=1):
        rows = special.get(day.isoformat())
        if rows is None:
            rows = [(a, b) for dow, a, b in weekly if dow == day.weekday()]
        for a, b in rows:
            lo, hi = hours_row_span(day, seconds(a), seconds(b), tz)
            if lo < hi:
                raw.append((lo, hi))
        day += timedelta(days=1)
    return merge_intervals(raw)


def brute_force(stores_: dict[str, Store], polls: list[tuple[str, str, int]]) -> dict[tuple[str, str], tuple]:
    """(store, date) -> (up s, down s, unobserved s, outages, longest outage s) on each of the store's dates."""
    newest = max(t for _, _, t in polls)
    out = {}
    for sid, store in stores_.items():
        tz = zone_of(store)
        mine: dict[int, str] = {}
        for s, status, t in polls:
            if s == sid:
                mine[t] = "inactive" if "inactive" in (status, mine.get(t)) else "active"
        if not mine:
            continue
        first = datetime.fromtimestamp(min(mine), tz).date()
        last = datetime.fromtimestamp(newest, tz).date()
        spans = open_spans(store, first, last)
        starts = [lo for lo, _ in spans]

        def is_open(t: float, spans: list[tuple[int, int]] = spans, starts: list[int] = starts) -> bool:
            i = bisect.bisect_right(starts, t) - 1
            return i >= 0 and t < spans[i][1]

        day = first
        while day <= last:
            m0 = wall_to_utc(datetime.combine(day, time()), tz)
            m1 = wall_to_utc(datetime.combine(day + timedelta(days=1), time()), tz)
            counted = sorted((t, s) for t, s in mine.items() if m0 <= t <= m1 and is_open(t))
            times = [t for t, _ in counted]
            up = down = unobserved = 0
            runs: list[list[int]] = []
            for minute in range(m0, m1, 60):
                centre = minute + 30
                if not is_open(centre):
                    continue
                if not counted:
                    unobserved += 60
                    continue
                i = bisect.bisect_left(times, centre)
                near = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - centre))
                if abs(times[near] - centre) > GAP_S:
                    unobserved += 60
                if counted[near][1] == "active":
                    up += 60
                else:
                    down += 60
                    if runs and runs[-1][1] == minute:
                        runs[-1][1] = minute + 60
                    else:
                        runs.append([minute, minute + 60])
            longest = max((b - a for a, b in runs), default=0)
            out[(sid, day.isoformat())] = (up, down, unobserved, len(runs), longest)
            day += timedelta(days=1)
    return out


def assert_equal_figures(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    wrong = {k: (got[k], expected[k]) for k in expected if tuple(round(x, 6) for x in got[k]) != expected[k]}
    assert not wrong, f"{len(wrong)} of {len(expected)} (store, date) differ, e.g. {list(wrong.items())[:3]}"


# --- writing the set -----------------------------------------------------------------------------------


def tables_csv(stores_: dict[str, Store], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    hours = ["store_id,dayOfWeek,start_time_local,end_time_local"]
    hours += [f"{sid},{d},{a},{b}" for sid, s in stores_.items() for d, a, b in s.weekly]
    special = ["store_id,date_local,start_time_local,end_time_local"]
    special += [f"{sid},{d},{a or ''},{b or ''}" for sid, s in stores_.items() for d, a, b in s.special]
    zones = ["store_id,timezone_str"] + [f"{sid},{s.zone}" for sid, s in stores_.items() if s.zone]
    (folder / "menu_hours.csv").write_text("\n".join(hours) + "\n")
    (folder / "special_hours.csv").write_text("\n".join(special) + "\n")
    (folder / "timezones.csv").write_text("\n".join(zones) + "\n")


def status_csv(polls: list[tuple[str, str, int]]) -> str:
    rows = ["store_id,status,timestamp_utc"]
    rows += [f"{s},{st},{datetime.fromtimestamp(t, UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC" for s, st, t in polls]
    return "\n".join(rows) + "\n"
