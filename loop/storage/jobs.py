"""What report and import documents share as background jobs: the start of an attempt, its heartbeat,
and taking back an attempt whose worker stopped heartbeating.

Fields: ``attempt_token`` (the attempt that holds the job; None while nobody does), ``heartbeat_at``
(that attempt's last sign of life, written at its start and then by ``beat``), ``worker`` (host:pid),
``attempts`` (starts) and ``lost_attempts`` (attempts taken back). Each write is conditional on the
document (compare-and-set), so two deliveries of one job never both hold it while its holder lives.
The rules (when an attempt is lost, what then) are ``loop.services.jobs``'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from loop.storage.schema import JOB_CLAIMS
from loop.timeutil import utcnow

# ReportStatus.RUNNING and ImportStatus.RUNNING: both kinds of job share the status values.
RUNNING = "Running"
# The phase a job shows once its attempt was taken back (ReportPhase and ImportPhase both have it).
WORKER_LOST = "worker lost"


def start_attempt(
    collection: Collection,
    job_id: str,
    *,
    token: str,
    replaceable: Sequence[str],
    live_since: dt.datetime,
    fields: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Let attempt ``token`` hold the Running job, unless another attempt holds it with a heartbeat
    newer than ``live_since``; ``replaceable``: attempts known to be over (a retry's own earlier
    attempt, a dead process's). The document after the start, or None when refused or not Running.

    The conditional update alone is not enough on FerretDB (its single-document updates are not atomic
    under concurrency: two deliveries of a lost job both "won" and both computed it). So a start that
    takes the job from another holder (or from none) first inserts a claim named after what it replaces
    (that holder, and how many attempts were lost): of concurrent starts, exactly one insert succeeds.
    """
    current = collection.find_one({"_id": job_id})
    if current is None or current.get("status") != RUNNING:
        return None
    holder, heartbeat = current.get("attempt_token"), current.get("heartbeat_at")
    if holder != token:  # a retry of the holding attempt itself competes with nobody
        if not (heartbeat is None or heartbeat < live_since or holder in replaceable):
            return None  # held, and its holder lives
        claim = f"{collection.name}:{job_id}:{holder}:{int(current.get('lost_attempts') or 0)}"
        try:
            collection.database[JOB_CLAIMS].insert_one({"_id": claim, "token": token, "at": utcnow()})
        except DuplicateKeyError:
            return None  # another delivery took over this same state first
    now = utcnow()
    free = [
        {"heartbeat_at": None},  # never started, taken back, or started before heartbeats existed
        {"heartbeat_at": {"$lt": live_since}},
        {"attempt_token": {"$in": [token, *replaceable]}},
    ]
    # No projection: FerretDB's findAndModify does not implement "fields".
    doc = collection.find_one_and_update(
        {"_id": job_id, "status": RUNNING, "$or": free},
        {
            "$set": {**fields, "started_at": now, "heartbeat_at": now, "attempt_token": token},
            "$inc": {"attempts": 1},
        },
        return_document=ReturnDocument.AFTER,
    )
    if doc is not None:
        doc.pop("_id", None)
    return doc


def beat(collection: Collection, job_id: str, token: str) -> bool:
    """Refresh the heartbeat of attempt ``token``; False once the job is finished or no longer its."""
    result = collection.update_one(
        {"_id": job_id, "status": RUNNING, "attempt_token": token}, {"$set": {"heartbeat_at": utcnow()}}
    )
    return result.matched_count == 1


def silent_jobs(collection: Collection, *, heartbeat_before: dt.datetime) -> list[dict[str, Any]]:
    """Running jobs whose holder's last heartbeat is older than ``heartbeat_before`` (few: jobs in flight)."""
    query = {"status": RUNNING, "heartbeat_at": {"$ne": None, "$lt": heartbeat_before}}
    return list(collection.find(query, {"_id": 0}))


def settle_lost(
    collection: Collection,
    job_id: str,
    *,
    token: str | None,
    heartbeat_before: dt.datetime,
    fields: Mapping[str, Any],
) -> bool:
    """Take the job from attempt ``token`` if its heartbeat is still older than ``heartbeat_before``:
    phase ``WORKER_LOST``, no holder, one more lost attempt, and ``fields`` (Failed, or ready to re-queue).
    False when it moved meanwhile (finished, beat again, or another sweep got there first)."""
    result = collection.update_one(
        {"_id": job_id, "status": RUNNING, "attempt_token": token, "heartbeat_at": {"$lt": heartbeat_before}},
        {
            "$set": {**fields, "phase": WORKER_LOST, "attempt_token": None, "heartbeat_at": None},
            "$inc": {"lost_attempts": 1},
        },
    )
    return result.matched_count == 1


def delete_claims_before(db: Database, before: dt.datetime) -> int:
    """Remove the take-over claims made before ``before`` (``start_attempt``'s); how many went."""
    return db[JOB_CLAIMS].delete_many({"at": {"$lt": before}}).deleted_count
