"""Maintenance windows (mutes) of alerts: create, read, list, delete, and who is muted at an instant.

The rules of a window (what is valid, when it holds) live in ``loop.maintenance``; this module
turns their refusals into ``InvalidInput`` and reads and writes through ``loop.storage``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop import storage
from loop.errors import InvalidInput, NotFound
from loop.ids import ID_SHAPE, is_id, new_id
from loop.maintenance import (
    OneOff,
    Weekly,
    Window,
    WindowProblem,
    clock_text,
    covered_stores,
    muted_mask,
    one_off,
    weekly,
)
from loop.rules import DEFAULT_TIMEZONE, effective_zones
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.timeutil import to_utc, ts_to_us, utcnow

WINDOW_ID_HELP = f"the window_id POST /maintenance/ answered ({ID_SHAPE})"
ONE_OFF_FIELDS = ("start", "end")
WEEKLY_FIELDS = ("weekday", "local_start", "local_end")


@dataclass(frozen=True)
class WindowView:
    """A window as the API shows it: one-off fields or weekly fields, the other kind's null."""

    window_id: str
    kind: str  # "one_off" or "weekly"
    all: bool
    store_ids: list[str] | None  # None with all
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    weekday: int | None
    local_start: str | None
    local_end: str | None
    note: str
    created_at: pd.Timestamp | None


def window_view(window: Window) -> WindowView:
    schedule = window.schedule
    is_one_off = isinstance(schedule, OneOff)
    return WindowView(
        window_id=window.window_id,
        kind="one_off" if is_one_off else "weekly",
        all=window.store_ids is None,
        store_ids=None if window.store_ids is None else list(window.store_ids),
        start=schedule.start if isinstance(schedule, OneOff) else None,
        end=schedule.end if isinstance(schedule, OneOff) else None,
        weekday=schedule.weekday if isinstance(schedule, Weekly) else None,
        local_start=clock_text(schedule.start_s) if isinstance(schedule, Weekly) else None,
        local_end=clock_text(schedule.end_s) if isinstance(schedule, Weekly) else None,
        note=window.note,
        created_at=window.created_at,
    )


def create_window(
    *,
    store_ids: Sequence[str] | None,
    all_stores: bool | None,
    start: str | None = None,
    end: str | None = None,
    weekday: int | None = None,
    local_start: str | None = None,
    local_end: str | None = None,
    note: str = "",
) -> WindowView:
    """A new window: some stores (``store_ids``) or all (``all_stores`` True), one-off (start, end in UTC)
    or weekly (weekday, local_start, local_end in each store's zone)."""
    given = {"start": start, "end": end, "weekday": weekday, "local_start": local_start, "local_end": local_end}
    one_off_given = [name for name in ONE_OFF_FIELDS if given[name] is not None]
    weekly_given = [name for name in WEEKLY_FIELDS if given[name] is not None]
    try:
        stores = covered_stores(store_ids=store_ids, all_stores=all_stores)
        schedule: OneOff | Weekly
        if one_off_given and not weekly_given:
            _require(ONE_OFF_FIELDS, given)
            schedule = one_off(start=str(start), end=str(end))
        elif weekly_given and not one_off_given:
            _require(WEEKLY_FIELDS, given)
            schedule = weekly(weekday=weekday, local_start=str(local_start), local_end=str(local_end))
        else:
            raise WindowProblem(
                "schedule", "give either start and end (one-off, UTC) or weekday, local_start and local_end (weekly)"
            )
    except WindowProblem as problem:
        raise InvalidInput(problem.field, problem.message) from None
    window = Window(window_id=new_id(), store_ids=stores, schedule=schedule, note=note)
    stored = storage.insert_maintenance_window(storage.get_db(), window, created_at=utcnow())
    return window_view(stored)


def _require(fields: Sequence[str], given: Mapping[str, object]) -> None:
    for name in fields:
        if given[name] is None:
            raise WindowProblem(name, f"is required with {', '.join(n for n in fields if n != name)}")


def _checked_id(window_id: str) -> str:
    if not is_id(window_id):  # only a plain string of our shape reaches a query
        raise InvalidInput("window_id", f"must be {WINDOW_ID_HELP}")
    return window_id


def get_window(*, window_id: str) -> WindowView:
    window = storage.get_maintenance_window(storage.get_db(), _checked_id(window_id))
    if window is None:
        raise NotFound(f"No maintenance window with id {window_id}.")
    return window_view(window)


def delete_window(*, window_id: str) -> None:
    if not storage.delete_maintenance_window(storage.get_db(), _checked_id(window_id)):
        raise NotFound(f"No maintenance window with id {window_id}.")


def list_windows(
    *, page: int = 1, page_size: int = PAGE_SIZE_DEFAULT, active_at: pd.Timestamp | None = None
) -> Page[WindowView]:
    """Newest first, paged. With ``active_at``: only the windows that mute at least one store then (a weekly
    all-stores window: in the zone of some store of the zones table, or the default zone)."""
    skip = page_skip(page=page, page_size=page_size)
    db = storage.get_db()
    if active_at is None:
        count, windows = storage.list_maintenance_windows(db, skip=skip, limit=page_size)
        return Page(count=count, page=page, page_size=page_size, results=[window_view(w) for w in windows])
    active = _active_windows(active_at)
    active.reverse()  # newest first, as the unfiltered list
    chosen = active[skip : skip + page_size]
    return Page(count=len(active), page=page, page_size=page_size, results=[window_view(w) for w in chosen])


def _active_windows(t: pd.Timestamp) -> list[Window]:
    db = storage.get_db()
    candidates = storage.maintenance_windows_at(db, ts_to_us(t))
    if all(isinstance(w.schedule, OneOff) for w in candidates):
        return candidates
    zone_rows = storage.read_zones(db)
    fleet_zones = np.array(
        sorted({DEFAULT_TIMEZONE, *effective_zones(zone_rows["store_id"].unique(), zone_rows)[0].tolist()}),
        dtype=object,
    )
    active = []
    for window in candidates:
        if isinstance(window.schedule, OneOff):
            active.append(window)
            continue
        if window.store_ids is None:  # one stand-in store per zone
            ids, zones = fleet_zones, fleet_zones
        else:
            ids = np.array(window.store_ids, dtype=object)
            zones = effective_zones(ids, zone_rows)[0]
        if muted_mask(windows=[window], store_ids=ids, zones=zones, t=t).any():
            active.append(window)
    return active


def muted_store_ids(*, store_ids: Sequence[str], zones: Sequence[str], t: pd.Timestamp) -> set[str]:
    """The stores of ``store_ids`` muted at ``t`` (``zones[i]``: store i's effective IANA zone, as
    ``rules.effective_zones`` gives it). One read of the windows that may hold ``t``."""
    if len(store_ids) != len(zones):
        raise ValueError("store_ids and zones must have the same length")
    t = to_utc(t)
    windows = storage.maintenance_windows_at(storage.get_db(), ts_to_us(t))
    if not windows or len(store_ids) == 0:
        return set()
    ids = np.asarray(store_ids, dtype=object)
    mask = muted_mask(windows=windows, store_ids=ids, zones=np.asarray(zones, dtype=object), t=t)
    return set(ids[mask].tolist())
