"""Alerts: the evaluation after each write of polls, the list and the ack, reminders and the feed's staleness.

The rules are ``loop.alert_rules``' (pure); this module reads what they need through
``loop.storage``, applies their changes (at most one open alert per store: the database's
claim, not the lock) and hands the messages to ``loop.services.deliveries`` (which sends
them from a worker, never inside the request that wrote the polls).

Evaluations are coalesced: one runs at a time (the ``alerts`` lock); a write that lands
while one runs is seen by the next, which the running one starts itself after releasing the
lock when the data moved meanwhile. So a burst of batches shares evaluations, the last
write is never skipped, and a client that waits for ``evaluated_at`` gets one per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.conf import settings
from pymongo.database import Database

from loop import metrics, queue, storage
from loop.alert_rules import CLOSED, DOWN, PENDING, UP, alert_changes, feed_states, store_states
from loop.errors import Conflict, InvalidInput, NotFound
from loop.events import (
    ALERT_GROUPED,
    ALERT_OPENED,
    ALERT_REMINDER,
    ALERT_RESOLVED,
    INGESTION_RESUMED,
    INGESTION_STALE,
    Event,
    utc_text,
)
from loop.ids import new_id
from loop.rules import DEFAULT_MAX_GAP_MINUTES, REPORT_WEEK
from loop.services.directory import Profile, region_counts, store_ids_matching, store_profiles
from loop.services.paging import Page, page_skip
from loop.services.store_tables import store_tables
from loop.storage.alerts import OpenAlerts
from loop.timeutil import ts_to_us, us_to_ts, utcnow

logger = logging.getLogger(__name__)

# How far back an evaluation reads: two hours for every store (an outage that began after an active poll
# of the last two hours is settled), then a day and the week for the few it leaves unsettled (``alert_rules``).
LOOKBACKS = (pd.Timedelta(hours=2), pd.Timedelta(hours=26), REPORT_WEEK)
# An evaluation that finds the data moved while it ran runs again, at most this many times in a row.
MAX_ROUNDS = 20
STATES = ("open", "resolved", "all")
# Orders of GET /alerts/: newest opened first, or (open alerts only) longest down first.
ORDERS = ("newest", "longest")


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluation: its instant, what it changed and how long it took (None t: nothing stored yet)."""

    t: pd.Timestamp | None
    opened: int
    resolved: int
    seconds: float
    skipped: bool = False


@dataclass(frozen=True)
class AlertView:
    """One alert as the API and the messages show it."""

    alert_id: str
    store_id: str
    started_at: pd.Timestamp
    opened_at: pd.Timestamp
    resolved_at: pd.Timestamp | None
    resolution: str | None
    ended_at: pd.Timestamp | None
    acknowledged_by: str | None
    acknowledged_at: pd.Timestamp | None
    down_minutes: float
    muted: bool
    zone: str
    name: str | None = None
    brand: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class AlertList:
    page: Page[AlertView]
    evaluated_at: pd.Timestamp | None
    open_count: int
    open_unacknowledged: int


@dataclass(frozen=True)
class StoreAlertState:
    """One store as the dashboard shows it: its feed state, latest poll and open alert (if any)."""

    store_id: str
    state: str  # ``alert_rules.FEED_STATES``
    last_poll: pd.Timestamp
    last_poll_age_minutes: float  # before the newest stored poll
    alert_id: str | None
    down_since: pd.Timestamp | None  # the open alert's started_at


@dataclass(frozen=True)
class StoreAlertStates:
    results: list[StoreAlertState]
    newest_poll: pd.Timestamp | None
    evaluated_at: pd.Timestamp | None
    max_gap_minutes: int


def evaluation_line(result: EvaluationResult | None) -> str:
    """One line for a command's output: what the evaluation after a load did."""
    if result is None:
        return "alerts: another evaluation is running; it covers this load"
    if result.t is None:
        return "alerts: no polls stored, nothing to evaluate"
    return f"alerts: evaluated at {_iso(result.t)}: {result.opened} opened, {result.resolved} resolved"


def request_evaluation(*, delay: int = 0) -> None:
    """After a write of polls: ask for an evaluation (best effort; the beat's evaluation is the safety net),
    ``delay`` seconds from now with the writes meanwhile (a small batch: ``BATCH_FOLLOW_UP_SECONDS``)."""
    try:
        queue.enqueue_alert_evaluation(delay=delay)
    except Exception:
        logger.exception("could not ask for an alert evaluation")


