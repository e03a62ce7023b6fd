"""The dashboard's home figures: how fresh the data is and the latest reports (GET /overview/).

Reads only small documents: the poll range and catalog heads, the newest hour's day parts and
the two newest report summaries, so the home page stays fast at any fleet size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop import storage
from loop.services.reports import ReportSummary, list_reports
from loop.storage import ReportStatus

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


def data_overview() -> DataOverview:
    """Newest and oldest poll, stores, polls in the hour ending at the newest poll, and the latest reports.

    The hour is (newest - 1 h, newest]: a poll exactly one hour before the newest belongs to the hour
    before, as in the report's rolling windows.
    """
    db = storage.get_db()
    oldest, newest = storage.poll_range(db)
    polls = inactive = polled = 0
    if newest is not None:
        hour = storage.read_poll_columns(db, newest - LAST_HOUR + pd.Timedelta(microseconds=1), newest)
        polls = len(hour)
        inactive = int(np.count_nonzero(hour.inactive))
        polled = len(np.unique(hour.store))
    latest = list_reports(page=1, page_size=1).results
    complete = list_reports(status=ReportStatus.COMPLETE, page=1, page_size=1).results
    return DataOverview(
        newest_poll_utc=newest,
        oldest_poll_utc=oldest,
        stores=storage.store_count(db),
        polls_last_hour=polls,
        inactive_polls_last_hour=inactive,
        stores_polled_last_hour=polled,
        latest_report=latest[0] if latest else None,
        latest_complete_report=complete[0] if complete else None,
    )
