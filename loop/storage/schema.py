"""Collection names and indexes: the service's MongoDB layout in one place (see docs/architecture.md)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

STATUS = "store_status"
POLL_RANGE = "store_poll_range"
HOURS = "business_hours"
ZONES = "timezones"
REPORTS = "report_table"
REPORT_BUCKET = "report_files"
REPORT_FILES = f"{REPORT_BUCKET}.files"
REPORT_CHUNKS = f"{REPORT_BUCKET}.chunks"


def create_indexes(db: Database, *, in_process: bool) -> None:
    """Every index the service reads through (idempotent)."""
    db[STATUS].create_index(
        [("store_id", ASCENDING), ("timestamp_utc", ASCENDING), ("us", ASCENDING)],
        # mongomock checks a unique index by scanning every document on every
        # insert (quadratic); the poll loader finds repeats itself anyway.
        unique=not in_process,
        name="poll_key",
    )
    db[STATUS].create_index([("timestamp_utc", ASCENDING), ("us", ASCENDING)], name="poll_time")
    db[POLL_RANGE].create_index([("first_us", ASCENDING)], name="first_poll")
    db[POLL_RANGE].create_index([("last_us", DESCENDING)], name="last_poll")
    db[HOURS].create_index([("store_id", ASCENDING)], name="store")
    db[ZONES].create_index([("store_id", ASCENDING)], name="store")
    db[REPORTS].create_index([("report_id", ASCENDING)], unique=True, name="report_id")
    db[REPORT_FILES].create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)], name="filename_1_uploadDate_1")
    db[REPORT_CHUNKS].create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True, name="files_id_1_n_1")
