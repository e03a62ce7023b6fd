"""Maintenance windows: the pure rule (loop.maintenance.muted_mask, the input checks) and the service's
muted_store_ids over mongomock. Every expected instant is worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymongo.database import Database

from loop import storage
from loop.maintenance import OneOff, Weekly, Window, WindowProblem, covered_stores, muted_mask, one_off, weekly
from loop.services.maintenance import create_window, muted_store_ids

NY, CHI, TOKYO = "America/New_York", "America/Chicago", "Asia/Tokyo"
H = 3600


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def muted(windows: list[Window], stores: dict[str, str], t: str) -> list[str]:
    ids = np.array(list(stores), dtype=object)
    zones = np.array(list(stores.values()), dtype=object)
    mask = muted_mask(windows=windows, store_ids=ids, zones=zones, t=ts(t))
    assert mask.dtype == bool and mask.shape == (len(ids),)
    return ids[mask].tolist()


def one_off_window(stores: tuple[str, ...] | None, start: str, end: str) -> Window:
    return Window("w1", stores, OneOff(ts(start), ts(end)))


def weekly_window(stores: tuple[str, ...] | None, weekday: int, start_s: int, end_s: int) -> Window:
    return Window("w2", stores, Weekly(weekday, start_s, end_s))


def test_one_off_includes_its_start_and_excludes_its_end() -> None:
    window = one_off_window(("a",), "2024-10-07T10:00Z", "2024-10-07T12:00Z")
    stores = {"a": NY, "b": NY}
    assert muted([window], stores, "2024-10-07T09:59:59.999999Z") == []
    assert muted([window], stores, "2024-10-07T10:00Z") == ["a"]
    assert muted([window], stores, "2024-10-07T11:59:59.999999Z") == ["a"]
    assert muted([window], stores, "2024-10-07T12:00Z") == []


def test_weekly_monday_night_window_covers_tuesday_early_morning_in_new_york() -> None:
    # Monday 22:00-02:00 local. 2024-10-08 is a Tuesday; EDT = UTC-4, so Tue 01:30 EDT = 05:30Z.
    window = weekly_window(None, 0, 22 * H, 2 * H)
    stores = {"ny": NY, "tokyo": TOKYO}
    assert muted([window], stores, "2024-10-08T05:30Z") == ["ny"]  # Tokyo: Tue 14:30 JST, outside
    # Start included: Mon 22:00 EDT = Tue 02:00Z; a minute before is outside.
    assert muted([window], stores, "2024-10-08T02:00Z") == ["ny"]
    assert muted([window], stores, "2024-10-08T01:59Z") == []
    # End excluded: Tue 02:00 EDT = 06:00Z.
    assert muted([window], stores, "2024-10-08T05:59:59Z") == ["ny"]
    assert muted([window], stores, "2024-10-08T06:00Z") == []
    # The same Monday night a week later holds too; a Tuesday night does not (Wed 01:30 EDT = 05:30Z).
    assert muted([window], stores, "2024-10-15T05:30Z") == ["ny"]
    assert muted([window], stores, "2024-10-09T05:30Z") == []


def test_weekly_windows_are_read_in_each_stores_own_zone() -> None:
    # 06:30Z on Tue 2024-10-08 is 02:30 EDT (past the end) but 01:30 CDT (inside).
    window = weekly_window(None, 0, 22 * H, 2 * H)
    assert muted([window], {"ny": NY, "chi": CHI}, "2024-10-08T06:30Z") == ["chi"]


def test_a_window_crossing_midnight_from_sunday_into_monday() -> None:
    # Sunday (6) 22:00-02:00 in Chicago: Mon 2024-10-14 01:00 CDT = 06:00Z.
    window = weekly_window(("s",), 6, 22 * H, 2 * H)
    assert muted([window], {"s": CHI}, "2024-10-14T06:00Z") == ["s"]
    assert muted([window], {"s": CHI}, "2024-10-14T07:00Z") == []  # 02:00 CDT


def test_equal_local_times_mean_a_whole_day() -> None:
    # Wednesday (2) 09:00-09:00 in Chicago: Wed 2024-10-09 09:00 CDT (14:00Z) to Thu 09:00 CDT (Thu 14:00Z).
    window = weekly_window(("s",), 2, 9 * H, 9 * H)
    assert muted([window], {"s": CHI}, "2024-10-09T13:59Z") == []
    assert muted([window], {"s": CHI}, "2024-10-09T14:00Z") == ["s"]
    assert muted([window], {"s": CHI}, "2024-10-10T13:59Z") == ["s"]
    assert muted([window], {"s": CHI}, "2024-10-10T14:00Z") == []


def test_spring_forward_a_nonexistent_start_is_the_instant_the_clocks_jump() -> None:
    # New York, Sunday 2024-03-10: 02:00 EST jumps to 03:00 EDT at 07:00Z. Sunday (6) 02:30-04:00:
    # 02:30 does not exist -> 03:00 EDT = 07:00Z; 04:00 EDT = 08:00Z.
    window = weekly_window(("s",), 6, 2 * H + 1800, 4 * H)
    assert muted([window], {"s": NY}, "2024-03-10T06:59:59Z") == []  # 01:59:59 EST
    assert muted([window], {"s": NY}, "2024-03-10T07:00Z") == ["s"]
    assert muted([window], {"s": NY}, "2024-03-10T07:59:59Z") == ["s"]
    assert muted([window], {"s": NY}, "2024-03-10T08:00Z") == []


def test_fall_back_an_ambiguous_wall_time_is_the_earlier_instant() -> None:
    # New York, Sunday 2024-11-03: 02:00 EDT falls back to 01:00 EST at 06:00Z; 01:00-02:00 happens twice.
    # Sunday 01:30-03:00: 01:30 -> the earlier, 01:30 EDT = 05:30Z; 03:00 EST = 08:00Z (2.5 real hours).
    starts_ambiguous = weekly_window(("s",), 6, 1 * H + 1800, 3 * H)
    assert muted([starts_ambiguous], {"s": NY}, "2024-11-03T05:29Z") == []
    assert muted([starts_ambiguous], {"s": NY}, "2024-11-03T05:30Z") == ["s"]
    assert muted([starts_ambiguous], {"s": NY}, "2024-11-03T07:59Z") == ["s"]
    assert muted([starts_ambiguous], {"s": NY}, "2024-11-03T08:00Z") == []
    # Sunday 00:00-01:30: ends at the earlier 01:30 (05:30Z), so the second 01:15 (EST, 06:15Z) is outside.
    ends_ambiguous = weekly_window(("s",), 6, 0, 1 * H + 1800)
    assert muted([ends_ambiguous], {"s": NY}, "2024-11-03T05:15Z") == ["s"]  # 01:15 EDT
    assert muted([ends_ambiguous], {"s": NY}, "2024-11-03T06:15Z") == []  # 01:15 EST


def test_an_all_stores_window_mutes_every_store_and_a_listed_one_only_its_stores() -> None:
    everyone = one_off_window(None, "2024-10-07T10:00Z", "2024-10-07T11:00Z")
    some = weekly_window(("b",), 0, 12 * H, 13 * H)  # Monday 12:00-13:00 local
    stores = {"a": CHI, "b": CHI, "c": TOKYO}
    assert muted([everyone, some], stores, "2024-10-07T10:30Z") == ["a", "b", "c"]
    # Mon 12:30 CDT = 17:30Z: only b is listed; a shares its zone but is not covered.
    assert muted([everyone, some], stores, "2024-10-07T17:30Z") == ["b"]
    assert muted([], stores, "2024-10-07T10:30Z") == []


def test_no_stores_give_an_empty_mask() -> None:
    window = one_off_window(None, "2024-10-07T10:00Z", "2024-10-07T11:00Z")
    empty = np.array([], dtype=object)
    assert muted_mask(windows=[window], store_ids=empty, zones=empty, t=ts("2024-10-07T10:30Z")).tolist() == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: one_off(start="2024-10-07T12:00Z", end="2024-10-07T10:00Z"), "end"),
        (lambda: one_off(start="2024-10-07T12:00Z", end="2024-10-07T12:00Z"), "end"),
        (lambda: one_off(start="yesterday", end="2024-10-07T12:00Z"), "start"),
        (lambda: weekly(weekday=7, local_start="22:00", local_end="02:00"), "weekday"),
        (lambda: weekly(weekday=-1, local_start="22:00", local_end="02:00"), "weekday"),
        (lambda: weekly(weekday="mon", local_start="22:00", local_end="02:00"), "weekday"),
        (lambda: weekly(weekday=True, local_start="22:00", local_end="02:00"), "weekday"),
        (lambda: weekly(weekday=0, local_start="24:00", local_end="02:00"), "local_start"),
        (lambda: weekly(weekday=0, local_start="22:00", local_end="2pm"), "local_end"),
        (lambda: covered_stores(store_ids=["a"], all_stores=True), "store_ids"),
        (lambda: covered_stores(store_ids=None, all_stores=None), "store_ids"),
        (lambda: covered_stores(store_ids=[], all_stores=None), "store_ids"),
        (lambda: covered_stores(store_ids=["a/b"], all_stores=None), "store_ids"),
        (lambda: covered_stores(store_ids=None, all_stores=False), "all"),
    ],
)
def test_the_window_rules_refuse_bad_input(call: object, field: str) -> None:
    with pytest.raises(WindowProblem) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field


def test_valid_input_gives_the_window() -> None:
    assert weekly(weekday=0, local_start="22:00", local_end="02:00:30") == Weekly(0, 22 * H, 2 * H + 30)
    assert one_off(start="2024-10-07T12:00:00+02:00", end="2024-10-07T11:00Z") == OneOff(
        ts("2024-10-07T10:00Z"), ts("2024-10-07T11:00Z")
    )
    assert covered_stores(store_ids=["b", "a", "b"], all_stores=None) == ("b", "a")
    assert covered_stores(store_ids=None, all_stores=True) is None


def test_muted_store_ids_reads_the_stored_windows(mdb: Database) -> None:
    create_window(store_ids=["a"], all_stores=None, start="2024-10-07T10:00Z", end="2024-10-07T12:00Z")
    create_window(store_ids=None, all_stores=True, weekday=0, local_start="22:00", local_end="02:00")
    create_window(store_ids=["c"], all_stores=None, start="2024-10-01T00:00Z", end="2024-10-02T00:00Z")
    ids, zones = ["a", "b", "c"], [NY, TOKYO, NY]
    # 11:00Z Monday: only the first one-off (a); the third one-off ended a week before.
    assert muted_store_ids(store_ids=ids, zones=zones, t=ts("2024-10-07T11:00Z")) == {"a"}
    # Tue 05:30Z: Mon-night window holds in New York (01:30 EDT), not in Tokyo (14:30).
    assert muted_store_ids(store_ids=ids, zones=zones, t=ts("2024-10-08T05:30Z")) == {"a", "c"}
    # Tokyo's Monday 22:00 JST = 13:00Z Monday.
    assert muted_store_ids(store_ids=ids, zones=zones, t=ts("2024-10-07T13:30Z")) == {"b"}
    assert muted_store_ids(store_ids=[], zones=[], t=ts("2024-10-07T11:00Z")) == set()
    assert len(storage.maintenance_windows_at(mdb, 0)) == 1  # only the weekly one may hold 1970
