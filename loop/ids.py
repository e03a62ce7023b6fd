"""The ids the service hands out (reports, imports): one shape, checked before any query.

``secrets.token_urlsafe(24)``: 24 random bytes (192 bits) as 32 URL-safe characters.
"""

from __future__ import annotations

import re
import secrets

ID_RE = re.compile(r"[A-Za-z0-9_-]{32}")
ID_SHAPE = "32 characters of A-Z, a-z, 0-9, '_' and '-'"


def new_id() -> str:
    return secrets.token_urlsafe(24)


def is_id(value: object) -> bool:
    """True only for a plain string of the exact shape ``new_id`` hands out."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None
