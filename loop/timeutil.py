"""Instants: the one parser of a user's ``now``, and conversions between the service's time units.

The engine and storage count microseconds since the epoch (int64); BSON dates
hold milliseconds, naive and UTC; the API answers ISO-8601 with an offset.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

# Storage and engine count in nanoseconds (years 1677-2262); a margin keeps
# now - 7 days and now + a week inside that range.
NOW_MIN = pd.Timestamp("1678-01-01", tz="UTC")
NOW_MAX = pd.Timestamp("2262-01-01", tz="UTC")
NOW_HELP = "an ISO-8601 instant, e.g. 2024-10-03T23:33:20.412748Z (no offset means UTC; Loop's ' UTC' suffix too)"


def parse_now(text: str) -> pd.Timestamp:
    """The instant a user asked a report for, as UTC; ValueError says why it is refused.

    The API and the offline command both call this, so they accept exactly the same input.
    """
    cleaned = text.strip()
    if cleaned.upper().endswith(" UTC"):
        cleaned = cleaned[:-4].strip()
    try:
        value = dt.datetime.fromisoformat(cleaned)
        stamp = pd.Timestamp(value)  # OutOfBoundsDatetime (a ValueError) outside 1677-2262
    except (ValueError, OverflowError):
        raise ValueError("not an ISO-8601 timestamp (e.g. 2024-10-03T23:33:20Z)") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if not NOW_MIN <= stamp <= NOW_MAX:
        raise ValueError(f"outside the supported range ({NOW_MIN.isoformat()} to {NOW_MAX.isoformat()})")
    return stamp


def to_utc(ts: pd.Timestamp | dt.datetime | str) -> pd.Timestamp:
    """A tz-aware UTC Timestamp; naive input is taken as UTC."""
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def to_utc_or_none(value: pd.Timestamp | dt.datetime | None) -> pd.Timestamp | None:
    """``to_utc`` of a stored instant that may be missing (e.g. a job's ``finished_at`` while it runs)."""
    return None if value is None else to_utc(value)


def ts_to_us(ts: pd.Timestamp | dt.datetime) -> int:
    """Microseconds since the epoch (sub-microsecond parts are dropped)."""
    return to_utc(ts).value // 1000


def us_to_ts(us: int) -> pd.Timestamp:
    return pd.Timestamp(int(us), unit="us", tz="UTC")


def us_to_bson_date(us: int) -> dt.datetime:
    """Naive UTC datetime truncated to the millisecond (what BSON stores)."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=(us // 1000) * 1000)


def series_to_us(values: pd.Series) -> np.ndarray:
    """int64 microseconds since the epoch for a tz-aware (or naive UTC) datetime Series."""
    s = values
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy(dtype="datetime64[us]").view("int64")


def us_array_to_series(us: np.ndarray, name: str = "timestamp_utc") -> pd.Series:
    return pd.Series(us.astype("int64").view("datetime64[us]"), name=name).dt.tz_localize("UTC")


def utcnow() -> dt.datetime:
    """Naive UTC now, millisecond precision (as BSON stores it)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def iso(value: dt.datetime | pd.Timestamp | None) -> str | None:
    if value is None:
        return None
    return to_utc(value).isoformat()
