"""All MongoDB access of the service: callers use the functions re-exported here.

One module per concern: ``schema`` (collection names and indexes), ``client``
(connections and the mongod/FerretDB/mongomock differences), ``polls``,
``stores`` (hours and zones), ``reports`` and ``files`` (report CSVs).
"""

from loop.storage.client import collection_counts, drop_database, get_client, get_db, is_mongomock, server_health
from loop.storage.files import delete_file, get_file, put_file
from loop.storage.polls import (
    PollInsert,
    insert_new_polls,
    mark_polls_inactive,
    newest_poll_time,
    read_poll_keys,
    read_poll_ranges,
    read_polls,
    scan_polls,
    store_ids_polled_through,
    week_polls,
    widen_poll_ranges,
)
from loop.storage.reports import (
    ReportDoc,
    ReportStatus,
    complete_report,
    create_report,
    fail_report,
    get_report,
    mark_report_started,
    read_report_csv,
    report_now,
)
from loop.storage.schema import HOURS, POLL_RANGE, REPORT_BUCKET, REPORTS, STATUS, ZONES
from loop.storage.stores import read_hours, read_zones, replace_hours, replace_zones

__all__ = [
    "HOURS",
    "POLL_RANGE",
    "REPORTS",
    "REPORT_BUCKET",
    "STATUS",
    "ZONES",
    "PollInsert",
    "ReportDoc",
    "ReportStatus",
    "collection_counts",
    "complete_report",
    "create_report",
    "delete_file",
    "drop_database",
    "fail_report",
    "get_client",
    "get_db",
    "get_file",
    "get_report",
    "insert_new_polls",
    "is_mongomock",
    "mark_polls_inactive",
    "mark_report_started",
    "newest_poll_time",
    "put_file",
    "read_hours",
    "read_poll_keys",
    "read_poll_ranges",
    "read_polls",
    "read_report_csv",
    "read_zones",
    "replace_hours",
    "replace_zones",
    "report_now",
    "scan_polls",
    "server_health",
    "store_ids_polled_through",
    "week_polls",
    "widen_poll_ranges",
]
