"""The ids the service hands out (reports, imports): one shape, checked before any query.

``secrets.token_urlsafe(24)``: 24 random bytes (192 bits) as 32 URL-safe characters.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

ID_RE = re.compile(r"[A-Za-z0-9_-]{32}")
ID_SHAPE = "32 characters of A-Z, a-z, 0-9, '_' and '-'"


def new_id() -> str:
    return secrets.token_urlsafe(24)


def derived_id(*parts: str) -> str:
    """An id of the same shape, always the same for the same parts (a run's report and deliveries: a second
    writer of the same thing hits the unique ``_id`` instead of making another)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def is_id(value: object) -> bool:
    """True only for a plain string of the exact shape ``new_id`` hands out."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None
