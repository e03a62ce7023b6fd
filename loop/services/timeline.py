"""One store's timeline over HTTP: the range rules, the reads, and the pure computation (``loop.timeline``).

The range defaults to the report week ending at the newest stored poll (the
report's default ``now``), so over that week the timeline's uptime and downtime
equal the report's ``*_last_week`` columns for the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from loop import storage
from loop.errors import Conflict, InvalidInput, NotFound
from loop.rules import DEFAULT_MAX_GAP_MINUTES, REPORT_WEEK
from loop.services.stores import checked_store_id
from loop.timeline import Timeline, store_timeline

MAX_RANGE = pd.Timedelta(days=31)


@dataclass(frozen=True)
class StoreTimeline:
    """What GET /stores/<id>/timeline/ answers: the store, the range asked for and its timeline."""

    store_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    timeline: Timeline


def timeline_range(
    *, start: pd.Timestamp | None, end: pd.Timestamp | None, newest: pd.Timestamp | None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The range a request asks for: ``end`` defaults to the newest poll, ``start`` to a week before ``end``.

    Refused: ``start`` not before ``end`` or more than 31 days (InvalidInput); no ``to`` while no poll is
    stored (Conflict: there is nothing to default to).
    """
    if end is None:
        if newest is None:
            raise Conflict("No polls are stored yet: give both from and to.")
        end = newest
    if start is None:
        start = end - REPORT_WEEK
    if start >= end:
        raise InvalidInput("from", f"must lie before to ({start.isoformat()} is not before {end.isoformat()})")
    if end - start > MAX_RANGE:
        raise InvalidInput("to", f"the range may be at most 31 days (asked: {end - start})")
    return start, end


def get_store_timeline(
    *,
    store_id: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
) -> StoreTimeline:
    """The store's segments, outages and totals over [start, end]; NotFound when nothing is known of it."""
    store_id = checked_store_id(store_id)
    db = storage.get_db()
    newest = storage.newest_poll_time(db) if end is None else None
    start, end = timeline_range(start=start, end=end, newest=newest)
    # The default range (the week up to the newest poll, what the dashboard shows) keeps its days
    # whole in this process's cache: the next stores' timelines read no part. Other ranges don't,
    # so browsing old weeks does not fetch whole days.
    one = storage.read_one_store(db, store_id, polls_between=(start, end), keep_whole_days=newest is not None)
    polls, hours, special, zones = one.polls, one.hours, one.special_hours, one.zones
    assert polls is not None
    if polls.empty and hours.empty and special.empty and zones.empty:
        if len(storage.read_store_catalog(db, store_id).store_ids) == 0:
            raise NotFound(f"No store {store_id!r}: it has no polls, hours, holiday hours or time zone.")
    timeline = store_timeline(
        polls=polls,
        hours=hours,
        special_hours=special,
        zones=zones,
        start=start,
        end=end,
        max_gap_minutes=max_gap_minutes,
    )
    return StoreTimeline(store_id=store_id, start=start, end=end, timeline=timeline)
