"""The dashboard's home figures: how fresh the data is and the latest reports (GET /overview/).

Reads only small documents: the poll range and catalog heads, the two newest report summaries and
the newest hour's day parts (kept per process until the next load), so the home page stays fast at
any fleet size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from loop import storage
from loop.freshness import data_lag_seconds, data_lag_text
from loop.services.reports import ReportSummary, list_reports
from loop.storage import ReportStatus
from loop.timeutil import to_utc

# "The last hour" is the hour ending at the newest stored poll, not at the wall clock: the data may
# be a replayed export (Loop's is from 2024), and the report's own "last hour" ends there too.
LAST_HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class DataOverview:
    """Data freshness and the latest reports, as the home page shows them."""

    newest_poll_utc: pd.Timestamp | None
    oldest_poll_utc: pd.Timestamp | None
    stores: int
    polls_last_hour: int
    inactive_polls_last_hour: int
    stores_polled_last_hour: int
    latest_report: ReportSummary | None
    latest_complete_report: ReportSummary | None
    data_lag_seconds: float | None  # the server's wall clock minus the newest poll
    data_lag_text: str  # "data ends 3 h ago" (loop.freshness)


def data_overview() -> DataOverview:
    """Newest and oldest poll, stores, polls in the hour ending at the newest poll, the latest reports, and
    how far the newest poll lies behind the server's wall clock (the data's lag, in seconds and in words).

    The hour is (newest - 1 h, newest]: a poll exactly one hour before the newest belongs to the hour
    before, as in the report's rolling windows.
    """
    db = storage.get_db()
    recent = storage.recent_polls(db, LAST_HOUR)
    newest = None if recent.newest is None else to_utc(recent.newest)
    now = dt.datetime.now(dt.UTC)
    latest = list_reports(page=1, page_size=1).results
    complete = list_reports(status=ReportStatus.COMPLETE, page=1, page_size=1).results
    return DataOverview(
        newest_poll_utc=recent.newest,
        oldest_poll_utc=recent.oldest,
        stores=storage.store_count(db),
        polls_last_hour=recent.polls,
        inactive_polls_last_hour=recent.inactive,
        stores_polled_last_hour=recent.stores,
        latest_report=latest[0] if latest else None,
        latest_complete_report=complete[0] if complete else None,
        data_lag_seconds=data_lag_seconds(newest, now),
        data_lag_text=data_lag_text(newest, now),
    )
