"""The design card's ``generate_report`` entry point: MongoDB in, report out.

It reads exactly what the rules need through ``loop.storage`` (the week's
polls up to ``now``, all weekly and holiday hours and zones, and the ids of the stores with any
poll at or before ``now``) and runs the same engine as the offline command.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
from pymongo.database import Database

from loop import storage
from loop.report_engine import ReportResult, compute_report
from loop.rules import DEFAULT_MAX_GAP_MINUTES
from loop.storage import StoreRange
from loop.storage.legacy import require_current_layout
from loop.timeutil import to_utc


def generate_report(
    now: pd.Timestamp | None = None,
    db: Database | None = None,
    timings: dict[str, float] | None = None,
    on_computing: Callable[[], object] | None = None,
    *,
    extended: bool = False,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
    store_range: StoreRange | None = None,
) -> ReportResult:
    """Compute the report from MongoDB at ``now`` (default: the newest stored poll).

    ``timings``, when given, receives the seconds spent reading and computing;
    ``on_computing`` is called once the reads are done (the worker records the phase).
    ``extended``/``max_gap_minutes``: the extended report's columns (docs/report_rules.md).
    Holiday hours (``storage.read_special_hours``) are applied as the engine's rule 10 says.
    ``store_range``: only the stores in it (a report shard, ``loop.sharding``), reading only the parts of
    polls, hours, zones, holidays and the catalog that can hold them; its rows are exactly those of the
    whole report's stores in the range.
    """
    db = db if db is not None else storage.get_db()
    require_current_layout(db)
    clock = time.perf_counter()
    if now is None:
        now = storage.newest_poll_time(db)
    if now is None:
        # No polls stored at all: the engine returns an empty report.
        empty = storage.read_polls(db, pd.Timestamp(0, tz="UTC"), pd.Timestamp(0, tz="UTC"))
        return compute_report(
            empty,
            storage.read_hours(db),
            storage.read_zones(db),
            now=None,
            special_hours=storage.read_special_hours(db),
            extended=extended,
        )
    now = to_utc(now)
    polls = storage.week_polls(db, now, store_range=store_range)
    hours = storage.read_hours(db, store_range=store_range)
    zones = storage.read_zones(db, store_range=store_range)
    special_hours = storage.read_special_hours(db, store_range=store_range)
    # Stores with polls <= now but none in the week still get a (zero) row.
    in_week = set(polls["store_id"].unique().tolist())
    extra = [sid for sid in storage.store_ids_polled_through(db, now, store_range=store_range) if sid not in in_week]
    read_done = time.perf_counter()
    if on_computing is not None:
        on_computing()
    result = compute_report(
        polls,
        hours,
        zones,
        now=now,
        extra_store_ids=extra,
        special_hours=special_hours,
        extended=extended,
        max_gap_minutes=max_gap_minutes,
    )
    if timings is not None:
        timings["read_s"] = round(read_done - clock, 3)
        timings["compute_s"] = round(time.perf_counter() - read_done, 3)
        timings["polls_read"] = float(len(polls))
    return result
