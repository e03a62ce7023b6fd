"""The offline report from the Loop CSV files: in one pass, or in store chunks (pure: no Django, no MongoDB).

``generate_report --csv-dir`` calls ``prepare_offline_report``, tells the user about the skipped
rows, then ``write``s the report. Two paths give the same bytes and the same skipped-row report:

* **one pass** (``read_status`` and the engine over every store at once): the fastest, and what
  1x and 10x sets take. It holds the whole status file, about ``ONE_PASS_BASE_MB`` +
  ``ONE_PASS_FILE_FACTOR`` x the file's size.
* **store chunks**, when that estimate is over ``max_memory_mb`` (or when ``chunk_stores`` is
  given). Pass 1 streams the status file (the same row checks, a validation slice at a time)
  into a spill folder: each valid poll as a global store code, its instant and its status
  (13 bytes), with the distinct store ids and the newest instant. The stores with a poll at or
  before ``now`` are sorted as the engine sorts them (as text) and cut into contiguous ranges:
  ``chunk_stores`` stores each, or by the estimated memory of their week's polls. Pass 2 reads
  the spill once and writes each range's polls of the report week into a file of its own. Then
  each range is computed by the engine, in store order, and appended to the output.

Why the chunks give the same bytes: every figure of a store depends only on its own polls of the
week, hours, holiday hours and zone, and on ``now`` (rules 1-13), which pass 1 knows before any
range is computed; the rows come out sorted by store id and each range holds the next ids. A store
whose polls at or before ``now`` all lie before the week still gets its row (``extra_store_ids``, as
on the database path).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loop.lanes import to_utc_us
from loop.report_engine import ReportResult, compute_report, report_to_csv
from loop.rules import ACTIVE, DEFAULT_MAX_GAP_MINUTES, WEEK_US, merge_warnings
from loop.sources.locate import CsvSource, SourceSet, locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import (
    iter_status_chunks,
    order_status_examples,
    read_hours,
    read_special_hours,
    read_status,
    read_zones,
    stream_clean_status,
)
from loop.sources.rows import DEFAULT_CHUNK_ROWS, UncleanFile
from loop.sources.validate import STATUS_DTYPE

# The default memory budget (``--max-memory-mb``): 1x and 10x sets stay in one pass.
DEFAULT_MAX_MEMORY_MB = 4096
# The one-pass estimate, from its peak RSS on the benchmark sets (1x: a 140 MB status file,
# 0.45 GB; 10x: 1.4 GB, 1.87 GB).
ONE_PASS_BASE_MB = 300
ONE_PASS_FILE_FACTOR = 1.3
# A range's estimated memory in the engine: per poll of the week and per store (hours, intervals).
RANGE_BYTES_PER_POLL = 400
RANGE_BYTES_PER_STORE = 8_000
# What a chunked run holds besides a range (the interpreter, pandas, a validation slice).
CHUNKED_BASE_MB = 600
MIN_RANGE_BUDGET_MB = 64
# Rows of a status file pass 1 reads at a time with pandas (a file Arrow refuses: see ``read_status``).
PANDAS_CHUNK_ROWS = DEFAULT_CHUNK_ROWS
# Rows read from the spill at a time in pass 2.
SPILL_BLOCK_ROWS = 4_000_000
_RANGE_RECORD = np.dtype([("code", "<i4"), ("us", "<i8"), ("active", "u1")])
_ACTIVE_CODE = list(STATUS_DTYPE.categories).index(ACTIVE)


@dataclass
class OfflineTotals:
    """What the command says about a written report."""

    stores: int
    polls_counted: int
    now: pd.Timestamp | None
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0  # input rows skipped (the command fills it in)


@dataclass
class ChunkPlan:
    """How a chunked run cut the stores (for the command's summary and the benchmark)."""

    stores: int  # stores with a poll at or before now
    ranges: list[int]  # stores in each range
    polls_in_week: int
    spilled_polls: int
    seconds: dict[str, float] = field(default_factory=dict)  # pass 1 (read and spill), pass 2 (split), engine


class PreparedReport:
    """The inputs read and checked; ``problems`` is final. ``write`` (once) computes and emits the CSV text."""

    problems: RowProblems
    chunked: bool = False
    plan: ChunkPlan | None = None

    def write(self, emit: Callable[[str], object]) -> OfflineTotals:
        raise NotImplementedError


def estimated_one_pass_mb(status_bytes: int) -> float:
    return ONE_PASS_BASE_MB + ONE_PASS_FILE_FACTOR * status_bytes / 2**20


@contextmanager
def prepare_offline_report(
    path: str | Path,
    *,
    now: pd.Timestamp | None = None,
    extended: bool = False,
    max_gap_minutes: int = DEFAULT_MAX_GAP_MINUTES,
    chunk_stores: int | None = None,
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB,
    spill_dir: str | Path | None = None,
) -> Iterator[PreparedReport]:
    """Read and check the CSV files of ``path`` (folder or zip); a chunked run's spill folder is removed on leaving.

    ``chunk_stores``: force store chunks of at most this many stores. Otherwise chunks are used
    when the one-pass estimate of the status file exceeds ``max_memory_mb``. Raises
    ``InputFileError`` for an unusable file, before anything is written.
    """
    if chunk_stores is not None and chunk_stores < 1:
        raise ValueError("chunk_stores must be at least 1")
    sources = locate_sources(path)
    size = sources.status.size
    options = _Options(now, extended, max_gap_minutes)
    if chunk_stores is None and (size is None or estimated_one_pass_mb(size) <= max_memory_mb):
        yield _OnePass(sources, options)
        return
    folder = Path(tempfile.mkdtemp(prefix="loop-report-", dir=spill_dir))
    try:
        range_budget = max(MIN_RANGE_BUDGET_MB, max_memory_mb - CHUNKED_BASE_MB) * 2**20
        yield _Chunked(sources, options, folder, chunk_stores, range_budget)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class _Options:
    now: pd.Timestamp | None
    extended: bool
    max_gap_minutes: int


def _read_small_files(
    sources: SourceSet, problems: RowProblems
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    hours = read_hours(sources.hours, problems)
    zones = read_zones(sources.zones, problems)
    # special_hours.csv is optional: without it, the weekly hours apply every day.
    special = None if sources.special is None else read_special_hours(sources.special, problems)
    return hours, zones, special


class _OnePass(PreparedReport):
    def __init__(self, sources: SourceSet, options: _Options) -> None:
        self.problems = RowProblems()
        self._polls = read_status(sources.status, self.problems)
        self._hours, self._zones, self._special = _read_small_files(sources, self.problems)
        self._options = options

    def write(self, emit: Callable[[str], object]) -> OfflineTotals:
        result = _compute(self._polls, self._hours, self._zones, self._special, self._options)
        emit(report_to_csv(result.report))
        return OfflineTotals(result.stores, result.polls_counted, result.now, list(result.warnings))


def _compute(
    polls: pd.DataFrame,
    hours: pd.DataFrame,
    zones: pd.DataFrame,
    special: pd.DataFrame | None,
    options: _Options,
    now: pd.Timestamp | None = None,
    extra_store_ids: Sequence[str] | None = None,
) -> ReportResult:
    return compute_report(
        polls,
        hours,
        zones,
        now=options.now if now is None else now,
        extra_store_ids=extra_store_ids,
        special_hours=special,
        extended=options.extended,
        max_gap_minutes=options.max_gap_minutes,
    )


class _Spill:
    """Pass 1's output: every valid poll as (global store code, instant in us, active) in three column files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.code_of: dict[str, int] = {}
        self.rows = 0
        self.newest_us: int | None = None
        self._files = {name: open(folder / f"polls.{name}", "wb") for name in ("code", "us", "active")}  # noqa: SIM115

    def add(self, polls: pd.DataFrame) -> None:
        if len(polls) == 0:
            return
        store = polls["store_id"].array
        code_of = self.code_of
        # Each distinct id of the slice once: its global code (first seen, first numbered).
        global_codes = np.array(
            [code_of.setdefault(value, len(code_of)) for value in store.categories.tolist()], dtype=np.int32
        )
        us = to_utc_us(polls["timestamp_utc"])
        global_codes[store.codes].tofile(self._files["code"])
        us.tofile(self._files["us"])
        (polls["status"].array.codes == _ACTIVE_CODE).astype(np.uint8).tofile(self._files["active"])
        self.rows += len(polls)
        newest = int(us.max())
        self.newest_us = newest if self.newest_us is None else max(self.newest_us, newest)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()

    def blocks(self, *, with_active: bool) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """(codes, instants, active or None) in blocks of ``SPILL_BLOCK_ROWS``, in file order."""
        with (
            open(self.folder / "polls.code", "rb") as codes,
            open(self.folder / "polls.us", "rb") as instants,
            open(self.folder / "polls.active", "rb") as active,
        ):
            for _ in range(0, self.rows, SPILL_BLOCK_ROWS):
                block_codes = np.fromfile(codes, dtype=np.int32, count=SPILL_BLOCK_ROWS)
                block_us = np.fromfile(instants, dtype=np.int64, count=SPILL_BLOCK_ROWS)
                block_active = np.fromfile(active, dtype=np.uint8, count=SPILL_BLOCK_ROWS) if with_active else None
                yield block_codes, block_us, block_active


def _spill_status(src: CsvSource, folder: Path) -> tuple[_Spill, RowProblems]:
    """Pass 1: the status file streamed into a spill; its problems exactly as ``read_status`` reports them."""
    problems = RowProblems()
    spill = _Spill(folder)
    clean = True
    try:
        for polls in stream_clean_status(src, problems):
            spill.add(polls)
    except UncleanFile:
        # read_status reads such a file with pandas: so does this, from the start, in chunks.
        spill.close()
        problems, spill, clean = RowProblems(), _Spill(folder), False
        for polls in iter_status_chunks(src, problems, chunk_rows=PANDAS_CHUNK_ROWS):
            spill.add(polls)
    finally:
        spill.close()
    order_status_examples(problems, clean=clean)
    return spill, problems


class _Chunked(PreparedReport):
    chunked = True

    def __init__(
        self, sources: SourceSet, options: _Options, folder: Path, chunk_stores: int | None, range_budget: int
    ) -> None:
        started = time.perf_counter()
        self._spill, self.problems = _spill_status(sources.status, folder)
        self._pass1_seconds = time.perf_counter() - started
        self._hours, self._zones, self._special = _read_small_files(sources, self.problems)
        self._options = options
        self._chunk_stores = chunk_stores
        self._range_budget = range_budget
        self._folder = folder

    def write(self, emit: Callable[[str], object]) -> OfflineTotals:
        spill, options = self._spill, self._options
        started = time.perf_counter()
        if options.now is not None:
            now_us = int(to_utc_us(pd.Series([pd.Timestamp(options.now)]))[0])
        elif spill.newest_us is not None:
            now_us = spill.newest_us
        else:  # no valid poll at all: the engine's own answer (an empty report without now)
            empty = _compute(_no_polls(), *self._tables(), options)
            emit(report_to_csv(empty.report))
            return OfflineTotals(0, 0, empty.now, list(empty.warnings))
        now = pd.Timestamp(now_us, unit="us", tz="UTC")
        week_start = now_us - WEEK_US

        # Pass 2a: which stores have a poll at or before now, and how many polls each has in the week.
        n_codes = len(spill.code_of)
        present = np.zeros(n_codes, dtype=bool)
        in_week = np.zeros(n_codes, dtype=np.int64)
        for codes, instants, _ in spill.blocks(with_active=False):
            until_now = instants <= now_us
            present[codes[until_now]] = True
            in_week += np.bincount(codes[until_now & (instants >= week_start)], minlength=n_codes)
        ids = np.array(list(spill.code_of), dtype=object)
        present_codes = np.flatnonzero(present)
        # Store order: the engine's (ids compared as text, numpy's order of str arrays).
        by_id = present_codes[np.argsort(ids[present_codes].astype(str), kind="stable")]
        sorted_ids = ids[by_id]
        range_of_rank = self._ranges(in_week[by_id])
        n_ranges = int(range_of_rank[-1]) + 1 if len(range_of_rank) else 0
        first_rank = np.searchsorted(range_of_rank, np.arange(n_ranges + 1), side="left")
        rank_of_code = np.full(n_codes, -1, dtype=np.int64)
        rank_of_code[by_id] = np.arange(len(by_id))
        range_of_code = np.full(n_codes, -1, dtype=np.int64)
        range_of_code[by_id] = range_of_rank
        self.plan = ChunkPlan(
            stores=len(by_id),
            ranges=np.diff(first_rank).tolist(),
            polls_in_week=int(in_week.sum()),
            spilled_polls=spill.rows,
        )
        self.plan.seconds["pass 1"] = self._pass1_seconds

        # Pass 2b: each range's polls of the week into a file of its own.
        range_file = [self._folder / f"range-{r}.bin" for r in range(n_ranges)]
        for codes, instants, active in spill.blocks(with_active=True):
            assert active is not None
            block_range = range_of_code[codes]
            keep = np.flatnonzero((block_range >= 0) & (instants <= now_us) & (instants >= week_start))
            keep = keep[np.argsort(block_range[keep], kind="stable")]
            kept_range = block_range[keep]
            records = np.empty(len(keep), dtype=_RANGE_RECORD)
            records["code"], records["us"], records["active"] = codes[keep], instants[keep], active[keep]
            cuts = np.searchsorted(kept_range, np.arange(n_ranges + 1), side="left")
            for r in np.unique(kept_range):
                with open(range_file[r], "ab") as handle:
                    records[cuts[r] : cuts[r + 1]].tofile(handle)
        for name in ("code", "us", "active"):
            (self._folder / f"polls.{name}").unlink(missing_ok=True)
        self.plan.seconds["pass 2"] = time.perf_counter() - started
        started = time.perf_counter()

        # The stores' tables, split by range (rows of a store keep their order: a zone's last row wins).
        hours_of = _split_by_range(self._hours, sorted_ids, range_of_rank, n_ranges)
        zones_of = _split_by_range(self._zones, sorted_ids, range_of_rank, n_ranges)
        special_of = (
            None if self._special is None else _split_by_range(self._special, sorted_ids, range_of_rank, n_ranges)
        )
        totals = OfflineTotals(0, 0, now)
        if n_ranges == 0:
            result = _compute(_no_polls(), *self._tables(), options, now=now)
            emit(report_to_csv(result.report))
            totals.warnings = list(result.warnings)
            return totals
        for r in range(n_ranges):
            lo, hi = int(first_rank[r]), int(first_rank[r + 1])
            path = range_file[r]
            records = np.fromfile(path, dtype=_RANGE_RECORD) if path.exists() else np.zeros(0, dtype=_RANGE_RECORD)
            path.unlink(missing_ok=True)
            range_ids = sorted_ids[lo:hi]
            polls = _polls_frame(rank_of_code[records["code"]] - lo, records["us"], records["active"] == 1, range_ids)
            del records
            special = None if special_of is None else special_of[r]
            result = _compute(
                polls, hours_of[r], zones_of[r], special, options, now=now, extra_store_ids=range_ids.tolist()
            )
            text = report_to_csv(result.report)
            emit(text if r == 0 else text[text.index("\n") + 1 :])
            totals.stores += result.stores
            totals.polls_counted += result.polls_counted
            totals.warnings = merge_warnings([totals.warnings, result.warnings])
            del polls, result, text
        self.plan.seconds["engine"] = time.perf_counter() - started
        return totals

    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
        return self._hours, self._zones, self._special

    def _ranges(self, week_polls: np.ndarray) -> np.ndarray:
        """Range of each store in store order: ``chunk_stores`` stores each, or by estimated memory."""
        n = len(week_polls)
        if self._chunk_stores is not None:
            return np.arange(n, dtype=np.int64) // self._chunk_stores
        cost = week_polls * RANGE_BYTES_PER_POLL + RANGE_BYTES_PER_STORE
        start = np.cumsum(cost) - cost
        # Stores whose cost starts in the same budget-sized stretch share a range (numbered 0, 1, ...).
        return np.unique(start // self._range_budget, return_inverse=True)[1].astype(np.int64)


def _polls_frame(codes: np.ndarray, instants: np.ndarray, active: np.ndarray, store_ids: object) -> pd.DataFrame:
    """A poll frame as ``read_status`` gives it: store ids (categorical), status, UTC instants (us)."""
    categories = pd.Index(np.asarray(store_ids, dtype=object), dtype=object)
    return pd.DataFrame(
        {
            "store_id": pd.Categorical.from_codes(codes, categories=categories),
            "status": pd.Categorical.from_codes(
                np.where(active, _ACTIVE_CODE, 1 - _ACTIVE_CODE),
                dtype=STATUS_DTYPE,
            ),
            "timestamp_utc": pd.Series(instants.astype("datetime64[us]")).dt.tz_localize("UTC"),
        }
    )


def _no_polls() -> pd.DataFrame:
    return _polls_frame(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype=bool), [])


def _split_by_range(
    table: pd.DataFrame, sorted_ids: np.ndarray, range_of_rank: np.ndarray, n_ranges: int
) -> list[pd.DataFrame]:
    """The rows of each range's stores (rows of stores without a report row are left out), in file order."""
    rank = pd.Index(sorted_ids, dtype=object).get_indexer(table["store_id"].astype(object).to_numpy())
    row_range = np.full(len(rank), -1, dtype=np.int64)
    row_range[rank >= 0] = range_of_rank[rank[rank >= 0]]
    order = np.flatnonzero(row_range >= 0)
    order = order[np.argsort(row_range[order], kind="stable")]
    cuts = np.searchsorted(row_range[order], np.arange(n_ranges + 1), side="left")
    return [table.iloc[order[cuts[r] : cuts[r + 1]]].reset_index(drop=True) for r in range(n_ranges)]
