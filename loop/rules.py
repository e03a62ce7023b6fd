"""The report's domain rules that more than one module applies (see docs/report_rules.md).

Pure Python and numpy: the engine, the CSV reader, the poll loader and the API
all import these instead of restating them.
"""

from __future__ import annotations

import zoneinfo
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

ACTIVE = "active"
INACTIVE = "inactive"
POLL_STATUSES = (ACTIVE, INACTIVE)


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
