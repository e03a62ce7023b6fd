"""Alert channels (``alert_channels``), their deliveries (``alert_deliveries``) and the claims of delivery
attempts (``delivery_claims``).

FerretDB does not make a single-document update atomic under concurrency, so two workers (a task and
the beat's sweep) must never both decide to send the same attempt by updating the delivery: each
attempt is claimed first by inserting ``{_id: "<delivery_id>:<attempt_no>"}``, which only one insert
wins. Only the claimant writes that attempt's result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from loop.delivery_rules import DeliveryStatus
from loop.storage.schema import ALERT_CHANNELS, ALERT_DELIVERIES, DELIVERY_CLAIMS
from loop.timeutil import utcnow

# --- channels -----------------------------------------------------------------------------------------


def create_channel(db: Database, doc: dict[str, Any]) -> None:
    """``doc`` holds ``channel_id`` (its ``_id``) and every field, the secret too (only storage keeps it)."""
    db[ALERT_CHANNELS].insert_one({"_id": doc["channel_id"], **doc})


def get_channel(db: Database, channel_id: str) -> dict[str, Any] | None:
    if not isinstance(channel_id, str):  # callers check the shape; this keeps operator documents out
        raise TypeError("channel_id must be a string")
    return db[ALERT_CHANNELS].find_one({"_id": channel_id}, {"_id": 0})


def list_channels(db: Database, *, skip: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many, one page newest first)."""
    total = db[ALERT_CHANNELS].count_documents({})
    cursor = db[ALERT_CHANNELS].find({}, {"_id": 0}).sort([("created_at", -1), ("_id", -1)]).skip(skip).limit(limit)
    return total, list(cursor)


def enabled_channels(db: Database) -> list[dict[str, Any]]:
    return list(db[ALERT_CHANNELS].find({"enabled": True}, {"_id": 0}).sort("_id", 1))


def update_channel(db: Database, channel_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Set ``fields`` (and ``updated_at``); the channel after, or None when it does not exist."""
    db[ALERT_CHANNELS].update_one({"_id": channel_id}, {"$set": {**fields, "updated_at": utcnow()}})
    return get_channel(db, channel_id)


def delete_channel(db: Database, channel_id: str) -> bool:
    return db[ALERT_CHANNELS].delete_one({"_id": channel_id}).deleted_count == 1


# --- deliveries -----------------------------------------------------------------------------------------


def insert_deliveries(db: Database, docs: Sequence[dict[str, Any]]) -> None:
    """Each doc holds ``delivery_id`` (its ``_id``), status pending and ``next_attempt_at``."""
    if docs:
        db[ALERT_DELIVERIES].insert_many([{"_id": doc["delivery_id"], **doc} for doc in docs])


def insert_delivery_once(db: Database, doc: dict[str, Any]) -> bool:
    """Insert a delivery whose id is derived from what it delivers (a scheduled report's run and channel);
    False when it is already stored (a second finisher of the same run stores nothing)."""
    try:
        db[ALERT_DELIVERIES].insert_one({"_id": doc["delivery_id"], **doc})
    except DuplicateKeyError:
        return False
    return True


def get_delivery(db: Database, delivery_id: str) -> dict[str, Any] | None:
    if not isinstance(delivery_id, str):
        raise TypeError("delivery_id must be a string")
    return db[ALERT_DELIVERIES].find_one({"_id": delivery_id}, {"_id": 0})


def list_deliveries(
    db: Database,
    *,
    channel_id: str | None,
    status: DeliveryStatus | None,
    skip: int,
    limit: int,
    schedule_id: str | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, one page newest first)."""
    query: dict[str, Any] = {}
    if channel_id is not None:
        query["channel_id"] = channel_id
    if schedule_id is not None:
        query["schedule_id"] = schedule_id
    if status is not None:
        query["status"] = status.value
    total = db[ALERT_DELIVERIES].count_documents(query)
    cursor = (
        db[ALERT_DELIVERIES].find(query, {"_id": 0}).sort([("created_at", -1), ("_id", -1)]).skip(skip).limit(limit)
    )
    return total, list(cursor)


def due_delivery_ids(db: Database, *, due_by: dt.datetime, limit: int) -> list[str]:
    """Pending deliveries whose next attempt is at or before ``due_by``, the most overdue first."""
    query = {"status": DeliveryStatus.PENDING.value, "next_attempt_at": {"$lte": due_by}}
    cursor = db[ALERT_DELIVERIES].find(query, {"_id": 1}).sort([("next_attempt_at", 1), ("_id", 1)]).limit(limit)
    return [str(doc["_id"]) for doc in cursor]


def claim_attempt(db: Database, delivery_id: str, attempt_no: int, *, worker: str) -> bool:
    """True for the one caller that may make attempt ``attempt_no`` of the delivery (a unique insert)."""
    try:
        db[DELIVERY_CLAIMS].insert_one({"_id": f"{delivery_id}:{attempt_no}", "worker": worker, "at": utcnow()})
    except DuplicateKeyError:
        return False
    return True


def claimed_at(db: Database, delivery_id: str, attempt_no: int) -> dt.datetime | None:
    doc = db[DELIVERY_CLAIMS].find_one({"_id": f"{delivery_id}:{attempt_no}"})
    return None if doc is None else doc["at"]


def claim_lost_attempt(db: Database, delivery_id: str, attempt_no: int, *, worker: str) -> bool:
    """True for the one caller that may record attempt ``attempt_no`` as lost (its claimant never wrote it)."""
    try:
        db[DELIVERY_CLAIMS].insert_one({"_id": f"{delivery_id}:{attempt_no}:lost", "worker": worker, "at": utcnow()})
    except DuplicateKeyError:
        return False
    return True


def record_attempt(
    db: Database,
    delivery_id: str,
    *,
    attempt: dict[str, Any],
    status: DeliveryStatus,
    next_attempt_at: dt.datetime | None,
) -> None:
    """Append attempt ``attempt["attempt"]`` and the state it leaves (written by that attempt's claimant only)."""
    fields: dict[str, Any] = {
        "attempt_count": attempt["attempt"],
        "status": status.value,
        "next_attempt_at": next_attempt_at,
        "last_error": attempt.get("error"),
        "updated_at": utcnow(),
    }
    if status != DeliveryStatus.PENDING:
        fields["finished_at"] = attempt["at"]
    db[ALERT_DELIVERIES].update_one({"_id": delivery_id}, {"$push": {"attempts": attempt}, "$set": fields})


def reopen_delivery(db: Database, delivery_id: str, *, now: dt.datetime) -> dict[str, Any] | None:
    """Pending again, due now, with a fresh retry window (a manual retry); the delivery after, or None."""
    fields = {
        "status": DeliveryStatus.PENDING.value,
        "next_attempt_at": now,
        "window_start": now,
        "finished_at": None,
        "updated_at": now,
    }
    db[ALERT_DELIVERIES].update_one({"_id": delivery_id}, {"$set": fields})
    return get_delivery(db, delivery_id)
