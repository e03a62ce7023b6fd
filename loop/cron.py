"""Cron expressions of report schedules and the instants ("slots") they fire at, in the schedule's zone.

Pure (no Django, no MongoDB). Five fields, minute hour day-of-month month day-of-week, as Vixie cron reads
them: ``*``, numbers, ranges ``a-b``, steps ``*/n`` / ``a-b/n`` / ``a/n``, lists ``a,b``, month names
``JAN``-``DEC``, weekday names ``SUN``-``SAT`` (0 and 7 are Sunday), and ``@hourly``, ``@daily``,
``@weekly``, ``@monthly``, ``@yearly``. When both day fields are restricted, a day matches either (Vixie).

Slots are **wall times** of the zone. Each matching wall time is one slot at the instant it first names:
- a wall time that does not exist (the hour skipped when clocks go forward) fires as many minutes after the
  gap as it lay inside it (``02:30`` on a spring-forward night in New York fires at ``03:30`` EDT), so it is
  not lost; it may then share its instant with another slot, and two slots at one instant are one slot;
- a wall time that happens twice (the hour repeated when clocks go back) fires once, the first time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# How far a search for the previous or next slot looks (a 29 February that is also a given weekday is rarer).
SEARCH_DAYS = 366 * 8 + 2
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
CRON_HELP = "five fields: minute hour day-of-month month day-of-week, e.g. '0 9 * * MON' (or @daily, @weekly, ...)"


class CronError(ValueError):
    """The expression (or zone) is refused; the message says why."""


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: tuple[int, ...]  # ascending
    hours: tuple[int, ...]
    days: frozenset[int]  # 1-31
    months: frozenset[int]  # 1-12
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool  # the day-of-month field is not *
    weekdays_restricted: bool

    def matches_date(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays


def _value(text: str, low: int, high: int, names: tuple[str, ...] | None, field: str) -> int:
    upper = text.upper()
    if names is not None and upper in names:
        return names.index(upper) + (1 if names is MONTHS else 0)
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} is not a number{' or a name' if names else ''}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field}: {value} is outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, names: tuple[str, ...] | None, field: str) -> tuple[set[int], bool]:
    """The values of one field, and whether it is restricted (not a bare ``*``)."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field}: empty list item in {text!r}")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: the step {step_text!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(first, low, high, names, field), _value(last, low, high, names, field)
            if start > end:
                raise CronError(f"{field}: the range {body!r} runs backwards")
        else:
            start = _value(body, low, high, names, field)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return values, text != "*"


def parse_cron(text: str) -> Cron:
    """The expression, or CronError. Seconds are not a field: a schedule fires at most once a minute."""
    cleaned = " ".join(str(text).split())
    expanded = MACROS.get(cleaned.lower(), cleaned)
    fields = expanded.split(" ")
    if len(fields) != 5:
        raise CronError(f"needs {CRON_HELP}; got {len(fields)} field(s)")
    minutes, _ = _field(fields[0], 0, 59, None, FIELD_NAMES[0])
    hours, _ = _field(fields[1], 0, 23, None, FIELD_NAMES[1])
    days, days_restricted = _field(fields[2], 1, 31, None, FIELD_NAMES[2])
    months, _ = _field(fields[3], 1, 12, MONTHS, FIELD_NAMES[3])
    weekdays, weekdays_restricted = _field(fields[4], 0, 7, WEEKDAYS, FIELD_NAMES[4])
    weekdays = {0 if day == 7 else day for day in weekdays}
    cron = Cron(
        text=cleaned,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
        days_restricted=days_restricted,
        weekdays_restricted=weekdays_restricted,
    )
    if not days_restricted or weekdays_restricted:
        return cron
    # Only the day of the month is restricted: it must exist in at least one allowed month.
    longest = max(31 if m in (1, 3, 5, 7, 8, 10, 12) else 30 if m != 2 else 29 for m in months)
    if min(days) > longest:
        raise CronError(f"day of month: no allowed month has day {min(days)}")
    return cron


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone by name (e.g. America/New_York), or CronError."""
    if not isinstance(name, str) or not name or name != name.strip() or name not in _zone_names():
        raise CronError(f"unknown time zone {name!r} (an IANA name such as America/New_York or UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r}") from exc


_ZONES: set[str] = set()


def _zone_names() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
        _ZONES.add("UTC")
    return _ZONES


def wall_to_instant(day: dt.date, hour: int, minute: int, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant a wall time of ``zone`` first names (a skipped one: shifted past the gap; see above)."""
    local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)  # fold=0: the first
    return local.astimezone(dt.UTC)


def _aware_utc(instant: dt.datetime) -> dt.datetime:
    return instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant.astimezone(dt.UTC)


def slot_at_or_before(cron: Cron, zone: ZoneInfo, instant: dt.datetime) -> dt.datetime | None:
    """The newest slot at or before ``instant`` (UTC, aware), or None within ``SEARCH_DAYS``.

    Instants grow with wall times (never back), so the first match walking back is the newest.
    """
    instant = _aware_utc(instant)
    day = instant.astimezone(zone).date() + dt.timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        if cron.matches_date(day):
            for hour in reversed(cron.hours):
                for minute in reversed(cron.minutes):
                    at = wall_to_instant(day, hour, minute, zone)
                    if at <= instant:
                        return at
        day -= dt.timedelta(days=1)
    return None


def slot_after(cron: Cron, zone: ZoneInfo, instant: dt.datetime) -> dt.datetime | None:
    """The first slot strictly after ``instant`` (UTC, aware), or None within ``SEARCH_DAYS``."""
    instant = _aware_utc(instant)
    day = instant.astimezone(zone).date() - dt.timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        if cron.matches_date(day):
            for hour in cron.hours:
                for minute in cron.minutes:
                    at = wall_to_instant(day, hour, minute, zone)
                    if at > instant:
                        return at
        day += dt.timedelta(days=1)
    return None
