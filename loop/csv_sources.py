"""Reading and validating the three Loop CSV files (pure: pandas only).

Bad rows never abort a read: they are skipped and recorded in ``RowProblems``
(a count per reason and the first examples with file and line), and every
good row is kept. A missing file, an empty file or a header without a
required column raises ``InputFileError``: there is nothing sensible to do
with such a file, so callers exit with code 2 before writing anything.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import union_categoricals
from pyarrow import compute as pa_compute
from pyarrow import csv as pa_csv

from loop.rules import DEFAULT_TIMEZONE, INACTIVE, POLL_STATUSES, first_poll_per_instant, known_time_zones

STATUS_NAMES = ("store_status.csv",)
HOURS_NAMES = ("menu_hours.csv", "business_hours.csv")
ZONES_NAMES = ("timezones.csv", "store_timezones.csv")
SPECIAL_NAMES = ("special_hours.csv",)  # optional: holiday hours
# Each kind of file and the names it may have (in a folder, or anywhere inside a zip).
SOURCE_NAMES = {"status": STATUS_NAMES, "hours": HOURS_NAMES, "zones": ZONES_NAMES, "special": SPECIAL_NAMES}
# The kinds a full data set must have (holiday hours are optional).
REQUIRED_KINDS = ("status", "hours", "zones")
# POST /imports/: each file field and the kind it carries (the one list of them); or one
# ARCHIVE_FIELD holding a Loop .zip. The upload is stored under the kind's first name.
UPLOAD_FIELDS = {"store_status": "status", "business_hours": "hours", "timezones": "zones", "special_hours": "special"}
ARCHIVE_FIELD = "archive"

# Canonical column -> accepted header names (compared case-insensitively).
STATUS_COLUMNS = {"store_id": ("store_id",), "status": ("status",), "timestamp_utc": ("timestamp_utc",)}
HOURS_COLUMNS = {
    "store_id": ("store_id",),
    "day_of_week": ("dayofweek", "day_of_week", "day"),
    "start_time_local": ("start_time_local",),
    "end_time_local": ("end_time_local",),
}
ZONES_COLUMNS = {"store_id": ("store_id",), "timezone_str": ("timezone_str",)}
SPECIAL_COLUMNS = {
    "store_id": ("store_id",),
    "date_local": ("date_local",),
    "start_time_local": ("start_time_local",),
    "end_time_local": ("end_time_local",),
}

MAX_STORE_ID_LENGTH = 128
EXAMPLES_PER_REASON = 5
DEFAULT_CHUNK_ROWS = 500_000
VALIDATION_SLICE_ROWS = 1_000_000
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (.*)")
_CLOCK = r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$"
_UTC_SUFFIX = r"(?i)\s*UTC$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
_DICTIONARY_TEXT = pa.dictionary(pa.int32(), pa.string())
STATUS_DTYPE = pd.CategoricalDtype(list(POLL_STATUSES))


class InputFileError(Exception):
    """A file that cannot be used at all (missing, empty, required column absent)."""


@dataclass(frozen=True)
class RowProblem:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class RowProblems:
    """Skipped rows: how many per reason, and the first few of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[RowProblem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, file: str, reason: str, lines: np.ndarray, details: list[str] | None = None) -> None:
        """Record ``len(lines)`` rows skipped for ``reason`` (details: per-row text)."""
        if len(lines) == 0:
            return
        shown = self.counts[reason]
        self.counts[reason] += len(lines)
        for i in range(max(0, min(len(lines), EXAMPLES_PER_REASON - shown))):
            text = reason if details is None else f"{reason}: {details[i]}"
            self.examples.append(RowProblem(file, int(lines[i]), text))

    def summary_lines(self) -> list[str]:
        lines = [f"{count} row(s) skipped: {reason}" for reason, count in sorted(self.counts.items())]
        lines += [f"  e.g. {example}" for example in self.examples]
        return lines


@dataclass
class CsvSource:
    """One CSV file, in a folder or inside a zip."""

    name: str
    opener: Callable[[], BinaryIO]

    def open(self) -> BinaryIO:
        return self.opener()


@dataclass
class SourceSet:
    status: CsvSource
    hours: CsvSource
    zones: CsvSource
    special: CsvSource | None = None  # special_hours.csv when present (holiday hours are optional)


def locate_sources(path: str | Path) -> SourceSet:
    """Find the three files (and an optional ``special_hours.csv``) in a folder or a Loop ``.zip``.

    Zip members may sit in a subfolder.
    """
    found = find_sources(path)
    for kind in REQUIRED_KINDS:
        if kind not in found:
            raise InputFileError(f"missing file: none of {', '.join(SOURCE_NAMES[kind])} in {path}")
    return SourceSet(status=found["status"], hours=found["hours"], zones=found["zones"], special=found.get("special"))


