"""The base of the ``manage.py`` commands that read or write MongoDB.

Next to ``make run`` (whose store lives in the demo's memory), such a command would otherwise
talk, silently, to the default ``mongodb://localhost:27017``: it says so, once, on stderr.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, OutputWrapper

from loop.backends import uses_mongomock


def mongo_url_unset_note() -> str | None:
    """The line to print when MONGO_URL is not in the environment (None when it is, or when in memory)."""
    if os.environ.get("MONGO_URL", "").strip() or uses_mongomock():
        return None
    return (
        f"MONGO_URL is not set: using {settings.MONGO_URL} (the `make run` demo keeps its data in memory "
        "and cannot be reached from here)"
    )


class MongoCommand(BaseCommand):
    """A command that uses MongoDB; ``uses_mongodb`` says when (some commands also work offline)."""

    def uses_mongodb(self, options: dict[str, Any]) -> bool:
        return True

    def execute(self, *args: Any, **options: Any) -> str | None:
        note = mongo_url_unset_note() if self.uses_mongodb(options) else None
        if note:
            OutputWrapper(options.get("stderr") or sys.stderr).write(note)
        return super().execute(*args, **options)
