"""Reading the audit log: newest first, filtered by actor, action (exact, or a family ending in ".") and
time, paged by a cursor (the last id seen), which stays stable while new entries are appended on top."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import DatabaseError

from loop.audit.models import AuditEntry
from loop.errors import InvalidInput, Unavailable
from loop.services.paging import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX

AUDIT_LIMIT_DEFAULT = PAGE_SIZE_DEFAULT
AUDIT_LIMIT_MAX = PAGE_SIZE_MAX


@dataclass(frozen=True)
class AuditPage:
    """One page of entries and the cursor of the next (None on the last page)."""

    results: list[AuditEntry]
    limit: int
    next_cursor: str | None


def list_audit_entries(
    *,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = AUDIT_LIMIT_DEFAULT,
    cursor: int | None = None,
) -> AuditPage:
    """Entries newest first; ``since`` included, ``until`` excluded; ``cursor``: the previous page's last id."""
    if not 1 <= limit <= AUDIT_LIMIT_MAX:
        raise InvalidInput("limit", f"must be between 1 and {AUDIT_LIMIT_MAX}")
    if since is not None and until is not None and until <= since:
        raise InvalidInput("until", "must be after since")
    if cursor is not None and cursor < 1:
        raise InvalidInput("cursor", "must be the next_cursor of a previous answer")
    entries = AuditEntry.objects.all()
    if actor:
        entries = entries.filter(actor=actor)
    if action:
        if action.endswith("."):
            # LIKE 'hours.%', not a range: a PostgreSQL collation may order '.' apart from the letters.
            entries = entries.filter(action__startswith=action)
        else:
            entries = entries.filter(action=action)
    if since is not None:
        entries = entries.filter(at__gte=since)
    if until is not None:
        entries = entries.filter(at__lt=until)
    if cursor is not None:
        entries = entries.filter(id__lt=cursor)
    try:
        # One more than asked: whether a next page exists without a COUNT over the log.
        found = list(entries.order_by("-id")[: limit + 1])
    except DatabaseError as exc:
        raise Unavailable("The accounts database is unavailable; try again later.") from exc
    page = found[:limit]
    next_cursor = str(page[-1].id) if len(found) > limit else None
    return AuditPage(results=page, limit=limit, next_cursor=next_cursor)
