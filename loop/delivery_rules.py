"""How a delivery attempt's outcome is judged and when the next one happens. Pure (no Django, no MongoDB).

Success is a 2xx. Timeouts, connection errors, 5xx and 429 are retried with exponential backoff and
jitter (a 429's or 503's ``Retry-After`` is honoured) until ``max_age`` after the delivery started;
410 Gone disables the channel; any other answer fails the delivery at once.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Callable
from enum import StrEnum


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"  # 410: the receiver says the URL is gone for good


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def verdict(status_code: int | None) -> Verdict:
    """``status_code`` None: no answer (timeout, connection refused, DNS error): worth retrying."""
    if status_code is None:
        return Verdict.RETRY
    if 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code == 410:
        return Verdict.GONE
    if status_code == 429 or status_code >= 500:
        return Verdict.RETRY
    return Verdict.FAILED  # other 4xx, and 1xx/3xx (redirects are not followed: the URL was checked, not its target)


def backoff_seconds(attempt_no: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt ``attempt_no`` (1, 2, ...): ``min(cap, base * 2**(n-1))``, of which a
    random half is taken off ("equal jitter"), so receivers coming back are not hit by every sender at once."""
    full = min(cap, base * 2 ** (attempt_no - 1))
    return full / 2 + rand() * full / 2


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    aware_now = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now
    return max(0.0, (when - aware_now).total_seconds())


def next_attempt_at(
    *,
    attempt_no: int,
    now: dt.datetime,
    window_start: dt.datetime,
    max_age: dt.timedelta,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> dt.datetime | None:
    """When to try again after failed attempt ``attempt_no`` (a RETRY verdict), or None: give up, the next
    try would fall after ``window_start + max_age``. ``retry_after`` (seconds) replaces the backoff."""
    wait = retry_after if retry_after is not None else backoff_seconds(attempt_no, base=base, cap=cap, rand=rand)
    when = now + dt.timedelta(seconds=wait)
    return when if when <= window_start + max_age else None
