"""Store attributes: weekly hours (``business_hours``), holiday hours (``special_hours``), time zones
(``timezones``) and the store directory (``store_profiles``), as packed tables.

Each collection holds one head (``_id`` ``"table"``) and its parts live in
``<collection>.parts`` (``loop.storage.packed``). Hours rows: ``store_id``,
``day_of_week`` (0 = Monday), ``start_seconds``, ``end_seconds`` (seconds after
local midnight). Special-hours rows: ``store_id``, ``date_local`` (``YYYY-MM-DD``),
``start_seconds``, ``end_seconds`` (``CLOSED_ALL_DAY`` = -1 in both: closed that day).
Zone rows: ``store_id``, ``timezone_str``; several rows of one store keep their file
order (the engine takes the last). Profile rows: ``store_id``, ``name``, ``brand``, ``region``
(one row per store; an unknown brand or region is stored as ``""``).

Loading a file replaces the rows of the stores it names and keeps the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop.storage.packed import (
    INT,
    STORE_ID,
    STR,
    Columns,
    PackedTable,
    StoreRange,
    exclusive,
    same_rows,
    sorted_by_store,
)
from loop.storage.polls import Catalog, bump_data_version, read_store_catalog, read_store_polls
from loop.storage.schema import HOURS, PROFILES, SPECIAL_HOURS, ZONES

# Rows per part of the store tables: one store's read (the store endpoints) fetches a part of
# ~60 KB instead of ~300 KB (5,000 rows), which FerretDB serves about 4x faster; a whole-table
# read (the report) fetches more, smaller documents for about the same time.
STORE_TABLE_PART_ROWS = 1000
HOURS_TABLE = PackedTable(
    HOURS,
    "table",
    f"{HOURS}.parts",
    (("store_id", STR), ("day_of_week", INT), ("start_seconds", INT), ("end_seconds", INT)),
    STORE_TABLE_PART_ROWS,
)
SPECIAL_HOURS_TABLE = PackedTable(
    SPECIAL_HOURS,
    "table",
    f"{SPECIAL_HOURS}.parts",
    (("store_id", STR), ("date_local", STR), ("start_seconds", INT), ("end_seconds", INT)),
    STORE_TABLE_PART_ROWS,
)
# Stored for the NaN seconds of a row that closes the store all day (columns are int64).
CLOSED_ALL_DAY = -1
ZONES_TABLE = PackedTable(
    ZONES, "table", f"{ZONES}.parts", (("store_id", STR), ("timezone_str", STR)), STORE_TABLE_PART_ROWS
)
PROFILES_TABLE = PackedTable(
    PROFILES,
    "table",
    f"{PROFILES}.parts",
    (("store_id", STR), ("name", STR), ("brand", STR), ("region", STR)),
    STORE_TABLE_PART_ROWS,
)
PROFILE_COLUMNS = ("name", "brand", "region")
# How long a directory write waits for another one (a request must answer well before gunicorn's timeout).
PROFILE_LOCK_WAIT_S = 30.0
REPLACE_ATTEMPTS = 20


class TableBusy(RuntimeError):
    """Another writer kept a table's lock longer than the caller may wait."""


def _replace_stores(
    db: Database, table: PackedTable, new: Columns, named: list[str] | None = None, *, bump: bool = True
) -> int:
    """The stores named in ``new`` (or in ``named``) get exactly its rows; others keep theirs. Returns rows written.

    ``named`` lets a store lose all its rows: ``new`` with no rows names no store.
    ``bump``: the rows feed the report, so a change moves the data version (reports are not reused).
    """
    replaced = np.unique(new["store_id"].astype(str) if named is None else np.asarray(named, dtype=object).astype(str))
    for _ in range(REPLACE_ATTEMPTS):
        head, old = table.read(db)
        kept = ~np.isin(old["store_id"].astype(str), replaced)
        merged = sorted_by_store({name: np.concatenate([old[name][kept], new[name]]) for name, _ in table.kinds})
        if head is not None and same_rows(merged, old):
            return len(new["store_id"])
        if table.replace(db, head, merged):
            if bump:
                bump_data_version(db)  # reports triggered from now on must see these rows
            return len(new["store_id"])
    raise RuntimeError(f"{table.heads}: other writers replaced it {REPLACE_ATTEMPTS} times in a row")


