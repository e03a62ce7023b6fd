"""Converting a database from one document per row to the packed layout (``migrate_polls``).

Safe to stop and run again: the old documents are deleted only after their
polls are stored as day parts, and merging polls that are already stored
changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pymongo.database import Database

from loop import storage
from loop.ingest.dedup import PollWrite, PollWriter
from loop.storage import legacy


@dataclass
class Migration:
    """Old documents read and deleted; ``written`` says which of their polls were new to the day parts."""

    old_documents: int = 0
    written: PollWrite = field(default_factory=PollWrite)
    hours_rows: int = 0
    zone_rows: int = 0
    old_documents_deleted: int = 0
    seconds: float = 0.0


def migrate_legacy_polls(db: Database | None = None, *, progress: Callable[[str], None] | None = None) -> Migration:
    """Store every old-layout poll, hours row and zone row in the packed layout, then delete the old documents."""
    started = time.perf_counter()
    db = db if db is not None else storage.get_db()
    out = Migration()
    writer = PollWriter(db)
    for frame in legacy.iter_legacy_polls(db):
        writer.write(frame)
        out.old_documents += len(frame)
        if progress is not None:
            progress(f"  {out.old_documents} old documents read")
    hours, zones = legacy.read_legacy_hours(db), legacy.read_legacy_zones(db)
    legacy.drop_legacy_poll_indexes(db)
    out.written = writer.flush()
    out.hours_rows = storage.replace_hours(db, hours)
    out.zone_rows = storage.replace_zones(db, zones)
    out.old_documents_deleted = legacy.delete_legacy_documents(db)
    out.seconds = time.perf_counter() - started
    return out
