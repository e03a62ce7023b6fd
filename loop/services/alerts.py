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
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from pymongo.database import Database

from loop import queue, storage
from loop.alert_rules import CLOSED, DOWN, PENDING, UP, alert_changes, store_states
from loop.errors import Conflict, InvalidInput, NotFound
from loop.events import (
    ALERT_GROUPED,
    ALERT_OPENED,
    ALERT_REMINDER,
    ALERT_RESOLVED,
    INGESTION_RESUMED,
    INGESTION_STALE,
    Event,
)
from loop.ids import new_id
from loop.rules import DEFAULT_MAX_GAP_MINUTES, REPORT_WEEK
from loop.services.directory import Profile, store_ids_matching, store_profiles
from loop.services.paging import Page, page_skip
from loop.storage.alerts import OpenAlerts
from loop.timeutil import us_to_ts, utcnow

logger = logging.getLogger(__name__)

# How far back an evaluation reads: two hours for every store (an outage that began after an active poll
# of the last two hours is settled), then a day and the week for the few it leaves unsettled (``alert_rules``).
LOOKBACKS = (pd.Timedelta(hours=2), pd.Timedelta(hours=26), REPORT_WEEK)
# An evaluation that finds the data moved while it ran runs again, at most this many times in a row.
MAX_ROUNDS = 20
STATES = ("open", "resolved", "all")


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


def evaluation_line(result: EvaluationResult | None) -> str:
    """One line for a command's output: what the evaluation after a load did."""
    if result is None:
        return "alerts: another evaluation is running; it covers this load"
    if result.t is None:
        return "alerts: no polls stored, nothing to evaluate"
    return f"alerts: evaluated at {_iso(result.t)}: {result.opened} opened, {result.resolved} resolved"


def request_evaluation() -> None:
    """After a write of polls: ask for an evaluation (best effort; the beat's evaluation is the safety net)."""
    try:
        queue.enqueue_alert_evaluation()
    except Exception:
        logger.exception("could not ask for an alert evaluation")


def evaluate_alerts(*, db: Database | None = None) -> EvaluationResult | None:
    """Evaluate at the newest poll, again while the data moves; None when another evaluation holds the lock
    (it re-checks the data after releasing it, so nothing is left unevaluated)."""
    db = storage.get_db() if db is None else db
    result: EvaluationResult | None = None
    for _ in range(MAX_ROUNDS):
        with storage.evaluation_lock(db) as held:
            if not held:
                return result
            result = _evaluate(db)
        if storage.poll_stamp(db).stamp == storage.read_open_alerts(db).stamp:
            return result
    return result


