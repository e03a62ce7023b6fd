"""Small builders for the report engine's input frames, shared by the report tests.

Expected figures in the tests are computed by hand; these helpers only shape inputs
and read outputs, they never compute report figures themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pandas as pd

from loop.report_engine import REPORT_COLUMNS, ReportResult, compute_report

PollRow = tuple[str, str, "str | datetime | pd.Timestamp"]
HoursRow = tuple[str, int, "str | int", "str | int"]


def utc(value: str | datetime | pd.Timestamp) -> pd.Timestamp:
    """A tz-aware UTC timestamp; naive strings are read as UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def clock(value: str | int) -> int:
    """'HH:MM' or 'HH:MM:SS' (or already seconds) -> seconds after local midnight."""
    if isinstance(value, int):
        return value
    parts = [int(p) for p in value.split(":")]
    if len(parts) == 2:
        parts.append(0)
    hh, mm, ss = parts
    return hh * 3600 + mm * 60 + ss


def polls_frame(rows: Iterable[PollRow], unit: str = "us") -> pd.DataFrame:
    """store_id, status, timestamp_utc (tz-aware UTC, `unit` resolution like read_status)."""
    rows = list(rows)
    frame = pd.DataFrame(
        {
            "store_id": pd.Series([r[0] for r in rows], dtype="str"),
            "status": pd.Series([r[1] for r in rows], dtype="str"),
            "timestamp_utc": pd.Series([utc(r[2]) for r in rows], dtype="datetime64[ns, UTC]").dt.as_unit(unit),
        }
    )
    return frame


def hours_frame(rows: Iterable[HoursRow]) -> pd.DataFrame:
    """store_id, day_of_week, start_seconds, end_seconds from ('id', dow, 'HH:MM', 'HH:MM')."""
    rows = list(rows)
    return pd.DataFrame(
        {
            "store_id": pd.Series([r[0] for r in rows], dtype="str"),
            "day_of_week": pd.Series([r[1] for r in rows], dtype="int64"),
            "start_seconds": pd.Series([clock(r[2]) for r in rows], dtype="int64"),
            "end_seconds": pd.Series([clock(r[3]) for r in rows], dtype="int64"),
        }
    )


def zones_frame(rows: Iterable[tuple[str, str]]) -> pd.DataFrame:
    rows = list(rows)
    return pd.DataFrame(
        {
            "store_id": pd.Series([r[0] for r in rows], dtype="str"),
            "timezone_str": pd.Series([r[1] for r in rows], dtype="str"),
        }
    )


def special_frame(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """Holiday-hours rows as read_special_hours gives them: (store_id, date_local, start_s, end_s; NaN = closed)."""
    return pd.DataFrame(
        {
            "store_id": pd.Series([r[0] for r in rows], dtype="str"),
            "date_local": pd.Series([r[1] for r in rows], dtype="str"),
            "start_seconds": pd.Series([r[2] for r in rows], dtype="float64"),
            "end_seconds": pd.Series([r[3] for r in rows], dtype="float64"),
        }
    )


def run(
    polls: Iterable[PollRow],
    hours: Iterable[HoursRow] = (),
    zones: Iterable[tuple[str, str]] = (),
    now: str | pd.Timestamp | None = None,
) -> ReportResult:
    return compute_report(
        polls_frame(polls),
        hours_frame(hours),
        zones_frame(zones),
        now=None if now is None else utc(now),
    )


def rows_by_store(result: ReportResult) -> dict[str, dict[str, float]]:
    """{store_id: {column: figure}} for easy comparison with hand-computed rows."""
    report = result.report
    assert list(report.columns) == REPORT_COLUMNS
    out: dict[str, dict[str, float]] = {}
    for record in report.to_dict("records"):
        sid = record["store_id"]
        assert isinstance(sid, str)
        out[sid] = {c: float(record[c]) for c in REPORT_COLUMNS[1:]}
    return out


def figures(
    up_hour: float,
    up_day: float,
    up_week: float,
    down_hour: float,
    down_day: float,
    down_week: float,
) -> dict[str, float]:
    """A row's expected figures in REPORT_COLUMNS order (hour in minutes, day/week in hours)."""
    values = (up_hour, up_day, up_week, down_hour, down_day, down_week)
    return dict(zip(REPORT_COLUMNS[1:], values, strict=True))


ZERO = figures(0, 0, 0, 0, 0, 0)


def assert_row(result: ReportResult, store_id: str, expected: dict[str, float]) -> None:
    rows = rows_by_store(result)
    assert store_id in rows, f"no row for {store_id!r}; rows: {sorted(rows)}"
    got = rows[store_id]
    # Expected values are already rounded by hand, so equality up to float noise.
    bad = {c: (got[c], expected[c]) for c in expected if abs(got[c] - expected[c]) > 1e-9}
    assert not bad, f"store {store_id!r}: (got, expected) = {bad}"