def replace_hours(db: Database, hours: pd.DataFrame) -> int:
    """Store parsed hours rows; stores named in ``hours`` lose their old rows."""
    if hours.empty:
        return 0
    return _replace_stores(db, HOURS_TABLE, _hours_columns(hours))


def _hours_columns(hours: pd.DataFrame) -> Columns:
    return {
        "store_id": hours["store_id"].astype(str).to_numpy(dtype=object),
        **{col: hours[col].to_numpy(dtype=np.int64) for col in ("day_of_week", "start_seconds", "end_seconds")},
    }


def set_store_hours(db: Database, store_id: str, hours: pd.DataFrame) -> int:
    """One store's weekly hours become exactly ``hours`` (no rows: the store has none, so it is open 24x7)."""
    if (hours["store_id"].astype(str) != store_id).any():
        raise ValueError(f"hours for {store_id!r} hold rows of other stores")  # they would keep their old rows too
    return _replace_stores(db, HOURS_TABLE, _hours_columns(hours), named=[store_id])


def set_store_zone(db: Database, store_id: str, timezone_str: str) -> None:
    """One store's zone becomes ``timezone_str`` (its older rows are dropped)."""
    _replace_stores(
        db,
        ZONES_TABLE,
        {"store_id": np.array([store_id], dtype=object), "timezone_str": np.array([timezone_str], dtype=object)},
        named=[store_id],
    )


def replace_zones(db: Database, zones: pd.DataFrame) -> int:
    """Store zone rows (file order kept within a store); named stores lose their old rows."""
    if zones.empty:
        return 0
    return _replace_stores(
        db,
        ZONES_TABLE,
        {
            "store_id": zones["store_id"].astype(str).to_numpy(dtype=object),
            "timezone_str": zones["timezone_str"].astype(str).to_numpy(dtype=object),
        },
    )


def _read_rows(table: PackedTable, db: Database, store_id: str | None, store_range: StoreRange | None) -> Columns:
    """The table's rows: every store's, one store's, or those of the stores in ``store_range`` (only the parts
    that can hold them are read; a store's rows keep their stored order)."""
    _, columns = table.read(db, store_id, store_ids=store_range)
    if store_range is not None:
        keep = store_range.mask(columns[STORE_ID])
        columns = {name: values[keep] for name, values in columns.items()}
    return columns


def read_hours(db: Database, store_id: str | None = None, *, store_range: StoreRange | None = None) -> pd.DataFrame:
    """Hours rows of every store (or of one, or of the stores in ``store_range``: a report shard's)."""
    columns = _read_rows(HOURS_TABLE, db, store_id, store_range)
    return pd.DataFrame(
        {
            "store_id": pd.Series(columns["store_id"], dtype="str"),
            **{col: pd.Series(columns[col], dtype="int64") for col in ("day_of_week", "start_seconds", "end_seconds")},
        }
    )


def read_zones(db: Database, store_id: str | None = None, *, store_range: StoreRange | None = None) -> pd.DataFrame:
    """Zone rows of every store (or of one, or of ``store_range``'s); a store's rows in file order."""
    columns = _read_rows(ZONES_TABLE, db, store_id, store_range)
    return pd.DataFrame(
        {
            "store_id": pd.Series(columns["store_id"], dtype="str"),
            "timezone_str": pd.Series(columns["timezone_str"], dtype="str"),
        }
    )