def find_sources(path: str | Path) -> dict[str, CsvSource]:
    """The kinds of file (``SOURCE_NAMES``) present in a folder or a Loop ``.zip``; absent kinds are left out."""
    path = Path(path)
    found: dict[str, CsvSource] = {}
    if path.is_dir():
        for kind, names in SOURCE_NAMES.items():
            for name in names:
                candidate = path / name
                if candidate.is_file():
                    found[kind] = CsvSource(str(candidate), lambda c=candidate: open(c, "rb"))
                    break
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = zip_members(archive.namelist())
        for kind, member in members.items():
            found[kind] = CsvSource(f"{path}:{member}", lambda m=member: _open_member(path, m))
    elif path.exists():
        raise InputFileError(f"{path} is neither a folder nor a zip file")
    else:
        raise InputFileError(f"missing input: {path} does not exist")
    return found


def zip_members(names: list[str]) -> dict[str, str]:
    """Which member of a zip holds each kind of file: matched by its base name, in any folder."""
    by_name = {Path(m).name.lower(): m for m in names if not m.endswith("/")}
    members: dict[str, str] = {}
    for kind, accepted in SOURCE_NAMES.items():
        for name in accepted:
            if name in by_name:
                members[kind] = by_name[name]
                break
    return members


def looked_for() -> str:
    """The file names a folder or zip is searched for, for messages."""
    return "; ".join(" or ".join(names) for names in SOURCE_NAMES.values())


def _open_member(path: Path, member: str) -> BinaryIO:
    with zipfile.ZipFile(path) as archive:
        # Members are read into memory; a zip member stream cannot seek back for the header.
        return io.BytesIO(archive.read(member))


