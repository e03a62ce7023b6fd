"""Loading the Loop CSVs into MongoDB (used by ``load_data`` and ``serve_demo``).

Reading and validation are ``loop.csv_sources`` (the same code the offline
report uses, so both paths accept and reject exactly the same rows); which
polls are new is ``loop.ingest.dedup``; writing is ``loop.storage``. The
status file is streamed in chunks, so memory stays bounded whatever its size,
and each chunk is written in large unordered batches. Loading is idempotent:
a poll already stored counts as a duplicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymongo.database import Database

from loop import storage
from loop.csv_sources import (
    DEFAULT_CHUNK_ROWS,
    RowProblems,
    iter_status_chunks,
    locate_sources,
    read_hours,
    read_special_hours,
    read_zones,
)
from loop.ingest.dedup import PollWriter
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
    # special_hours.csv is optional: None when the load had none.
    special_name: str | None = None
    special_rows_read: int = 0
    special_rows_loaded: int = 0
    special_stores: int = 0
    seconds: float = 0.0
    # File display name -> its skipped rows, in the order status, hours, zones (then special hours).
    problems: dict[str, RowProblems] = field(default_factory=dict)

    @property
    def polls_duplicates(self) -> int:
        """Valid rows not inserted because the poll was already there (in the file or the database)."""
        return self.polls_valid - self.polls_inserted

    @property
    def rejected(self) -> int:
        return sum(p.total for p in self.problems.values())

    def summary_lines(self) -> list[str]:
        def rejected(name: str) -> int:
            return self.problems[name].total if name in self.problems else 0

        status_name, hours_name, zones_name = list(self.problems)[:3]
        rate = self.status_rows_read / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{status_name}: {self.status_rows_read} rows read, {self.polls_inserted} inserted, "
            f"{self.polls_duplicates} duplicates ({self.polls_made_inactive} set inactive), "
            f"{rejected(status_name)} rejected",
            f"{hours_name}: {self.hours_rows_read} rows read, {self.hours_rows_loaded} loaded for "
            f"{self.hours_stores} stores, {rejected(hours_name)} rejected",
            f"{zones_name}: {self.zones_rows_read} rows read, {self.zones_rows_loaded} loaded for "
            f"{self.zones_stores} stores, {rejected(zones_name)} rejected",
        ]
        if self.special_name is not None:
            lines.append(
                f"{self.special_name}: {self.special_rows_read} rows read, {self.special_rows_loaded} loaded for "
                f"{self.special_stores} stores, {rejected(self.special_name)} rejected"
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
    """Load the three files at ``path`` (folder or Loop .zip) into MongoDB, and ``special_hours.csv`` if present.

    Raises ``InputFileError`` (unusable file: nothing written) and, with
    ``strict``, ``StrictModeError`` when any row would be skipped (the files
    are validated completely before the first write).
    """
    started = time.perf_counter()
    db = db if db is not None else storage.get_db()
    require_current_layout(db)
    sources = locate_sources(path)
    stats = LoadStats()
    status_problems, hours_problems, zones_problems = RowProblems(), RowProblems(), RowProblems()
    stats.problems = {
        sources.status.name: status_problems,
        sources.hours.name: hours_problems,
        sources.zones.name: zones_problems,
    }
    special_problems = RowProblems()
    if sources.special is not None:
        stats.special_name = sources.special.name
        stats.problems[sources.special.name] = special_problems
    # Hours and zones are small: read and validate them whole before any write.
    hours = read_hours(sources.hours, hours_problems)
    zones = read_zones(sources.zones, zones_problems)
    special = None if sources.special is None else read_special_hours(sources.special, special_problems)
    if strict:
        for _ in iter_status_chunks(sources.status, status_problems, chunk_rows):
            pass
        if stats.rejected:
            raise StrictModeError(stats.problems)
        status_problems = RowProblems()
        stats.problems[sources.status.name] = status_problems
    chunks = iter_status_chunks(sources.status, status_problems, chunk_rows)
    # The first chunk checks the status header: a bad file fails before anything is written.
    first = next(chunks, None)

    stats.hours_rows_read = len(hours) + hours_problems.total
    stats.hours_rows_loaded = storage.replace_hours(db, hours)
    stats.hours_stores = int(hours["store_id"].nunique())
    stats.zones_rows_read = len(zones) + zones_problems.total
    stats.zones_rows_loaded = storage.replace_zones(db, zones)
    stats.zones_stores = int(zones["store_id"].nunique())
    if special is not None:
        stats.special_rows_read = len(special) + special_problems.total
        stats.special_rows_loaded = storage.replace_special_hours(db, special)
        stats.special_stores = int(special["store_id"].nunique())

    writer = PollWriter(db)
    chunk = first
    while chunk is not None:
        stats.polls_valid += len(chunk)
        writer.write(chunk)
        if progress is not None:
            progress(f"  {stats.polls_valid} polls read")
        chunk = next(chunks, None)
    # Repeats (in the files, or already stored) are dropped day by day; inactive wins.
    written = writer.flush()
    stats.polls_inserted = written.inserted
    stats.polls_made_inactive = written.made_inactive
    if progress is not None:
        progress(f"  {stats.polls_inserted} polls inserted")
    stats.status_rows_read = stats.polls_valid + status_problems.total
    stats.seconds = time.perf_counter() - started
    return stats