def evaluate_alerts(*, db: Database | None = None, rounds: int = MAX_ROUNDS) -> EvaluationResult | None:
    """Evaluate at the newest poll, again while the data moves (at most ``rounds`` times); None when another
    evaluation holds the lock (it re-checks the data after releasing it, so nothing is left unevaluated)."""
    db = storage.get_db() if db is None else db
    result: EvaluationResult | None = None
    for left in range(rounds - 1, -1, -1):
        with storage.evaluation_lock(db) as held:
            if not held:
                return result
            result = _evaluate(db)
        # Whether the data moved meanwhile matters only while a round is left.
        if left == 0 or storage.poll_stamp(db).stamp == storage.read_open_alerts(db).stamp:
            return result
    return result


def evaluate_alerts_paced(*, db: Database | None = None) -> EvaluationResult | None:
    """The worker's evaluation. With ``BATCH_FOLLOW_UP_SECONDS``: one round, then, when the data moved
    meanwhile (or another evaluation held the lock), a follow-up that many seconds later rather than the
    next rounds at once; so under a stream of small batches the worker evaluates about once per that
    many seconds instead of all the time. Without it, ``evaluate_alerts``'s rounds."""
    delay = settings.BATCH_FOLLOW_UP_SECONDS
    if delay <= 0:
        return evaluate_alerts(db=db)
    db = storage.get_db() if db is None else db
    result = evaluate_alerts(db=db, rounds=1)
    if result is None or storage.poll_stamp(db).stamp != storage.read_open_alerts(db).stamp:
        request_evaluation(delay=delay)
    return result


def _evaluate(db: Database) -> EvaluationResult:
    began = time.perf_counter()
    stamp = storage.poll_stamp(db)
    current = storage.read_open_alerts(db)
    if stamp.newest is None or current.stamp == stamp.stamp:
        return EvaluationResult(None if stamp.newest is None else stamp.newest, 0, 0, 0.0, skipped=True)
    t = stamp.newest
    current = _take_in_missed(db, current)
    states = _states(db, t, current)
    changes = alert_changes(states=states, open_store_ids=set(current.store_id.tolist()), t=t)
    wall_us = int(time.time() * 1_000_000)
    t_us = ts_to_us(t)
    zones = states["zone"]

    # Opened: claim each store (the database refuses a second open alert), then record.
    opened = changes.opened
    new_ids = [new_id() for _ in range(len(opened))]
    taken = storage.claim_open_alerts(db, list(zip(opened["store_id"].tolist(), new_ids, strict=True)))
    current = _repair(db, current, [s for s in opened["store_id"].tolist() if s not in taken])
    keep = np.array([store_id in taken for store_id in opened["store_id"].tolist()], dtype=bool)
    opened = opened[keep]
    new_ids = [alert_id for alert_id, k in zip(new_ids, keep.tolist(), strict=True) if k]
    muted_now = _muted(opened["store_id"].tolist() + changes.resolved["store_id"].tolist(), zones, t)
    started_us = (opened["started_at"].astype("datetime64[us, UTC]").astype("int64")).to_numpy(dtype=np.int64)
    stores = opened["store_id"].tolist()
    added = OpenAlerts.rows(
        alert_id=new_ids,
        store_id=stores,
        zone=[str(zones.get(store_id, "")) for store_id in stores],
        started_us=started_us,
        opened_us=np.full(len(new_ids), t_us, dtype=np.int64),
        muted=[store_id in muted_now for store_id in stores],
        notified_us=[0 if store_id in muted_now else wall_us for store_id in stores],
    )

    # Resolved: record, then release the stores' claims.
    resolved = changes.resolved
    position = {store_id: k for k, store_id in enumerate(current.store_id.tolist())}
    gone = np.zeros(len(current), dtype=bool)
    resolutions: list[tuple[str, str, dict[str, Any]]] = []
    resolved_rows: list[dict[str, Any]] = []
    for store_id, resolution, ended in zip(
        resolved["store_id"].tolist(), resolved["resolution"].tolist(), resolved["ended_at"].tolist(), strict=True
    ):
        k = position[store_id]
        gone[k] = True
        fields = {
            "resolved_us": t_us,
            "resolution": resolution,
            "ended_us": None if pd.isna(ended) else ts_to_us(ended),
        }
        resolutions.append((str(current.chunk[k]), str(current.alert_id[k]), fields))
        # Nothing is sent for an alert that opened muted (nobody was told) or resolves inside a window.
        if not current.muted[k] and store_id not in muted_now:
            resolved_rows.append(_row(current, k) | fields)
    chunk = storage.record_transitions(
        db, opened=[_row(added, k) for k in range(len(added))], day=str(t.date()), changes=resolutions
    )
    added = replace(added, chunk=np.full(len(added), chunk, dtype=object))
    storage.release_open_alerts(db, resolved["store_id"].tolist())

    still_open = current.take(~gone)
    # A window that ended while its alert stayed open: tell now what was held back.
    unmuted = _unmute(still_open, zones, t)
    result = _with_notified(still_open.plus(added), unmuted, wall_us)
    announced = [_row(added, k) for k in range(len(added)) if not added.muted[k]]
    announced += [_row(still_open, k) for k in np.flatnonzero(np.isin(still_open.alert_id, unmuted)).tolist()]
    events = _transition_events(t=t, opened=announced, resolved=resolved_rows)
    state = dict(current.state)
    # In business hours at t, as far as the evaluation looked (stores polled in its first read or with an
    # open alert), in all and by region: read by GET /metrics (loop.api.metrics) with the document.
    open_ids = [str(store_id) for store_id in states.index[states["state"].isin([UP, PENDING, DOWN])]]
    state["open_stores"] = len(open_ids)
    # (a list of documents: FerretDB stores no nested arrays, and a region may hold a "." no field name may)
    state["open_by_region"] = [{"region": region, "stores": count} for region, count in region_counts(open_ids)]
    if state.get("stale"):
        state["stale"] = False
        events.append(Event(INGESTION_RESUMED, utcnow(), {"newest_poll": _iso(t), "evaluated_at": _iso(t)}))
    seconds = time.perf_counter() - began
    log = current.evaluations + [
        {
            "t": t.to_pydatetime(),
            "at": utcnow(),
            "opened": len(added),
            "resolved": len(resolutions),
            "stores": len(states),
            "seconds": round(seconds, 3),
        }
    ]
    storage.write_open_alerts(db, replace(result, evaluated_us=t_us, stamp=stamp.stamp, evaluations=log, state=state))
    _log_evaluation(t, added, current, resolved, position, stores=len(states), seconds=seconds)
    metrics.evaluation_done(seconds=seconds, opened=len(added), resolved=len(resolutions))
    _publish(events)
    return EvaluationResult(t, len(added), len(resolutions), seconds)


