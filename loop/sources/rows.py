"""Raw rows of a CSV file (or of a JSON list): lines read as text, each with its line number.

Malformed lines are skipped and recorded with file and line; nothing here judges a value.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import csv as pa_csv

from loop.sources.locate import CsvSource
from loop.sources.problems import InputFileError, RowProblems

DEFAULT_CHUNK_ROWS = 500_000
# Larger bodies are validated in slices of this many rows (bounded temporaries).
VALIDATION_SLICE_ROWS = 1_000_000

WRONG_FIELDS = "wrong number of fields"
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (.*)")
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
_DICTIONARY_TEXT = pa.dictionary(pa.int32(), pa.string())


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
        if reason is not None or not isinstance(item, dict):
            problems.add(name, reason or "not an object", np.array([index]))
            continue
        for column in columns:
            value = item.get(column, "")
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


def read_rows(
    src: CsvSource,
    columns: Mapping[str, tuple[str, ...]],
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
            options: dict[str, Any] = dict(
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
            parse_options=_clean_parse_options(count_invalid),
            convert_options=_clean_convert_options(usecols, dictionary),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid_rows:
        return None
    return _clean_frame(table, usecols, dictionary)


class UncleanFile(Exception):
    """A row with the wrong number of fields (a blank line included) or bytes that are not UTF-8:
    the file takes the pandas parser's path, which gives those lines their numbers."""


# The streaming reader keeps up to 32 blocks read ahead: small blocks keep that small.
STREAM_BLOCK_BYTES = 2 << 20


def stream_clean_rows(
    src: CsvSource,
    columns: Mapping[str, tuple[str, ...]],
    slice_rows: int,
    dictionary: tuple[str, ...] = (),
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The rows ``read_rows(..., chunk_rows=None)`` gives for a clean file, read with bounded memory.

    Arrow's streaming reader with the options of the fast path; each yielded frame holds the rows
    of one validation slice (``slice_rows`` rows, the last one fewer) with their line numbers, as
    the one-pass read cuts them. Raises ``UncleanFile`` (possibly after some slices) where the
    one-pass read would have fallen back to pandas; the caller then starts again with
    ``read_rows(..., chunk_rows=N)``. A missing column raises ``InputFileError`` as ``read_rows`` does.
    """
    invalid_rows = 0

    def count_invalid(_row: pa_csv.InvalidRow) -> str:
        nonlocal invalid_rows
        invalid_rows += 1
        return "skip"

    with src.open() as handle:
        usecols = _resolve_columns(_read_header(handle, src.name), columns, src.name)
        handle.seek(0)
        pending: list[pa.RecordBatch] = []
        held = first = 0
        try:
            reader = pa_csv.open_csv(
                handle,
                read_options=pa_csv.ReadOptions(block_size=STREAM_BLOCK_BYTES),
                parse_options=_clean_parse_options(count_invalid),
                convert_options=_clean_convert_options(usecols, dictionary),
            )
            schema = reader.schema
            for batch in reader:
                if invalid_rows:
                    raise UncleanFile(src.name)
                pending.append(batch)
                held += batch.num_rows
                while held >= slice_rows:
                    table = pa.Table.from_batches(pending, schema=schema)
                    part, rest = table.slice(0, slice_rows), table.slice(slice_rows)
                    yield _clean_slice(part, first, usecols, dictionary)
                    first += slice_rows
                    pending, held = rest.to_batches(), rest.num_rows
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise UncleanFile(src.name) from error
        if invalid_rows:
            raise UncleanFile(src.name)
        if held or first == 0:  # an empty file still gives one (empty) slice, as the one-pass read does
            yield _clean_slice(pa.Table.from_batches(pending, schema=schema), first, usecols, dictionary)


def _clean_slice(
    table: pa.Table, first: int, usecols: dict[str, str], dictionary: tuple[str, ...]
) -> tuple[pd.DataFrame, np.ndarray]:
    frame = _clean_frame(table, usecols, dictionary)
    frame.index = pd.RangeIndex(first, first + len(frame))
    return frame, frame.index.to_numpy() + 2


def _clean_parse_options(handler: Any) -> pa_csv.ParseOptions:
    return pa_csv.ParseOptions(invalid_row_handler=handler, ignore_empty_lines=False)


def _clean_convert_options(usecols: dict[str, str], dictionary: tuple[str, ...]) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(
        include_columns=list(usecols),
        column_types={
            name: _DICTIONARY_TEXT if canonical in dictionary else pa.string() for name, canonical in usecols.items()
        },
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )


def _clean_frame(table: pa.Table, usecols: dict[str, str], dictionary: tuple[str, ...]) -> pd.DataFrame:
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
    names = pd.read_csv(io.StringIO(text), header=None, dtype=str).iloc[0].tolist()
    return [name if isinstance(name, str) else "" for name in names]  # a blank header name reads as NaN


def _resolve_columns(header: list[str], columns: Mapping[str, tuple[str, ...]], name: str) -> dict[str, str]:
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
            problems.add(name, WRONG_FIELDS, np.array([line]), [match.group(2).strip()])
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
