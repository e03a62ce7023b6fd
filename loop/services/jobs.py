"""What reports and imports share as background jobs: who runs an attempt, and when a Running one is lost."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping
from typing import Any

from loop.storage import ReportStatus
from loop.timeutil import utcnow


def worker_name() -> str:
    """host:pid of this process, stored on the job so ops (and tests) see who ran it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_stale(doc: Mapping[str, Any], *, since_field: str, max_age_s: int) -> bool:
    """The stale rule: a Running job whose ``since_field`` instant is more than ``max_age_s`` old is lost.

    Reports count from ``created_at`` (Running too long), imports from ``updated_at`` (no progress for too long).
    """
    if doc["status"] != ReportStatus.RUNNING:  # imports share the statuses' values
        return False
    since = doc.get(since_field) or doc.get("created_at")
    return isinstance(since, dt.datetime) and (utcnow() - since).total_seconds() > max_age_s
