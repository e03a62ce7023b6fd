"""Loading the Loop CSVs into MongoDB (used by ``load_data`` and ``serve_demo``).

Reading and validation are ``loop.sources`` (the same code the offline
report uses, so both paths accept and reject exactly the same rows); which
polls are new is ``loop.ingest.dedup``; writing is ``loop.storage``. The
status file is streamed in chunks, so memory stays bounded whatever its size,
and each chunk is written in large unordered batches. Loading is idempotent:
a poll already stored counts as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pymongo.database import Database

from loop import metrics, storage
from loop.ingest.dedup import PollWriter
from loop.sources.locate import CsvSource, locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import iter_status_chunks, read_hours, read_special_hours, read_stores, read_zones
from loop.sources.rows import DEFAULT_CHUNK_ROWS
from loop.storage.legacy import require_current_layout


class StrictModeError(Exception):
    """``--strict`` and some rows would be skipped: nothing was written."""

    def __init__(self, problems: dict[str, RowProblems]) -> None:
        self.problems = problems
        total = sum(p.total for p in problems.values())
        super().__init__(f"--strict: {total} input row(s) would be skipped; nothing was written")


@dataclass
class LoadStats:
    status_rows_read: int = 0
    polls_valid: int = 0
    polls_inserted: int = 0
    polls_made_inactive: int = 0
    hours_rows_read: int = 0
    hours_rows_loaded: int = 0
    hours_stores: int = 0
    zones_rows_read: int = 0
    zones_rows_loaded: int = 0
    zones_stores: int = 0
    # special_hours.csv is optional: its figures stay 0 when the load had none.
    special_rows_read: int = 0
    special_rows_loaded: int = 0
    special_stores: int = 0
    # stores.csv (the store directory) is optional too: one profile per store loaded.
    stores_rows_read: int = 0
    stores_profiles_loaded: int = 0
    seconds: float = 0.0
    # What the daily figures must recompute (history.build_after_load): whether the hours, holiday hours,
    # zones or directory changed, and the span of the polls on the days the load changed (None: none).
    tables_changed: bool = False
    polls_changed_us: tuple[int, int] | None = None
    # File display name -> its skipped rows, in the order status, hours, zones, special hours, stores (the files given).
    problems: dict[str, RowProblems] = field(default_factory=dict)
    # Kind of file ("status", "hours", "zones", "special", "stores") -> its display name, for the files given.
    names: dict[str, str] = field(default_factory=dict)

    @property
    def polls_duplicates(self) -> int:
        """Valid rows not inserted because the poll was already there (in the file or the database)."""
        return self.polls_valid - self.polls_inserted

    @property
    def rejected(self) -> int:
        return sum(p.total for p in self.problems.values())

    def summary_lines(self) -> list[str]:
        """What ``load_data`` prints (an import's summary repeats it): one line per file given."""
        status_name, hours_name, zones_name, special_name, stores_name = (
            self.names.get(kind) for kind in ("status", "hours", "zones", "special", "stores")
        )

        def rejected(name: str) -> int:
            return self.problems[name].total if name in self.problems else 0

        rate = self.status_rows_read / self.seconds if self.seconds > 0 else 0.0
        lines = []
        if status_name is not None:
            lines.append(
                f"{status_name}: {self.status_rows_read} rows read, {self.polls_inserted} inserted, "
                f"{self.polls_duplicates} duplicates ({self.polls_made_inactive} set inactive), "
                f"{rejected(status_name)} rejected"
            )
        if hours_name is not None:
            lines.append(
                f"{hours_name}: {self.hours_rows_read} rows read, {self.hours_rows_loaded} loaded for "
                f"{self.hours_stores} stores, {rejected(hours_name)} rejected"
            )
        if zones_name is not None:
            lines.append(
                f"{zones_name}: {self.zones_rows_read} rows read, {self.zones_rows_loaded} loaded for "
                f"{self.zones_stores} stores, {rejected(zones_name)} rejected"
            )
        if special_name is not None:
            lines.append(
                f"{special_name}: {self.special_rows_read} rows read, {self.special_rows_loaded} loaded for "
                f"{self.special_stores} stores, {rejected(special_name)} rejected"
            )
        if stores_name is not None:
            lines.append(
                f"{stores_name}: {self.stores_rows_read} rows read, {self.stores_profiles_loaded} store profiles "
                f"loaded, {rejected(stores_name)} rejected"
            )
        for name, problems in self.problems.items():
            if problems.total:
                lines.append(f"rejected rows in {name}:")
                lines.extend(f"  {line}" for line in problems.summary_lines())
        lines.append(f"done in {self.seconds:.2f} s ({rate:,.0f} status rows/s)")
        return lines


def load_sources(
    path: str | Path,
    db: Database | None = None,
    *,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
) -> LoadStats:
    """Load the three files at ``path`` (folder or Loop .zip) into MongoDB, and ``special_hours.csv`` and
    ``stores.csv`` if present.

    Raises ``InputFileError`` (unusable file: nothing written) and, with
    ``strict``, ``StrictModeError`` when any row would be skipped (the files
    are validated completely before the first write).
    """
    sources = locate_sources(path)
    found = {"status": sources.status, "hours": sources.hours, "zones": sources.zones}
    if sources.special is not None:
        found["special"] = sources.special
    if sources.stores is not None:
        found["stores"] = sources.stores
    return load_found_sources(found, db, strict=strict, chunk_rows=chunk_rows, progress=progress)


def _replace_table(
    db: Database,
    frame: pd.DataFrame,
    problems: RowProblems,
    replace: Callable[[Database, pd.DataFrame], int],
    name: str,
    on_rows: Callable[[str, int], None] | None,
) -> tuple[int, int, int]:
    """Write one small file's valid rows; returns (rows read, rows loaded, stores named)."""
    rows_read = len(frame) + problems.total
    rows_loaded = replace(db, frame)
    if on_rows is not None:
        on_rows(name, rows_read)
    return rows_read, rows_loaded, int(frame["store_id"].nunique())


def load_found_sources(
    found: Mapping[str, CsvSource],
    db: Database | None = None,
    *,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[str], None] | None = None,
    on_rows: Callable[[str, int], None] | None = None,
) -> LoadStats:
    """Load the files given (kind -> source; ``load_sources`` gives all three, an import any of them).

    A kind not given is left as stored. ``on_rows(file name, rows read so far)`` is called after
    each chunk of the status file (and once per hours or zones file): an import's progress.
    """
    started = time.perf_counter()
    found = {kind: source for kind, source in found.items() if source is not None}
    db = db if db is not None else storage.get_db()
    require_current_layout(db)
    stats = LoadStats()
    problems = {kind: RowProblems() for kind in ("status", "hours", "zones", "special", "stores") if kind in found}
    stats.names = {kind: found[kind].name for kind in problems}
    stats.problems = {found[kind].name: problems[kind] for kind in problems}
    # Hours and zones are small: read and validate them whole before any write.
    hours = read_hours(found["hours"], problems["hours"]) if "hours" in found else None
    zones = read_zones(found["zones"], problems["zones"]) if "zones" in found else None
    special = read_special_hours(found["special"], problems["special"]) if "special" in found else None
    profiles = read_stores(found["stores"], problems["stores"]) if "stores" in found else None
    status = found.get("status")
    chunks: Iterator[pd.DataFrame] = iter(())
    first = None
    if status is not None:
        if strict:
            for _ in iter_status_chunks(status, problems["status"], chunk_rows):
                pass
            if stats.rejected:
                raise StrictModeError(stats.problems)
            problems["status"] = RowProblems()
            stats.problems[status.name] = problems["status"]
        chunks = iter_status_chunks(status, problems["status"], chunk_rows)
        # The first chunk checks the status header: a bad file fails before anything is written.
        first = next(chunks, None)
    elif strict and stats.rejected:
        raise StrictModeError(stats.problems)

    # Hours, zones, holiday hours and the directory: each replaces the named stores' rows in one write
    # (none when the rows are those stored).
    tables_before = (storage.store_tables_version(db), storage.profiles_version(db))
    if hours is not None:
        stats.hours_rows_read, stats.hours_rows_loaded, stats.hours_stores = _replace_table(
            db, hours, problems["hours"], storage.replace_hours, found["hours"].name, on_rows
        )
    if zones is not None:
        stats.zones_rows_read, stats.zones_rows_loaded, stats.zones_stores = _replace_table(
            db, zones, problems["zones"], storage.replace_zones, found["zones"].name, on_rows
        )
    if special is not None:
        stats.special_rows_read, stats.special_rows_loaded, stats.special_stores = _replace_table(
            db, special, problems["special"], storage.replace_special_hours, found["special"].name, on_rows
        )
    if profiles is not None:
        stats.stores_rows_read, stats.stores_profiles_loaded, _ = _replace_table(
            db, profiles, problems["stores"], storage.replace_profiles, found["stores"].name, on_rows
        )
    stats.tables_changed = (storage.store_tables_version(db), storage.profiles_version(db)) != tables_before
    if status is None:
        stats.seconds = time.perf_counter() - started
        return stats

    writer = PollWriter(db)
    chunk = first
    while chunk is not None:
        stats.polls_valid += len(chunk)
        writer.write(chunk)
        if progress is not None:
            progress(f"  {stats.polls_valid} polls read")
        if on_rows is not None:
            on_rows(status.name, stats.polls_valid + problems["status"].total)
        chunk = next(chunks, None)
    # Repeats (in the files, or already stored) are dropped day by day; inactive wins.
    written = writer.flush()
    stats.polls_inserted = written.inserted
    stats.polls_made_inactive = written.made_inactive
    stats.polls_changed_us = written.changed_us
    if progress is not None:
        progress(f"  {stats.polls_inserted} polls inserted")
    stats.status_rows_read = stats.polls_valid + problems["status"].total
    stats.seconds = time.perf_counter() - started
    metrics.polls_received(
        source="load", valid=stats.polls_valid, stored=stats.polls_inserted, rejected=problems["status"].total
    )
    return stats
