"""Row checks of each kind of file: which values are rejected and why (pure: pandas only).

Bad rows never abort a read: they are dropped and recorded in ``RowProblems`` (a count per
reason and the first examples with file and line), and every good row is kept.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import compute as pa_compute

from loop.rules import DEFAULT_TIMEZONE, INACTIVE, POLL_STATUSES, first_poll_per_instant, known_time_zones
from loop.sources.problems import EXAMPLES_PER_REASON, RowProblems
from loop.store_ids import BLANK, store_id_problems

_CLOCK = r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$"
_UTC_SUFFIX = r"(?i)\s*UTC$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
STATUS_DTYPE = pd.CategoricalDtype(list(POLL_STATUSES))
# The reasons of the poll checks after the store-id rule, in the order they run.
BAD_STATUS = "status is not active or inactive"
BAD_TIMESTAMP = "timestamp_utc is not a valid timestamp"


def validate_status_rows(raw: pd.DataFrame, lines: np.ndarray, name: str, problems: RowProblems) -> pd.DataFrame:
    """The valid polls of a frame of raw text (store_id, status, timestamp_utc); bad rows go to ``problems``.

    The one check of poll rows: the CSV reader and the HTTP JSON batch both call it,
    ``lines`` saying where each row came from (a file line or a list index).
    """
    drop = _RowDropper(name, problems, lines)
    keep, store_id = _valid_store_ids(raw, drop)
    status = _Distinct.of(raw["status"]).map(lambda values: values.str.strip().str.lower())
    # Each row's code in STATUS_DTYPE; -1 for anything but the two statuses (as isin(POLL_STATUSES)).
    status_codes = STATUS_DTYPE.categories.get_indexer(pd.Index(status.values))[status.codes]
    keep = drop(keep, status_codes < 0, BAD_STATUS, raw["status"])
    timestamps = parse_timestamps(raw["timestamp_utc"])
    keep = drop(keep, timestamps.isna(), BAD_TIMESTAMP, raw["timestamp_utc"])
    kept = keep.to_numpy()
    # Categoricals keep millions of polls small: a few thousand distinct ids, two statuses.
    return pd.DataFrame(
        {
            "store_id": store_id.categorical(kept),
            "status": pd.Categorical.from_codes(status_codes[kept], dtype=STATUS_DTYPE),
            "timestamp_utc": timestamps.array[kept],
        }
    )


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Loop (``... UTC``) and ISO-8601 timestamps to UTC microseconds; NaT where invalid."""
    fast = _parse_loop_timestamps_arrow(values)
    if fast is not None:
        return fast
    parsed = pd.to_datetime(values.str.removesuffix(" UTC"), format="ISO8601", utc=True, errors="coerce")
    parsed = parsed.dt.as_unit("us")
    # Rarer spellings (padding, "utc", no space before UTC) only cost a regex on the rows that failed.
    failed = parsed.isna()
    if failed.any():
        retry = values[failed].str.strip().str.replace(_UTC_SUFFIX, "", regex=True)
        parsed[failed] = pd.to_datetime(retry, format="ISO8601", utc=True, errors="coerce").dt.as_unit("us")
    return parsed


def _parse_loop_timestamps_arrow(values: pd.Series) -> pd.Series | None:
    """Arrow's C++ parser for the common case: every value is ``YYYY-MM-DD HH:MM:SS[.f] UTC``.

    Returns None when any value needs the general (slower) path.
    """
    if not isinstance(values.dtype, pd.StringDtype) or values.dtype.storage != "pyarrow":
        return None
    try:
        text = values.array.__arrow_array__()
        if pa_compute.all(pa_compute.ends_with(text, " UTC")).as_py():
            # Cutting the suffix costs less than the search below and gives the same string
            # wherever the cast can succeed: a value with " UTC" twice fails both ways.
            stripped = pa_compute.utf8_slice_codeunits(text, 0, -4)
        else:
            stripped = pa_compute.replace_substring(text, " UTC", "", max_replacements=1)
        parsed = pa_compute.cast(stripped, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, AttributeError, TypeError):
        return None
    if parsed.null_count:
        return None
    return pd.Series(parsed.to_numpy(), index=values.index).dt.tz_localize("UTC")


