"""Store attributes over HTTP: one store's weekly hours and its time zone.

The hours are checked by the CSV reader's own row check (``loop.csv_sources``),
so the API and ``load_data`` accept exactly the same clocks and days.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from loop import storage
from loop.csv_sources import MAX_STORE_ID_LENGTH, RowProblems, raw_rows_from_items, validate_hours_rows
from loop.errors import InvalidInput
from loop.rules import DEFAULT_TIMEZONE, known_time_zones

HOURS_ITEM_KEYS = ("dayOfWeek", "start_time_local", "end_time_local")
STORE_ID_HELP = f"1-{MAX_STORE_ID_LENGTH} characters, no control characters, not blank"


@dataclass(frozen=True)
class HoursRow:
    day_of_week: int
    start_time_local: str
    end_time_local: str


@dataclass(frozen=True)
class StoreZone:
    store_id: str
    timezone_str: str
    is_default: bool  # no zone stored: the report reads the store in DEFAULT_TIMEZONE


def is_store_id(value: object) -> bool:
    """A plain string the CSV reader would keep as a store id, without control characters."""
    return (
        isinstance(value, str)
        and value.strip() == value
        and 0 < len(value) <= MAX_STORE_ID_LENGTH
        and value.isprintable()
        and "\ufffd" not in value
    )


def _store_id(store_id: str) -> str:
    if not is_store_id(store_id):
        raise InvalidInput("store_id", f"must be {STORE_ID_HELP}")
    return str(store_id)


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _rows(hours: pd.DataFrame) -> list[HoursRow]:
    ordered = hours.sort_values(["day_of_week", "start_seconds", "end_seconds"], kind="stable")
    return [
        HoursRow(int(day), _clock(int(start)), _clock(int(end)))
        for day, start, end in ordered[["day_of_week", "start_seconds", "end_seconds"]].itertuples(index=False)
    ]


def get_business_hours(*, store_id: str) -> list[HoursRow]:
    """The store's weekly hours by day and start; an empty list means open 24x7 (no rows stored)."""
    return _rows(storage.read_hours(storage.get_db(), _store_id(store_id)))


def set_business_hours(*, store_id: str, items: list[object]) -> list[HoursRow]:
    """Replace the store's weekly hours; ``[]`` removes them (open 24x7). All items valid or nothing stored."""
    store_id = _store_id(store_id)
    problems = RowProblems()
    raw, indexes = raw_rows_from_items(items, HOURS_ITEM_KEYS, "hours", problems)
    raw = raw.rename(columns={"dayOfWeek": "day_of_week"})
    raw.insert(0, "store_id", pd.Series([store_id] * len(raw), dtype=raw["day_of_week"].dtype))
    hours = validate_hours_rows(raw, indexes, "hours", problems)
    if problems.total:
        shown = sorted(problems.examples, key=lambda p: p.line)
        raise InvalidInput("hours", "; ".join(f"item {p.line}: {p.reason}" for p in shown))
    storage.set_store_hours(storage.get_db(), store_id, hours)
    return _rows(hours)


def get_timezone(*, store_id: str) -> StoreZone:
    """The store's zone as the report reads it: the last stored row, else DEFAULT_TIMEZONE."""
    store_id = _store_id(store_id)
    zones = storage.read_zones(storage.get_db(), store_id)["timezone_str"].to_numpy()
    # As the engine reads it: the store's last row wins; a missing or unknown name means the default.
    if len(zones) == 0 or zones[-1] not in known_time_zones():
        return StoreZone(store_id, DEFAULT_TIMEZONE, True)
    return StoreZone(store_id, str(zones[-1]), False)


def set_timezone(*, store_id: str, timezone_str: str) -> StoreZone:
    """Set the store's zone; only names this interpreter knows (``known_time_zones``) are accepted."""
    store_id = _store_id(store_id)
    if timezone_str not in known_time_zones():
        raise InvalidInput(
            "timezone_str", f"{timezone_str!r} is not a known time zone (IANA name, e.g. America/New_York)"
        )
    storage.set_store_zone(storage.get_db(), store_id, timezone_str)
    return StoreZone(store_id, timezone_str, False)
