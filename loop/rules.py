"""The report's domain rules that more than one module applies (see docs/report_rules.md).

Pure Python and numpy: the engine, the CSV reader, the poll loader and the API
all import these instead of restating them.
"""

from __future__ import annotations

import ast
import re
import zoneinfo
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

# Rule 1: a report covers the week ending at ``now``.
REPORT_WEEK = pd.Timedelta(days=7)
US_PER_SECOND = 1_000_000
US_PER_HOUR = 3600 * US_PER_SECOND
WEEK_US = REPORT_WEEK // pd.Timedelta(microseconds=1)

# Rule 3: a store without a (known) zone is read in this zone.
DEFAULT_TIMEZONE = "America/Chicago"

# Rule 11: unobserved time. G, the longest a poll speaks for, in minutes: its default and allowed range.
DEFAULT_MAX_GAP_MINUTES = 60
MIN_GAP_MINUTES = 1
MAX_GAP_MINUTES = 1440
GAP_RANGE_TEXT = f"between {MIN_GAP_MINUTES} and {MAX_GAP_MINUTES}"

ACTIVE = "active"
INACTIVE = "inactive"
POLL_STATUSES = (ACTIVE, INACTIVE)


def gap_problem(max_gap_minutes: object) -> str | None:
    """Why ``max_gap_minutes`` is not an allowed G (None when it is): every reader of G asks this."""
    if isinstance(max_gap_minutes, bool) or not isinstance(max_gap_minutes, int | np.integer):
        return f"must be a whole number of minutes {GAP_RANGE_TEXT}"
    if not MIN_GAP_MINUTES <= int(max_gap_minutes) <= MAX_GAP_MINUTES:
        return f"must be {GAP_RANGE_TEXT}"
    return None


def uptime_pct(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """100 x up / (up + down) rounded to 2 places; NaN where a window has neither (no business time)."""
    up = np.asarray(up, dtype=float)
    total = up + np.asarray(down, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.round(np.where(total > 0, 100.0 * up / total, np.nan), 2)


def uptime_pct_or_none(up: float, down: float) -> float | None:
    """``uptime_pct`` of one window as JSON wants it: None instead of NaN."""
    pct = float(uptime_pct(np.array([up]), np.array([down]))[0])
    return None if np.isnan(pct) else pct


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    """The IANA zone names this interpreter can convert (tzdata)."""
    return frozenset(zoneinfo.available_timezones())


def group_polls_by_instant(store: np.ndarray, time: np.ndarray, inactive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): positions sorted by (store, time) with inactive first within an instant, and
    a flag per sorted position that is True where a new (store, instant) begins."""
    order = np.lexsort((~inactive.astype(bool), time, store))
    sorted_store, sorted_time = store[order], time[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_store[1:] != sorted_store[:-1]) | (sorted_time[1:] != sorted_time[:-1])
    return order, starts


def first_poll_per_instant(store: np.ndarray, time: np.ndarray, inactive: np.ndarray) -> np.ndarray:
    """Positions of one poll per (store, instant), sorted by (store, time).

    Rule 2, "inactive wins": when polls of one instant disagree, the inactive
    one is kept, so an outage reported at that instant is never hidden.
    """
    order, starts = group_polls_by_instant(store, time, inactive)
    return order[starts]


def effective_zones(store_ids: np.ndarray, zones: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Rule 3: each store's zone, and a warning per unknown name.

    ``zones`` holds store_id and timezone_str rows in stored order: a store's last row wins;
    a missing, blank or unknown name means ``DEFAULT_TIMEZONE``. Names are stripped.
    """
    if len(store_ids) == 1:
        warnings: list[str] = []
        # One store (a timeline): the same rule on one value, without the frame machinery.
        mine = zones["timezone_str"].to_numpy(dtype=object)[zones["store_id"].to_numpy(dtype=object) == store_ids[0]]
        name = mine[-1] if len(mine) and isinstance(mine[-1], str) else ""
        name = name.strip()
        if name and name not in known_time_zones():
            warnings.append(f"unknown time zone {name!r} for 1 store(s); using {DEFAULT_TIMEZONE}")
        zone = name if name in known_time_zones() else DEFAULT_TIMEZONE
        return np.array([zone], dtype=object), warnings
    zone_names, bad_names = zones_and_bad_names(store_ids, zones)
    return zone_names, zone_warnings(bad_names)


def zones_and_bad_names(store_ids: np.ndarray, zones: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rule 3 for many stores: each store's zone, and the unknown name it was given ("" when none)."""
    zone_of = pd.Series(DEFAULT_TIMEZONE, index=pd.Index(store_ids, dtype=object), dtype=object)
    bad_of = pd.Series("", index=zone_of.index, dtype=object)
    if len(zones):
        given = zones.drop_duplicates("store_id", keep="last")
        given = given[given["store_id"].isin(zone_of.index)]
        names = given["timezone_str"].astype(object).where(given["timezone_str"].notna(), "")
        names = names.astype(str).str.strip()
        # Check each distinct name once (isin against all of tzdata costs ~15 ms per call).
        known_set = known_time_zones()
        known = [name for name in pd.unique(names.to_numpy()) if name in known_set]
        unknown_mask = (names != "") & ~names.isin(known)
        given_ids = given["store_id"].astype(object).to_numpy()
        bad_of.loc[given_ids[unknown_mask.to_numpy()]] = names[unknown_mask].to_numpy()
        names = names.where(names.isin(known), DEFAULT_TIMEZONE)
        zone_of.loc[given_ids] = names.to_numpy()
    return zone_of.to_numpy(), bad_of.to_numpy()


def zone_warnings(bad_names: np.ndarray) -> list[str]:
    """One warning per unknown zone name, with how many stores were given it."""
    bad = pd.Series(bad_names, dtype=object)
    return [_zone_warning(str(name), int(count)) for name, count in bad[bad != ""].value_counts().sort_index().items()]


def _zone_warning(name: str, count: int) -> str:
    return f"unknown time zone {name!r} for {count} store(s); using {DEFAULT_TIMEZONE}"


_ZONE_WARNING = re.compile(r"^unknown time zone (?P<name>'.*'|\".*\") for (?P<count>\d+) store\(s\); using ")


def merge_warnings(warning_lists: Sequence[Sequence[str]]) -> list[str]:
    """The warnings of disjoint sets of stores (a report's shards) as one report over all of them would give:
    the unknown-zone warnings (``zone_warnings``) counted together, in name order; any other warning once,
    after them, in first-seen order."""
    counts: dict[str, int] = {}
    others: list[str] = []
    for warnings in warning_lists:
        for warning in warnings:
            found = _ZONE_WARNING.match(warning)
            if found is None:
                if warning not in others:
                    others.append(warning)
                continue
            name = ast.literal_eval(found["name"])
            counts[name] = counts.get(name, 0) + int(found["count"])
    return [_zone_warning(name, counts[name]) for name in sorted(counts)] + others
