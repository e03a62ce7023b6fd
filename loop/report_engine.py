"""The uptime/downtime report engine: DataFrames in, DataFrame out.

Pure pandas/numpy (no Django, no MongoDB) so the offline command, the Celery
worker and the tests all run exactly the same computation. The rules it
implements are written out in ``docs/report_rules.md``.

The business time, counted polls and nearest-poll segments of every store come
from ``loop.lanes`` (one lane per store on one int64 axis), which the one-store
timeline (``loop.timeline``) shares; this module turns lanes into report columns.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loop.lanes import MAX_STORES, UNITS_PER_US, build_lanes, gap_units, to_utc_us
from loop.rules import ACTIVE, DEFAULT_MAX_GAP_MINUTES, US_PER_HOUR, US_PER_SECOND, WEEK_US, uptime_pct

REPORT_COLUMNS = [
    "store_id",
    "uptime_last_hour",
    "uptime_last_day",
    "uptime_last_week",
    "downtime_last_hour",
    "downtime_last_day",
    "downtime_last_week",
]
# The extended report's columns, after the Loop ones (rules 11-12 of docs/report_rules.md).
EXTENDED_COLUMNS = [
    "uptime_pct_last_hour",
    "uptime_pct_last_day",
    "uptime_pct_last_week",
    "unobserved_last_hour",
    "unobserved_last_day",
    "unobserved_last_week",
    "outages_last_week",
    "longest_outage_last_week",
]
WINDOWS_US = {"last_hour": US_PER_HOUR, "last_day": 24 * US_PER_HOUR, "last_week": WEEK_US}
# A spreadsheet evaluates a cell starting with one of these: such ids get a leading apostrophe in the CSV.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_ESCAPE = "'"


@dataclass
class ReportResult:
    """The report plus what a caller should tell the user about the input."""

    report: pd.DataFrame
    now: pd.Timestamp | None
    polls_counted: int
    warnings: list[str] = field(default_factory=list)

    @property
    def stores(self) -> int:
        return len(self.report)


def compute_report(
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    zones: pd.DataFrame,
    now: pd.Timestamp | None = None,
    extra_store_ids: Sequence[str] | None = None,
    *,
    special_hours: pd.DataFrame | None = None,
    extended: bool = False,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
) -> ReportResult:
    """Compute the report.

    ``polls``: store_id, status ("active"/"inactive"), timestamp_utc.
    ``hours``: store_id, day_of_week (0 = Monday), start_seconds, end_seconds (local).
    ``zones``: store_id, timezone_str.
    ``extra_store_ids``: stores known to have polls at or before ``now`` that
    are not in ``polls`` (the database path reads only the week's polls).
    ``special_hours``: store_id, date_local ("YYYY-MM-DD"), start_seconds, end_seconds
    (float; both NaN = closed all day): holiday hours (rule 13).
    ``extended``: add ``EXTENDED_COLUMNS`` after the Loop columns, with unobserved
    time measured against ``max_gap_minutes`` (rules 11-12).
    """
    warnings: list[str] = []
    columns_out = REPORT_COLUMNS + EXTENDED_COLUMNS if extended else REPORT_COLUMNS
    poll_us = to_utc_us(polls["timestamp_utc"])
    if now is None:
        if len(poll_us) == 0:
            return ReportResult(_empty_report(columns_out), None, 0, warnings)
        now_us = int(poll_us.max())
    else:
        now_us = int(to_utc_us(pd.Series([pd.Timestamp(now)]))[0])
    now_ts = pd.Timestamp(now_us, unit="us", tz="UTC")

    kept = poll_us <= now_us
    store_ids, codes = _store_codes(polls["store_id"], kept, extra_store_ids)
    if len(store_ids) == 0:
        return ReportResult(_empty_report(columns_out), now_ts, 0, warnings)
    if len(store_ids) >= MAX_STORES:
        raise ValueError(f"too many stores for one report ({len(store_ids)})")

    active = (polls["status"] == ACTIVE).to_numpy(dtype=bool)[kept]
    lanes = build_lanes(
        store_ids=store_ids,
        poll_codes=codes,
        poll_us=poll_us[kept],
        poll_active=active,
        hours=hours,
        zones=zones,
        special_hours=special_hours,
        range_start_us=now_us - WEEK_US,
        range_end_us=now_us,
    )
    warnings.extend(lanes.warnings)
    lane_end = lanes.lane_end
    gap = gap_units(max_gap_minutes) if extended else 0

    n = len(store_ids)
    columns: dict[str, np.ndarray] = {"store_id": store_ids}
    for name, length_us in WINDOWS_US.items():
        window_lo = lane_end - length_us * UNITS_PER_US
        lo = np.maximum(lanes.seg_lo, window_lo)
        hi = np.maximum(lanes.seg_hi, window_lo)
        business = lanes.business_between(lanes.poll_lane + lo, lanes.poll_lane + hi)
        up = np.bincount(lanes.poll_codes, weights=np.where(lanes.poll_active, business, 0), minlength=n)
        down = np.bincount(lanes.poll_codes, weights=np.where(lanes.poll_active, 0, business), minlength=n)
        unit = _window_unit_us(name)
        columns[f"uptime_{name}"] = np.round(up / UNITS_PER_US / unit, 2)
        columns[f"downtime_{name}"] = np.round(down / UNITS_PER_US / unit, 2)
        if extended:
            columns[f"uptime_pct_{name}"] = uptime_pct(up, down)
            unobserved = lanes.unobserved_per_store(lo, hi, business, gap, window_lo)
            columns[f"unobserved_{name}"] = np.round(unobserved / UNITS_PER_US / unit, 2)
    if extended:
        count, longest = lanes.outages_per_store()
        columns["outages_last_week"] = count
        columns["longest_outage_last_week"] = np.round(longest / UNITS_PER_US / (60 * US_PER_SECOND), 2)
    report = pd.DataFrame({col: columns[col] for col in columns_out}, columns=columns_out)
    return ReportResult(report, now_ts, lanes.polls_counted, warnings)


def _window_unit_us(name: str) -> int:
    """Report units: minutes for the last hour, hours for the day and the week."""
    return 60 * US_PER_SECOND if name == "last_hour" else US_PER_HOUR


def report_to_csv(report: pd.DataFrame) -> str:
    """The report as CSV text, safe to open in a spreadsheet (``store_ids_to_csv_cells``)."""
    safe = report.copy()
    safe["store_id"] = store_ids_to_csv_cells(safe["store_id"].astype(str))
    return safe.to_csv(index=False, lineterminator="\n", float_format="%.2f")


def report_from_csv(text: str) -> pd.DataFrame:
    """The Loop columns of ``report_to_csv``'s text, each store id exactly as it was (numbers: NaN where empty)."""
    frame = pd.read_csv(
        io.StringIO(text),
        usecols=REPORT_COLUMNS,
        dtype={"store_id": str},
        keep_default_na=False,  # a store id such as "NA" stays text
        na_values={column: [""] for column in REPORT_COLUMNS[1:]},
    )[REPORT_COLUMNS]
    frame["store_id"] = store_ids_from_csv_cells(frame["store_id"])
    return frame


def store_ids_to_csv_cells(ids: pd.Series) -> pd.Series:
    """Each id as its report CSV cell: a leading apostrophe (which makes spreadsheets show the text
    instead of evaluating it) on ids starting with a formula character, and on ids already starting
    with one, so ``store_ids_from_csv_cells`` reads every cell back to exactly its id."""
    escaped = ids.str.startswith((*FORMULA_PREFIXES, CSV_ESCAPE))
    return ids.where(~escaped, CSV_ESCAPE + ids)


def store_ids_from_csv_cells(cells: pd.Series) -> pd.Series:
    """The ids ``store_ids_to_csv_cells`` wrote: one leading apostrophe removed where there is one."""
    return cells.str.removeprefix(CSV_ESCAPE)


def _empty_report(columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({col: pd.Series(dtype="float64") for col in columns})
    frame["store_id"] = frame["store_id"].astype(object)
    return frame


def _store_codes(
    poll_store_ids: pd.Series, kept: np.ndarray, extra_store_ids: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ids of the stores with kept polls (plus extras) and each kept poll's index in them."""
    # Factorising the column as it is (often Arrow-backed) avoids a copy to Python objects.
    codes, uniques = pd.factorize(poll_store_ids)
    codes = codes[kept]
    present = np.zeros(len(uniques), dtype=bool)
    present[codes] = True
    ids = np.asarray(uniques, dtype=object)[present].astype(str)
    if extra_store_ids is not None and len(extra_store_ids):
        ids = np.union1d(ids, np.asarray(list(extra_store_ids), dtype=str))
    ids = np.unique(ids)
    # Map the factorised codes onto positions in the sorted id list.
    position = np.full(len(uniques), -1, dtype=np.int64)
    position[present] = np.searchsorted(ids, np.asarray(uniques, dtype=object)[present].astype(str))
    return ids.astype(object), position[codes]
