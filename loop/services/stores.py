"""Stores over HTTP: the store list and one store's detail, weekly and holiday hours, and time zone.

Hours are checked by the CSV reader's own row checks (``loop.sources.validate``),
so the API and ``load_data`` accept exactly the same clocks, days and dates.
The list and the detail read the store catalog (first and last poll of every
store, kept by the poll writer), never the polls, and the store directory
(``loop.services.directory``) for names, brands and regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop import storage
from loop.errors import InvalidInput, NotFound
from loop.rules import ACTIVE, INACTIVE, effective_zones, known_time_zones
from loop.services import history
from loop.services.directory import UNKNOWN, matching_ids, profiles_by_store
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.sources.problems import RowProblems
from loop.sources.rows import raw_rows_from_items
from loop.sources.validate import validate_hours_rows, validate_special_hours_rows
from loop.store_ids import MAX_STORE_ID_LENGTH, STORE_ID_HELP, is_store_id
from loop.timeutil import us_to_ts

HOURS_ITEM_KEYS = ("dayOfWeek", "start_time_local", "end_time_local")
SPECIAL_ITEM_KEYS = ("date_local", "start_time_local", "end_time_local")
SEARCH_MAX_LENGTH = MAX_STORE_ID_LENGTH


@dataclass(frozen=True)
class HoursRow:
    day_of_week: int
    start_time_local: str
    end_time_local: str


@dataclass(frozen=True)
class SpecialHoursRow:
    date_local: str
    start_time_local: str | None  # both None: closed all day
    end_time_local: str | None


@dataclass(frozen=True)
class StoreSummary:
    """One store of GET /stores/."""

    store_id: str
    timezone: str
    last_poll_utc: pd.Timestamp | None
    last_status: str | None  # active / inactive; None while the catalog does not know yet
    name: str | None = None  # the store directory's (loop.services.directory); None when unknown
    brand: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class StoreDetail:
    """GET /stores/<id>/: what the service knows of one store."""

    store_id: str
    timezone: str
    business_hours: list[HoursRow]
    special_hours: list[SpecialHoursRow]
    first_poll_utc: pd.Timestamp | None
    last_poll_utc: pd.Timestamp | None
    last_status: str | None
    name: str | None = None
    brand: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class StoreZone:
    store_id: str
    timezone_str: str
    is_default: bool  # no usable zone stored: the report reads the store in DEFAULT_TIMEZONE


def checked_store_id(store_id: str) -> str:
    """``store_id`` if it passes the store-id rule (``loop.store_ids``), else InvalidInput."""
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
    return _rows(storage.read_hours(storage.get_db(), checked_store_id(store_id)))


def _refuse_problems(problems: RowProblems, field: str) -> None:
    """All items valid or nothing stored: the bad items, each named by its position in the list."""
    if problems.total:
        shown = sorted(problems.examples, key=lambda p: p.line)
        raise InvalidInput(field, "; ".join(f"item {p.line}: {p.reason}" for p in shown))


def set_business_hours(*, store_id: str, items: list[object]) -> list[HoursRow]:
    """Replace the store's weekly hours; ``[]`` removes them (open 24x7). All items valid or nothing stored."""
    store_id = checked_store_id(store_id)
    problems = RowProblems()
    raw, indexes = raw_rows_from_items(items, HOURS_ITEM_KEYS, "hours", problems)
    raw = raw.rename(columns={"dayOfWeek": "day_of_week"})
    raw.insert(0, "store_id", pd.Series([store_id] * len(raw), dtype=raw["day_of_week"].dtype))
    hours = validate_hours_rows(raw, indexes, "hours", problems)
    _refuse_problems(problems, "hours")
    storage.set_store_hours(storage.get_db(), store_id, hours)
    _history_follows(store_id)
    return _rows(hours)


def get_timezone(*, store_id: str) -> StoreZone:
    """The store's zone as the report reads it (``rules.effective_zones``)."""
    store_id = checked_store_id(store_id)
    zones = storage.read_zones(storage.get_db(), store_id)
    (zone,), warnings = effective_zones(np.array([store_id], dtype=object), zones)
    # The default applies when no row is stored or its name is blank or unknown (then warned about).
    is_default = len(zones) == 0 or bool(warnings) or zone != str(zones["timezone_str"].iloc[-1]).strip()
    return StoreZone(store_id, str(zone), is_default)


def set_timezone(*, store_id: str, timezone_str: str) -> StoreZone:
    """Set the store's zone; only names this interpreter knows (``known_time_zones``) are accepted."""
    store_id = checked_store_id(store_id)
    if timezone_str not in known_time_zones():
        raise InvalidInput(
            "timezone_str", f"{timezone_str!r} is not a known time zone (IANA name, e.g. America/New_York)"
        )
    storage.set_store_zone(storage.get_db(), store_id, timezone_str)
    _history_follows(store_id)
    return StoreZone(store_id, timezone_str, False)


# --- holiday hours ----------------------------------------------------------------------


def _special_rows(special: pd.DataFrame) -> list[SpecialHoursRow]:
    ordered = special.sort_values(["date_local", "start_seconds", "end_seconds"], kind="stable", na_position="first")
    rows = []
    for date, start, end in ordered[["date_local", "start_seconds", "end_seconds"]].itertuples(index=False):
        if np.isnan(start):
            rows.append(SpecialHoursRow(str(date), None, None))
        else:
            rows.append(SpecialHoursRow(str(date), _clock(int(start)), _clock(int(end))))
    return rows


