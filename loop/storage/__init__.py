"""All MongoDB access of the service: callers use the functions re-exported here.

One module per concern: ``schema`` (collection names and indexes), ``client``
(connections and the mongod/FerretDB/mongomock differences), ``polls``,
``stores`` (hours and zones), ``reports`` and ``files`` (report CSVs).
"""

from loop.storage.client import collection_counts, drop_database, get_client, get_db, is_mongomock, server_health
from loop.storage.files import delete_file, get_file, put_file
from loop.storage.polls import (
    PartsMoved,
    PollColumns,
    newest_poll_time,
    read_all_polls,
    read_catalog,
    read_day,
    read_poll_columns,
    read_polls,
    read_store_polls,
    replace_catalog,
    replace_day,
    scan_polls,
    store_ids_polled_through,
    stored_day_counts,
    week_polls,
    widen_poll_range,
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
from loop.storage.schema import HOURS, REPORT_BUCKET, REPORTS, STATUS, ZONES
from loop.storage.stores import read_hours, read_zones, replace_hours, replace_zones

__all__ = [
    "HOURS",
    "REPORTS",
    "REPORT_BUCKET",
    "STATUS",
    "ZONES",
    "PartsMoved",
    "PollColumns",
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
    "is_mongomock",
    "mark_report_started",
    "newest_poll_time",
    "put_file",
    "read_all_polls",
    "read_catalog",
    "read_day",
    "read_hours",
    "read_poll_columns",
    "read_polls",
    "read_report_csv",
    "read_store_polls",
    "read_zones",
    "replace_catalog",
    "replace_day",
    "replace_hours",
    "replace_zones",
    "report_now",
    "scan_polls",
    "server_health",
    "store_ids_polled_through",
    "stored_day_counts",
    "week_polls",
    "widen_poll_range",
]
