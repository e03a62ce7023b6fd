"""A deliberately simple reference for the alert rules (store states at an instant, alerts over evaluations).

Written for clarity, not speed, and independently of loop/alert_rules.py. Per store and evaluation
instant ``t``: business intervals are built date by date with zoneinfo (the way
tests/test_extended_property.py does, with the helpers of tests/support/report_reference.py), the
counted polls are picked one by one, and outages are found by walking back from ``t`` in 30 s cells,
each judged at its centre, instead of by a formula.

Precondition of the 30 s walk: every point where the answer can change (interval ends, midpoints
between counted polls, ``t - 7 days``) lies on a multiple of 30 s before ``t``. That holds when ``t``,
the polls and the hours are on whole minutes, as in the tests.

The entry points take the same frames as ``loop.alert_rules.store_states`` (the report engine's
schemas) so that one test can run against either implementation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from tests.support.report_reference import WEEK, hours_row_span, merge_intervals, ref_zone

CLOSED, UNKNOWN, PENDING, DOWN, UP = "closed", "unknown", "pending", "down", "up"
CELL = 30  # seconds


def _seconds(ts: pd.Timestamp) -> int:
    ts = pd.Timestamp(ts)
    assert ts.tzinfo is not None, "timestamps must be tz-aware"
    ns = ts.value  # always nanoseconds, whatever the unit
    assert ns % 1_000_000_000 == 0, f"the reference works in whole seconds: {ts}"
    return ns // 1_000_000_000


def _stamp(seconds: float | None) -> pd.Timestamp:
    return pd.NaT if seconds is None else pd.Timestamp(int(seconds), unit="s", tz="UTC")


def _intervals(
    weekly: list[tuple[int, int, int]],
    special: list[tuple[date, float, float]],
    tz: ZoneInfo,
    start: int,
    end: int,
) -> list[tuple[float, float]]:
    """Merged UTC [lo, hi) business intervals around [start, end] (rules 4, 5, 13)."""
    if not weekly and not special:
        return [(-math.inf, math.inf)]  # no rows at all: open all the time
    rows_for_week = weekly or [(d, 0, 0) for d in range(7)]  # 24x7 with holidays: one 24 h interval per date
    special_dates = {d for d, _, _ in special}
    day = datetime.fromtimestamp(start, tz).date() - timedelta(days=2)
    last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
    raw = []
    while day <= last:
        if day in special_dates:
            # A row with a missing time means closed all day (rule 13).
            rows = [(int(s), int(e)) for d, s, e in special if d == day and not (math.isnan(s) or math.isnan(e))]
        else:
            rows = [(s, e) for dow, s, e in rows_for_week if dow == day.weekday()]
        for open_s, close_s in rows:
            lo, hi = hours_row_span(day, open_s, close_s, tz)
            if lo < hi:
                raw.append((lo, hi))
        day += timedelta(days=1)
    return merge_intervals(raw)


def _is_open(spans: list[tuple[float, float]], x: float) -> bool:
    return any(lo <= x < hi for lo, hi in spans)


class _Store:
    """One store at one instant t: its business intervals and counted polls."""

    def __init__(self, spans: list[tuple[float, float]], polls: dict[int, str], t: int) -> None:
        self.spans = spans
        self.t = t
        self.counted = sorted((ts, s) for ts, s in polls.items() if t - WEEK <= ts <= t and _is_open(spans, ts))
        self.times = [ts for ts, _ in self.counted]

    def status_at(self, x: float) -> str | None:
        """'active'/'inactive' by the nearest counted poll (rule 7); None when closed or nothing is counted."""
        if not _is_open(self.spans, x) or not self.counted:
            return None
        i = bisect.bisect_left(self.times, x)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.times)]
        # A tie (x exactly at a midpoint) goes to the later poll: the status switches at the midpoint.
        best = min(candidates, key=lambda j: (abs(self.times[j] - x), -j))
        return self.counted[best][1]

    def cell_down(self, k: int) -> bool:
        """Is the cell [t - 30(k+1), t - 30k) down (judged at its centre)? Cells stop at t - 7 days."""
        return k < WEEK // CELL and self.status_at(self.t - CELL * k - CELL / 2) == "inactive"


def _store_inputs(polls: pd.DataFrame, hours: pd.DataFrame, special_hours: pd.DataFrame | None, zones: pd.DataFrame):
    """Plain-Python views of the frames: per store its polls {seconds: status}, weekly rows, holiday rows, zone."""
    status: dict[str, dict[int, str]] = {}
    for sid, st, ts in zip(polls["store_id"], polls["status"], polls["timestamp_utc"], strict=True):
        mine = status.setdefault(str(sid), {})
        sec = _seconds(ts)
        mine[sec] = "inactive" if "inactive" in (st, mine.get(sec)) else "active"  # rule 9
    weekly: dict[str, list[tuple[int, int, int]]] = {}
    for sid, d, s, e in zip(
        hours["store_id"], hours["day_of_week"], hours["start_seconds"], hours["end_seconds"], strict=True
    ):
        weekly.setdefault(str(sid), []).append((int(d), int(s), int(e)))
    special: dict[str, list[tuple[date, float, float]]] = {}
    if special_hours is not None:
        for sid, d, s, e in zip(
            special_hours["store_id"],
            special_hours["date_local"],
            special_hours["start_seconds"],
            special_hours["end_seconds"],
            strict=True,
        ):
            special.setdefault(str(sid), []).append((date.fromisoformat(str(d)), float(s), float(e)))
    zone = {str(sid): z for sid, z in zip(zones["store_id"], zones["timezone_str"], strict=True)}
    return status, weekly, special, zone


def _one_state(
    spans: list[tuple[float, float]], polls: dict[int, str], t: int, gap_s: int, down_s: int
) -> dict[str, object]:
    store = _Store(spans, polls, t)
    last_poll = store.counted[-1] if store.counted else None
    # Latest outage ending at or before t: the first down cell walking back is its last cell.
    last_outage_end = None
    for k in range(WEEK // CELL):
        if store.cell_down(k):
            last_outage_end = t - CELL * k
            break

    outage_start = None
    if not _is_open(spans, t):
        state = CLOSED
    elif last_poll is None or t - last_poll[0] > gap_s:
        state = UNKNOWN
    elif last_poll[1] == "active":
        state = UP
    else:
        # Walk back over the down cells that end at t; a closed or up cell, or t - 7 days, stops the walk.
        k = 0
        while store.cell_down(k):
            k += 1
        outage_start = t - CELL * k
        state = DOWN if t - outage_start >= down_s else PENDING
        # last_outage_end stays as walked: t when this outage has length; when it has none yet (t at an
        # interval start) it is no down business time, so the end of an earlier outage, or NaT.
    return {
        "state": state,
        "last_poll": _stamp(None if last_poll is None else last_poll[0]),
        "outage_start": _stamp(outage_start),
        "last_outage_end": _stamp(last_outage_end),
    }


def reference_store_states(
    *,
    store_ids: Sequence[str],
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    zones: pd.DataFrame,
    t: pd.Timestamp,
    max_gap_minutes: int = 60,
    down_after_minutes: int = 30,
) -> pd.DataFrame:
    """Same interface as loop.alert_rules.store_states: one row per store id, index store_id sorted as text."""
    now = _seconds(t)
    status, weekly, special, zone = _store_inputs(polls, hours, special_hours, zones)
    rows = {}
    for sid in sorted(set(map(str, store_ids))):
        tz = ref_zone(zone.get(sid))
        spans = _intervals(weekly.get(sid, []), special.get(sid, []), tz, now - WEEK, now)
        mine = {ts: s for ts, s in status.get(sid, {}).items() if ts <= now}
        rows[sid] = _one_state(spans, mine, now, max_gap_minutes * 60, down_after_minutes * 60)
    columns = ["state", "last_poll", "outage_start", "last_outage_end"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("store_id")


def reference_alerts(
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    zones: pd.DataFrame,
    times: Sequence[pd.Timestamp],
    G: int = 60,
    D: int = 30,
) -> list[dict[str, object]]:
    """Every alert opened over the evaluations at `times` (increasing), ordered by opened_at then store_id.

    Each is {store_id, started_at, opened_at, resolved_at, resolution, ended_at}; the last three are None
    while the alert is open. ended_at is None too when no down time is left in [t - 7d, t] at resolution.
    """
    seconds = [_seconds(t) for t in times]
    assert seconds == sorted(set(seconds)), "evaluation times must increase"
    poll_seconds = [_seconds(ts) for ts in polls["timestamp_utc"]]
    alerts: list[dict[str, object]] = []
    open_alert: dict[str, dict[str, object]] = {}
    for t in times:
        now = _seconds(t)
        # Every store with a poll at or before t is evaluated.
        ids = sorted({str(sid) for sid, ts in zip(polls["store_id"], poll_seconds, strict=True) if ts <= now})
        states = reference_store_states(
            store_ids=ids,
            polls=polls,
            hours=hours,
            special_hours=special_hours,
            zones=zones,
            t=t,
            max_gap_minutes=G,
            down_after_minutes=D,
        )
        for sid in ids:
            row = states.loc[sid]
            alert = open_alert.get(sid)
            if alert is None and row["state"] == DOWN:
                alert = {
                    "store_id": sid,
                    "started_at": row["outage_start"],
                    "opened_at": _stamp(now),
                    "resolved_at": None,
                    "resolution": None,
                    "ended_at": None,
                }
                alerts.append(alert)
                open_alert[sid] = alert
            elif alert is not None and row["state"] in (UP, CLOSED):
                alert["resolved_at"] = _stamp(now)
                alert["resolution"] = row["state"]
                alert["ended_at"] = None if pd.isna(row["last_outage_end"]) else row["last_outage_end"]
                del open_alert[sid]
    return alerts


def drive_alerts(
    store_states,
    alert_changes,
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    special_hours: pd.DataFrame | None,
    zones: pd.DataFrame,
    times: Sequence[pd.Timestamp],
    G: int = 60,
    D: int = 30,
) -> list[dict[str, object]]:
    """The alert sequence as the service would build it from loop.alert_rules' two functions.

    Same output as reference_alerts; the functions are passed in so that this module never imports
    loop.alert_rules (it must stay usable before that module exists).
    """
    poll_seconds = [_seconds(ts) for ts in polls["timestamp_utc"]]
    alerts: list[dict[str, object]] = []
    open_alert: dict[str, dict[str, object]] = {}
    for t in times:
        now = _seconds(t)
        ids = sorted({str(sid) for sid, ts in zip(polls["store_id"], poll_seconds, strict=True) if ts <= now})
        states = store_states(
            store_ids=ids,
            polls=polls,
            hours=hours,
            special_hours=special_hours,
            zones=zones,
            t=t,
            max_gap_minutes=G,
            down_after_minutes=D,
        )
        changes = alert_changes(states=states, open_store_ids=set(open_alert), t=t)
        for row in changes.opened.to_dict("records"):
            sid = str(row["store_id"])
            assert sid not in open_alert, f"second open alert for {sid}"
            alert = {
                "store_id": sid,
                "started_at": row["started_at"],
                "opened_at": _stamp(now),
                "resolved_at": None,
                "resolution": None,
                "ended_at": None,
            }
            alerts.append(alert)
            open_alert[sid] = alert
        for row in changes.resolved.to_dict("records"):
            sid = str(row["store_id"])
            alert = open_alert.pop(sid)  # KeyError: resolved an alert that was not open
            alert["resolved_at"] = _stamp(now)
            alert["resolution"] = row["resolution"]
            alert["ended_at"] = None if pd.isna(row["ended_at"]) else row["ended_at"]
    return alerts


def normalise_alerts(alerts: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """Alerts as comparable tuples (UTC Timestamps, None for missing), ordered by opened_at then store_id."""

    def ts(value: object) -> pd.Timestamp | None:
        if value is None or pd.isna(value):
            return None
        return pd.Timestamp(value).tz_convert("UTC")

    out = [
        (
            a["store_id"],
            ts(a["started_at"]),
            ts(a["opened_at"]),
            ts(a["resolved_at"]),
            a["resolution"],
            ts(a["ended_at"]),
        )
        for a in alerts
    ]
    return sorted(out, key=lambda a: (a[2], a[0]))