def _special_columns(special: pd.DataFrame) -> Columns:
    def seconds(column: str) -> np.ndarray:
        return special[column].astype(np.float64).fillna(CLOSED_ALL_DAY).to_numpy().astype(np.int64)

    return {
        "store_id": special["store_id"].astype(str).to_numpy(dtype=object),
        "date_local": special["date_local"].astype(str).to_numpy(dtype=object),
        "start_seconds": seconds("start_seconds"),
        "end_seconds": seconds("end_seconds"),
    }


def replace_special_hours(db: Database, special: pd.DataFrame) -> int:
    """Store parsed holiday-hours rows (``sources.read.read_special_hours``); stores named lose their old rows."""
    if special.empty:
        return 0
    return _replace_stores(db, SPECIAL_HOURS_TABLE, _special_columns(special))


def set_store_special_hours(db: Database, store_id: str, special: pd.DataFrame) -> int:
    """One store's holiday hours become exactly ``special`` (no rows: none, the weekly hours apply every day)."""
    if (special["store_id"].astype(str) != store_id).any():
        raise ValueError(f"special hours for {store_id!r} hold rows of other stores")
    return _replace_stores(db, SPECIAL_HOURS_TABLE, _special_columns(special), named=[store_id])


def read_special_hours(
    db: Database, store_id: str | None = None, *, store_range: StoreRange | None = None
) -> pd.DataFrame:
    """Holiday-hours rows of every store (or of one, or of ``store_range``'s), in the reader's frame: both
    seconds NaN = closed all day."""
    columns = _read_rows(SPECIAL_HOURS_TABLE, db, store_id, store_range)

    def seconds(column: str) -> pd.Series:
        values = columns[column].astype(np.float64)
        return pd.Series(np.where(values == CLOSED_ALL_DAY, np.nan, values), dtype="float64")

    return pd.DataFrame(
        {
            "store_id": pd.Series(columns["store_id"], dtype="str"),
            "date_local": pd.Series(columns["date_local"], dtype="str"),
            "start_seconds": seconds("start_seconds"),
            "end_seconds": seconds("end_seconds"),
        }
    )


# --- the store directory ------------------------------------------------------------------


def _profile_columns(profiles: pd.DataFrame) -> Columns:
    columns: Columns = {"store_id": profiles["store_id"].astype(str).to_numpy(dtype=object)}
    for column in PROFILE_COLUMNS:
        values = profiles[column].to_numpy(dtype=object)
        columns[column] = np.array(["" if v is None or v != v else str(v) for v in values], dtype=object)
    return columns


def _replace_profiles(db: Database, new: Columns, named: list[str] | None = None) -> int:
    # FerretDB's compare-and-set of the head is not atomic: the directory's writers (a load, the
    # PUT/DELETE of one store) take turns under the table's lock, so none loses another's rows.
    with exclusive(db, PROFILES_TABLE.heads, PROFILES_TABLE.head_id, wait=PROFILE_LOCK_WAIT_S) as held:
        if not held:
            raise TableBusy(f"{PROFILES}: another writer held the table for {PROFILE_LOCK_WAIT_S} s")
        # Names are not report input: a change does not move the data version.
        return _replace_stores(db, PROFILES_TABLE, new, named, bump=False)


def replace_profiles(db: Database, profiles: pd.DataFrame) -> int:
    """Store the directory's rows (``sources.read.read_stores``: one per store); named stores lose their old row."""
    if profiles.empty:
        return 0
    return _replace_profiles(db, _profile_columns(profiles))


def set_store_profile(db: Database, store_id: str, *, name: str, brand: str | None, region: str | None) -> None:
    """One store's profile becomes exactly this one."""
    row = pd.DataFrame({"store_id": [store_id], "name": [name], "brand": [brand], "region": [region]}, dtype=object)
    _replace_profiles(db, _profile_columns(row), named=[store_id])


def delete_store_profile(db: Database, store_id: str) -> None:
    """The store has no profile any more (nothing to do when it had none)."""
    _replace_profiles(db, PROFILES_TABLE.empty(), named=[store_id])


