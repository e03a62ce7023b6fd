"""Daily figures (issue 19's history): every store's figures against a brute-force count per minute.

The reference set and the brute force are ``tests.support.history_reference``'s. The set is fed hour by hour
through ``ingest_polls`` (the figures updated after each batch) and, in another database, loaded at once and
built; both must hold exactly what the brute force counts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loop.embedded_worker import wait_embedded_idle
from loop.ingest import load_sources
from loop.services import history, stores
from loop.services.ingest import ingest_polls
from loop.storage import history as hs
from tests.support.history_reference import (
    CHANGE_AT,
    FIRST,
    LAST,
    Store,
    assert_equal_figures,
    brute_force,
    final_stores,
    generate_polls,
    initial_stores,
    status_csv,
    tables_csv,
)
from tests.support.report_reference import wall_to_utc


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


def test_folding_dates_into_tiles_writes_what_a_full_build_writes(mdb, tmp_path: Path) -> None:
    """The worker's fold (``fold_into_tiles``, array by array) against the full build's tiles of the same
    dates (``_write_tiles``, written from the computed figures): the same documents, byte for byte."""
    tables_csv(final_stores(), tmp_path / "bulk")
    (tmp_path / "bulk" / "store_status.csv").write_text(status_csv(generate_polls()))
    load_sources(tmp_path / "bulk", mdb)
    history.build_history(db=mdb)
    meta = hs.read_meta(mdb)
    folded = meta["folded_through"]
    months = sorted({name.split(".")[1] for name in mdb.list_collection_names() if name.startswith(f"{hs.TILES}.")})
    assert months and folded

    def tiles(month: str) -> dict[str, dict]:
        return {
            f"{name}/{doc['_id']}": doc
            for name in sorted(mdb.list_collection_names())
            if name.startswith(f"{hs.TILES}.{month}.")
            for doc in mdb[name].find({})
        }

    built = {month: tiles(month) for month in months}
    assert all(built.values())
    dates = sorted(
        {
            doc["date"]
            for name in mdb.list_collection_names()
            if name.startswith(f"{hs.DATES}.20")
            for doc in mdb[name].find({}, {"date": 1})
        }
    )
    for month in months:
        for name in [n for n in mdb.list_collection_names() if n.startswith(f"{hs.TILES}.{month}.")]:
            mdb.drop_collection(name)
        mine = [d for d in dates if d[:7] == month and d <= folded]
        # One date at a time, as the worker folds them day by day, then all again (a fold repeated changes nothing).
        for day in mine:
            assert hs.fold_into_tiles(mdb, month, [day], int(meta["date_blocks"]), int(meta["blocks"]))
        assert tiles(month) == built[month]
        hs.fold_into_tiles(mdb, month, mine, int(meta["date_blocks"]), int(meta["blocks"]))
        assert tiles(month) == built[month]