def get_special_hours(*, store_id: str) -> list[SpecialHoursRow]:
    """The store's holiday hours by date and start; ``[]``: none, its weekly hours apply every day."""
    return _special_rows(storage.read_special_hours(storage.get_db(), checked_store_id(store_id)))


def set_special_hours(*, store_id: str, items: list[object]) -> list[SpecialHoursRow]:
    """Replace the store's holiday hours; ``[]`` removes them. All items valid or nothing stored.

    An item with both times null (or empty) closes the store that whole local day.
    """
    store_id = checked_store_id(store_id)
    problems = RowProblems()
    # null times mean "closed all day", as empty fields do in special_hours.csv.
    items = [
        {key: ("" if key != "date_local" and value is None else value) for key, value in item.items()}
        if isinstance(item, dict)
        else item
        for item in items
    ]
    raw, indexes = raw_rows_from_items(items, SPECIAL_ITEM_KEYS, "special_hours", problems)
    raw.insert(0, "store_id", pd.Series([store_id] * len(raw), dtype=raw["date_local"].dtype))
    special = validate_special_hours_rows(raw, indexes, "special_hours", problems)
    _refuse_problems(problems, "special_hours")
    storage.set_store_special_hours(storage.get_db(), store_id, special)
    _history_follows(store_id)
    return _special_rows(special)


# --- the store list and one store's detail ----------------------------------------------


def _status(last_inactive: int) -> str | None:
    return None if last_inactive < 0 else (INACTIVE if last_inactive else ACTIVE)


def list_stores(
    *,
    search: str = "",
    region: str | None = None,
    brand: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE_DEFAULT,
) -> Page[StoreSummary]:
    """Stores with polls, sorted by id as text; ``search``: a case-insensitive literal substring of the id;
    ``region``, ``brand``: exactly the directory's value (case-sensitive; a store without one never matches).

    Three packed-table reads (the catalog, the zones, the directory: only the page's parts of it
    without a region or brand filter), whatever the page: no poll is read.
    """
    db = storage.get_db()
    catalog = storage.read_store_catalog(db)
    ids = pd.Series(catalog.store_ids, dtype=object).astype(str)
    order = np.argsort(ids.to_numpy(dtype=str), kind="stable")  # code-point order, as Python sorts str
    if search:
        match = ids.str.lower().str.contains(search.lower(), regex=False).to_numpy(dtype=bool)
        order = order[match[order]]
    profiles = None
    if region is not None or brand is not None:
        profiles = storage.read_profiles(db)
        wanted = matching_ids(profiles, region=region, brand=brand)
        order = order[np.isin(ids.to_numpy(dtype=object)[order], np.asarray(wanted, dtype=object))]
    skip = page_skip(page=page, page_size=page_size)
    chosen = order[skip : skip + page_size]
    chosen_ids = ids.to_numpy(dtype=object)[chosen]
    zones = effective_zones(chosen_ids, storage.read_zones(db))[0] if len(chosen) else chosen_ids
    if profiles is None:
        profiles = storage.read_profiles(db, store_ids=chosen_ids.tolist())
    named = profiles_by_store(profiles)
    results = []
    for i, zone in zip(chosen.tolist(), zones, strict=True):
        store_id = ids.iloc[i]
        profile = named.get(store_id, UNKNOWN)
        results.append(
            StoreSummary(
                store_id=store_id,
                timezone=str(zone),
                last_poll_utc=None if catalog.last_inactive[i] < 0 else us_to_ts(int(catalog.last_us[i])),
                last_status=_status(int(catalog.last_inactive[i])),
                name=profile.name,
                brand=profile.brand,
                region=profile.region,
            )
        )
    return Page(count=len(order), page=page, page_size=page_size, results=results)


def get_store(*, store_id: str) -> StoreDetail:
    """One store: zone, weekly and holiday hours, first and last poll, its directory profile;
    NotFound when nothing is known of it."""
    store_id = checked_store_id(store_id)
    db = storage.get_db()
    one = storage.read_one_store(db, store_id, with_catalog=True, with_profile=True)
    catalog, hours, special, zones, profiles = one.catalog, one.hours, one.special_hours, one.zones, one.profile
    assert catalog is not None and profiles is not None
    if not (len(catalog.store_ids) or len(hours) or len(special) or len(zones) or len(profiles)):
        raise NotFound(f"No store {store_id!r}: it has no polls, hours, holiday hours, time zone or profile.")
    profile = profiles_by_store(profiles).get(store_id, UNKNOWN)
    polled = len(catalog.store_ids) > 0
    known_last = polled and catalog.last_inactive[0] >= 0
    return StoreDetail(
        store_id=store_id,
        timezone=str(effective_zones(np.array([store_id], dtype=object), zones)[0][0]),
        business_hours=_rows(hours),
        special_hours=_special_rows(special),
        first_poll_utc=us_to_ts(int(catalog.first_us[0])) if polled else None,
        last_poll_utc=us_to_ts(int(catalog.last_us[0])) if known_last else None,
        last_status=_status(int(catalog.last_inactive[0])) if polled else None,
        name=profile.name,
        brand=profile.brand,
        region=profile.region,
    )


def _history_follows(store_id: str) -> None:
    """The store's daily figures are recomputed for all its dates (``services.history``; best effort)."""
    try:
        history.note_store_change(storage.get_db(), store_id)
    except Exception:  # the hours are stored; a later build recomputes the figures
        history.logger.exception("could not note the change of %s's hours for the daily figures", store_id)
        return
    history.request_history_update()
