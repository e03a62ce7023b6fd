"""The alert rules: each store's state at the data clock ``t``, and which alerts open or resolve.

Pure (DataFrames in, DataFrames out; no Django, no MongoDB). A store's state is read
from the same lanes as the report and the timeline (``loop.lanes``: rules 3-7, 10-13,
holiday hours), over the week before ``t``, so "down" here is the timeline's outage:

- ``closed``: ``t`` lies outside the store's business hours;
- ``unknown``: no counted poll, or the latest one is more than G before ``t``;
- ``up``: the latest counted poll is observed (at most G before ``t``) and active;
- ``pending``/``down``: it is observed and inactive, and the outage going on at ``t``
  (a maximal down span inside one merged business interval) has lasted less than / at
  least D.

Reading a whole week for every store at every evaluation would cost a report each time,
so ``store_states`` can look back less (``lookback``) and says per store whether its
answer is *settled*: the same as the week's would be. Only a store whose latest outage
reaches back to the start of the shorter range is unsettled, and the caller re-reads the
week for just those stores (``loop.services.alerts``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop.lanes import LANE_BITS, UNITS_PER_US, BusinessCalendar, Lanes, build_lanes, gap_units, to_utc_us
from loop.rules import ACTIVE, DEFAULT_MAX_GAP_MINUTES, REPORT_WEEK, US_PER_SECOND, WEEK_US

CLOSED = "closed"
UNKNOWN = "unknown"
PENDING = "pending"
DOWN = "down"
UP = "up"
STATES = (CLOSED, UNKNOWN, PENDING, DOWN, UP)

DEFAULT_DOWN_AFTER_MINUTES = 30
STATE_COLUMNS = ["state", "last_poll", "outage_start", "last_outage_end", "zone", "settled"]


@dataclass(frozen=True)
class AlertChanges:
    """What one evaluation does to alerts.

    ``opened``: store_id, started_at (stores down now without an open alert);
    ``resolved``: store_id, resolution ("up"/"closed"), ended_at (open alerts whose store is up or closed).
    """

    opened: pd.DataFrame
    resolved: pd.DataFrame


def store_states(
    *,
    store_ids: Sequence[str] | np.ndarray,
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    zones: pd.DataFrame,
    t: pd.Timestamp,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
    down_after_minutes: int = DEFAULT_DOWN_AFTER_MINUTES,
    lookback: pd.Timedelta = REPORT_WEEK,
    calendar: BusinessCalendar | None = None,
) -> pd.DataFrame:
    """Each store's state at ``t``, one row per store id (index ``store_id``, sorted as text).

    Columns: ``state`` (``STATES``); ``last_poll`` (its latest counted poll, NaT if none);
    ``outage_start`` (the outage going on at ``t``, for ``down``/``pending``); ``last_outage_end``
    (the end of its latest outage ending at or before ``t``; an outage going on ends at ``t``; NaT if
    it had no down business time in the range); ``zone`` (rule 3); ``settled``.

    Frames are the engine's (``report_engine.compute_report``); polls after ``t`` are ignored.
    ``lookback`` (G <= lookback <= 7 days) is how far back polls count: with less than the week, a store's
    ``outage_start`` and ``last_outage_end`` are exact only where ``settled`` is True (the state always is,
    except down-versus-pending of an unsettled store). ``calendar``: built from these tables, it saves
    working their business intervals out again (``lanes.BusinessCalendar``).
    """
    gap = gap_units(max_gap_minutes)
    if down_after_minutes < 1:
        raise ValueError("down_after_minutes must be at least 1")
    lookback_us = int(pd.Timedelta(lookback) / pd.Timedelta(microseconds=1))
    if not gap // UNITS_PER_US <= lookback_us <= WEEK_US:
        raise ValueError("lookback must be at least G and at most the week")
    down_after = down_after_minutes * 60 * US_PER_SECOND * UNITS_PER_US
    t_us = int(to_utc_us(pd.Series([pd.Timestamp(t)]))[0])
    start_us = t_us - lookback_us
    ids = np.unique(np.asarray(list(store_ids), dtype=object).astype(str)).astype(object)
    n = len(ids)

    poll_ids = polls["store_id"].astype(str).to_numpy(dtype=object)
    poll_us = to_utc_us(polls["timestamp_utc"]) if len(polls) else np.zeros(0, dtype=np.int64)
    codes = np.searchsorted(ids, poll_ids) if n else np.zeros(len(poll_ids), dtype=np.int64)
    known = (codes < n) & (poll_us <= t_us)
    known[known] = ids[codes[known]] == poll_ids[known]
    if calendar is None:
        # Arrow-backed text columns (what storage reads) make the lanes' zone and hours lookups slow.
        hours = hours.astype({"store_id": object})
        zones = zones.astype({"store_id": object, "timezone_str": object})
    lanes = build_lanes(
        store_ids=ids,
        poll_codes=codes[known].astype(np.int64),
        poll_us=poll_us[known],
        poll_active=(polls["status"] == ACTIVE).to_numpy(dtype=bool)[known],
        hours=hours,
        zones=zones,
        special_hours=special_hours,
        range_start_us=start_us,
        range_end_us=t_us,
        calendar=calendar,
    )
    lane_end = lanes.lane_end
    lane_of = np.arange(n, dtype=np.int64) << LANE_BITS
    poll_codes, poll_time, poll_active = lanes.poll_codes, lanes.poll_lane_time, lanes.poll_active

    # The merged business interval holding t, per store (its start is clipped to the range).
    t_keys = lane_of + lane_end
    where = np.searchsorted(lanes.starts, t_keys, side="right") - 1
    safe = np.maximum(where, 0)
    is_open = (where >= 0) & (t_keys < lanes.ends[safe]) & (lanes.starts[safe] >= lane_of)
    open_start = np.where(is_open, lanes.starts[safe] - lane_of, -1)

    # Counted polls are sorted by store then time: each store's first and last.
    has_poll = np.zeros(n, dtype=bool)
    has_poll[poll_codes] = True
    last = np.full(n, -1, dtype=np.int64)
    last[poll_codes] = np.arange(len(poll_codes))
    first = np.full(n, -1, dtype=np.int64)
    first[poll_codes[::-1]] = np.arange(len(poll_codes))[::-1]
    # Gathers through a sentinel at the end, so a store without counted polls (index -1) reads it.
    last_time = np.append(poll_time, -1)[last]
    last_active = np.append(poll_active, False)[last]
    observed = has_poll & (lane_end - last_time <= gap)

    # The run of inactive polls that ends with the latest: its first poll, and where its territory begins.
    run_first = _last_run_first(poll_codes, poll_active, last, n)
    inactive_now = observed & ~last_active & is_open
    run_lo = np.append(lanes.seg_lo, 0)[run_first]
    outage_start = np.where(inactive_now, np.maximum(run_lo, open_start), -1)
    is_down = inactive_now & (lane_end - outage_start >= down_after)

    state = np.full(n, UNKNOWN, dtype=object)
    state[is_open & observed & last_active] = UP
    state[inactive_now] = PENDING
    state[is_down] = DOWN
    state[~is_open] = CLOSED

    last_end = _last_outage_end(lanes, n)
    full_week = lookback_us >= WEEK_US
    # A shorter range is exact for an outage that begins after an active poll inside it; and for the
    # latest outage's end when an inactive poll lies inside it (an earlier poll owns less than it).
    settled_start = full_week | ~inactive_now | (run_first != first)
    has_inactive = np.zeros(n, dtype=bool)
    has_inactive[poll_codes[~poll_active]] = True
    settled_end = full_week | has_inactive

    def instants(lane_time: np.ndarray, valid: np.ndarray) -> pd.Series:
        us = start_us + lane_time // UNITS_PER_US
        values = pd.to_datetime(np.where(valid, us, 0).astype("datetime64[us]")).tz_localize("UTC")
        return pd.Series(values, index=ids).where(valid)

    frame = pd.DataFrame(
        {
            "state": state,
            "last_poll": instants(last_time, has_poll),
            "outage_start": instants(outage_start, inactive_now),
            "last_outage_end": instants(last_end, last_end >= 0),
            "zone": lanes.zone_names,
            "settled": settled_start & settled_end,
        },
        index=pd.Index(ids, name="store_id"),
    )
    return frame[STATE_COLUMNS]


def _last_run_first(codes: np.ndarray, active: np.ndarray, last: np.ndarray, n: int) -> np.ndarray:
    """Per store, the position of the first poll of the run of inactive polls ending with its latest
    poll (-1 when its latest poll is active or it has none)."""
    out = np.full(n, -1, dtype=np.int64)
    if len(codes) == 0:
        return out
    # Position of the latest active poll at or before each position, within the same store.
    positions = np.arange(len(codes))
    store_start = np.ones(len(codes), dtype=bool)
    store_start[1:] = codes[1:] != codes[:-1]
    marker = np.where(active | store_start, positions, -1)
    prev = np.maximum.accumulate(marker)
    has = last >= 0
    latest = last[has]
    anchor = prev[latest]
    # The anchor is the store's first poll (inactive run from the start) or an active poll (run after it).
    run_first = np.where(active[anchor], anchor + 1, anchor)
    out[has] = np.where(active[latest], -1, run_first)
    return out


def _last_outage_end(lanes: Lanes, n: int) -> np.ndarray:
    """Per store, the lane time where its latest outage ends (clipped to the range end; -1 when none)."""
    out = np.full(n, -1, dtype=np.int64)
    codes, lo, hi = lanes.outage_runs()
    if len(codes) == 0:
        return out
    # Runs come in store and time order: each store's latest run, then its last piece of business time.
    latest = np.ones(len(codes), dtype=bool)
    latest[:-1] = codes[:-1] != codes[1:]
    codes, lo, hi = codes[latest], lo[latest], hi[latest]
    piece = np.searchsorted(lanes.starts, hi, side="left") - 1
    end = np.minimum(lanes.ends[np.maximum(piece, 0)], hi)
    lane = codes.astype(np.int64) << LANE_BITS
    real = (piece >= 0) & (end > np.maximum(lo, lanes.starts[np.maximum(piece, 0)]))
    out[codes[real]] = np.minimum(end[real] - lane[real], lanes.lane_end)
    return out


def alert_changes(*, states: pd.DataFrame, open_store_ids: Collection[str], t: pd.Timestamp) -> AlertChanges:
    """The alerts an evaluation at ``t`` opens and resolves, from ``store_states``' frame.

    A store that is down and has no open alert opens one from its outage's start; an open alert
    resolves when its store is up or closed, ended at its latest outage's end. Unknown, pending and
    still-down stores leave their alert open. ``t`` is the evaluation's instant (kept for symmetry
    with the stored record; the states already hold every time the changes need).
    """
    del t
    has_open = states.index.isin(list(open_store_ids))
    state = states["state"]
    opening = states[(state == DOWN) & ~has_open]
    resolving = states[has_open & state.isin([UP, CLOSED])]
    opened = pd.DataFrame(
        {"store_id": opening.index.to_numpy(dtype=object), "started_at": opening["outage_start"].to_numpy()}
    )
    resolved = pd.DataFrame(
        {
            "store_id": resolving.index.to_numpy(dtype=object),
            "resolution": resolving["state"].to_numpy(dtype=object),
            "ended_at": resolving["last_outage_end"].to_numpy(),
        }
    )
    return AlertChanges(opened=opened, resolved=resolved)


# The dashboard's state of a store (GET /alerts/stores/): coarser than ``STATES`` and read without lanes.
NO_DATA = "no_data"
ALERTING = DOWN
QUIET = "ok"
FEED_STATES = (NO_DATA, ALERTING, QUIET)


def feed_states(
    *,
    last_poll_us: np.ndarray,
    newest_us: int | None,
    has_open_alert: np.ndarray,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
) -> np.ndarray:
    """Each store's dashboard state: ``no_data`` when its latest poll (any status, in or out of business
    hours) is more than G before the newest stored poll, else ``down`` when it has an open alert, else ``ok``.

    No data wins over an open alert: the alert stays open (no data is not good news) but the store is not
    shown as down on a stale feed. ``newest_us`` None (nothing stored) makes every store ``no_data``.
    """
    last = np.asarray(last_poll_us, dtype=np.int64)
    if newest_us is None:
        return np.full(len(last), NO_DATA, dtype=object)
    gap_us = max_gap_minutes * 60 * US_PER_SECOND
    state = np.where(np.asarray(has_open_alert, dtype=bool), ALERTING, QUIET).astype(object)
    state[newest_us - last > gap_us] = NO_DATA
    return state
