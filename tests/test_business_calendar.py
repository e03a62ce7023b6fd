"""``lanes.BusinessCalendar`` (the alert evaluation's cache of business intervals) answers exactly what
``build_lanes`` works out without it, for any stores, range and tables: the uncached path is the one the
hand-written report and alert cases pin down, so equality here carries their checks over."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loop.lanes import BusinessCalendar, build_lanes

ZONES = ["America/Chicago", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Europe/London", "Mars/Base", ""]
HOUR_US = 3_600_000_000


def _tables(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ids = [f"s{k}" for k in range(n)]
    hours = []
    for store in ids[: int(n * 0.8)]:  # the rest have no hours: always open
        for day in rng.choice(7, size=int(rng.integers(1, 8)), replace=False):
            start = int(rng.integers(0, 86400))
            end = int(rng.integers(0, 86400))  # end <= start: overnight
            hours.append((store, int(day), start, end))
    zones = [(s, str(rng.choice(ZONES))) for s in ids if rng.random() < 0.9]
    special = []
    for store in rng.choice(ids, size=n // 3, replace=False):
        date = pd.Timestamp("2024-10-10") + pd.Timedelta(days=int(rng.integers(0, 8)))
        closed = rng.random() < 0.4
        special.append(
            (
                str(store),
                date.strftime("%Y-%m-%d"),
                np.nan if closed else float(rng.integers(0, 43200)),
                np.nan if closed else float(rng.integers(43200, 86400)),
            )
        )
    return (
        pd.DataFrame(hours, columns=["store_id", "day_of_week", "start_seconds", "end_seconds"]).astype(
            {"store_id": "str"}
        ),
        pd.DataFrame(zones, columns=["store_id", "timezone_str"]).astype("str"),
        pd.DataFrame(special, columns=["store_id", "date_local", "start_seconds", "end_seconds"]),
    )


@pytest.mark.parametrize("seed", range(6))
def test_the_calendar_gives_the_same_lanes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hours, zones, special = _tables(rng, 60)
    calendar = BusinessCalendar(hours=hours, zones=zones, special_hours=special)
    for _ in range(12):
        # Some asked-for stores are unknown to every table; the order is the caller's.
        asked = rng.choice([f"s{k}" for k in range(70)], size=int(rng.integers(1, 50)), replace=False)
        asked = np.array(sorted(asked.tolist()) if rng.random() < 0.5 else asked.tolist(), dtype=object)
        end_us = int(pd.Timestamp("2024-10-12T00:00:00Z").value // 1000) + int(rng.integers(0, 120)) * HOUR_US // 4
        start_us = end_us - int(rng.choice([2, 26, 168])) * HOUR_US
        args = dict(
            store_ids=asked,
            poll_codes=np.zeros(0, dtype=np.int64),
            poll_us=np.zeros(0, dtype=np.int64),
            poll_active=np.zeros(0, dtype=bool),
            hours=hours,
            zones=zones,
            special_hours=special,
            range_start_us=start_us,
            range_end_us=end_us,
        )
        plain = build_lanes(**args)
        cached = build_lanes(**args, calendar=calendar)
        assert np.array_equal(plain.starts, cached.starts)
        assert np.array_equal(plain.ends, cached.ends)
        assert plain.zone_names.tolist() == cached.zone_names.tolist()
        assert plain.warnings == cached.warnings


def test_a_known_store_and_an_unknown_one() -> None:
    # s1 opens 09:00-17:00 Kolkata (UTC+5:30) on Saturdays: 03:30-11:30 UTC on 2024-10-12.
    hours = pd.DataFrame(
        {"store_id": ["s1"], "day_of_week": [5], "start_seconds": [9 * 3600], "end_seconds": [17 * 3600]}
    )
    zones = pd.DataFrame({"store_id": ["s1", "s2"], "timezone_str": ["Asia/Kolkata", "Nowhere/Special"]})
    calendar = BusinessCalendar(hours=hours, zones=zones, special_hours=None)
    start_us = int(pd.Timestamp("2024-10-12T00:00:00Z").value // 1000)
    starts, ends, zone_names, warnings = calendar.intervals(
        np.array(["s1", "s2", "s3"], dtype=object), start_us, start_us + 24 * HOUR_US, 24 * HOUR_US * 2
    )
    lane = 1 << 41
    assert starts.tolist() == [-1, int(3.5 * HOUR_US * 2), lane, 2 * lane]
    assert ends.tolist() == [-1, int(11.5 * HOUR_US * 2), lane + 48 * HOUR_US + 1, 2 * lane + 48 * HOUR_US + 1]
    assert zone_names.tolist() == ["Asia/Kolkata", "America/Chicago", "America/Chicago"]
    assert warnings == ["unknown time zone 'Nowhere/Special' for 1 store(s); using America/Chicago"]


def test_a_calendar_of_empty_tables_leaves_every_store_always_open() -> None:
    hours = pd.DataFrame({"store_id": [], "day_of_week": [], "start_seconds": [], "end_seconds": []})
    zones = pd.DataFrame({"store_id": [], "timezone_str": []})
    calendar = BusinessCalendar(hours=hours, zones=zones, special_hours=None)
    starts, ends, zone_names, warnings = calendar.intervals(np.array(["a", "b"], dtype=object), 0, HOUR_US, 2 * HOUR_US)
    lane = 1 << 41
    assert starts.tolist() == [-1, 0, lane]
    assert ends.tolist() == [-1, 2 * HOUR_US + 1, lane + 2 * HOUR_US + 1]
    assert zone_names.tolist() == ["America/Chicago", "America/Chicago"]
    assert warnings == []
