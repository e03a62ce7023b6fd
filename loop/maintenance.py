"""Maintenance windows (mutes) of alerts: what a window is, which are valid, and who is muted at an instant.

Pure (numpy/pandas only). A window covers some stores or all of them, and is either one-off
([start, end) in UTC) or weekly in each store's own local time (weekday 0 = Monday, like business
hours; ``local_end <= local_start`` runs past midnight into the next day, equal = 24 h). Wall times
become instants as in rule 5 of docs/report_rules.md (``lanes.localize_to_utc_us``): ambiguous =
the earlier instant, nonexistent = the instant the clocks jump. Every window is start-inclusive,
end-exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop.lanes import localize_to_utc_us
from loop.sources.validate import parse_clock
from loop.store_ids import store_id_problem
from loop.timeutil import parse_now, ts_to_us

WEEKDAYS = range(7)  # 0 = Monday ... 6 = Sunday, as dayOfWeek of business hours
SECONDS_PER_DAY = 86400
US_PER_SECOND = 1_000_000
MAX_NOTE_LENGTH = 500
CLOCK_HELP = "a local time HH:MM or HH:MM:SS (00:00 to 23:59:59)"


class WindowProblem(ValueError):
    """A window's input breaks a rule; ``field`` names the input, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OneOff:
    """[start, end) in UTC."""

    start: pd.Timestamp
    end: pd.Timestamp


@dataclass(frozen=True)
class Weekly:
    """Every ``weekday`` from ``start_s`` seconds after local midnight, to ``end_s`` (the next day when <= start)."""

    weekday: int
    start_s: int
    end_s: int

    @property
    def length_s(self) -> int:
        return (self.end_s - self.start_s) % SECONDS_PER_DAY or SECONDS_PER_DAY


@dataclass(frozen=True)
class Window:
    window_id: str
    store_ids: tuple[str, ...] | None  # None: every store
    schedule: OneOff | Weekly
    note: str = ""
    created_at: pd.Timestamp | None = None


def clock_text(seconds: int) -> str:
    """Seconds after midnight as ``HH:MM:SS`` (how business hours answer)."""
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --- the rules of a valid window ---------------------------------------------------------------------


def covered_stores(*, store_ids: Sequence[object] | None, all_stores: bool | None) -> tuple[str, ...] | None:
    """Exactly one of a non-empty list of store ids (each passing the store-id rule) or ``all: true``."""
    if (store_ids is None) == (all_stores is None):
        raise WindowProblem("store_ids", "give exactly one of store_ids (a list) or all: true")
    if store_ids is None:
        if all_stores is not True:
            raise WindowProblem("all", "must be true (or give store_ids instead)")
        return None
    if len(store_ids) == 0:
        raise WindowProblem("store_ids", "must name at least one store (or use all: true)")
    for index, value in enumerate(store_ids):
        problem = store_id_problem(value)
        if problem:
            raise WindowProblem("store_ids", f"item {index}: {problem}: {value!r}")
    return tuple(dict.fromkeys(str(value) for value in store_ids))  # repeats dropped, order kept


def one_off(*, start: str, end: str) -> OneOff:
    """A one-off window from two ISO instants (``timeutil.parse_now``: no offset means UTC); end after start."""
    stamps = []
    for field, text in (("start", start), ("end", end)):
        try:
            stamps.append(parse_now(text))
        except ValueError as exc:
            raise WindowProblem(field, str(exc)) from None
    if stamps[1] <= stamps[0]:
        raise WindowProblem("end", "must be after start")
    return OneOff(start=stamps[0], end=stamps[1])


def parse_local_clock(field: str, text: str) -> int:
    """``HH:MM[:SS]`` as seconds after midnight, by the business hours' clock rule (``sources.validate``)."""
    seconds = parse_clock(pd.Series([text], dtype=object)).iloc[0]
    if pd.isna(seconds):
        raise WindowProblem(field, f"must be {CLOCK_HELP}: {text!r}")
    return int(seconds)


def weekly(*, weekday: object, local_start: str, local_end: str) -> Weekly:
    """A weekly window: weekday 0-6 (0 = Monday), two local clock times."""
    if isinstance(weekday, bool) or not isinstance(weekday, int) or weekday not in WEEKDAYS:
        raise WindowProblem("weekday", f"must be a whole number 0-6 (0 = Monday): {weekday!r}")
    return Weekly(
        weekday=weekday,
        start_s=parse_local_clock("local_start", local_start),
        end_s=parse_local_clock("local_end", local_end),
    )


# --- who is muted at an instant ------------------------------------------------------------------------


def muted_mask(*, windows: Sequence[Window], store_ids: np.ndarray, zones: np.ndarray, t: pd.Timestamp) -> np.ndarray:
    """One bool per store: ``t`` lies inside a window that covers it (``zones[i]`` is store i's effective zone).

    Weekly windows are evaluated once per distinct zone, then spread over that zone's stores.
    """
    t_us = ts_to_us(t)
    muted = np.zeros(len(store_ids), dtype=bool)
    if len(store_ids) == 0:
        return muted
    zone_codes, zone_names = pd.factorize(pd.Series(zones, dtype=object))
    weekly_windows: list[tuple[Window, Weekly]] = []
    for window in windows:
        if isinstance(window.schedule, Weekly):
            weekly_windows.append((window, window.schedule))
        elif ts_to_us(window.schedule.start) <= t_us < ts_to_us(window.schedule.end):
            muted |= _covers(window, store_ids)
    if not weekly_windows:
        return muted
    # active[w, z]: weekly window w holds t in zone z.
    weeklies = [schedule for _, schedule in weekly_windows]
    active = np.column_stack([_weekly_active(weeklies, str(zone), t) for zone in zone_names])
    for row, (window, _) in enumerate(weekly_windows):
        muted |= _covers(window, store_ids) & active[row][zone_codes]
    return muted


def _covers(window: Window, store_ids: np.ndarray) -> np.ndarray:
    if window.store_ids is None:
        return np.ones(len(store_ids), dtype=bool)
    return np.isin(store_ids, np.array(window.store_ids, dtype=object))


def _weekly_active(weekly_windows: list[Weekly], zone: str, t: pd.Timestamp) -> np.ndarray:
    """Which weekly windows hold ``t`` in ``zone``: the occurrence that started on t's local date or the one before.

    An occurrence lasts at most one local day, so no earlier one can reach t; of two consecutive dates
    only one has the window's weekday, so each window has one candidate.
    """
    local = t.tz_convert(zone)
    today = pd.Timestamp(local.date())  # naive local midnight
    days_back = np.array([(local.weekday() - w.weekday) % 7 for w in weekly_windows])
    candidate = days_back <= 1
    start_day = today - pd.to_timedelta(days_back, unit="D")
    start_s = np.array([w.start_s for w in weekly_windows], dtype=np.int64)
    length_s = np.array([w.length_s for w in weekly_windows], dtype=np.int64)
    wall_start = start_day.to_numpy().astype("datetime64[us]") + (start_s * US_PER_SECOND).astype("timedelta64[us]")
    wall_end = wall_start + (length_s * US_PER_SECOND).astype("timedelta64[us]")
    start_us = localize_to_utc_us(wall_start, zone)
    end_us = localize_to_utc_us(wall_end, zone)
    t_us = ts_to_us(t)
    return candidate & (start_us <= t_us) & (t_us < end_us)
