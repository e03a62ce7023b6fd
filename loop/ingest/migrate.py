"""Converting a database from one document per poll to packed day parts (``migrate_polls``).

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
    old_documents_deleted: int = 0
    seconds: float = 0.0


def migrate_legacy_polls(db: Database | None = None, *, progress: Callable[[str], None] | None = None) -> Migration:
    """Store every old-layout poll as day parts, then delete the old documents."""
    started = time.perf_counter()
    db = db if db is not None else storage.get_db()
    out = Migration()
    writer = PollWriter(db)
    for frame in legacy.iter_legacy_polls(db):
        writer.write(frame)
        out.old_documents += len(frame)
        if progress is not None:
            progress(f"  {out.old_documents} old documents read")
    legacy.drop_legacy_indexes(db)
    out.written = writer.flush()
    out.old_documents_deleted = legacy.delete_legacy_polls(db)
    out.seconds = time.perf_counter() - started
    return out
