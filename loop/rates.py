"""Parsing of rate limits such as ``"10/minute"`` (pure: loop.checks calls it so a bad value stops the start)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_PERIOD_NAMES = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
_RATE_RE = re.compile(r"(\d+)\s*/\s*(\d*)\s*([a-z]+)")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    def describe(self) -> str:
        return f"{self.count} per {_PERIOD_NAMES.get(self.seconds) or f'{self.seconds} s'}"


def parse_rate(text: str) -> Rate | None:
    """``"10/minute"`` (also ``10/m``, ``10/5min``, ``100/hour``); None when disabled."""
    cleaned = (text or "").strip().lower()
    if cleaned in ("", "0", "off", "none"):
        return None
    match = _RATE_RE.fullmatch(cleaned)
    if match is None or match.group(3) not in _PERIODS or int(match.group(2) or 1) == 0:
        raise ImproperlyConfigured(f"TRIGGER_RATE_LIMIT must look like '10/minute' (or 0 to disable), got {text!r}")
    count = int(match.group(1))
    if count == 0:
        return None
    return Rate(count, int(match.group(2) or 1) * _PERIODS[match.group(3)])
