"""Events sent to alert channels: their types, their body, which channel gets which, and their texts.

Pure (no Django, no MongoDB). The alert evaluation builds ``Event`` values and hands them to
``loop.services.deliveries.publish``; the texts below are what Slack and e-mail channels show.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

ALERT_OPENED = "alert.opened"
ALERT_RESOLVED = "alert.resolved"
ALERT_REMINDER = "alert.reminder"
ALERT_GROUPED = "alert.grouped"
INGESTION_STALE = "ingestion.stale"
INGESTION_RESUMED = "ingestion.resumed"
# Sent by POST /channels/<id>/test/ to that channel only: never a subscription.
CHANNEL_TEST = "channel.test"
# A scheduled report's run (loop.services.schedules): sent to the channels its schedule names, never by
# subscription.
REPORT_COMPLETED = "report.completed"
REPORT_FAILED = "report.failed"
REPORT_EVENTS: tuple[str, ...] = (REPORT_COMPLETED, REPORT_FAILED)

# What a channel may subscribe to (its ``events``; all of them by default), in this order.
SUBSCRIBABLE_EVENTS: tuple[str, ...] = (
    ALERT_OPENED,
    ALERT_RESOLVED,
    ALERT_REMINDER,
    ALERT_GROUPED,
    INGESTION_STALE,
    INGESTION_RESUMED,
)
EVENT_TYPES: tuple[str, ...] = (*SUBSCRIBABLE_EVENTS, CHANNEL_TEST, *REPORT_EVENTS)


@dataclass(frozen=True)
class Event:
    """Something that happened; ``timestamp`` is an aware UTC instant (naive ones are read as UTC)."""

    type: str
    timestamp: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}; one of {', '.join(EVENT_TYPES)}")


def utc_text(instant: dt.datetime) -> str:
    """ISO 8601 UTC ending in Z (whole seconds unless there are microseconds)."""
    utc = instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant.astimezone(dt.UTC)
    return utc.replace(tzinfo=None).isoformat() + "Z"


def event_body(event: Event) -> dict[str, Any]:
    """The JSON body every channel's message is made from: ``{"type", "timestamp", "data"}``."""
    return {"type": event.type, "timestamp": utc_text(event.timestamp), "data": event.data}


def event_json(event: Event) -> str:
    """The exact text a webhook receives (stored once: every retry sends the same bytes)."""
    return json.dumps(event_body(event), separators=(",", ":"), sort_keys=True, default=str)


def event_from_json(text: str) -> Event:
    body = json.loads(text)
    stamp = dt.datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    return Event(type=body["type"], timestamp=stamp, data=body["data"])


def event_for_channel(event: Event, subscribed: Collection[str]) -> Event | None:
    """What a channel subscribed to ``subscribed`` receives of ``event``, or None.

    A grouped event (``data = {"opened": [...], "resolved": [...]}``) also reaches channels subscribed only
    to ``alert.opened`` / ``alert.resolved``: they get the lists they subscribe to (the others emptied), and
    nothing when both end up empty. A channel subscribed to ``alert.grouped`` gets it whole.
    """
    if event.type == CHANNEL_TEST or event.type in REPORT_EVENTS:
        return None  # sent to named channels only: the tested one, a schedule's
    if event.type != ALERT_GROUPED:
        return event if event.type in subscribed else None
    if ALERT_GROUPED in subscribed:
        return event
    opened = list(event.data.get("opened") or []) if ALERT_OPENED in subscribed else []
    resolved = list(event.data.get("resolved") or []) if ALERT_RESOLVED in subscribed else []
    if not opened and not resolved:
        return None
    return Event(
        type=event.type, timestamp=event.timestamp, data={**event.data, "opened": opened, "resolved": resolved}
    )


def _alert_line(alert: Any) -> str:
    if not isinstance(alert, Mapping):
        return str(alert)
    what = alert.get("rule") or alert.get("kind") or alert.get("alert_id") or "alert"
    where = alert.get("store_id")
    return f"{what} (store {where})" if where else str(what)


def _report_text(event: Event) -> str:
    """A scheduled report's summary: what, the worst stores, the link (Slack and e-mail)."""
    data = event.data
    name = data.get("schedule_name") or data.get("schedule_id") or "?"
    note = f" ({data['data_note']})" if data.get("data_note") else ""
    if event.type == REPORT_FAILED:
        return f'Scheduled report "{name}" failed for {data.get("slot")}: {data.get("error") or "unknown error"}{note}'
    when = f" of {data['slot_local']}" if data.get("slot_local") else ""
    lines = [f'Scheduled report "{name}"{when}: {data.get("rows")} store(s), data up to {data.get("now")}{note}']
    worst = list(data.get("worst") or [])
    if worst:
        lines.append(f"Worst {len(worst)} by uptime over the last week:")
    for row in worst:
        label = f"{row.get('store_id')}" + (f" ({row['name']})" if row.get("name") else "")
        pct = row.get("uptime_pct_last_week")
        shown = "no business hours" if pct is None else f"{pct:.2f}% up, {row.get('downtime_last_week')} h down"
        lines.append(f"- {label}: {shown}")
    if data.get("download_url"):
        lines.append(f"CSV: {data['download_url']} (link valid until {data.get('download_expires_at')})")
    return "\n".join(lines)


def summary_text(event: Event) -> str:
    """A readable line (or a few) for Slack and for an e-mail's body."""
    data = event.data
    stamp = utc_text(event.timestamp)
    if event.type in REPORT_EVENTS:
        return _report_text(event)
    if event.type == ALERT_GROUPED:
        opened, resolved = list(data.get("opened") or []), list(data.get("resolved") or [])
        lines = [f"{len(opened)} alert(s) opened, {len(resolved)} resolved at {stamp}"]
        lines += [f"opened: {_alert_line(alert)}" for alert in opened]
        lines += [f"resolved: {_alert_line(alert)}" for alert in resolved]
        return "\n".join(lines)
    titles = {
        ALERT_OPENED: "Alert opened",
        ALERT_RESOLVED: "Alert resolved",
        ALERT_REMINDER: "Alert still open",
        INGESTION_STALE: "Polls stopped arriving",
        INGESTION_RESUMED: "Polls arriving again",
        CHANNEL_TEST: "Test message",
    }
    title = titles.get(event.type, event.type)
    detail = data.get("message") or (_alert_line(data) if data.get("rule") or data.get("store_id") else "")
    return f"{title}: {detail} at {stamp}" if detail else f"{title} at {stamp}"


def email_subject(event: Event) -> str:
    return f"[store monitoring] {summary_text(event).splitlines()[0]}"[:200]


def email_text(event: Event) -> str:
    return summary_text(event) + "\n\n" + json.dumps(event_body(event), indent=2, sort_keys=True, default=str) + "\n"