def _log_evaluation(
    t: pd.Timestamp,
    added: OpenAlerts,
    current: OpenAlerts,
    resolved: pd.DataFrame,
    position: dict[str, int],
    *,
    stores: int,
    seconds: float,
) -> None:
    """One line for the evaluation, then one per opened and resolved alert (``alert_id``, ``store_id``), at
    most ``ALERT_GROUP_THRESHOLD`` of each: past that a message is grouped too, and the history lists them."""
    logger.info(
        "alerts evaluated at %s: %d opened, %d resolved",
        _iso(t),
        len(added),
        len(resolved),
        extra={
            "opened": len(added),
            "resolved": len(resolved),
            "stores": stores,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
    limit = settings.ALERT_GROUP_THRESHOLD
    for k in range(min(len(added), limit)):
        alert = {"alert_id": str(added.alert_id[k]), "store_id": str(added.store_id[k]), "muted": bool(added.muted[k])}
        logger.info("alert opened", extra=alert)
    for store_id, resolution in list(zip(resolved["store_id"].tolist(), resolved["resolution"].tolist(), strict=True))[
        :limit
    ]:
        alert_id = str(current.alert_id[position[store_id]])
        logger.info("alert resolved: %s", resolution, extra={"alert_id": alert_id, "store_id": str(store_id)})


def _row(alerts: OpenAlerts, k: int) -> dict[str, Any]:
    """Open alert ``k`` as a history row (what lists, views and messages are made from)."""
    return {
        "alert_id": str(alerts.alert_id[k]),
        "store_id": str(alerts.store_id[k]),
        "zone": str(alerts.zone[k]),
        "started_us": int(alerts.started_us[k]),
        "opened_us": int(alerts.opened_us[k]),
        "resolved_us": None,
        "resolution": None,
        "ended_us": None,
        "muted": bool(alerts.muted[k]),
        "ack_by": str(alerts.ack_by[k]),
        "ack_us": int(alerts.ack_us[k]),
        "chunk": str(alerts.chunk[k]),
    }


def _take_in_missed(db: Database, current: OpenAlerts) -> OpenAlerts:
    """Open alerts the document misses (an evaluation that died, or ran while the lock's lease had lapsed),
    taken in so they resolve as usual: one read of the claims (~0.1 s with 5,000 open)."""
    listed = set(current.store_id.tolist())
    return _repair(db, current, [s for s in storage.claimed_store_ids(db) if s not in listed])


def _repair(db: Database, current: OpenAlerts, refused: list[str]) -> OpenAlerts:
    """Stores whose claim was refused have an open alert this document does not list (an evaluation
    that died between its claims and its write): take those alerts in, so they resolve as usual."""
    if not refused:
        return current
    claims = storage.open_alert_claims(db, refused)
    rows = storage.read_alerts(db, list(claims.values()))
    found = [row for row in rows.values() if row.get("resolved_us") is None]
    # A claim whose alert resolved is over; one with no record yet may be another evaluation's between its
    # claim and its record, so it goes only once older than the lock's lease (its holder died).
    storage.release_claims(db, [(s, a) for s, a in claims.items() if a in rows and rows[a].get("resolved_us")])
    storage.release_claims(db, [(s, a) for s, a in claims.items() if a not in rows], unrecorded=True)
    if not found:
        return current
    logger.warning("took %d open alert(s) back into the open-alerts document", len(found))
    columns = ("alert_id", "store_id", "zone", "started_us", "opened_us", "muted", "ack_by", "ack_us", "chunk")
    return current.plus(OpenAlerts.rows(**{name: [row.get(name) for row in found] for name in columns}))


def _states(db: Database, t: pd.Timestamp, current: OpenAlerts) -> pd.DataFrame:
    """The state at ``t`` of every store that can change an alert: a short read for all, longer ones for the
    few it leaves unsettled.

    Those stores are the ones polled in the short read's range and the ones with an open alert: a store
    without either is ``unknown`` at ``t`` in the short read, which neither opens nor resolves anything.
    """
    # As read: with a calendar, the states take the intervals and zones from it, not from the frames.
    tables = store_tables(db)
    open_ids = current.store_id.tolist()

    def states_of(ids: Sequence[str] | None, lookback: pd.Timedelta) -> pd.DataFrame:
        # The short read and the day-long one keep their days (today's, yesterday's) unpacked in this
        # process: the next evaluation reads only the deltas written since (at 10x, yesterday read again
        # cost ~0.6 s a batch). The week's is rare and would push those out.
        keep = lookback <= LOOKBACKS[1]
        # The week's read is for a few stores (long outages): only the parts that hold them, kept per
        # process (a settled day's parts never change), not eight whole days (~2 s at 10x).
        stores = None if keep or ids is None else np.array(sorted(ids), dtype=object)
        polls = storage.read_poll_columns(db, t - lookback, t, keep_whole_days=keep, stores=stores).to_frame()
        if ids is None:
            ids = sorted(set(polls["store_id"].astype(str).unique().tolist()) | set(open_ids))
        return store_states(
            store_ids=ids,
            polls=polls,
            hours=tables.hours,
            special_hours=tables.special,
            zones=tables.zones,
            t=t,
            max_gap_minutes=DEFAULT_MAX_GAP_MINUTES,
            down_after_minutes=settings.ALERT_DOWN_AFTER_MINUTES,
            lookback=lookback,
            calendar=tables.calendar,
        )

    states = states_of(None, LOOKBACKS[0])
    for lookback in LOOKBACKS[1:]:
        has_open = states.index.isin(open_ids)
        state = states["state"]
        # What an unsettled row could change: whether an alert opens (and from when), or where it ended.
        wanted = (state.isin([DOWN, PENDING]) & ~has_open) | (state.isin([UP, CLOSED]) & has_open)
        needed = ~states["settled"] & wanted
        if not needed.any():
            break
        again = states_of(states.index[needed].tolist(), lookback)
        states.loc[again.index, again.columns] = again
    return states


def _muted(store_ids: Sequence[str], zones: pd.Series, t: pd.Timestamp) -> set[str]:
    """The stores among these that a maintenance window mutes at ``t``."""
    if not store_ids:
        return set()
    from loop.services.maintenance import muted_store_ids

    return muted_store_ids(store_ids=list(store_ids), zones=[str(zones.get(s, "")) for s in store_ids], t=t)


def _unmute(open_alerts: OpenAlerts, zones: pd.Series, t: pd.Timestamp) -> list[str]:
    """Muted open alerts whose store no window mutes any more: they are announced now (their ids)."""
    held = open_alerts.store_id[open_alerts.muted].tolist()
    if not held:
        return []
    still = _muted(held, zones, t)
    return [
        str(a) for a, s in zip(open_alerts.alert_id[open_alerts.muted].tolist(), held, strict=True) if s not in still
    ]


def _with_notified(alerts: OpenAlerts, announced: list[str], wall_us: int) -> OpenAlerts:
    if not announced:
        return alerts
    now = np.isin(alerts.alert_id, np.array(announced, dtype=object))
    muted = alerts.muted & ~now
    notified = np.where(now, wall_us, alerts.notified_us)
    return replace(alerts, muted=muted, notified_us=notified)


def _transition_events(*, t: pd.Timestamp, opened: list[dict[str, Any]], resolved: list[dict[str, Any]]) -> list[Event]:
    """One message per transition, or one grouped message when an evaluation changes more than the threshold."""
    if not opened and not resolved:
        return []
    now = utcnow()
    profiles = store_profiles(store_ids=[str(row["store_id"]) for row in opened + resolved])
    opened_data = [_alert_data(row, t, profiles.get(str(row["store_id"]))) for row in opened]
    resolved_data = [_alert_data(row, t, profiles.get(str(row["store_id"]))) for row in resolved]
    threshold = settings.ALERT_GROUP_THRESHOLD
    if len(opened_data) > threshold or len(resolved_data) > threshold:
        return [Event(ALERT_GROUPED, now, {"evaluated_at": _iso(t), "opened": opened_data, "resolved": resolved_data})]
    return [Event(ALERT_OPENED, now, data) for data in opened_data] + [
        Event(ALERT_RESOLVED, now, data) for data in resolved_data
    ]


def _publish(events: list[Event]) -> None:
    if not events:
        return
    from loop.services.deliveries import publish

    try:
        publish(events=events)
    except Exception:  # the transitions are stored; a reminder or a manual retry can still reach people
        logger.exception("could not store %d alert message(s) for delivery", len(events))


# --- reads and the ack -------------------------------------------------------------------------------


def _view(row: dict[str, Any], evaluated: pd.Timestamp | None, profile: Profile | None = None) -> AlertView:
    """A history row (``_row``'s shape) as the API shows it."""
    started = _from_us(row["started_us"])
    opened = _from_us(row["opened_us"])
    ended = _from_us(row.get("ended_us"))
    resolved = _from_us(row.get("resolved_us"))
    assert started is not None and opened is not None
    # Business time: an outage lies inside one business interval, so it is the span's length.
    until = (ended if ended is not None else started) if resolved is not None else (evaluated or started)
    acked = bool(row.get("ack_by"))
    return AlertView(
        alert_id=str(row["alert_id"]),
        store_id=str(row["store_id"]),
        started_at=started,
        opened_at=opened,
        resolved_at=resolved,
        resolution=row.get("resolution"),
        ended_at=ended,
        acknowledged_by=str(row["ack_by"]) if acked else None,
        acknowledged_at=_from_us(row["ack_us"]) if acked else None,
        down_minutes=round(max(0.0, (until - started).total_seconds() / 60), 2),
        muted=bool(row.get("muted", False)),
        zone=str(row.get("zone", "")),
        name=None if profile is None else profile.name,
        brand=None if profile is None else profile.brand,
        region=None if profile is None else profile.region,
    )


def _alert_data(row: dict[str, Any], evaluated: pd.Timestamp, profile: Profile | None) -> dict[str, Any]:
    """An alert as event data: its fields in UTC, local times beside them in the store's zone, and its name."""
    view = _view(row, evaluated, profile)
    data: dict[str, Any] = {
        "alert_id": view.alert_id,
        "store_id": view.store_id,
        "name": view.name,
        "brand": view.brand,
        "region": view.region,
        "timezone": view.zone,
        "down_minutes": view.down_minutes,
        "resolution": view.resolution,
        "acknowledged_by": view.acknowledged_by,
        "acknowledged_at": _iso(view.acknowledged_at),
        "muted": view.muted,
    }
    for name in ("started_at", "opened_at", "resolved_at", "ended_at"):
        value = getattr(view, name)
        data[name] = _iso(value)
        data[f"{name}_local"] = None if value is None or not view.zone else _local_text(value, view.zone)
    return data


@lru_cache(maxsize=1024)
def _zone_info(zone: str) -> ZoneInfo:
    return ZoneInfo(zone)


def _local_text(value: pd.Timestamp, zone: str) -> str:
    """``value.tz_convert(zone).isoformat()`` through the standard library (the same text, ~5x faster: an
    evaluation at 10x describes thousands of alerts)."""
    return value.to_pydatetime().astimezone(_zone_info(zone)).isoformat()


def list_alerts(
    *,
    state: str = "open",
    store_id: str | None = None,
    region: str | None = None,
    brand: str | None = None,
    page: int = 1,
    page_size: int = 50,
    order: str = "newest",
    resolved_within_hours: int | None = None,
) -> AlertList:
    """Alerts newest first: the open ones from the open-alerts document alone, history from its day chunks.

    ``region``/``brand`` keep the alerts of stores the directory places there (``services.directory``).
    ``order="longest"`` (open alerts only): longest down first, i.e. earliest ``started_at``, ties by id.
    ``resolved_within_hours`` (resolved alerts only): those resolved at most that long before the newest
    evaluation's ``t`` (the data clock, not the wall clock)."""
    if state not in STATES:
        raise InvalidInput("state", f"must be one of {', '.join(STATES)}")
    if order not in ORDERS:
        raise InvalidInput("order", f"must be one of {', '.join(ORDERS)}")
    if order == "longest" and state != "open":
        raise InvalidInput("order", "longest applies to open alerts only (state=open)")
    if resolved_within_hours is not None and state != "resolved":
        raise InvalidInput("resolved_within_hours", "applies to resolved alerts only (state=resolved)")
    db = storage.get_db()
    current = storage.read_open_alerts(db)
    evaluated = None if current.evaluated_us is None else us_to_ts(int(current.evaluated_us))
    skip = page_skip(page=page, page_size=page_size)
    stores = store_ids_matching(region=region, brand=brand)
    if store_id is not None:
        stores = {store_id} if stores is None or store_id in stores else set()
    if state == "open":
        rows = (
            current
            if stores is None
            else current.take(np.isin(current.store_id, np.array(sorted(stores), dtype=object)))
        )
        if order == "longest":
            sort = np.lexsort((rows.alert_id.astype(str), rows.started_us))
        else:
            sort = np.lexsort((rows.alert_id.astype(str), rows.opened_us))[::-1]
        chosen = [_row(rows, int(k)) for k in sort[skip : skip + page_size]]
        total = len(rows)
    else:
        resolved_after_us = None
        if resolved_within_hours is not None:
            # Before any evaluation nothing has resolved: 0 keeps the filter harmless.
            resolved_after_us = (current.evaluated_us or 0) - resolved_within_hours * 3_600_000_000
        chosen, total = _history_page(
            db,
            resolved=True if state == "resolved" else None,
            stores=stores,
            skip=skip,
            limit=page_size,
            resolved_after_us=resolved_after_us,
        )
    profiles = store_profiles(store_ids=[str(row["store_id"]) for row in chosen])
    views = [_view(row, evaluated, profiles.get(str(row["store_id"]))) for row in chosen]
    return AlertList(
        page=Page(results=views, count=total, page=page, page_size=page_size),
        evaluated_at=evaluated,
        open_count=len(current),
        open_unacknowledged=int(np.count_nonzero(current.ack_by == "")),
    )


def _history_page(
    db: Database,
    *,
    resolved: bool | None,
    stores: set[str] | None,
    skip: int,
    limit: int,
    resolved_after_us: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of history rows newest first, and how many match. Without a filter the chunks' counts give the
    total, so only the chunks up to the page are read. ``resolved_after_us``: resolved at or after it."""
    filtered = stores is not None or resolved_after_us is not None
    page: list[dict[str, Any]] = []
    total = 0
    for matching, rows in storage.alert_history(db, resolved=resolved):
        if not filtered and total >= skip + limit:
            total += matching
            continue
        kept = [
            row
            for row in rows
            if (resolved is None or (row.get("resolved_us") is not None) == resolved)
            and (stores is None or row["store_id"] in stores)
            and (resolved_after_us is None or (row.get("resolved_us") or -1) >= resolved_after_us)
        ]
        kept.sort(key=lambda row: (row["opened_us"], row["alert_id"]), reverse=True)
        page += kept[max(0, skip - total) : max(0, skip + limit - total)]
        total += len(kept)
    return page[:limit], total


def store_alert_states(*, store_id: str | None = None) -> StoreAlertStates:
    """Every polled store's (or one store's) dashboard state, from three small reads: the poll range, the
    catalog (each store's last poll) and the open-alerts document; no poll is read. A store without polls
    is not listed (an unknown ``store_id`` gives no row)."""
    db = storage.get_db()
    newest = storage.poll_stamp(db).newest
    catalog = storage.read_store_catalog(db, store_id)
    current = storage.read_open_alerts(db)
    evaluated = None if current.evaluated_us is None else us_to_ts(int(current.evaluated_us))
    open_by_store = {
        str(s): (str(a), int(u))
        for s, a, u in zip(
            current.store_id.tolist(), current.alert_id.tolist(), current.started_us.tolist(), strict=True
        )
    }
    ids = catalog.store_ids.astype(str).tolist()
    last_us = np.asarray(catalog.last_us, dtype=np.int64)
    newest_us = None if newest is None else int(newest.value // 1000)
    states = feed_states(
        last_poll_us=last_us,
        newest_us=newest_us,
        has_open_alert=np.array([s in open_by_store for s in ids], dtype=bool),
        max_gap_minutes=DEFAULT_MAX_GAP_MINUTES,
    )
    ages = (np.zeros(len(ids)) if newest_us is None else (newest_us - last_us) / 60_000_000).round(2).tolist()
    results = []
    for k, sid in enumerate(ids):
        alert = open_by_store.get(sid)
        results.append(
            StoreAlertState(
                store_id=sid,
                state=str(states[k]),
                last_poll=us_to_ts(int(last_us[k])),
                last_poll_age_minutes=float(ages[k]),
                alert_id=None if alert is None else alert[0],
                down_since=None if alert is None else us_to_ts(alert[1]),
            )
        )
    return StoreAlertStates(
        results=results, newest_poll=newest, evaluated_at=evaluated, max_gap_minutes=DEFAULT_MAX_GAP_MINUTES
    )


def get_alert(*, alert_id: str) -> AlertView:
    db = storage.get_db()
    row = storage.read_alert(db, alert_id)
    if row is None:
        raise NotFound(f"No alert {alert_id!r}.")
    if not row.get("ack_by"):  # an ack not copied into the history yet (the lock was busy)
        ack = storage.get_ack(db, alert_id)
        if ack is not None:
            row = row | {"ack_by": str(ack["by"]), "ack_us": ts_to_us(ack["at"])}
    current = storage.read_open_alerts(db)
    evaluated = None if current.evaluated_us is None else us_to_ts(int(current.evaluated_us))
    profile = store_profiles(store_ids=[str(row["store_id"])]).get(str(row["store_id"]))
    return _view(row, evaluated, profile)


# An ack waits this long for a running evaluation to let it copy the ack into the open-alerts document and
# the history; if that is not enough, the next reminder sweep (every minute) copies it.
ACK_LOCK_WAIT_SECONDS = 20.0


def acknowledge_alert(*, alert_id: str, by: str, note: str = "") -> AlertView:
    """Acknowledge an open alert: no reminders for it until it resolves. A second ack changes nothing."""
    db = storage.get_db()
    row = storage.read_alert(db, alert_id)
    if row is None:
        raise NotFound(f"No alert {alert_id!r}.")
    if storage.get_ack(db, alert_id) is None:
        if row.get("resolved_us") is not None:
            raise Conflict(f"Alert {alert_id!r} is resolved already: there is nothing to acknowledge.")
        storage.add_ack(db, alert_id, by=by, at=utcnow(), note=note)
        with storage.evaluation_lock(db, wait=ACK_LOCK_WAIT_SECONDS) as held:
            if held:
                ack = storage.get_ack(db, alert_id)
                assert ack is not None
                _copy_acks(db, storage.read_open_alerts(db), {alert_id: ack})
            else:
                storage.add_pending_ack(db, alert_id)
    return get_alert(alert_id=alert_id)


def _copy_acks(db: Database, current: OpenAlerts, acks: dict[str, dict[str, Any]]) -> OpenAlerts:
    """Copy acks into the open-alerts document and the history (callers hold the evaluation lock)."""
    if not acks:
        return current
    ack_by, ack_us = current.ack_by.copy(), current.ack_us.copy()
    changes = []
    for k, alert_id in enumerate(current.alert_id.tolist()):
        ack = acks.get(alert_id)
        if ack is not None and ack_by[k] == "":
            ack_by[k], ack_us[k] = str(ack["by"]), ts_to_us(ack["at"])
            changes.append((str(current.chunk[k]), alert_id, {"ack_by": ack_by[k], "ack_us": int(ack_us[k])}))
    if not changes:
        return current
    storage.record_changes(db, changes)
    updated = replace(current, ack_by=ack_by, ack_us=ack_us)
    storage.write_open_alerts(db, updated)
    return updated


def remove_old_alerts(*, retention_days: int | None = None, db: Database | None = None) -> int:
    """Beat (hourly): remove alerts opened more than ALERT_RETENTION_DAYS before the data clock (the newest
    evaluation's ``t``, so a replayed export keeps its history), a whole day at a time, never a day that still
    has an open alert. ``0`` keeps everything. Returns the alerts removed."""
    days = settings.ALERT_RETENTION_DAYS if retention_days is None else retention_days
    db = storage.get_db() if db is None else db
    if days <= 0:
        return 0
    with storage.evaluation_lock(db, wait=30.0) as held:
        if not held:
            return 0
        evaluated = storage.read_open_alerts(db).evaluated_us
        if evaluated is None:
            return 0
        cutoff = (us_to_ts(int(evaluated)) - pd.Timedelta(days=days)).date()
        return storage.remove_history_before(db, str(cutoff))


# --- the beat's sweeps (wall clock) -------------------------------------------------------------------


def send_reminders(*, db: Database | None = None) -> int:
    """Re-notify open, unacknowledged, unmuted alerts every ALERT_REPEAT_MINUTES of wall clock; and tell once
    when no poll was written for INGEST_STALE_MINUTES. Returns the messages handed over."""
    db = storage.get_db() if db is None else db
    with storage.evaluation_lock(db, wait=5.0) as held:
        if not held:
            return 0
        # Also while no poll arrives (evaluations skip then): open alerts the document misses are taken in,
        # and acks an ack request could not copy in (the lock was busy) are copied now.
        current = storage.read_open_alerts(db)
        repaired = _take_in_missed(db, current)
        if len(repaired) != len(current):
            storage.write_open_alerts(db, repaired)
        current = _copy_acks(db, repaired, storage.take_pending_acks(db))
        wall = time.time()
        events: list[Event] = []
        state = dict(current.state)
        written = storage.poll_stamp(db).written_at
        if written is not None and not state.get("stale") and wall - written > settings.INGEST_STALE_MINUTES * 60:
            state["stale"] = True
            events.append(
                Event(INGESTION_STALE, utcnow(), {"last_write_at": _iso(pd.Timestamp(written, unit="s", tz="UTC"))})
            )
        due_us = int((wall - settings.ALERT_REPEAT_MINUTES * 60) * 1_000_000)
        due = ~current.muted & (current.notified_us <= due_us) & (current.ack_by == "")
        if due.any():
            evaluated = us_to_ts(int(current.evaluated_us or 0))
            rows = [_row(current, int(k)) for k in np.flatnonzero(due)]
            profiles = store_profiles(store_ids=[row["store_id"] for row in rows])
            events += [
                Event(ALERT_REMINDER, utcnow(), _alert_data(r, evaluated, profiles.get(r["store_id"]))) for r in rows
            ]
        if not events:
            return 0
        notified = np.where(due, int(wall * 1_000_000), current.notified_us)
        storage.write_open_alerts(db, replace(current, notified_us=notified, state=state))
    _publish(events)
    return len(events)


def _from_us(value: Any) -> pd.Timestamp | None:
    """A record's instant (int64 UTC microseconds: BSON dates keep only milliseconds) as a Timestamp."""
    return None if value is None else us_to_ts(int(value))


def _iso(value: pd.Timestamp | None) -> str | None:
    return None if value is None else utc_text(value)
