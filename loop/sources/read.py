"""Reading the Loop CSV files: raw rows (``rows``) checked by their kind's rules (``validate``).

A missing file, an empty file or a header without a required column raises ``InputFileError``:
there is nothing sensible to do with such a file, so callers exit with code 2 before writing
anything. Bad rows are skipped and recorded in ``RowProblems``; every good row is kept.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from loop.sources import rows as _rows
from loop.sources.locate import CsvSource
from loop.sources.problems import RowProblem, RowProblems
from loop.sources.rows import DEFAULT_CHUNK_ROWS, WRONG_FIELDS, read_rows, stream_clean_rows
from loop.sources.validate import (
    BAD_STATUS,
    BAD_TIMESTAMP,
    STATUS_DTYPE,
    validate_hours_rows,
    validate_special_hours_rows,
    validate_status_rows,
    validate_store_rows,
    validate_zones_rows,
)

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
STORES_COLUMNS = {"store_id": ("store_id",), "name": ("name",), "brand": ("brand",), "region": ("region",)}


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
    for raw, lines in read_rows(src, STATUS_COLUMNS, problems, chunk_rows, dictionary=("store_id", "status")):
        yield validate_status_rows(raw, lines, src.name, problems)
        del raw


def stream_clean_status(src: CsvSource, problems: RowProblems) -> Iterator[pd.DataFrame]:
    """``read_status``'s valid polls of a clean file, one validation slice at a time (bounded memory).

    Raises ``rows.UncleanFile`` where ``read_status`` would read the file with pandas instead;
    then use ``iter_status_chunks`` (and a fresh ``RowProblems``). Either way, finish with
    ``order_status_examples`` to have the examples in ``read_status``'s order.
    """
    slices = stream_clean_rows(src, STATUS_COLUMNS, _rows.VALIDATION_SLICE_ROWS, dictionary=("store_id", "status"))
    for raw, lines in slices:
        yield validate_status_rows(raw, lines, src.name, problems)
        del raw


def order_status_examples(problems: RowProblems, *, clean: bool) -> None:
    """Put the examples of a streamed status file in the order ``read_status`` records them.

    Read in any pieces in file order, each reason keeps the same first examples (its lowest
    lines); only their order in the list depends on the pieces. ``read_status`` validates a
    clean file in slices of ``VALIDATION_SLICE_ROWS`` rows and any other file whole (its
    wrong-field lines recorded before anything else); within one validation the store-id
    reasons come first, each at the rank of the first line that has it (the order of the
    distinct ids), then the status, then the timestamp. ``problems`` must hold this file's only.
    """
    first_line: dict[str, int] = {}
    for example, reason in zip(problems.examples, problems.example_reasons, strict=True):
        first_line[reason] = min(first_line.get(reason, example.line), example.line)
    slice_rows = _rows.VALIDATION_SLICE_ROWS

    def key(example: RowProblem, reason: str) -> tuple[int, ...]:
        if reason == WRONG_FIELDS:
            check = (0, 0)
        elif reason == BAD_STATUS:
            check = (2, 0)
        elif reason == BAD_TIMESTAMP:
            check = (3, 0)
        else:  # the store-id rule's reasons
            check = (1, first_line[reason])
        piece = (example.line - 2) // slice_rows if clean else 0
        return (piece, *check, example.line)

    problems.reorder_examples(key)


def read_hours(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """Valid hours rows: store_id, day_of_week (0 = Monday), start_seconds, end_seconds."""
    frames = [
        validate_hours_rows(raw, lines, src.name, problems)
        for raw, lines in read_rows(src, HOURS_COLUMNS, problems, None)
    ]
    return pd.concat(frames, ignore_index=True)


def read_zones(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """Valid zone rows: store_id, timezone_str (a known IANA name)."""
    frames = [
        validate_zones_rows(raw, lines, src.name, problems)
        for raw, lines in read_rows(src, ZONES_COLUMNS, problems, None)
    ]
    return pd.concat(frames, ignore_index=True)


def read_special_hours(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """Valid holiday-hours rows: store_id, date_local (``YYYY-MM-DD``), start_seconds, end_seconds.

    Seconds are float64 after local midnight; both NaN means closed all day.
    """
    frames = [
        validate_special_hours_rows(raw, lines, src.name, problems)
        for raw, lines in read_rows(src, SPECIAL_COLUMNS, problems, None)
    ]
    return pd.concat(frames, ignore_index=True)


def read_stores(src: CsvSource, problems: RowProblems) -> pd.DataFrame:
    """The store directory: one row per store (store_id, name, brand, region; brand and region None when empty)."""
    frames = [
        validate_store_rows(raw, lines, src.name, problems)
        for raw, lines in read_rows(src, STORES_COLUMNS, problems, None)
    ]
    if len(frames) == 1:
        return frames[0]
    # Chunks of one read are slices of one file: the last row of a store still wins across them.
    whole = pd.concat(frames, ignore_index=True)
    return whole[~whole["store_id"].duplicated(keep="last")].reset_index(drop=True)