def _evaluate(db: Database) -> EvaluationResult:
    began = time.perf_counter()
    stamp = storage.poll_stamp(db)
    current = storage.read_open_alerts(db)
    if stamp.newest is None or current.stamp == stamp.stamp:
        return EvaluationResult(None if stamp.newest is None else stamp.newest, 0, 0, 0.0, skipped=True)
    t = stamp.newest
    # Claims the document misses (an evaluation at once wrote it last without them): take them in.
    listed = set(current.store_id.tolist())
    current = _repair(db, current, [s for s in storage.claimed_store_ids(db) if s not in listed])
    states = _states(db, t, current)
    changes = alert_changes(states=states, open_store_ids=set(current.store_id.tolist()), t=t)
    wall_us = int(time.time() * 1_000_000)
    t_us = int(t.value // 1000)
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
    records = [
        {
            "_id": alert_id,
            "store_id": store_id,
            "zone": str(zones.get(store_id, "")),
            "started_us": int(start),
            "opened_us": t_us,
            "resolved_us": None,
            "resolution": None,
            "ended_us": None,
            "muted": store_id in muted_now,
        }
        for alert_id, store_id, start in zip(new_ids, opened["store_id"].tolist(), started_us.tolist(), strict=True)
    ]
    storage.insert_alert_records(db, records)
    muted = np.array([r["muted"] for r in records], dtype=bool)
    added = OpenAlerts.rows(
        alert_id=new_ids,
        store_id=opened["store_id"].to_numpy(dtype=object),
        zone=[r["zone"] for r in records],
        started_us=started_us,
        opened_us=np.full(len(new_ids), t_us, dtype=np.int64),
        muted=muted,
        notified_us=np.where(muted, 0, wall_us),
    )

    # Resolved: record, then release the stores' claims.
    resolved = changes.resolved
    position = {store_id: k for k, store_id in enumerate(current.store_id.tolist())}
    gone = np.zeros(len(current), dtype=bool)
    resolutions: list[tuple[str, dict[str, Any]]] = []
    resolved_views: list[dict[str, Any]] = []
    for store_id, resolution, ended in zip(
        resolved["store_id"].tolist(), resolved["resolution"].tolist(), resolved["ended_at"].tolist(), strict=True
    ):
        k = position[store_id]
        gone[k] = True
        ended_us = None if pd.isna(ended) else _us(ended)
        fields = {"resolved_us": t_us, "resolution": resolution, "ended_us": ended_us}
        resolutions.append((str(current.alert_id[k]), fields))
        # Nothing is sent for an alert that opened muted (nobody was told) or resolves inside a window.
        if not current.muted[k] and store_id not in muted_now:
            resolved_views.append({"alert_id": str(current.alert_id[k]), **fields})
    storage.resolve_alert_records(db, resolutions)
    storage.release_open_alerts(db, [store_id for store_id in resolved["store_id"].tolist()])

    still_open = current.take(~gone)
    # A window that ended while its alert stayed open: tell now what was held back.
    unmuted = _unmute(still_open, zones, t)
    result = still_open.plus(added)
    result = _with_notified(result, unmuted, wall_us)
    events = _transition_events(
        db,
        t=t,
        opened_ids=[r["_id"] for r in records if not r["muted"]] + unmuted,
        resolved_ids=[v["alert_id"] for v in resolved_views],
    )
    state = dict(current.state)
    if state.get("stale"):
        state["stale"] = False
        events.append(Event(INGESTION_RESUMED, utcnow(), {"newest_poll": _iso(t), "evaluated_at": _iso(t)}))
    seconds = time.perf_counter() - began
    log = current.evaluations + [
        {
            "t": t.to_pydatetime(),
            "at": utcnow(),
            "opened": len(records),
            "resolved": len(resolutions),
            "stores": len(states),
            "seconds": round(seconds, 3),
        }
    ]
    storage.write_open_alerts(db, replace(result, evaluated_us=t_us, stamp=stamp.stamp, evaluations=log, state=state))
    _publish(events)
    return EvaluationResult(t, len(records), len(resolutions), seconds)


def _repair(db: Database, current: OpenAlerts, refused: list[str]) -> OpenAlerts:
    """Stores whose claim was refused have an open alert this document does not list (an evaluation
    that died between its claims and its write): take those alerts in, so they resolve as usual."""
    if not refused:
        return current
    claims = storage.open_alert_claims(db, refused)
    records = storage.alert_records(db, list(claims.values()))
    found = [records[a] for a in claims.values() if a in records and records[a].get("resolved_us") is None]
    found_ids = {str(r["_id"]) for r in found}
    storage.release_claims(db, [(s, a) for s, a in claims.items() if a in records and a not in found_ids])
    # No record: maybe another evaluation's claim not recorded yet; dropped once it is old (that one died).
    storage.release_claims(db, [(s, a) for s, a in claims.items() if a not in records], unrecorded=True)
    if not found:
        return current
    logger.warning("took %d open alert(s) back into the open-alerts document", len(found))
    acks = storage.read_acks(db, [str(r["_id"]) for r in found])
    return current.plus(
        OpenAlerts.rows(
            alert_id=[str(r["_id"]) for r in found],
            store_id=[str(r["store_id"]) for r in found],
            zone=[str(r.get("zone", "")) for r in found],
            started_us=[int(r["started_us"]) for r in found],
            opened_us=[int(r["opened_us"]) for r in found],
            muted=[bool(r.get("muted")) for r in found],
            ack_by=[str(acks[str(r["_id"])]["by"]) if str(r["_id"]) in acks else "" for r in found],
            ack_us=[_us(acks[str(r["_id"])]["at"]) if str(r["_id"]) in acks else 0 for r in found],
        )
    )


def _us(value: Any) -> int:
    stamp = _ts(value)
    assert stamp is not None
    return int(stamp.value // 1000)


def _states(db: Database, t: pd.Timestamp, current: OpenAlerts) -> pd.DataFrame:
    """Every polled store's state at ``t``: a short read for all, longer ones for the few it leaves unsettled."""
    store_ids = storage.store_ids_polled_through(db, t)
    hours, special, zones = storage.read_hours(db), storage.read_special_hours(db), storage.read_zones(db)
    open_ids = current.store_id.tolist()

    def states_of(ids: Sequence[str], lookback: pd.Timedelta) -> pd.DataFrame:
        return store_states(
            store_ids=ids,
            polls=storage.read_polls(db, t - lookback, t),
            hours=hours,
            special_hours=special,
            zones=zones,
            t=t,
            max_gap_minutes=DEFAULT_MAX_GAP_MINUTES,
            down_after_minutes=settings.ALERT_DOWN_AFTER_MINUTES,
            lookback=lookback,
        )

    states = states_of(store_ids, LOOKBACKS[0])
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


def _transition_events(db: Database, *, t: pd.Timestamp, opened_ids: list[str], resolved_ids: list[str]) -> list[Event]:
    """One message per transition, or one grouped message when an evaluation changes more than the threshold."""
    if not opened_ids and not resolved_ids:
        return []
    records = storage.alert_records(db, opened_ids + resolved_ids)
    acks = storage.read_acks(db, opened_ids + resolved_ids)
    now = utcnow()
    profiles = store_profiles(store_ids=[str(r["store_id"]) for r in records.values()])

    def data(alert_id: str) -> dict[str, Any]:
        record = records[alert_id]
        return _alert_data(record, acks.get(alert_id), t, profiles.get(str(record["store_id"])))

    opened = [data(a) for a in opened_ids if a in records]
    resolved = [data(a) for a in resolved_ids if a in records]
    threshold = settings.ALERT_GROUP_THRESHOLD
    if len(opened) > threshold or len(resolved) > threshold:
        return [Event(ALERT_GROUPED, now, {"evaluated_at": _iso(t), "opened": opened, "resolved": resolved})]
    return [Event(ALERT_OPENED, now, data) for data in opened] + [Event(ALERT_RESOLVED, now, data) for data in resolved]


def _publish(events: list[Event]) -> None:
    if not events:
        return
    from loop.services.deliveries import publish

    try:
        publish(events=events)
    except Exception:  # the transitions are stored; a reminder or a manual retry can still reach people
        logger.exception("could not store %d alert message(s) for delivery", len(events))


# --- reads and the ack -------------------------------------------------------------------------------


def _view(
    record: dict[str, Any], ack: dict[str, Any] | None, evaluated: pd.Timestamp | None, profile: Profile | None = None
) -> AlertView:
    started = _from_us(record["started_us"])
    ended = _from_us(record.get("ended_us"))
    resolved = _from_us(record.get("resolved_us"))
    assert started is not None
    # Business time: an outage lies inside one business interval, so it is the span's length.
    until = (ended if ended is not None else started) if resolved is not None else (evaluated or started)
    down = max(0.0, (until - started).total_seconds() / 60)
    opened = _from_us(record["opened_us"])
    assert opened is not None
    return AlertView(
        alert_id=str(record["_id"]),
        store_id=str(record["store_id"]),
        started_at=started,
        opened_at=opened,
        resolved_at=resolved,
        resolution=record.get("resolution"),
        ended_at=ended,
        acknowledged_by=None if ack is None else str(ack["by"]),
        acknowledged_at=None if ack is None else _ts(ack["at"]),
        down_minutes=round(down, 2),
        muted=bool(record.get("muted", False)),
        zone=str(record.get("zone", "")),
        name=None if profile is None else profile.name,
        brand=None if profile is None else profile.brand,
        region=None if profile is None else profile.region,
    )


def _alert_data(
    record: dict[str, Any], ack: dict[str, Any] | None, evaluated: pd.Timestamp, profile: Profile | None
) -> dict[str, Any]:
    """An alert as event data: its fields in UTC, local times beside them in the store's zone, and its name."""
    view = _view(record, ack, evaluated, profile)
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
        data[f"{name}_local"] = None if value is None or not view.zone else value.tz_convert(view.zone).isoformat()
    return data


def list_alerts(
    *,
    state: str = "open",
    store_id: str | None = None,
    region: str | None = None,
    brand: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> AlertList:
    """Alerts newest first: the open ones from the open-alerts document alone, history from the records.

    ``region``/``brand`` keep the alerts of stores the directory places there (``services.directory``)."""
    if state not in STATES:
        raise InvalidInput("state", f"must be one of {', '.join(STATES)}")
    db = storage.get_db()
    current = storage.read_open_alerts(db)
    evaluated = None if current.evaluated_us is None else us_to_ts(int(current.evaluated_us))
    skip = page_skip(page=page, page_size=page_size)
    matching = store_ids_matching(region=region, brand=brand)
    if state == "open":
        rows = current if store_id is None else current.take(current.store_id == store_id)
        if matching is not None:
            rows = rows.take(np.isin(rows.store_id, np.array(sorted(matching), dtype=object)))
        order = np.lexsort((rows.alert_id.astype(str), rows.opened_us))[::-1][skip : skip + page_size]
        ordered = [_open_record(rows, int(k)) for k in order]
        acks = {r["_id"]: r["ack"] for r in ordered if r["ack"] is not None}
        total = len(rows)
    else:
        if store_id is not None and matching is not None and store_id not in matching:
            matching = set()
        stores = [store_id] if store_id is not None else None if matching is None else sorted(matching)
        ordered, total = storage.list_alert_records(
            db, resolved=True if state == "resolved" else None, store_ids=stores, skip=skip, limit=page_size
        )
        acks = storage.read_acks(db, [str(r["_id"]) for r in ordered])
    profiles = store_profiles(store_ids=[str(r["store_id"]) for r in ordered])
    views = [_view(r, acks.get(str(r["_id"])), evaluated, profiles.get(str(r["store_id"]))) for r in ordered]
    return AlertList(
        page=Page(results=views, count=total, page=page, page_size=page_size),
        evaluated_at=evaluated,
        open_count=len(current),
        open_unacknowledged=int(np.count_nonzero(current.ack_by == "")),
    )


def _open_record(rows: OpenAlerts, k: int) -> dict[str, Any]:
    """Row ``k`` of the open-alerts document in the shape of an alert record (with its ack, if any)."""
    ack = None if rows.ack_by[k] == "" else {"by": str(rows.ack_by[k]), "at": us_to_ts(int(rows.ack_us[k]))}
    return {
        "_id": str(rows.alert_id[k]),
        "store_id": str(rows.store_id[k]),
        "zone": str(rows.zone[k]),
        "started_us": int(rows.started_us[k]),
        "opened_us": int(rows.opened_us[k]),
        "resolved_us": None,
        "resolution": None,
        "ended_us": None,
        "muted": bool(rows.muted[k]),
        "ack": ack,
    }


def get_alert(*, alert_id: str) -> AlertView:
    db = storage.get_db()
    record = storage.get_alert_record(db, alert_id)
    if record is None:
        raise NotFound(f"No alert {alert_id!r}.")
    current = storage.read_open_alerts(db)
    evaluated = None if current.evaluated_us is None else us_to_ts(int(current.evaluated_us))
    profile = store_profiles(store_ids=[str(record["store_id"])]).get(str(record["store_id"]))
    return _view(record, storage.read_acks(db, [alert_id]).get(alert_id), evaluated, profile)


# An ack waits this long for a running evaluation to copy it into the open-alerts document; if that is
# not enough, the next reminder sweep (every minute) copies it.
ACK_LOCK_WAIT_SECONDS = 20.0


def acknowledge_alert(*, alert_id: str, by: str, note: str = "") -> AlertView:
    """Acknowledge an open alert: no reminders for it until it resolves. A second ack changes nothing."""
    db = storage.get_db()
    record = storage.get_alert_record(db, alert_id)
    if record is None:
        raise NotFound(f"No alert {alert_id!r}.")
    existing = storage.read_acks(db, [alert_id]).get(alert_id)
    if existing is None:
        if record.get("resolved_us") is not None:
            raise Conflict(f"Alert {alert_id!r} is resolved already: there is nothing to acknowledge.")
        storage.add_ack(db, alert_id, by=by, at=utcnow(), note=note)
        with storage.evaluation_lock(db, wait=ACK_LOCK_WAIT_SECONDS) as held:
            if held:
                current = storage.read_open_alerts(db)
                storage.write_open_alerts(db, _with_acks(db, current, [alert_id]))
    return get_alert(alert_id=alert_id)


def _with_acks(db: Database, alerts: OpenAlerts, alert_ids: Sequence[str]) -> OpenAlerts:
    """The open alerts with the acks of ``alert_ids`` copied in (the ack documents are the truth)."""
    acks = storage.read_acks(db, list(alert_ids))
    if not acks:
        return alerts
    ack_by, ack_us = alerts.ack_by.copy(), alerts.ack_us.copy()
    for k, alert_id in enumerate(alerts.alert_id.tolist()):
        if alert_id in acks and ack_by[k] == "":
            ack_by[k] = str(acks[alert_id]["by"])
            ack_us[k] = _us(acks[alert_id]["at"])
    return replace(alerts, ack_by=ack_by, ack_us=ack_us)


# --- the beat's sweeps (wall clock) -------------------------------------------------------------------


def send_reminders(*, db: Database | None = None) -> int:
    """Re-notify open, unacknowledged, unmuted alerts every ALERT_REPEAT_MINUTES of wall clock; and tell once
    when no poll was written for INGEST_STALE_MINUTES. Returns the messages handed over."""
    db = storage.get_db() if db is None else db
    with storage.evaluation_lock(db, wait=5.0) as held:
        if not held:
            return 0
        before = storage.read_open_alerts(db)
        # Acks an ack request could not copy in (the lock was busy) are copied now.
        current = _with_acks(db, before, before.alert_id[before.ack_by == ""].tolist())
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
        reminded = current.alert_id[due].tolist()
        if reminded:
            evaluated = pd.Timestamp(int(current.evaluated_us or 0), unit="us", tz="UTC")
            records = storage.alert_records(db, reminded)
            profiles = store_profiles(store_ids=[str(r["store_id"]) for r in records.values()])
            events += [
                Event(ALERT_REMINDER, utcnow(), _alert_data(r, None, evaluated, profiles.get(str(r["store_id"]))))
                for a in reminded
                if (r := records.get(a)) is not None
            ]
        notified = np.where(due, int(wall * 1_000_000), current.notified_us)
        if events or not np.array_equal(current.ack_by, before.ack_by):
            storage.write_open_alerts(db, replace(current, notified_us=notified, state=state))
    _publish(events)
    return len(events)


def _from_us(value: Any) -> pd.Timestamp | None:
    """A record's instant (int64 UTC microseconds: BSON dates keep only milliseconds) as a Timestamp."""
    return None if value is None else us_to_ts(int(value))


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _iso(value: pd.Timestamp | None) -> str | None:
    if value is None:
        return None
    return value.tz_convert("UTC").isoformat().replace("+00:00", "Z")
