"""What the database holds, read back through ``loop.storage`` (so tests do not depend on the layout)."""

from __future__ import annotations

from pymongo.database import Database

from loop import storage


def stored_poll_rows(db: Database) -> list[tuple[str, str, str]]:
    """Every stored poll as (store_id, status, ISO-8601 time), sorted."""
    polls = storage.read_all_polls(db).to_frame()
    return sorted(
        zip(
            polls["store_id"].astype(str),
            polls["status"].astype(str),
            [t.isoformat() for t in polls["timestamp_utc"]],
            strict=True,
        )
    )
