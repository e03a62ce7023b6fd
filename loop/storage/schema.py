"""Collection names and indexes: the service's MongoDB layout in one place (see docs/architecture.md)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

# Day heads and the catalog head; each day's parts live in "store_status.YYYY-MM-DD" (loop.storage.polls).
STATUS = "store_status"
HOURS = "business_hours"
ZONES = "timezones"
SPECIAL_HOURS = "special_hours"
# The store directory (name, brand, region per store): a packed table like the hours (loop.storage.stores).
PROFILES = "store_profiles"
REPORTS = "report_table"
# {_id: "<now_us>:<data version>", report_id}: the report that answers non-forced triggers of that pair.
REPORT_CLAIMS = "report_claims"
# {_id: "<report_id>:<shard>", file_id, rows, ...}: a finished shard of a sharded report (its CSV part in
# REPORT_BUCKET), inserted once (a unique _id: a redelivered shard's duplicate loses); removed by the join.
REPORT_SHARDS = "report_shards"
REPORT_BUCKET = "report_files"
REPORT_FILES = f"{REPORT_BUCKET}.files"
REPORT_CHUNKS = f"{REPORT_BUCKET}.chunks"
# POST /imports/: one document per import (loop.storage.imports) and the uploaded files (GridFS layout).
IMPORTS = "import_table"
IMPORT_BUCKET = "import_files"
IMPORT_FILES = f"{IMPORT_BUCKET}.files"
IMPORT_CHUNKS = f"{IMPORT_BUCKET}.chunks"
# {_id: file_id, started_at}: an upload being received, or received but not (yet) owned by an import;
# what a web process that died mid-upload leaves behind is found here and removed (loop.storage.imports).
IMPORT_UPLOADS = "import_uploads"
# {_id: "<collection>:<job id>:<holder replaced>:<lost attempts>"}: which start took over a job's state (a
# unique insert, the one write FerretDB makes atomic under concurrency: loop.storage.jobs.start_attempt).
JOB_CLAIMS = "job_claims"
# Alerts (loop.storage.alerts): the open ones packed in one document, one claim per store with an open
# alert (unique _id), every alert's record, and acks.
ALERT_STATE = "alert_state"
OPEN_ALERTS = "open_alerts"
# {_id: alert_id, chunk}: where each alert's row lives in ALERT_HISTORY (inserted once, never updated).
ALERTS = "alerts"
# Every alert's row, packed by the UTC day it opened ("YYYY-MM-DD|NNNN", 200 rows; more when one evaluation
# opens more at once), and an index.
ALERT_HISTORY = "alert_history"
ALERT_ACKS = "alert_acks"
# {_id: alert_id}: acks not yet copied into the open-alerts document (the evaluation lock was busy).
PENDING_ACKS = "alert_acks_pending"
# Maintenance windows (mutes) of alerts: one small document per window, inserted once, then only deleted
# (loop.storage.maintenance).
MAINTENANCE_WINDOWS = "maintenance_windows"
# Alert channels (webhook, Slack, e-mail), one delivery per (event, channel), and the claims of delivery
# attempts ({_id: "<delivery_id>:<attempt_no>"}, a unique insert per attempt: loop.storage.deliveries).
ALERT_CHANNELS = "alert_channels"
ALERT_DELIVERIES = "alert_deliveries"
DELIVERY_CLAIMS = "delivery_claims"
# Report schedules (one small document each) and their runs ({_id: "<schedule_id>:<slot_us>"}: the unique
# insert that claims a slot, loop.storage.schedules).
REPORT_SCHEDULES = "report_schedules"
SCHEDULE_RUNS = "schedule_runs"


def create_indexes(db: Database) -> None:
    """Every index the service reads through (idempotent)."""
    # Polls, hours (weekly and special), zones and profiles need none: every read of them is by _id
    # (loop.storage.polls, .packed).
    db[REPORTS].create_index([("report_id", ASCENDING)], unique=True, name="report_id")
    # GET /reports/: newest first.
    db[REPORTS].create_index([("created_at", DESCENDING)], name="created_at_-1")
    db[REPORT_FILES].create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_1_uploadDate_1")
    db[REPORT_CHUNKS].create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True, name="files_id_1_n_1")
    # GET /imports/: newest first. Upload chunks are read by _id; the index serves delete_file.
    db[IMPORTS].create_index([("created_at", DESCENDING)], name="created_at_-1")
    db[IMPORT_CHUNKS].create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True, name="files_id_1_n_1")
    # GET /maintenance/: newest first (the collection stays small; the index keeps the sort cheap anyway).
    db[MAINTENANCE_WINDOWS].create_index([("created_at", DESCENDING)], name="created_at_-1")
    # GET /channels/ and GET /deliveries/ (newest first, optionally one channel's); the sweep's due deliveries.
    db[ALERT_CHANNELS].create_index([("created_at", DESCENDING)], name="created_at_-1")
    db[ALERT_DELIVERIES].create_index([("created_at", DESCENDING)], name="created_at_-1")
    db[ALERT_DELIVERIES].create_index(
        [("channel_id", ASCENDING), ("created_at", DESCENDING)], name="channel_id_1_created_at_-1"
    )
    db[ALERT_DELIVERIES].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due")
    # GET /deliveries/?schedule= (a report schedule's runs' deliveries, newest first: the dashboard's schedules).
    db[ALERT_DELIVERIES].create_index(
        [("schedule_id", ASCENDING), ("created_at", DESCENDING)], name="schedule_id_1_created_at_-1"
    )


# The layout before packed documents: one document per poll, hours row and zone row, and a range per store.
LEGACY_POLL_RANGE = "store_poll_range"
LEGACY_POLL_INDEXES = ("poll_key", "poll_time")
LEGACY_STORE_INDEX = "store"  # on business_hours and timezones
