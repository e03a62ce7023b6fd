"""Daily figures (issue 19's history): every store's figures against a brute-force count per minute.

A generated set of six stores over 15 local dates across two DST changes (London 2024-10-27, Chicago
2024-11-03), with overnight, 24-hour and 24x7 hours, holiday hours (closed, special hours on a DST
date), polls exactly at local midnights, and one store's hours and another's zone changed half way.
It is fed hour by hour through ``ingest_polls`` (the figures updated after each batch) and, in another
database, loaded at once and built; both must hold exactly what the brute force below counts.

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

import pytest

from loop.embedded_worker import wait_embedded_idle
from loop.ingest import load_sources
from loop.services import history, stores
from loop.services.ingest import ingest_polls
from loop.storage import history as hs
from tests.support.report_reference import merge_intervals, wall_to_utc

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
            lo_s, hi_s = seconds(a), seconds(b)
            end_day = day if hi_s > lo_s else day + timedelta(days=1)
            lo = wall_to_utc(datetime.combine(day, time()) + timedelta(seconds=lo_s), tz)
            hi = wall_to_utc(datetime.combine(end_day, time()) + timedelta(seconds=hi_s), tz)
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


def stored(db) -> dict[tuple[str, str], tuple]:
    out = {}
    for day in hs.stored_dates(db):
        for rows in hs.read_blocks(db, day, hs.read_meta(db)["date_blocks"]).values():
            for r in rows.itertuples(index=False):
                out[(r.store_id, r.date)] = (r.up_s, r.down_s, r.unobserved_s, r.outages, r.longest_s)
    return out


def read_back() -> dict[tuple[str, str], tuple]:
    """What GET /stores/<id>/history/ reads (month tiles for folded dates, date documents after)."""
    out = {}
    for sid in initial_stores():
        found = history.get_store_history(store_id=sid, first=FIRST - timedelta(days=2), last=LAST + timedelta(days=2))
        for d in found.days:
            out[(sid, d.date_local)] = (d.uptime_s, d.downtime_s, d.unobserved_s, d.outages, d.longest_outage_s)
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


def test_fed_hour_by_hour_and_loaded_at_once_equal_the_brute_force(mdb, tmp_path: Path) -> None:
    polls = generate_polls()
    # Hour by hour: the tables first (no polls yet), then one batch per UTC hour through the HTTP path's service.
    tables_csv(initial_stores(), tmp_path / "tables")
    (tmp_path / "tables" / "store_status.csv").write_text("store_id,status,timestamp_utc\n")
    load_sources(tmp_path / "tables", mdb)
    by_hour: dict[int, list] = {}
    for p in polls:
        by_hour.setdefault(p[2] // 3600, []).append(p)
    changed = False
    for hour in sorted(by_hour):
        if not changed and hour * 3600 >= CHANGE_AT.timestamp():
            stores.set_business_hours(
                store_id="s3",
                items=[
                    {"dayOfWeek": d, "start_time_local": "08:00:00", "end_time_local": "20:00:00"} for d in range(6)
                ],
            )
            stores.set_timezone(store_id="s4", timezone_str="America/Phoenix")
            changed = True
        ingest_polls(csv_body=status_csv(by_hour[hour]).encode())
        # The worker's update (month tiles, movers) once a day; the hourly batch's own update otherwise.
        history.update_history(db=mdb, build_if_missing=True, fold=hour % 24 == 0)
    assert wait_embedded_idle()
    history.update_history(db=mdb)
    expected = brute_force(final_stores(), polls)
    assert_equal_figures(stored(mdb), expected)
    assert_equal_figures(read_back(), expected)
    assert hs.read_pending(mdb, int(hs.read_meta(mdb)["through"])) == []
    fed_trend = history.get_trend(first=FIRST, last=LAST)

    # At once, in a fresh database: the final tables and every poll, then the build.
    mdb.client.drop_database(mdb.name)
    tables_csv(final_stores(), tmp_path / "bulk")
    (tmp_path / "bulk" / "store_status.csv").write_text(status_csv(polls))
    load_sources(tmp_path / "bulk", mdb)
    built = history.build_history(db=mdb)
    assert built.rows == len(expected)
    assert_equal_figures(stored(mdb), expected)
    assert_equal_figures(read_back(), expected)
    # The fleet's totals kept along the way equal those of the build.
    bulk_trend = history.get_trend(first=FIRST, last=LAST)
    assert [d.date_local for d in fed_trend.days] == [d.date_local for d in bulk_trend.days]
    for a, b in zip(fed_trend.days, bulk_trend.days, strict=True):
        assert (a.stores_down, a.stores_open) == (b.stores_down, b.stores_open)
        assert a.uptime_s == pytest.approx(b.uptime_s) and a.downtime_s == pytest.approx(b.downtime_s)
        assert a.unobserved_s == pytest.approx(b.unobserved_s)
    # And equal the brute force's sums.
    for d in bulk_trend.days:
        mine = [v for (_, day), v in expected.items() if day == d.date_local]
        assert d.uptime_s == pytest.approx(sum(v[0] for v in mine))
        assert d.stores_down == sum(1 for v in mine if v[1] > 0)


def test_dates_touched_by_a_poll_at_a_local_midnight() -> None:
    import numpy as np

    from loop.history import dates_touched

    zones = np.array(["Asia/Kolkata"], dtype=object)
    midnight = wall_to_utc(datetime(2024, 11, 2), ZoneInfo("Asia/Kolkata")) * 1_000_000
    codes, dates = dates_touched(np.array([0, 0]), np.array([midnight, midnight + 1]), zones)
    assert codes.tolist() == [0, 0]
    assert [str(d) for d in dates] == ["2024-11-01", "2024-11-02"]


def test_a_load_that_appends_polls_recomputes_only_their_dates_and_equals_the_brute_force(mdb, tmp_path: Path) -> None:
    polls = generate_polls()
    newest = max(p[2] for p in polls)
    earlier = [p for p in polls if p[2] < newest - 5 * 3600]  # all but the last five hours
    tables_csv(final_stores(), tmp_path / "first")
    (tmp_path / "first" / "store_status.csv").write_text(status_csv(earlier))
    stats = load_sources(tmp_path / "first", mdb)
    assert stats.tables_changed  # from nothing
    built = history.build_after_load(mdb, tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us)
    assert built is not None and not built.updated
    full_rows = built.rows

    # Every poll again (the files of a later export, the same tables): only the last hours are new.
    tables_csv(final_stores(), tmp_path / "again")
    (tmp_path / "again" / "store_status.csv").write_text(status_csv(polls))
    stats = load_sources(tmp_path / "again", mdb)
    assert not stats.tables_changed
    assert stats.polls_changed_us is not None and stats.polls_inserted == len(polls) - len(earlier)
    updated = history.build_after_load(
        mdb, tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us
    )
    assert updated is not None and updated.updated
    assert 0 < updated.rows < full_rows / 4  # a few dates of each store, not all of them
    expected = brute_force(final_stores(), polls)
    assert_equal_figures(stored(mdb), expected)
    assert_equal_figures(read_back(), expected)

    # The same files once more: nothing new, nothing recomputed.
    stats = load_sources(tmp_path / "again", mdb)
    assert (stats.tables_changed, stats.polls_changed_us) == (False, None)
    again = history.build_after_load(mdb, tables_changed=False, polls_changed_us=None)
    assert again is not None and again.rows == 0

    # Changed hours: every date is built again.
    changed = final_stores()
    changed["s1"] = Store(changed["s1"].zone, [(d, "06:00:00", "07:00:00") for d in range(7)], changed["s1"].special)
    tables_csv(changed, tmp_path / "hours")
    (tmp_path / "hours" / "store_status.csv").write_text(status_csv(polls))
    stats = load_sources(tmp_path / "hours", mdb)
    assert stats.tables_changed
    rebuilt = history.build_after_load(
        mdb, tables_changed=stats.tables_changed, polls_changed_us=stats.polls_changed_us
    )
    assert rebuilt is not None and not rebuilt.updated and rebuilt.rows == full_rows
    assert_equal_figures(stored(mdb), brute_force(changed, polls))


def test_a_block_packed_from_codes_is_the_block_packed_from_rows_also_when_its_labels_are_reused() -> None:
    """The build packs from store codes and reuses a block's compressed labels across dates; the hourly path
    packs from rows (``_pack_block``). Their documents must be equal, or a kept digest would miss a change."""
    import numpy as np
    import pandas as pd

    ids = np.array(["s2", "s0", "s1"], dtype=object)  # codes index these; the block holds s0 and s2
    labels = hs.StoreLabels(ids, np.array(["r2", "r0", "r1"], dtype=object), np.array(["b2", "b0", "b1"], dtype=object))

    def rows(day: str, up: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "store_id": ["s0", "s2"],
                "date": [day, day],
                "up_s": up,
                "down_s": [1.5, 0.0],
                "unobserved_s": [0.0, 2.25],
                "longest_s": [60.0, 0.0],
                "outages": [1, 0],
                "region": ["r0", "r2"],
                "brand": ["b0", "b2"],
            }
        )

    for day, up in (("2024-10-01", [3600.0, 7.0]), ("2024-10-02", [10.0, 20.5])):  # the second reuses the labels
        expected = rows(day, up)
        days = np.full(2, np.datetime64(day, "D").astype(np.int64))
        values = {c: expected[c].to_numpy() for c in (*hs.FLOATS, *hs.INTS)}
        packed = hs.pack_coded_block(day, 5, labels, np.array([1, 0]), days, values)
        assert packed == hs._pack_block(expected, day, 5)
        assert hs._unpack_block(packed).equals(hs._unpack_block(hs._pack_block(expected, day, 5)))
