"""``migrate_polls``: convert polls stored one document per poll into packed day parts (docs/storage.md)."""

from __future__ import annotations

from typing import Any

from loop.ingest.migrate import migrate_legacy_polls
from loop.management.mongo_command import MongoCommand


class Command(MongoCommand):
    help = "Convert a database in the one-document-per-poll layout to packed day parts (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        done = migrate_legacy_polls(progress=self.stdout.write)
        self.stdout.write(
            f"{done.old_documents} old poll documents read: {done.written.inserted} polls stored as day parts, "
            f"{done.written.duplicates} repeats or already stored; {done.hours_rows} hours and {done.zone_rows} zone "
            f"rows packed; {done.old_documents_deleted} old poll documents deleted in {done.seconds:.2f} s"
        )