def read_profiles(
    db: Database, store_id: str | None = None, *, store_ids: Sequence[str] | np.ndarray | None = None
) -> pd.DataFrame:
    """Profile rows (store_id, name, brand, region; None where unknown) of every store, of one, or of ``store_ids``.

    With ``store_ids`` only the parts that can hold them are read (through the part cache).
    """
    wanted = None if store_ids is None else np.unique(np.asarray(list(store_ids), dtype=object).astype(str))
    if wanted is not None and len(wanted) == 0:
        columns = PROFILES_TABLE.empty()
    else:
        _, columns = PROFILES_TABLE.read(db, store_id, store_ids=wanted)
        if wanted is not None:
            keep = np.isin(columns["store_id"].astype(str), wanted)
            columns = {name: values[keep] for name, values in columns.items()}

    def text(column: str) -> pd.Series:
        return pd.Series([value or None for value in columns[column].tolist()], dtype=object)

    return pd.DataFrame(
        {"store_id": pd.Series(columns["store_id"], dtype=object), **{c: text(c) for c in PROFILE_COLUMNS}}
    )


# --- everything about one store, read at once ---------------------------------------------


@dataclass
class OneStore:
    """One store's rows of each table (and, when asked, its polls in a range and its catalog row)."""

    hours: pd.DataFrame
    special_hours: pd.DataFrame
    zones: pd.DataFrame
    profile: pd.DataFrame | None = None  # its directory row (none or one), when asked
    polls: pd.DataFrame | None = None
    catalog: Catalog | None = None


_pools: dict[int, ThreadPoolExecutor] = {}


def _table_pool() -> ThreadPoolExecutor:
    # One pool per process (threads must not cross a fork); separate from the day readers' pool,
    # which the polls read below uses from the calling thread, so neither waits on the other.
    pid = os.getpid()
    if pid not in _pools:
        _pools[pid] = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-tables")
    return _pools[pid]


def read_one_store(
    db: Database,
    store_id: str,
    *,
    polls_between: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    keep_whole_days: bool = False,
    with_catalog: bool = False,
    with_profile: bool = False,
) -> OneStore:
    """A store's weekly and holiday hours and zone rows, plus its polls in [start, end] and its catalog row
    when asked, read concurrently: each is a short chain of ``_id`` lookups, so the wait is about the
    longest of them, not their sum (the store endpoints answer in well under 100 ms on FerretDB)."""
    pool = _table_pool()
    hours = pool.submit(read_hours, db, store_id)
    special = pool.submit(read_special_hours, db, store_id)
    zones = pool.submit(read_zones, db, store_id)
    catalog = pool.submit(read_store_catalog, db, store_id) if with_catalog else None
    profile = pool.submit(read_profiles, db, store_id) if with_profile else None
    polls = (
        None
        if polls_between is None
        else read_store_polls(db, store_id, *polls_between, keep_whole_days=keep_whole_days)
    )
    return OneStore(
        hours=hours.result(),
        special_hours=special.result(),
        zones=zones.result(),
        profile=None if profile is None else profile.result(),
        polls=polls,
        catalog=None if catalog is None else catalog.result(),
    )


def profiles_version(db: Database) -> str:
    """The stored version of the store directory ("" before any profile): one ``_id`` read."""
    head = db[PROFILES_TABLE.heads].find_one({"_id": PROFILES_TABLE.head_id}, {"token": 1})
    return "" if head is None else str(head.get("token", ""))


def store_tables_version(db: Database) -> tuple[str, str, str]:
    """The stored versions of the hours, holiday-hours and zone tables (three ``_id`` reads): what a
    process keys what it works out from them on (the alert evaluation's business calendar)."""
    tokens = []
    for table in (HOURS_TABLE, SPECIAL_HOURS_TABLE, ZONES_TABLE):
        head = db[table.heads].find_one({"_id": table.head_id}, {"token": 1})
        tokens.append("" if head is None else str(head.get("token", "")))
    return tokens[0], tokens[1], tokens[2]
