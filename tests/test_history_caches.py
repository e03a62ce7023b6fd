"""What a process keeps between daily-figures updates, and when it must let go of it.

An hourly batch's update reuses, per process, the hours, holiday hours and zones with their business
calendar (``services.store_tables``, shared with the alert evaluation), each store's first and last dates,
and the date documents it last wrote or read (``services.history._KeptDates``, valid while the history's
``dates_token`` holds). Here a change of weekly hours, holiday hours and zone after the caches are warm
must reach the figures, and date documents another process wrote meanwhile must be read again: in both
cases the figures kept along the way equal those of a build from scratch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from loop import storage
from loop.embedded_worker import wait_embedded_idle
from loop.ingest import load_sources
from loop.services import history, stores
from loop.services.ingest import ingest_polls
from loop.storage import history as hs


@pytest.fixture
def built(mdb):
    load_sources(settings.BASE_DIR / "data", mdb)
    history.build_history(db=mdb)
    return mdb


def figures(db) -> pd.DataFrame:
    meta = hs.read_meta(db)
    frames = [rows for day in hs.stored_dates(db) for rows in hs.read_blocks(db, day, meta["date_blocks"]).values()]
    rows = pd.concat(frames, ignore_index=True)
    return rows.sort_values(["store_id", "date"], ignore_index=True)


def rebuilt(db) -> pd.DataFrame:
    history.build_history(db=db)
    return figures(db)


def batch(db, polls: int, seed: int) -> None:
    """``polls`` polls of random stores in the hour after the newest (over 1,000: an hourly batch, updated
    in its request), then whatever the worker does after it."""
    rng = np.random.default_rng(seed)
    ids = storage.read_store_catalog(db).store_ids.astype(str)
    newest = storage.newest_poll_time(db)
    t = newest + pd.to_timedelta(rng.integers(1, 3_600_000_000, polls), unit="us")
    status = np.where(rng.random(polls) < 0.7, "active", "inactive")
    stamps = t.strftime("%Y-%m-%d %H:%M:%S.%f")
    body = "store_id,status,timestamp_utc\n" + "".join(
        f"{s},{st},{ts} UTC\n" for s, st, ts in zip(rng.choice(ids, polls), status, stamps, strict=True)
    )
    ingest_polls(csv_body=body.encode())
    assert wait_embedded_idle()
    history.update_history(db=db)


def test_hours_holidays_and_zones_changed_after_the_caches_are_warm_reach_the_figures(built) -> None:
    db = built
    batch(db, 1500, seed=1)  # the tables, their calendar and the newest dates are now kept in this process
    a, b, c = storage.read_store_catalog(db).store_ids.astype(str)[:3]
    last = hs.read_meta(db)["last_date"]
    before = figures(db)
    stores.set_business_hours(
        store_id=a,
        items=[{"dayOfWeek": d, "start_time_local": "08:00:00", "end_time_local": "10:00:00"} for d in range(7)],
    )
    stores.set_special_hours(store_id=b, items=[{"date_local": last, "start_time_local": None, "end_time_local": None}])
    stores.set_timezone(store_id=c, timezone_str="Asia/Tokyo")
    batch(db, 1500, seed=2)
    after = figures(db)
    for store in (a, b, c):
        old = before[before["store_id"] == store].set_index("date")
        new = after[after["store_id"] == store].set_index("date")
        common = old.index.intersection(new.index)
        assert not old.loc[common, ["up_s", "down_s", "unobserved_s"]].equals(
            new.loc[common, ["up_s", "down_s", "unobserved_s"]]
        ), store
    # b is closed all its newest date: no business time at all.
    closed = after[(after["store_id"] == b) & (after["date"] == last)]
    assert (closed[["up_s", "down_s", "unobserved_s"]].to_numpy() == 0).all()
    pd.testing.assert_frame_equal(after, rebuilt(db))


def test_date_documents_another_process_wrote_are_read_again(built) -> None:
    db = built
    batch(db, 1500, seed=3)
    batch(db, 20, seed=4)  # a small batch: its dates' blocks are read, merged and kept in this process
    this_process = dict(history._kept_by_db)
    assert this_process, "the update keeps the date documents it wrote"
    # Another process (nothing kept) applies the next batches, then this one applies a small batch again.
    history._kept_by_db.clear()
    batch(db, 1500, seed=5)
    batch(db, 20, seed=6)
    history._kept_by_db.clear()
    history._kept_by_db.update(this_process)
    batch(db, 20, seed=7)
    pd.testing.assert_frame_equal(figures(db), rebuilt(db))