def validate_hours_rows(raw: pd.DataFrame, lines: np.ndarray, name: str, problems: RowProblems) -> pd.DataFrame:
    """The valid hours rows of a frame of raw text; the one check of hours (CSV reader and HTTP API)."""
    drop = _RowDropper(name, problems, lines)
    keep, store_id = _valid_store_ids(raw, drop)
    day_text = _Distinct.of(raw["day_of_week"]).map(lambda values: values.str.strip())
    day = day_text.map(parse_day_of_week)
    keep = drop(keep, day.rows().isna(), "dayOfWeek is not a whole number 0-6", day_text.rows())
    seconds = {}
    for column, label in (("start_time_local", "start"), ("end_time_local", "end")):
        # A few dozen distinct clock times: the regex runs once for each.
        seconds[label] = _Distinct.of(raw[column]).map(parse_clock).rows()
        keep = drop(keep, seconds[label].isna(), f"{column} is not a clock time HH:MM[:SS]", raw[column])
    return pd.DataFrame(
        {
            "store_id": store_id.rows()[keep],
            "day_of_week": day.rows()[keep].astype(np.int64),
            "start_seconds": seconds["start"][keep].astype(np.int64),
            "end_seconds": seconds["end"][keep].astype(np.int64),
        }
    )


def parse_day_of_week(values: pd.Series) -> pd.Series:
    """Day numbers 0 (Monday) - 6 as floats; NaN where the text is not a whole number 0-6."""
    day = pd.to_numeric(values, errors="coerce")
    return day.where(day.isin(range(7)))


def parse_clock(values: pd.Series) -> pd.Series:
    """``HH:MM[:SS]`` to seconds after midnight (float, NaN where invalid or out of range)."""
    parts = values.str.strip().str.extract(_CLOCK).astype(object)
    hour = pd.to_numeric(parts[0], errors="coerce")
    minute = pd.to_numeric(parts[1], errors="coerce")
    second = pd.to_numeric(parts[2].fillna("0"), errors="coerce")
    valid = (hour < 24) & (minute < 60) & (second < 60)
    return (hour * 3600 + minute * 60 + second).where(valid)


def validate_zones_rows(raw: pd.DataFrame, lines: np.ndarray, name: str, problems: RowProblems) -> pd.DataFrame:
    """The zone rows to keep: a valid store id and a known IANA name; the rest recorded in ``problems``."""
    drop = _RowDropper(name, problems, lines)
    keep, store_id = _valid_store_ids(raw, drop)
    zone = _Distinct.of(raw["timezone_str"]).map(lambda values: values.str.strip())
    blank = zone.map(lambda values: values == "").rows()
    keep = drop(keep, blank, f"timezone_str is blank (store uses {DEFAULT_TIMEZONE})")
    unknown = zone.map(lambda values: ~values.isin(known_time_zones())).rows()
    zone_rows = zone.rows()
    reason = f"timezone_str is not a known time zone (store uses {DEFAULT_TIMEZONE})"
    keep = drop(keep, unknown, reason, zone_rows)
    return pd.DataFrame({"store_id": store_id.rows()[keep], "timezone_str": zone_rows[keep]})


def validate_special_hours_rows(raw: pd.DataFrame, lines: np.ndarray, name: str, problems: RowProblems) -> pd.DataFrame:
    """The valid holiday-hours rows of a frame of raw text; the one check (CSV reader and HTTP API).

    A row with both times empty closes the store all day; exactly one empty time, a date
    that is not a real ``YYYY-MM-DD`` day or a bad clock skips the row.
    """
    drop = _RowDropper(name, problems, lines)
    keep, store_id = _valid_store_ids(raw, drop)
    date_text = _Distinct.of(raw["date_local"]).map(lambda values: values.str.strip())
    date = date_text.map(parse_local_date)
    keep = drop(keep, date.rows().isna(), "date_local is not a date YYYY-MM-DD", date_text.rows())
    text = {
        label: raw[column].str.strip() for label, column in (("start", "start_time_local"), ("end", "end_time_local"))
    }
    empty = {label: (values == "").to_numpy() for label, values in text.items()}
    keep = drop(
        keep,
        empty["start"] != empty["end"],
        "only one of start_time_local and end_time_local is empty (both empty = closed all day)",
    )
    seconds = {}
    for column, label in (("start_time_local", "start"), ("end_time_local", "end")):
        seconds[label] = _Distinct.of(raw[column]).map(parse_clock).rows()
        bad = seconds[label].isna().to_numpy() & ~empty[label]
        keep = drop(keep, bad, f"{column} is not a clock time HH:MM[:SS]", raw[column])
    kept = keep.to_numpy()
    return pd.DataFrame(
        {
            "store_id": store_id.rows()[kept].astype(object).to_numpy(),
            "date_local": date.rows()[kept].astype(object).to_numpy(),
            "start_seconds": seconds["start"][kept].to_numpy(dtype=np.float64),
            "end_seconds": seconds["end"][kept].to_numpy(dtype=np.float64),
        }
    )