def read_status(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """All valid polls: store_id, status, timestamp_utc (UTC, microseconds)."""
    chunks = list(iter_status_chunks(src, problems, chunk_rows=None))
    if len(chunks) == 1:
        return chunks[0]
    return pd.DataFrame(
        {
            "store_id": union_categoricals([c["store_id"] for c in chunks]),
            "status": pd.Categorical.from_codes(
                np.concatenate([c["status"].cat.codes.to_numpy() for c in chunks]), dtype=STATUS_DTYPE
            ),
            "timestamp_utc": pd.concat([c["timestamp_utc"] for c in chunks], ignore_index=True),
        }
    )


def iter_status_chunks(
    src: CsvSource, problems: RowProblems, chunk_rows: int | None = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Valid polls in chunks of at most ``chunk_rows`` input rows (bounded memory)."""
    for raw, lines in _read_rows(src, STATUS_COLUMNS, problems, chunk_rows, dictionary=("store_id", "status")):
        yield validate_status_rows(raw, lines, src.name, problems)
        del raw


def validate_status_rows(raw: pd.DataFrame, lines: np.ndarray, name: str, problems: RowProblems) -> pd.DataFrame:
    """The valid polls of a frame of raw text (store_id, status, timestamp_utc); bad rows go to ``problems``.

    The one check of poll rows: the CSV reader and the HTTP JSON batch both call it,
    ``lines`` saying where each row came from (a file line or a list index).
    """
    drop = _RowDropper(name, problems, lines)
    keep, store_id = _valid_store_ids(raw, drop)
    status = _Distinct.of(raw["status"]).map(lambda values: values.str.strip().str.lower())
    # Each row's code in STATUS_DTYPE; -1 for anything but the two statuses (as isin(POLL_STATUSES)).
    status_codes = STATUS_DTYPE.categories.get_indexer(status.values)[status.codes]
    keep = drop(keep, status_codes < 0, "status is not active or inactive", raw["status"])
    timestamps = parse_timestamps(raw["timestamp_utc"])
    keep = drop(keep, timestamps.isna(), "timestamp_utc is not a valid timestamp", raw["timestamp_utc"])
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


def read_hours(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """Valid hours rows: store_id, day_of_week (0 = Monday), start_seconds, end_seconds."""
    frames = [
        validate_hours_rows(raw, lines, src.name, problems)
        for raw, lines in _read_rows(src, HOURS_COLUMNS, problems, None)
    ]
    return pd.concat(frames, ignore_index=True)


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


def raw_rows_from_items(
    items: list[object], columns: tuple[str, ...], name: str, problems: RowProblems
) -> tuple[pd.DataFrame, np.ndarray]:
    """A JSON list of objects as the raw text frame the row checks read, and each row's list index.

    Values are taken as the CSV reader would see them: strings as they are, integers
    as their digits, a missing key as an empty field. An item that is not an object,
    or holds another kind of value, is recorded in ``problems`` and left out.
    """
    rows: dict[str, list[str]] = {column: [] for column in columns}
    kept: list[int] = []
    for index, item in enumerate(items):
        reason = _item_problem(item, columns)
        if reason is not None:
            problems.add(name, reason, np.array([index]))
            continue
        for column in columns:
            value = item.get(column, "")  # type: ignore[union-attr]
            rows[column].append(value if isinstance(value, str) else str(value))
        kept.append(index)
    frame = pd.DataFrame({column: pd.Series(values, dtype=_TEXT) for column, values in rows.items()})
    return frame, np.asarray(kept, dtype=np.int64)


def _item_problem(item: object, columns: tuple[str, ...]) -> str | None:
    if not isinstance(item, dict):
        return f"not an object with the keys {', '.join(columns)}"
    for column in columns:
        value = item.get(column, "")
        if isinstance(value, bool) or not isinstance(value, str | int):
            return f"{column} is not a string"
    return None


def parse_clock(values: pd.Series) -> pd.Series:
    """``HH:MM[:SS]`` to seconds after midnight (float, NaN where invalid or out of range)."""
    parts = values.str.strip().str.extract(_CLOCK).astype(object)
    hour = pd.to_numeric(parts[0], errors="coerce")
    minute = pd.to_numeric(parts[1], errors="coerce")
    second = pd.to_numeric(parts[2].fillna("0"), errors="coerce")
    valid = (hour < 24) & (minute < 60) & (second < 60)
    return (hour * 3600 + minute * 60 + second).where(valid)


def read_zones(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """Valid zone rows: store_id, timezone_str (a known IANA name)."""
    frames = []
    for raw, lines in _read_rows(src, ZONES_COLUMNS, problems, None):
        drop = _RowDropper(src.name, problems, lines)
        keep, store_id = _valid_store_ids(raw, drop)
        zone = _Distinct.of(raw["timezone_str"]).map(lambda values: values.str.strip())
        blank = zone.map(lambda values: values == "").rows()
        keep = drop(keep, blank, f"timezone_str is blank (store uses {DEFAULT_TIMEZONE})")
        unknown = zone.map(lambda values: ~values.isin(known_time_zones())).rows()
        zone_rows = zone.rows()
        reason = f"timezone_str is not a known time zone (store uses {DEFAULT_TIMEZONE})"
        keep = drop(keep, unknown, reason, zone_rows)
        frames.append(pd.DataFrame({"store_id": store_id.rows()[keep], "timezone_str": zone_rows[keep]}))
    return pd.concat(frames, ignore_index=True)


def read_special_hours(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """Valid holiday-hours rows: store_id, date_local (``YYYY-MM-DD``), start_seconds, end_seconds.

    Seconds are float64 after local midnight; both NaN means closed all day.
    """
    frames = [
        validate_special_hours_rows(raw, lines, src.name, problems)
        for raw, lines in _read_rows(src, SPECIAL_COLUMNS, problems, None)
    ]
    return pd.concat(frames, ignore_index=True)


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

    def categorical(self, kept: np.ndarray) -> pd.Categorical:
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
    """Which rows have a usable store_id, and the stripped ids."""
    store_id = _Distinct.of(raw["store_id"]).map(lambda values: values.str.strip())
    keep = pd.Series(True, index=raw.index)
    keep = drop(keep, store_id.map(lambda values: values == "").rows(), "store_id is blank")
    too_long = store_id.map(lambda values: values.str.len() > MAX_STORE_ID_LENGTH).rows()
    keep = drop(keep, too_long, f"store_id is longer than {MAX_STORE_ID_LENGTH} characters")
    # Undecodable bytes were replaced by U+FFFD while reading; other columns with them fail their own checks.
    bad_bytes = store_id.map(lambda values: values.str.contains("\ufffd", regex=False)).rows()
    keep = drop(keep, bad_bytes, "store_id is not valid UTF-8")
    return keep, store_id


def _quoted(values: pd.Series) -> list[str]:
    return [repr(v[:40] + "..." if len(v) > 40 else v) for v in values.head(EXAMPLES_PER_REASON).tolist()]


def _read_rows(
    src: CsvSource,
    columns: dict[str, tuple[str, ...]],
    problems: RowProblems,
    chunk_rows: int | None,
    dictionary: tuple[str, ...] = (),
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Raw string rows with canonical column names, and each row's line number in the file.

    Every value is read as text (store ids must never become numbers); rows with
    the wrong number of fields are skipped by the parser and recorded here.
    The ``dictionary`` columns (canonical names) may come back as categoricals
    of that text: a column of few distinct values reads faster that way.
    """
    with src.open() as handle:
        header = _read_header(handle, src.name)
        usecols = _resolve_columns(header, columns, src.name)
        handle.seek(0)
        if chunk_rows is None:
            fast = _read_clean_file(handle, usecols, dictionary)
            if fast is not None:
                # Validate in slices so the temporary copies stay small next to the table.
                for first in range(0, max(len(fast), 1), VALIDATION_SLICE_ROWS):
                    part = fast.iloc[first : first + VALIDATION_SLICE_ROWS]
                    yield part, part.index.to_numpy() + 2
                return
            handle.seek(0)
        skipped: list[int] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            options = dict(
                dtype=str,
                usecols=list(usecols),
                na_filter=False,
                skip_blank_lines=False,
                index_col=False,
                encoding="utf-8-sig",
                encoding_errors="replace",
                on_bad_lines="warn",
            )
            if chunk_rows:
                reader: Iterator[pd.DataFrame] = pd.read_csv(handle, chunksize=chunk_rows, **options)
            else:
                reader = iter([pd.read_csv(handle, **options)])
            for chunk in reader:
                _collect_bad_lines(caught, skipped, src.name, problems)
                chunk = chunk.rename(columns=usecols)
                lines = _line_numbers(chunk.index.to_numpy(), skipped)
                # Fewer fields than the header leave missing values; blank lines are dropped silently.
                if chunk.isna().any().any():
                    chunk = chunk.fillna("")
                maybe_blank = (chunk["store_id"] == "").to_numpy()
                if maybe_blank.any():
                    blank_line = maybe_blank & (chunk == "").all(axis=1).to_numpy()
                    chunk, lines = chunk[~blank_line], lines[~blank_line]
                yield chunk, lines


def _read_clean_file(
    handle: BinaryIO, usecols: dict[str, str], dictionary: tuple[str, ...] = ()
) -> pd.DataFrame | None:
    """Fast multithreaded read with Arrow, for files without structural problems.

    Returns None when a row has the wrong number of fields (blank lines
    included) or the bytes are not UTF-8: the exact line numbers for those
    cases come from the slower pandas parser. Otherwise row i is line i + 2.
    """
    invalid_rows = 0

    def count_invalid(_row: pa_csv.InvalidRow) -> str:
        nonlocal invalid_rows
        invalid_rows += 1
        return "skip"

    try:
        table = pa_csv.read_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=16 << 20),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=count_invalid, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(usecols),
                column_types={
                    name: _DICTIONARY_TEXT if canonical in dictionary else pa.string()
                    for name, canonical in usecols.items()
                },
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid_rows:
        return None
    frame = table.to_pandas(types_mapper=lambda t: _TEXT if t == pa.string() else None).rename(columns=usecols)
    for name in dictionary:
        categories = frame[name].cat.categories
        if categories.dtype != _TEXT:  # no rows: the categories come back as objects
            frame[name] = pd.Categorical.from_codes(frame[name].cat.codes, categories=categories.astype(_TEXT))
    return frame


def _read_header(handle: BinaryIO, name: str) -> list[str]:
    first = handle.readline()
    if not first.strip(b"\r\n\t \xef\xbb\xbf"):
        raise InputFileError(f"{name}: file is empty (no header line)")
    text = first.decode("utf-8-sig", errors="replace").strip("\r\n")
    return next(iter(pd.read_csv(io.StringIO(text), header=None, dtype=str).itertuples(index=False)))


def _resolve_columns(header: list[str], columns: dict[str, tuple[str, ...]], name: str) -> dict[str, str]:
    """Map the file's header names to canonical names; a missing column is fatal."""
    by_lower = {str(h).strip().lower(): h for h in header}
    mapping: dict[str, str] = {}
    for canonical, accepted in columns.items():
        found = next((by_lower[a] for a in accepted if a in by_lower), None)
        if found is None:
            raise InputFileError(
                f"{name}: header has no {accepted[0]!r} column (header: {', '.join(map(str, header))})"
            )
        mapping[found] = canonical
    return mapping


def _collect_bad_lines(caught: list, skipped: list[int], name: str, problems: RowProblems) -> None:
    for warning in caught:
        for match in _SKIPPED_LINE.finditer(str(warning.message)):
            line = int(match.group(1))
            skipped.append(line)
            problems.add(name, "wrong number of fields", np.array([line]), [match.group(2).strip()])
    caught.clear()
    skipped.sort()


def _line_numbers(index: np.ndarray, skipped: list[int]) -> np.ndarray:
    """File line of each parsed row: row i is line i + 2, shifted past skipped bad lines."""
    if not skipped:
        return index + 2
    bad = np.asarray(skipped)
    # Bad line j (sorted) sits before every row whose index is >= bad[j] - 2 - j.
    thresholds = bad - 2 - np.arange(len(bad))
    return index + 2 + np.searchsorted(thresholds, index, side="right")
