"""How far the data lags behind a clock, in words (pure: no Django, no MongoDB).

The one home of the lag's wording: the dashboard's "data ends 3 h ago" (``data_lag_text``, the newest
stored poll against the server's wall clock, answered by GET /overview/) and a scheduled report's
``data_note`` ("data ends 5 h before this report's time", loop.services.schedules) both say the lag with
``lag_words``.
"""

from __future__ import annotations

import datetime as dt

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
# Up to this lag it is said in hours, from it on in days.
DAYS_FROM = dt.timedelta(hours=48)


def lag_words(lag: dt.timedelta) -> str:
    """A lag as people say it: "less than a minute" (also for a negative lag: a clock behind the data),
    whole minutes rounded down under an hour ("59 min"), hours rounded under 48 h ("3 h"), else days
    rounded ("781 days")."""
    if lag < MINUTE:
        return "less than a minute"
    if lag < HOUR:
        return f"{lag // MINUTE} min"
    hours = lag.total_seconds() / 3600
    if lag < DAYS_FROM:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} days"


def data_lag_text(newest: dt.datetime | None, now: dt.datetime) -> str:
    """ "data ends 3 h ago": the newest stored poll against ``now`` (both aware, or both naive UTC);
    "no data yet" before any poll."""
    if newest is None:
        return "no data yet"
    return f"data ends {lag_words(now - newest)} ago"


def data_lag_seconds(newest: dt.datetime | None, now: dt.datetime) -> float | None:
    """``now`` minus the newest stored poll in seconds (negative when the data is ahead of the clock)."""
    return None if newest is None else (now - newest).total_seconds()