def parse_local_date(values: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` (a real calendar day) as the same text; NaN where it is anything else."""
    shaped = values.where(values.str.match(_DATE).fillna(False).astype(bool))
    parsed = pd.to_datetime(shaped, format="%Y-%m-%d", errors="coerce")
    return shaped.where(parsed.notna()).astype(object)


# The store directory (stores.csv, PUT /stores/<id>/profile/): text columns, each trimmed.
PROFILE_TEXT_COLUMNS = ("name", "brand", "region")
PROFILE_OPTIONAL = ("brand", "region")  # empty: unknown (null); a name is required
MAX_PROFILE_TEXT_LENGTH = 200
# Control (Cc: tab, line breaks, ...), format (Cf: zero-width, bidi overrides) and line/paragraph separators.
_NOT_TEXT_CATEGORIES = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
PROFILE_DUPLICATE = "store_id appears again on a later line (the last valid row wins)"


def profile_text_problem(column: str, value: str) -> str | None:
    """Why a trimmed name, brand or region is refused (None when it is fine; empty brand/region is fine)."""
    if value == "":
        return None if column in PROFILE_OPTIONAL else f"{column} is blank"
    if len(value) > MAX_PROFILE_TEXT_LENGTH:
        return f"{column} is longer than {MAX_PROFILE_TEXT_LENGTH} characters"
    if "\ufffd" in value:  # the readers' replacement for undecodable bytes
        return f"{column} is not valid UTF-8"
    if value.isascii():
        bad = not value.isprintable()
    else:
        bad = any(unicodedata.category(char) in _NOT_TEXT_CATEGORIES for char in value)
    if bad:
        return f"{column} has a control or format character (tab, line break, zero-width, ...)"
    return None


def _profile_text_problems(column: str, values: pd.Series) -> pd.Series:
    return pd.Series([profile_text_problem(column, value) for value in values.tolist()], dtype=object)


def validate_store_rows(raw: pd.DataFrame, lines: np.ndarray, name: str, problems: RowProblems) -> pd.DataFrame:
    """One row per store of the directory (store_id, name, brand, region); the one check (stores.csv and the PUT).

    Values are trimmed; empty brand or region is None. Of several valid rows of one store the
    last wins: the earlier ones are recorded in ``problems`` (``PROFILE_DUPLICATE``).
    """
    drop = _RowDropper(name, problems, lines)
    keep, store_id = _valid_store_ids(raw, drop)
    texts = {}
    for column in PROFILE_TEXT_COLUMNS:
        # Few distinct brands and regions: each checked once.
        text = _Distinct.of(raw[column]).map(lambda values: values.str.strip())
        reasons = text.map(partial(_profile_text_problems, column))
        rows = reasons.rows().to_numpy()
        for reason in pd.unique(rows[pd.notna(rows)]):
            # Long or odd text is not echoed back: the reason says enough.
            keep = drop(keep, rows == reason, str(reason))
        texts[column] = text.rows()
    ids = store_id.rows()
    kept_ids = ids.where(keep.to_numpy())
    earlier = keep.to_numpy() & kept_ids.duplicated(keep="last").to_numpy()
    keep = drop(keep, earlier, PROFILE_DUPLICATE, ids)
    kept = keep.to_numpy()

    def optional(column: str) -> list[str | None]:
        return [value or None for value in texts[column][kept].tolist()]

    # Object columns: None stays None (a string dtype would turn it into NaN).
    return pd.DataFrame(
        {
            "store_id": pd.Series(ids[kept].astype(object).to_numpy(), dtype=object),
            "name": pd.Series(texts["name"][kept].astype(object).to_numpy(), dtype=object),
            "brand": pd.Series(optional("brand"), dtype=object),
            "region": pd.Series(optional("region"), dtype=object),
        }
    )


def dedupe_polls(polls: pd.DataFrame) -> pd.DataFrame:
    """One row per (store_id, timestamp_utc), in input order; inactive wins (``loop.rules``)."""
    store = pd.factorize(polls["store_id"])[0]
    time = pd.factorize(polls["timestamp_utc"])[0]  # equality is all the rule needs
    keep = first_poll_per_instant(store, time, (polls["status"] == INACTIVE).to_numpy(dtype=bool))
    return polls.iloc[np.sort(keep)]


@dataclass
class _RowDropper:
    """Drops the kept rows that fail one check, recording them under that check's reason."""

    file: str
    problems: RowProblems
    lines: np.ndarray

    def __call__(
        self, keep: pd.Series, bad: pd.Series | np.ndarray, reason: str, shown: pd.Series | None = None
    ) -> pd.Series:
        bad = keep.to_numpy() & np.asarray(bad, dtype=bool)
        if not bad.any():
            return keep
        details = None if shown is None else _quoted(shown[bad])
        self.problems.add(self.file, reason, self.lines[bad], details)
        return keep & ~bad


@dataclass(frozen=True)
class _Distinct:
    """A column as its distinct values and each row's position among them.

    The files repeat few values over many rows (a few thousand store ids, two
    statuses, a few dozen clock times), so a check runs once per distinct
    value and its answers are spread over the rows by position. Checks are
    elementwise and see the same set of values, so the answers are those a
    check of every row would give.
    """

    codes: np.ndarray  # row i holds values[codes[i]]
    values: pd.Series  # RangeIndex
    index: pd.Index  # the rows' labels

    @classmethod
    def of(cls, column: pd.Series) -> _Distinct:
        if isinstance(column.dtype, pd.CategoricalDtype):
            if not column.hasnans:  # read dictionary-encoded: the distinct values are at hand
                return cls(column.cat.codes.to_numpy(), pd.Series(column.cat.categories), column.index)
            column = column.astype(column.cat.categories.dtype)
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        return cls(codes, pd.Series(uniques), column.index)

    def map(self, check: Callable[[pd.Series], pd.Series]) -> _Distinct:
        """``check`` (elementwise: a Series in, one of the same length out) of the distinct values."""
        return _Distinct(self.codes, check(self.values).reset_index(drop=True), self.index)

    def rows(self) -> pd.Series:
        """Every row's value."""
        return pd.Series(self.values.array.take(self.codes), index=self.index)

    def categorical(self, kept: np.ndarray) -> pd.Categorical[Any]:
        """``rows()[kept].astype("category")`` (sorted categories, only the values kept rows hold)."""
        codes = self.codes[kept]
        used = np.zeros(len(self.values), dtype=bool)
        used[codes] = True
        positions = np.flatnonzero(used)
        category_codes, categories = pd.factorize(self.values.iloc[positions], sort=True)
        remap = np.full(len(self.values), -1, dtype=np.int64)
        remap[positions] = category_codes
        return pd.Categorical.from_codes(remap[codes], dtype=pd.CategoricalDtype(categories))


def _valid_store_ids(raw: pd.DataFrame, drop: _RowDropper) -> tuple[pd.Series, _Distinct]:
    """Which rows have a store id (the store-id rule, ``loop.store_ids``, after stripping), and the stripped ids."""
    store_id = _Distinct.of(raw["store_id"]).map(lambda values: values.str.strip())
    keep = pd.Series(True, index=raw.index)
    # The rule runs once per distinct id; rows fail by their id's position among them.
    reasons = store_id_problems(store_id.values).to_numpy()
    failed = pd.notna(reasons)
    if not failed.any():
        return keep, store_id
    shown = store_id.rows()
    for reason in pd.unique(reasons[failed]):
        bad_rows = (reasons == reason)[store_id.codes]
        keep = drop(keep, bad_rows, reason, None if reason == BLANK else shown)
    return keep, store_id


def _quoted(values: pd.Series) -> list[str]:
    return [repr(v[:40] + "..." if len(v) > 40 else v) for v in values.head(EXAMPLES_PER_REASON).tolist()]
