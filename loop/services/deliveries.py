"""Event delivery to alert channels: ``publish`` (what the alert evaluation calls), the attempts (the
worker's job), the beat's sweep, and the deliveries' reads and manual retry.

``publish`` stores one delivery per (event, subscribed enabled channel) in MongoDB first, then queues a
send task for each: if the broker is down the deliveries wait, and ``send_due_deliveries`` (beat, every
30 s) queues every pending delivery that is overdue. Each attempt is claimed by a unique insert
(``storage.claim_attempt``) before anything is sent, so two workers never make the same attempt.
A webhook's body and ``webhook-id`` are fixed at publish time: every retry sends the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, send_mail
from pymongo.database import Database

from loop import metrics, queue, storage
from loop.delivery_rules import DeliveryStatus, Verdict, next_attempt_at, parse_retry_after, verdict
from loop.errors import Conflict, NotFound, short_error
from loop.events import (
    CHANNEL_TEST,
    REPORT_COMPLETED,
    Event,
    email_subject,
    email_text,
    event_for_channel,
    event_from_json,
    event_json,
    summary_text,
)
from loop.ids import ID_SHAPE, derived_id, is_id, new_id
from loop.services.channels import ChannelKind, disable_channel, get_channel, url_problem
from loop.services.jobs import worker_name
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.services.report_links import report_attachment
from loop.timeutil import utcnow
from loop.webhooks import WEBHOOK_ID_PREFIX, HttpAnswer, new_webhook_id, post, signed_headers

logger = logging.getLogger(__name__)

DELIVERY_ID_HELP = f"A delivery id: {ID_SHAPE}."
# A retry due within this many seconds is queued with a countdown; later ones are left to the sweep (a
# Redis broker redelivers unacknowledged countdown tasks after its visibility timeout, 15 min).
COUNTDOWN_MAX_SECONDS = 300
# The sweep queues deliveries overdue by this much: sooner, their own queued task is normally on its way.
SWEEP_GRACE_SECONDS = 30
SWEEP_BATCH = 1000
# An attempt claimed this long ago and never recorded was lost with its worker (a send takes at most two
# DELIVERY_TIMEOUT_SECONDS): it is recorded as lost and the next attempt goes ahead.
CLAIM_LOST_SECONDS = 300


@dataclass(frozen=True)
class AttemptView:
    attempt: int
    at: dt.datetime
    status_code: int | None
    error: str | None
    next_retry_at: dt.datetime | None


@dataclass(frozen=True)
class DeliveryView:
    delivery_id: str
    channel_id: str
    event_type: str
    event: dict[str, Any]
    webhook_id: str
    status: str
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempt_count: int
    last_error: str | None
    attempts: list[AttemptView]


def _view(doc: Mapping[str, Any]) -> DeliveryView:
    return DeliveryView(
        delivery_id=doc["delivery_id"],
        channel_id=doc["channel_id"],
        event_type=doc["event_type"],
        event=json.loads(doc["payload"]),
        webhook_id=doc["webhook_id"],
        status=doc["status"],
        created_at=doc["created_at"],
        next_attempt_at=doc.get("next_attempt_at"),
        finished_at=doc.get("finished_at"),
        attempt_count=int(doc.get("attempt_count", 0)),
        last_error=doc.get("last_error"),
        attempts=[
            AttemptView(
                attempt=item["attempt"],
                at=item["at"],
                status_code=item.get("status_code"),
                error=item.get("error"),
                next_retry_at=item.get("next_retry_at"),
            )
            for item in doc.get("attempts", [])
        ],
    )


def _new_delivery(*, channel_id: str, event: Event, now: dt.datetime) -> dict[str, Any]:
    return {
        "delivery_id": new_id(),
        "channel_id": channel_id,
        "event_type": event.type,
        "payload": event_json(event),
        "webhook_id": new_webhook_id(),
        "status": DeliveryStatus.PENDING.value,
        "created_at": now,
        "updated_at": now,
        "window_start": now,
        "next_attempt_at": now,
        "finished_at": None,
        "attempt_count": 0,
        "last_error": None,
        "attempts": [],
    }


def _enqueue_all(delivery_ids: Sequence[str]) -> int:
    """Queue a send per delivery; stops at the first broker failure (the sweep sends the rest). How many queued."""
    for done, delivery_id in enumerate(delivery_ids):
        try:
            queue.enqueue_delivery(delivery_id)
        except Exception as exc:  # the broker is away: the deliveries are stored, the sweep sends them
            logger.warning("%d alert deliveries not queued (%s); the sweep sends them", len(delivery_ids) - done, exc)
            return done
    return len(delivery_ids)


def publish(*, events: Sequence[Event]) -> int:
    """Store one delivery per (event, enabled channel subscribed to it) and queue their sends; how many
    were stored. Returns normally when the broker is down (see the module's docstring)."""
    db = storage.get_db()
    channels = storage.enabled_channels(db)
    now = utcnow()
    docs = []
    for event in events:
        for channel in channels:
            wanted = event_for_channel(event, channel["events"])
            if wanted is not None:
                docs.append(_new_delivery(channel_id=channel["channel_id"], event=wanted, now=now))
    storage.insert_deliveries(db, docs)
    _enqueue_all([doc["delivery_id"] for doc in docs])
    return len(docs)


def publish_to(
    *, event: Event, channel_ids: Sequence[str], key: str, schedule_id: str | None = None
) -> tuple[list[str], int]:
    """Store one delivery of ``event`` per listed channel that exists, under ids derived from ``key`` and the
    channel (a scheduled run's id), and queue the sends of those stored now. A second call with the same key
    stores nothing (the unique ``_id``), so a run finished twice is delivered once. ``schedule_id`` is kept on
    each delivery (``GET /deliveries/?schedule=``). Returns (the deliveries' ids, stored now or before; how
    many this call stored)."""
    db = storage.get_db()
    now = utcnow()
    ids, stored = [], []
    for channel_id in dict.fromkeys(channel_ids):
        if not is_id(channel_id) or storage.get_channel(db, channel_id) is None:
            continue  # deleted since the schedule named it: nothing to send to
        doc = _new_delivery(channel_id=channel_id, event=event, now=now)
        doc["delivery_id"] = derived_id(key, channel_id, "delivery")
        doc["webhook_id"] = WEBHOOK_ID_PREFIX + derived_id(key, channel_id, "webhook")[:24]
        if schedule_id is not None:
            doc["schedule_id"] = schedule_id
        ids.append(doc["delivery_id"])
        if storage.insert_delivery_once(db, doc):
            stored.append(doc["delivery_id"])
    _enqueue_all(stored)
    return ids, len(stored)


def test_channel(*, channel_id: str) -> DeliveryView:
    """A ``channel.test`` event to this channel only (POST /channels/<id>/test/)."""
    channel = get_channel(channel_id=channel_id)
    now = utcnow()
    event = Event(type=CHANNEL_TEST, timestamp=now, data={"channel_id": channel.channel_id, "name": channel.name})
    doc = _new_delivery(channel_id=channel.channel_id, event=event, now=now)
    storage.insert_deliveries(storage.get_db(), [doc])
    _enqueue_all([doc["delivery_id"]])
    return _view(doc)


# --- attempts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    status: DeliveryStatus
    next_attempt_at: dt.datetime | None


def _send(channel: Mapping[str, Any] | None, doc: Mapping[str, Any], now: dt.datetime) -> tuple[HttpAnswer, Verdict]:
    """One send of the delivery to its channel, and its verdict. E-mail answers status 200 once the backend
    took the mail; a send refused before any request (no channel, disabled, URL refused) has no status."""
    answer = _send_once(channel, doc, now)
    if isinstance(answer, str):
        return HttpAnswer(None, answer), Verdict.FAILED
    return answer, verdict(answer.status_code)


def _send_once(channel: Mapping[str, Any] | None, doc: Mapping[str, Any], now: dt.datetime) -> HttpAnswer | str:
    """What the receiver answered, or why nothing was sent."""
    if channel is None:
        return "the channel was deleted"
    if not channel["enabled"] and doc["event_type"] != CHANNEL_TEST:
        return f"the channel is disabled ({channel.get('disabled_reason') or 'no reason'})"
    payload = doc["payload"]
    kind = ChannelKind(channel["kind"])
    timeout = float(settings.DELIVERY_TIMEOUT_SECONDS)
    if kind == ChannelKind.EMAIL:
        event = event_from_json(payload)
        try:
            if event.type == REPORT_COMPLETED:
                _send_report_mail(event, channel["email"])
            else:
                send_mail(email_subject(event), email_text(event), settings.DEFAULT_FROM_EMAIL, [channel["email"]])
        except Exception as exc:  # SMTP and socket errors: the mail server may come back
            return HttpAnswer(None, short_error(exc))
        return HttpAnswer(200)
    problem = url_problem(channel["url"])  # again at every send: DNS may have changed since creation
    if problem:
        return f"URL refused: {problem}"
    if kind == ChannelKind.SLACK:
        text = json.dumps({"text": summary_text(event_from_json(payload))})
        return post(url=channel["url"], body=text, headers={}, timeout=timeout)
    headers = signed_headers(secret=channel["secret"], webhook_id=doc["webhook_id"], body=payload, at=now)
    return post(url=channel["url"], body=payload, headers=headers, timeout=timeout)


def _send_report_mail(event: Event, address: str) -> None:
    """A scheduled report by e-mail: the summary, and the CSV attached (gzipped when large; the link only
    when too large even so, or when the report is gone by now)."""
    data = event.data
    message = EmailMessage(email_subject(event), email_text(event), settings.DEFAULT_FROM_EMAIL, [address])
    try:
        attached = report_attachment(report_id=data["report_id"], region=data.get("region"), brand=data.get("brand"))
    except (NotFound, Conflict):  # the report was removed (retention) since: the link says so too
        attached = None
    if attached is not None:
        message.attach(attached.filename, attached.content, attached.mimetype)
    message.send()


def _claim(db: Database, doc: Mapping[str, Any], now: dt.datetime) -> int | None:
    """The attempt number this caller may make now, or None (another worker holds it)."""
    delivery_id, attempt_no = doc["delivery_id"], int(doc.get("attempt_count", 0)) + 1
    if storage.claim_attempt(db, delivery_id, attempt_no, worker=worker_name()):
        return attempt_no
    at = storage.claimed_at(db, delivery_id, attempt_no)
    if at is None or (now - at).total_seconds() < CLAIM_LOST_SECONDS:
        return None
    if not storage.claim_lost_attempt(db, delivery_id, attempt_no, worker=worker_name()):
        return None
    lost = {
        "attempt": attempt_no,
        "at": now,
        "status_code": None,
        "error": "its worker stopped before recording the result",
        "next_retry_at": now,
    }
    storage.record_attempt(db, delivery_id, attempt=lost, status=DeliveryStatus.PENDING, next_attempt_at=now)
    if storage.claim_attempt(db, delivery_id, attempt_no + 1, worker=worker_name()):
        return attempt_no + 1
    return None


def attempt_delivery(
    *, delivery_id: str, db: Database | None = None, now: dt.datetime | None = None
) -> AttemptOutcome | None:
    """Make the delivery's due attempt and record it; None when there is nothing to do now (not pending,
    not due, or another worker holds the attempt)."""
    db = db if db is not None else storage.get_db()
    now = now or utcnow()
    doc = storage.get_delivery(db, delivery_id)
    if doc is None or doc["status"] != DeliveryStatus.PENDING.value:
        return None
    if doc["next_attempt_at"] is not None and doc["next_attempt_at"] > now:
        return None
    attempt_no = _claim(db, doc, now)
    if attempt_no is None:
        return None
    channel = storage.get_channel(db, doc["channel_id"])
    answer, judged = _send(channel, doc, now)
    error = answer.error
    next_at: dt.datetime | None = None
    if judged == Verdict.DELIVERED:
        status = DeliveryStatus.DELIVERED
    elif judged == Verdict.RETRY:
        next_at = next_attempt_at(
            attempt_no=attempt_no,
            now=now,
            window_start=doc["window_start"],
            max_age=dt.timedelta(hours=settings.DELIVERY_MAX_AGE_HOURS),
            base=settings.DELIVERY_RETRY_BASE_SECONDS,
            cap=settings.DELIVERY_RETRY_MAX_SECONDS,
            retry_after=parse_retry_after(answer.retry_after, now),
        )
        status = DeliveryStatus.PENDING if next_at is not None else DeliveryStatus.FAILED
        if next_at is None:
            error = f"{error}; gave up after {attempt_no} attempt(s) (DELIVERY_MAX_AGE_HOURS)"
    else:
        status = DeliveryStatus.FAILED
        if judged == Verdict.GONE and channel is not None:
            disable_channel(
                channel_id=doc["channel_id"],
                reason=f"its URL answered 410 Gone at {now.isoformat()}Z (delivery {delivery_id})",
            )
    attempt = {
        "attempt": attempt_no,
        "at": now,
        "status_code": answer.status_code,
        "error": error,
        "next_retry_at": next_at,
    }
    storage.record_attempt(db, delivery_id, attempt=attempt, status=status, next_attempt_at=next_at)
    logger.info(
        "delivery %s attempt %d: %s",
        delivery_id,
        attempt_no,
        status.value,
        extra={
            "delivery_id": delivery_id,
            "channel_id": doc["channel_id"],
            "event_type": doc["event_type"],
            "status_code": answer.status_code,
            **_alert_of(doc),
        },
    )
    outcome = {DeliveryStatus.DELIVERED: "delivered", DeliveryStatus.PENDING: "retrying"}.get(status, "failed")
    metrics.delivery_attempted(kind=str(channel.get("kind", "")) if channel else "unknown", outcome=outcome)
    return AttemptOutcome(status, next_at)


def _alert_of(doc: Mapping[str, Any]) -> dict[str, str]:
    """The alert and store a delivery is about (for its log line); none for a grouped or other event."""
    try:
        data = json.loads(doc["payload"]).get("data") or {}
    except (TypeError, ValueError, AttributeError):
        return {}
    return {key: str(data[key]) for key in ("alert_id", "store_id") if isinstance(data, dict) and data.get(key)}


def deliver(*, delivery_id: str, db: Database | None = None) -> str:
    """The send task's job: the due attempt, then the next one queued if it is due soon (else the sweep's)."""
    now = utcnow()
    outcome = attempt_delivery(delivery_id=delivery_id, db=db, now=now)
    if outcome is None:
        return "skipped"
    if outcome.next_attempt_at is not None:
        delay = max(0.0, (outcome.next_attempt_at - now).total_seconds())
        if delay <= COUNTDOWN_MAX_SECONDS:
            try:
                queue.enqueue_delivery(delivery_id, delay)
            except Exception as exc:  # the sweep sends it once it is overdue
                logger.warning("retry of delivery %s not queued: %s", delivery_id, exc)
    return outcome.status.value


def send_due_deliveries(*, now: dt.datetime | None = None) -> int:
    """Beat (every 30 s): queue every pending delivery overdue by SWEEP_GRACE_SECONDS; how many were queued."""
    now = now or utcnow()
    due = storage.due_delivery_ids(
        storage.get_db(), due_by=now - dt.timedelta(seconds=SWEEP_GRACE_SECONDS), limit=SWEEP_BATCH
    )
    return _enqueue_all(due)


# --- reads and the manual retry -----------------------------------------------------------------------


def _delivery_doc(delivery_id: str) -> dict[str, Any]:
    doc = storage.get_delivery(storage.get_db(), delivery_id) if is_id(delivery_id) else None
    if doc is None:
        raise NotFound(f"Unknown delivery: {delivery_id}")
    return doc


def get_delivery(*, delivery_id: str) -> DeliveryView:
    return _view(_delivery_doc(delivery_id))


def list_deliveries(
    *,
    channel_id: str | None = None,
    status: DeliveryStatus | None = None,
    schedule_id: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE_DEFAULT,
) -> Page[DeliveryView]:
    """One page of the deliveries, newest first, optionally of one channel, one status and/or one report
    schedule (its runs' deliveries)."""
    skip = page_skip(page=page, page_size=page_size)
    if (channel_id is not None and not is_id(channel_id)) or (schedule_id is not None and not is_id(schedule_id)):
        return Page(count=0, page=page, page_size=page_size, results=[])
    count, docs = storage.list_deliveries(
        storage.get_db(), channel_id=channel_id, status=status, schedule_id=schedule_id, skip=skip, limit=page_size
    )
    return Page(count=count, page=page, page_size=page_size, results=[_view(doc) for doc in docs])


def retry_delivery(*, delivery_id: str) -> DeliveryView:
    """Send again now, as a new attempt with the same webhook-id and body, with a fresh retry window."""
    _delivery_doc(delivery_id)
    doc = storage.reopen_delivery(storage.get_db(), delivery_id, now=utcnow())
    if doc is None:
        raise NotFound(f"Unknown delivery: {delivery_id}")
    _enqueue_all([delivery_id])
    return _view(doc)
