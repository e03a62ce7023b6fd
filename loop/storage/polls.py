"""Polls, stored as packed day parts: few, large documents (see docs/storage.md).

Layout:

``store_status``
    One *head* document per UTC day that has polls (``_id`` ``"day:YYYY-MM-DD"``): the
    day's version, the token of its current parts, and for each part its first and
    last store id and poll count; also ``t_min``/``t_max``. One more head,
    ``"catalog"``, points at the store catalog (each store's first poll).
``store_status.YYYY-MM-DD``
    The day's polls, sorted by (store_id, time), in parts of at most ``PART_POLLS``
    polls (``_id`` ``"<token>|<k>"``). A part packs its columns as binary arrays:
    the store ids (UTF-8, with lengths), polls per store, microseconds since the
    epoch (int64) and inactive flags (one bit per poll).
``store_status.catalog``
    The store catalog in the same packed parts: store ids and first poll (int64 us).

Why: FerretDB filters in its own process and pays per document and per byte it
reads, so every query must touch a small collection and few documents. A day's
parts are replaced as a whole (new token, then a compare-and-set on the head's
version), so concurrent writers never lose each other's polls and readers see
either the old or the new version of a day; a reader that finds a part gone
(replaced meanwhile) reads the head again.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from bson.binary import Binary
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from loop.rules import POLL_STATUSES, REPORT_WEEK, first_poll_per_instant, group_polls_by_instant
from loop.storage.packed import (
    INT,
    MISSING,
    READ_ATTEMPTS,
    STR,
    Columns,
    DeltaLog,
    PackedTable,
    StoreRange,
    TableMoved,
    covers_any,
    exclusive,
    pack_strings,
    part_index,
    publish_version,
    read_version,
    unpack_strings,
)
from loop.storage.schema import STATUS
from loop.timeutil import to_utc, ts_to_us, us_array_to_series, us_to_ts, utcnow

# Polls per part: a part is ~50 KB at Loop's rates and never near the 16 MB limit
# (5,000 polls of 128-character stores is under 1 MB), and one store's week is a
# handful of small reads.
PART_POLLS = 5000
# How a part's arrays are stored (absent on parts written before: raw).
PART_CODEC = "zlib"
DAY_US = 86_400 * 1_000_000
CATALOG = "catalog"
CATALOG_PARTS = f"{STATUS}.{CATALOG}"
RANGE = "range"
# On the range document: bumped by every write that can change a report (polls, hours, zones).
DATA_VERSION = "writes"
# Wall clock of the newest poll write (epoch seconds): the feed's staleness (loop.services.alerts).
WRITTEN_AT = "written_at"
# Days read at once (a week touches 8).
READ_THREADS = 8


@dataclass
class PollColumns:
    """Polls as columns; ``store`` indexes ``store_ids``. Day parts keep them sorted by (store_id, time)."""

    store_ids: np.ndarray  # unique store ids (object array of str)
    store: np.ndarray  # int64 index into store_ids, per poll
    t_us: np.ndarray  # int64 microseconds since the epoch
    inactive: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.t_us)

    @classmethod
    def empty(cls) -> PollColumns:
        return cls(np.empty(0, object), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool))

    def take(self, mask_or_index: np.ndarray | slice) -> PollColumns:
        return PollColumns(
            self.store_ids, self.store[mask_or_index], self.t_us[mask_or_index], self.inactive[mask_or_index]
        )

    def compact(self) -> PollColumns:
        """The same polls with only the store ids they use."""
        present, store = np.unique(self.store, return_inverse=True)
        return PollColumns(self.store_ids[present], store.astype(np.int64), self.t_us, self.inactive)

    def to_frame(self) -> pd.DataFrame:
        """The engine's frame: store_id, status (categoricals, no per-poll strings), timestamp_utc (us, UTC)."""
        return pd.DataFrame(
            {
                "store_id": pd.Categorical.from_codes(self.store, categories=pd.Index(self.store_ids, dtype=object)),
                "status": pd.Categorical.from_codes(self.inactive.astype(np.int8), categories=pd.Index(POLL_STATUSES)),
                "timestamp_utc": us_array_to_series(self.t_us),
            }
        )


def concat_columns(parts: Iterable[PollColumns]) -> PollColumns:
    """One PollColumns over several, in a common (sorted) store id space."""
    parts = [p for p in parts if len(p) or len(p.store_ids)]
    if not parts:
        return PollColumns.empty()
    ids, inverse = _common_ids(np.concatenate([p.store_ids.astype(object) for p in parts]))
    store, offset = [], 0
    for p in parts:
        store.append(inverse[offset : offset + len(p.store_ids)][p.store])
        offset += len(p.store_ids)
    return PollColumns(
        ids,
        np.concatenate(store).astype(np.int64),
        np.concatenate([p.t_us for p in parts]),
        np.concatenate([p.inactive for p in parts]),
    )


def sorted_positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of ``wanted`` is in the sorted unique ``ids`` (those absent left out): a few binary searches,
    not a sort of every id as ``np.isin`` would do on strings."""
    if len(ids) == 0 or len(wanted) == 0:
        return np.empty(0, dtype=np.int64)
    at = np.searchsorted(ids, wanted)
    inside = at < len(ids)
    at = at[inside]
    return at[ids[at] == wanted[inside]]


def only_stores(columns: PollColumns, wanted: np.ndarray) -> PollColumns:
    """The polls of the sorted ``wanted`` stores. A small batch's read cuts the parts it fetched to its own
    stores before merging: ~50 polls to sort instead of 5,000 a part."""
    if len(columns) == 0:
        return columns
    return columns.take(np.isin(columns.store, sorted_positions(columns.store_ids, wanted))).compact()


def merge_polls(stored: PollColumns, batch: PollColumns) -> tuple[PollColumns, int, int]:
    """(merged polls sorted by store and time, polls new to ``stored``, stored polls turned inactive).

    One poll per (store, instant), inactive wins (``loop.rules``): merging the same polls again, in
    any order or grouping, gives the same result, so readers may merge deltas that a compaction has
    already folded into the parts.
    """
    merged, _, inserted, made_inactive = _merge(stored, batch)
    return merged, inserted, made_inactive


def poll_changes(stored: PollColumns, batch: PollColumns) -> tuple[PollColumns, int, int]:
    """(the polls of ``batch`` that change ``stored``: new ones and inactive ones over active ones,
    polls new to ``stored``, stored polls turned inactive): what a delta must hold."""
    merged, changed, inserted, made_inactive = _merge(stored, batch)
    return merged.take(changed), inserted, made_inactive


def _merge(stored: PollColumns, batch: PollColumns) -> tuple[PollColumns, np.ndarray, int, int]:
    if len(stored) == 0:
        batch = concat_columns([batch])  # store ids sorted, so the day sorts by store id
        merged = batch.take(first_poll_per_instant(batch.store, batch.t_us, batch.inactive))
        return merged, np.ones(len(merged), dtype=bool), len(merged), 0
    both = concat_columns([stored, batch])
    # One sort serves the rule (the first of each instant: inactive wins) and the accounting.
    order, starts = group_polls_by_instant(both.store, both.t_us, both.inactive)
    merged = both.take(order[starts])
    group = np.cumsum(starts) - 1
    n_groups = len(merged)
    from_stored = np.arange(len(both))[order] < len(stored)
    was_stored = np.bincount(group, weights=from_stored, minlength=n_groups) > 0
    stored_inactive = np.bincount(group, weights=from_stored & both.inactive[order], minlength=n_groups) > 0
    made_inactive = was_stored & ~stored_inactive & merged.inactive
    return merged, ~was_stored | made_inactive, int((~was_stored).sum()), int(made_inactive.sum())


# --- packing ---------------------------------------------------------------------------


def _pack_part(columns: PollColumns, token: str, k: int, day: str) -> dict[str, Any]:
    """One part: ``columns`` hold at most PART_POLLS polls sorted by (store, time).

    The arrays are zlib-compressed (level 1): FerretDB decodes stored bytes slowly, so a part a
    third smaller answers a third faster (one store's read fetches a part per day).
    """
    present, counts = np.unique(columns.store, return_counts=True)
    blob, lengths = pack_strings(columns.store_ids[present])
    arrays = {
        "store_ids": bytes(blob),
        "store_id_lengths": bytes(lengths),
        "store_counts": counts.astype("<i4").tobytes(),
        "t_us": columns.t_us.astype("<i8").tobytes(),
        "inactive": np.packbits(columns.inactive).tobytes(),
    }
    return {
        "_id": f"{token}|{k}",
        "token": token,
        "day": day,
        "n": len(columns),
        "at": int(time.time()),  # when written: remove_orphan_parts spares a writer's unpublished parts
        "codec": PART_CODEC,
        **{name: Binary(zlib.compress(data, 1)) for name, data in arrays.items()},
    }


def _common_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` for store ids, without sorting every string: the parts of a
    day come in id order (a run, one equal pair at most where two parts meet), other lists are hashed and only
    their distinct ids sorted (several days: ~3x faster than ``np.unique``'s sort of them all)."""
    if len(ids) < 2 or bool((ids[1:] >= ids[:-1]).all()):
        first = np.ones(len(ids), dtype=bool)
        first[1:] = ids[1:] != ids[:-1]
        return ids[first], np.cumsum(first) - 1
    codes, distinct = pd.factorize(ids)
    distinct = np.asarray(distinct, dtype=object)
    order = np.argsort(distinct)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[codes]


# Where an unpacked part is kept on its document: a cached part (or delta) is unpacked once per process.
UNPACKED = "__columns"


def _unpack_part(doc: dict[str, Any]) -> PollColumns:
    kept = doc.get(UNPACKED)
    if kept is None:
        kept = doc[UNPACKED] = _unpack_part_arrays(doc)
    return PollColumns(kept.store_ids, kept.store, kept.t_us, kept.inactive)


def _unpack_part_arrays(doc: dict[str, Any]) -> PollColumns:
    n = int(doc["n"])
    # Parts written before compression have no codec: their arrays are stored as they are.
    compressed = doc.get("codec") == PART_CODEC

    def array(name: str) -> bytes:
        return zlib.decompress(doc[name]) if compressed else bytes(doc[name])

    ids = unpack_strings(array("store_ids"), array("store_id_lengths"))
    counts = np.frombuffer(array("store_counts"), dtype="<i4")
    return PollColumns(
        ids,
        np.repeat(np.arange(len(ids), dtype=np.int64), counts),
        np.frombuffer(array("t_us"), dtype="<i8").astype(np.int64),
        np.unpackbits(np.frombuffer(array("inactive"), dtype=np.uint8), count=n).astype(bool),
    )


# --- days ------------------------------------------------------------------------------


def day_of(t_us: np.ndarray) -> np.ndarray:
    """The UTC day ("YYYY-MM-DD") of each instant."""
    return np.datetime_as_string((t_us // DAY_US).astype("datetime64[D]"), unit="D")


def _days_between(start_us: int, end_us: int) -> list[str]:
    first, last = start_us // DAY_US, end_us // DAY_US
    return day_of(np.arange(first, last + 1, dtype=np.int64) * DAY_US).tolist()


def _head_id(day: str) -> str:
    return f"day:{day}"


def _day_collection(day: str) -> str:
    return f"{STATUS}.{day}"


def _read_heads(db: Database) -> dict[str, dict[str, Any]]:
    """Every day's head, by day (ops and tests; reads go through ``_known_heads``)."""
    return {doc["day"]: doc for doc in db[STATUS].find({"kind": "day"})}


# Per process, under the same days_token: each day's head and when it was fetched (``time.monotonic()``).
_heads_cache: dict[tuple[int, int, str], tuple[str | None, dict[str, dict[str, Any] | None], dict[str, float]]] = {}
# Per process, under the same days_token: each day's first delta number found free. Every batch changes
# the token once its delta is stored, so until then no delta can appear there: reads skip that probe.
_free_deltas: dict[tuple[int, int, str], tuple[str | None, dict[str, int]]] = {}
_heads_lock = threading.Lock()


def _known_heads(db: Database, days: list[str]) -> dict[str, dict[str, Any]]:
    return _known_heads_and_free(db, days)[0]


def _known_heads_and_free(
    db: Database, days: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, int], dict[str, float]]:
    """Heads of ``days``, from this process's cache while the range document's ``days_token`` holds, with
    the first free delta numbers known and when each head was fetched (``time.monotonic()``: a fold
    after that may have replaced it, ``_deltas_still_whole``).

    One small lookup instead of one per day (FerretDB costs ~3 ms a query). A head cached just
    before a write may name parts already replaced: ``read_day`` then reads the head again.
    """
    doc = db[STATUS].find_one({"_id": RANGE}, {"days_token": 1})
    token = None if doc is None else doc.get("days_token")
    key = (os.getpid(), id(db.client), db.name)
    with _heads_lock:
        cached = _heads_cache.get(key)
        if cached is None or cached[0] != token:
            cached = (token, {}, {})
            _heads_cache[key] = cached
        free = _free_deltas.get(key)
        if free is None or free[0] != token:
            free = (token, {})
            _free_deltas[key] = free
    heads, fetched = cached[1], cached[2]
    for day in days:
        if day not in heads:
            fetched[day] = time.monotonic()
            heads[day] = db[STATUS].find_one({"_id": _head_id(day)})
    known = {day: head for day in days if (head := heads.get(day)) is not None}
    return known, free[1], {day: fetched[day] for day in known}


def forget_cached_heads(db: Database) -> None:
    with _heads_lock:
        for cache in (_heads_cache, _free_deltas):
            for key in [k for k in cache if k[2] == db.name]:
                del cache[key]


# --- the delta logs: small batches ------------------------------------------------------

# On a day head and on the catalog head: the last delta number folded into the parts, and the folds
# whose deltas are not deleted yet ([{"through", "at"}]): a read that began before a fold may still
# fetch them, so they go only ``DELTA_GRACE_SECONDS`` later. Short, because on FerretDB every delta
# lookup decodes the rows stored before it (folded ones too): at 10x, 25 lookups took 0.12 s among 380
# deltas and 0.47 s among 2,900. A read that fetches its deltas more than ``DELTA_READ_GUARD_SECONDS``
# after its head was known current checks that no fold happened since (``_deltas_still_whole``).
DELTAS_THROUGH = "deltas_through"
FOLDS = "folds"
DELTAS_REMOVED_THROUGH = "deltas_removed_through"
DELTA_GRACE_SECONDS = 15
DELTA_READ_GUARD_SECONDS = 5.0


# Small batches' deltas live in one collection apart from the parts (``DELTAS``), so finding the next
# number, or another writer's delta, passes over a few small documents rather than a day's parts:
# FerretDB decodes every row before a match (at 10x a missing delta cost 4.6 ms beside a day's parts
# and 6.3 beside the catalog's). A head marked ``DELTA_LOG`` has its deltas there; a head written before
# keeps them beside its parts until a writer moves it (``day_head_for_deltas``, ``move_catalog_log``:
# under the lock, its pending deltas folded first); those up to ``LEGACY_THROUGH`` stay beside the parts
# until their removal.
DELTAS = f"{STATUS}.deltas"
DELTA_LOG = "delta_log"
LEGACY_THROUGH = "legacy_deltas_through"


def _moved(head: dict[str, Any] | None) -> bool:
    return head is not None and bool(head.get(DELTA_LOG))


def _moved_day_log(day: str) -> DeltaLog:
    return DeltaLog(DELTAS, f"{day}|d")


MOVED_CATALOG_LOG = DeltaLog(DELTAS, f"{CATALOG}|c")


def _day_log(day: str, head: dict[str, Any] | None) -> DeltaLog:
    return _moved_day_log(day) if _moved(head) else DeltaLog(_day_collection(day), "d")


def _catalog_log(head: dict[str, Any] | None) -> DeltaLog:
    return MOVED_CATALOG_LOG if _moved(head) else DeltaLog(CATALOG_PARTS, "c")


def _mark_moved(db: Database, head_id: str, head: dict[str, Any], through: int) -> None:
    """Move a head none of whose deltas is pending (under its lock): the next ones go to ``DELTAS``."""
    fields = _folded_head_fields(head, through)
    db[STATUS].update_one({"_id": head_id}, {"$set": {k: fields[k] for k in (DELTA_LOG, LEGACY_THROUGH)}})


def _through(head: dict[str, Any] | None) -> int:
    return 0 if head is None else int(head.get(DELTAS_THROUGH, 0))


def _folded_head_fields(expected: dict[str, Any] | None, through: int) -> dict[str, Any]:
    """The delta-log fields of a head replacing ``expected`` whose parts hold the deltas up to ``through``."""
    folds = [] if expected is None else list(expected.get(FOLDS, []))
    if through > _through(expected):
        folds.append({"through": through, "at": time.time()})
    removed = 0 if expected is None else int(expected.get(DELTAS_REMOVED_THROUGH, 0))
    # Every delta up to ``through`` is folded (the caller holds the lock, and no writer appends beside the
    # parts any more), so the next ones go to DELTAS; those of a head written before stay where they are.
    legacy = through if expected is not None and not _moved(expected) else _legacy_through(expected)
    return {
        DELTAS_THROUGH: through,
        FOLDS: folds,
        DELTAS_REMOVED_THROUGH: removed,
        DELTA_LOG: True,
        LEGACY_THROUGH: legacy,
    }


def _legacy_through(head: dict[str, Any] | None) -> int:
    """The last delta number stored beside the head's parts (all of them when the head was not moved)."""
    if head is None:
        return 0
    return int(head.get(LEGACY_THROUGH, 0)) if _moved(head) else 2**62


def _remove_old_deltas(db: Database, heads_id: str, logs: Callable[[dict[str, Any] | None], DeltaLog]) -> None:
    """Delete the deltas of folds older than the grace period (under the head's lock); ``logs``: the head's
    delta log (``_catalog_log``, or ``_day_log`` of its day)."""
    head = db[STATUS].find_one({"_id": heads_id})
    if head is None:
        return
    folds = list(head.get(FOLDS, []))
    old = [fold for fold in folds if fold["at"] < time.time() - DELTA_GRACE_SECONDS]
    if not old:
        return
    removed = int(head.get(DELTAS_REMOVED_THROUGH, 0))
    last = max(int(fold["through"]) for fold in old)
    keep = [fold for fold in folds if fold not in old]
    db[STATUS].update_one({"_id": heads_id}, {"$set": {FOLDS: keep, DELTAS_REMOVED_THROUGH: last}})
    legacy = _legacy_through(head)
    logs(None).remove(db, removed + 1, min(last, legacy))  # beside the parts
    if _moved(head):
        logs(head).remove(db, max(removed, legacy) + 1, last)


def _has_pending(db: Database, head: dict[str, Any] | None, log: DeltaLog) -> bool:
    """Whether a compaction has work: a delta not folded yet, or folded deltas due for deletion."""
    if head is None:
        return False
    if any(fold["at"] < time.time() - DELTA_GRACE_SECONDS for fold in head.get(FOLDS, [])):
        return True
    return log.exists(db, _through(head) + 1)


def _deltas_still_whole(db: Database, head_id: str, head: dict[str, Any] | None, seen_at: float) -> bool:
    """Whether the deltas a read fetched after ``head`` (known current at ``seen_at``, monotonic) are all
    there: surely when fetched within the guard (a fold made after ``seen_at`` deletes its deltas
    ``DELTA_GRACE_SECONDS`` later at the earliest), else when no fold happened since (one lookup)."""
    if time.monotonic() - seen_at < DELTA_READ_GUARD_SECONDS:
        return True
    current = db[STATUS].find_one({"_id": head_id}, {DELTAS_THROUGH: 1})
    return current is not None and _through(current) == _through(head)


def _lock_day(db: Database, day: str, *, wait: float = 600.0) -> AbstractContextManager[bool]:
    return exclusive(db, STATUS, _head_id(day), wait=wait)


def _lock_catalog(db: Database, *, wait: float = 600.0) -> AbstractContextManager[bool]:
    return exclusive(db, STATUS, CATALOG, wait=wait)


# --- days: read and write ----------------------------------------------------------------


@dataclass
class DayColumnsCache:
    """Whole days' parts, unpacked, per process and per day version (the head's token): what a reader that
    reads the same recent days again and again (the alert evaluation) keeps, so that it fetches and
    unpacks only the deltas written since. A few days at most; a new version replaces its day's entry."""

    def __init__(self, days: int) -> None:
        self.days = days
        self._entries: OrderedDict[tuple[int, str, str], tuple[str, PollColumns]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, db: Database, day: str, head: dict[str, Any] | None) -> PollColumns | None:
        if head is None:
            return None
        with self._lock:
            found = self._entries.get((id(db.client), db.name, day))
        return found[1] if found is not None and found[0] == head.get("token") else None

    def put(self, db: Database, day: str, head: dict[str, Any] | None, columns: PollColumns) -> None:
        if head is None:
            return
        key = (id(db.client), db.name, day)
        with self._lock:
            self._entries[key] = (str(head.get("token")), columns)
            self._entries.move_to_end(key)
            while len(self._entries) > self.days:
                self._entries.popitem(last=False)


_day_columns_cache = DayColumnsCache(days=4)


@dataclass(frozen=True)
class DayRead:
    """A day's head, its polls (parts merged with deltas) and the first free delta number."""

    head: dict[str, Any] | None
    columns: PollColumns
    next_delta: int


def read_day(
    db: Database,
    day: str,
    store_id: str | None = None,
    head: dict[str, Any] | None = None,
    *,
    keep_whole_day: bool = False,
    store_ids: np.ndarray | StoreRange | None = None,
) -> tuple[dict[str, Any] | None, PollColumns]:
    """A day's head and polls (one store's when ``store_id`` is given), consistent with one version:
    its parts merged with the deltas numbered after its ``deltas_through`` (``merge_polls``: idempotent).

    ``head``, when the caller has just read it, saves a round trip (the head returned is that same
    object unless it was out of date). ``store_ids`` (sorted): only the parts and deltas that can hold
    them (the rows of other stores may come along). ``keep_whole_day`` (one store's read): also fetch
    and keep the day's other parts, for the drill-downs of the next stores.
    """
    found = read_day_full(db, day, store_id, head, keep_whole_day=keep_whole_day, store_ids=store_ids)
    return found.head, found.columns


def read_day_full(
    db: Database,
    day: str,
    store_id: str | None = None,
    head: dict[str, Any] | None = None,
    *,
    keep_whole_day: bool = False,
    store_ids: np.ndarray | StoreRange | None = None,
    deltas_before: int | None = None,
    known_free: int | None = None,
    head_seen_at: float | None = None,
) -> DayRead:
    """``read_day``, with the first free delta number; ``deltas_before``: only the deltas numbered below it;
    ``known_free``: a number known free (no probe for it).
    ``head_seen_at``: when the given ``head`` was known current (``time.monotonic()``; default: now)."""
    one_store = store_id is not None or store_ids is not None
    for _ in range(READ_ATTEMPTS):
        seen_at = head_seen_at if head is not None and head_seen_at is not None else time.monotonic()
        if keep_whole_day and not one_store:
            head = head or db[STATUS].find_one({"_id": _head_id(day)})
            base = _day_columns_cache.get(db, day, head)
            if base is not None:
                found = _day_log(day, head).read(db, _through(head), deltas_before, known_free=known_free)
                if found is None or not _deltas_still_whole(db, _head_id(day), head, seen_at):  # folded meanwhile
                    head = None
                    continue
                deltas, next_delta = found
                columns = base
                if deltas:
                    columns = merge_polls(base, concat_columns(_unpack_part(doc) for doc in deltas))[0]
                return DayRead(head, columns, next_delta)
        head, docs = read_version(
            db,
            heads=STATUS,
            head_id=_head_id(day),
            parts=_day_collection(day),
            store_id=store_id,
            store_ids=store_ids,
            head=head,
            # One store's read keeps its day parts (packed.PartCache); a shard's range read is a report's: it does not.
            cache=one_store and not isinstance(store_ids, StoreRange),
            # ... and, asked for, all the day's parts: the next store's read of the day is in memory.
            cache_whole_version=store_id is not None and keep_whole_day,
        )
        if head is None:
            return DayRead(None, PollColumns.empty(), 1)
        found = _day_log(day, head).read(db, _through(head), deltas_before, known_free=known_free)
        if found is None or not _deltas_still_whole(db, _head_id(day), head, seen_at):
            head = None  # folded meanwhile: the head now names parts that hold them
            continue
        deltas, next_delta = found
        deltas = [
            doc
            for doc in deltas
            if (store_id is None or doc["first"] <= store_id <= doc["last"])
            and (store_ids is None or covers_any(doc, store_ids))
        ]
        columns = concat_columns(_unpack_part(doc) for doc in docs)
        if keep_whole_day and not one_store:
            _day_columns_cache.put(db, day, head, columns)
        wanted = np.array([store_id], dtype=object) if store_id is not None else store_ids
        if isinstance(wanted, np.ndarray):
            columns = only_stores(columns, wanted)
        if deltas:
            added = concat_columns(_unpack_part(doc) for doc in deltas)
            columns = merge_polls(columns, only_stores(added, wanted) if isinstance(wanted, np.ndarray) else added)[0]
        return DayRead(head, columns, next_delta)
    raise TableMoved(f"day {day} was folded {READ_ATTEMPTS} times while being read")


MERGE_ATTEMPTS = 20


def replace_day(
    db: Database,
    day: str,
    expected: dict[str, Any] | None,
    columns: PollColumns,
    *,
    deltas_through: int | None = None,
    keep_in_process: bool = False,
    later: list[tuple[str, str]] | None = None,
) -> bool:
    """Store ``columns`` (sorted by store, time) as the day's new version; False if another writer won.
    ``later``: the replaced version is noted there, not deleted (``packed.publish_version``).

    ``deltas_through``: the last delta ``columns`` holds (default: those ``expected`` held). Callers hold
    the day's lock (``merge_day``, ``compact_day``). ``keep_in_process``: the new version's polls go into
    this process's ``DayColumnsCache``, so the next whole-day read here (an alert evaluation) needs none.
    """
    token = secrets.token_hex(8)
    pieces = [columns.take(slice(start, start + PART_POLLS)) for start in range(0, len(columns), PART_POLLS)]
    through = _through(expected) if deltas_through is None else deltas_through
    won = publish_version(
        db,
        heads=STATUS,
        head_id=_head_id(day),
        parts=_day_collection(day),
        expected=expected,
        docs=[_pack_part(piece, token, k, day) for k, piece in enumerate(pieces)],
        head={
            "kind": "day",
            "day": day,
            "token": token,
            "parts": part_index([piece.store_ids[piece.store] for piece in pieces]),
            "n": len(columns),
            "t_min": int(columns.t_us.min()),
            "t_max": int(columns.t_us.max()),
            "updated_at": utcnow(),
            **_folded_head_fields(expected, through),
        },
        later=later,
    )
    if won and keep_in_process:
        _day_columns_cache.put(db, day, {"token": token}, columns)
    return won


def merge_day(
    db: Database, day: str, batch: PollColumns, *, later: list[tuple[str, str]] | None = None
) -> tuple[int, int]:
    """Merge ``batch`` into the stored day (its parts and pending deltas) and replace the day: (inserted,
    made inactive). Nothing is written when nothing changes. Holds the day's lock: on FerretDB the
    head's compare-and-set alone would let two writers both win. ``later``: as for ``replace_day``."""
    with _lock_day(db, day):
        for _ in range(MERGE_ATTEMPTS):
            # The version this process wrote or read last is kept (an hourly batch's day, again an hour
            # later): only its head and any deltas since are read, ~0.7 s less at 10x.
            found = read_day_full(db, day, keep_whole_day=True)
            merged, inserted, made_inactive = merge_polls(found.columns, batch)
            if inserted == 0 and made_inactive == 0:
                return 0, 0
            # Kept here: a batch that rewrites a day is evaluated in the same request (services.ingest).
            through = found.next_delta - 1
            if replace_day(db, day, found.head, merged, deltas_through=through, keep_in_process=True, later=later):
                return inserted, made_inactive
    raise RuntimeError(f"day {day}: other writers replaced it {MERGE_ATTEMPTS} times in a row")


def remove_orphan_parts(db: Database, *, before: float) -> int:
    """Delete the day parts no head names, written before ``before`` (epoch seconds): the version of a writer
    stopped between inserting its parts and publishing its head, or between publishing and deleting the
    version it replaced (a killed merge or compaction, or a process that died before its deferred
    deletion: ``packed.delete_versions_later``); the store catalog's the same way. Each under its lock
    (writers hold it from their first part to their head; one busy now waits for the next run). Deltas (no
    ``token``) and parts written before parts carried ``at`` are left alone. Returns the parts deleted."""
    removed = 0
    days = [(_lock_day(db, day, wait=0), _head_id(day), _day_collection(day)) for day in sorted(_read_heads(db))]
    for lock, head_id, parts in [*days, (_lock_catalog(db, wait=0), CATALOG, CATALOG_PARTS)]:
        with lock as locked:
            if not locked:
                continue
            head = db[STATUS].find_one({"_id": head_id}, {"token": 1})
            token = "" if head is None else str(head.get("token", ""))
            orphans = {"token": {"$exists": True, "$ne": token}, "at": {"$lt": before}}
            removed += db[parts].delete_many(orphans).deleted_count
    return removed


def read_day_head(db: Database, day: str) -> dict[str, Any] | None:
    """The day's current head (not the process's cached one)."""
    return db[STATUS].find_one({"_id": _head_id(day)})


def ensure_day_head(db: Database, day: str) -> dict[str, Any]:
    """The day's head, inserted empty first when the day has none (readers find days by their heads)."""
    try:
        db[STATUS].insert_one(
            {
                "_id": _head_id(day),
                "kind": "day",
                "day": day,
                "version": 0,
                "token": "",
                "parts": part_index([]),
                "n": 0,
                DELTA_LOG: True,
            }
        )
    except DuplicateKeyError:
        pass
    head = read_day_head(db, day)
    assert head is not None
    return head


def day_head_for_deltas(db: Database, day: str) -> dict[str, Any]:
    """The day's head, ready for ``append_delta``: inserted when the day has none; a head written before
    ``DELTAS`` existed is moved first (under the day's lock, its pending deltas folded into new parts)."""
    head = read_day_head(db, day) or ensure_day_head(db, day)
    if _moved(head):
        return head
    with _lock_day(db, day) as locked:
        if not locked:
            raise TableMoved(f"day {day} stayed locked while its deltas were to be moved")
        found = read_day_full(db, day)
        through = found.next_delta - 1
        if found.head is not None and not _moved(found.head):
            if through > _through(found.head):
                if not replace_day(db, day, found.head, found.columns, deltas_through=through):
                    raise RuntimeError(f"day {day} was replaced while locked")
            else:
                _mark_moved(db, _head_id(day), found.head, through)
    moved = read_day_head(db, day)
    assert moved is not None
    return moved


def append_delta(db: Database, day: str, columns: PollColumns, seq: int) -> int:
    """Store ``columns`` (sorted by store, time; the polls a small batch changes) as the day's delta
    numbered ``seq`` or the first free number after it (the head must exist and be moved:
    ``day_head_for_deltas``).

    One insert (packed like a part): readers see the polls from then on. Returns the number taken;
    the deltas numbered below it are what the batch found stored.
    """
    doc = _pack_part(columns, "", 0, day)
    del doc["token"]  # a delta belongs to no version: a replaced version's parts are deleted by token
    ids = columns.store_ids[columns.store]
    doc["first"], doc["last"] = str(ids.min()), str(ids.max())
    return _moved_day_log(day).append(db, doc, seq)


def day_deltas_through(db: Database, day: str) -> int:
    return _through(read_day_head(db, day))


def compact_day(db: Database, day: str) -> int:
    """Fold the day's pending deltas into new parts; returns how many were folded (0: none, or another
    process is folding the day now).

    The parts are written first, then the head names them and the deltas they hold (compare-and-set,
    under the day's lock); the folded deltas are deleted ``DELTA_GRACE_SECONDS`` later. Stopped between
    any two steps, readers still see every poll once: unpublished parts are never read, and deltas are
    merged by readers idempotently.
    """
    head = read_day_head(db, day)
    if not _has_pending(db, head, _day_log(day, head)):
        return 0
    with _lock_day(db, day, wait=0) as locked:
        if not locked:
            return 0
        found = read_day_full(db, day)
        folded = found.next_delta - 1 - _through(found.head)
        if found.head is not None and folded > 0:
            # Kept here: the compaction runs on the worker, which evaluates alerts on the recent days.
            if not replace_day(
                db, day, found.head, found.columns, deltas_through=found.next_delta - 1, keep_in_process=True
            ):
                raise RuntimeError(f"day {day} was replaced while locked")
        _remove_old_deltas(db, _head_id(day), lambda head: _day_log(day, head))
        return max(folded, 0)


def compact_deltas(db: Database) -> tuple[int, int]:
    """Fold every day's pending deltas into its parts and the catalog's into the catalog.

    Returns (day deltas folded, catalog deltas folded). Safe to run anywhere, any number of times at
    once (a day or the catalog being folded by another process is skipped); readers never wait for it.
    """
    days = sum(compact_day(db, day) for day in sorted(_read_heads(db)))
    catalog = compact_catalog(db)
    if days or catalog:
        # The heads changed: processes' cached heads name parts that are gone (no poll changed, so the
        # data version stays).
        db[STATUS].update_one({"_id": RANGE}, {"$set": {"days_token": secrets.token_hex(8)}})
    return days, catalog


# --- the store catalog (each store's first and last poll) -------------------------------

# last_status: 0 active, 1 inactive (inactive wins among polls of the same instant), UNKNOWN in a
# catalog written before the column existed (the next load fills it in: ingest.dedup).
UNKNOWN = MISSING
CATALOG_TABLE = PackedTable(
    STATUS,
    CATALOG,
    CATALOG_PARTS,
    (("store_id", STR), ("first_us", INT), ("last_us", INT), ("last_inactive", INT)),
)


@dataclass
class Catalog:
    """Every store with a stored poll (ids sorted): first and last poll (us) and whether the last was inactive.

    ``next_delta``: the first free catalog delta number when read.
    """

    head: dict[str, Any] | None
    store_ids: np.ndarray
    first_us: np.ndarray
    last_us: np.ndarray
    last_inactive: np.ndarray  # int64: 0, 1 or UNKNOWN
    next_delta: int = 1


def read_catalog(db: Database) -> tuple[dict[str, Any] | None, np.ndarray, np.ndarray]:
    """(head, store ids sorted, first poll us) of every store with a stored poll."""
    catalog = read_store_catalog(db)
    return catalog.head, catalog.store_ids, catalog.first_us


def read_store_catalog(
    db: Database, store_id: str | None = None, *, store_ids: np.ndarray | StoreRange | None = None
) -> Catalog:
    """The whole catalog, or one store's row (empty arrays when it has no poll): one or two lookups and
    one per catalog delta not folded yet (those this process has not read before).

    ``store_ids``: the rows of those stores (a sorted array), or at least of that range (whole parts).
    """
    for _ in range(READ_ATTEMPTS):
        seen_at = time.monotonic()
        head, columns = CATALOG_TABLE.read(db, store_id, store_ids=store_ids)
        found = _catalog_log(head).read(db, _through(head))
        assert found is not None
        if head is not None and not _deltas_still_whole(db, CATALOG, head, seen_at):
            continue
        deltas, next_delta = found
        if isinstance(store_ids, np.ndarray):  # a small batch's stores: merge only their rows
            columns = _catalog_rows_of(columns, store_ids)
        if deltas:
            rows = _catalog_delta_rows(deltas)
            if store_id is not None:
                keep = rows["store_id"] == store_id
                rows = {name: values[keep] for name, values in rows.items()}
            elif isinstance(store_ids, np.ndarray):
                keep = np.isin(rows["store_id"], store_ids)
                rows = {name: values[keep] for name, values in rows.items()}
            columns = merge_catalog_columns(columns, rows)
        return Catalog(
            head, columns["store_id"], columns["first_us"], columns["last_us"], columns["last_inactive"], next_delta
        )
    raise TableMoved("the catalog was folded while being read")


def _catalog_rows_of(columns: Columns, store_ids: np.ndarray) -> Columns:
    """The rows of the sorted ``store_ids`` (catalog rows are sorted by store id)."""
    at = sorted_positions(columns["store_id"], store_ids)
    return {name: values[at] for name, values in columns.items()}


def catalog_columns(catalog: Catalog) -> Columns:
    return {
        "store_id": catalog.store_ids,
        "first_us": catalog.first_us,
        "last_us": catalog.last_us,
        "last_inactive": catalog.last_inactive,
    }


def merge_catalog_columns(stored: Columns, new: Columns) -> Columns:
    """Each store's first and last poll (and the last one's status) over two sets of catalog rows.

    Order-free: first = min, last = max, and the last status is inactive when a row at the last
    instant says so (inactive wins), so batches merged in any order or twice leave the same rows.
    """
    if len(new["store_id"]) == 0:
        return stored
    ids_stored = stored["store_id"]
    at = np.searchsorted(ids_stored, new["store_id"]) if len(ids_stored) else np.zeros(0, np.int64)
    if (
        len(at)
        and (at < len(ids_stored)).all()
        and (ids_stored[np.minimum(at, len(ids_stored) - 1)] == new["store_id"]).all()
    ):
        # Every store is known (a small batch's usual case): update their rows in place, no sort.
        first, last = stored["first_us"].copy(), stored["last_us"].copy()
        np.minimum.at(first, at, new["first_us"])
        np.maximum.at(last, at, new["last_us"])
        inactive = np.where(last == stored["last_us"], stored["last_inactive"], 0)
        at_last = new["last_us"] == last[at]
        np.maximum.at(inactive, at[at_last], new["last_inactive"][at_last])
        return {"store_id": ids_stored, "first_us": first, "last_us": last, "last_inactive": inactive}
    ids = np.concatenate([stored["store_id"], new["store_id"]]).astype(object)
    merged_ids, inverse = np.unique(ids, return_inverse=True)
    first = np.full(len(merged_ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, inverse, np.concatenate([stored["first_us"], new["first_us"]]))
    lasts = np.concatenate([stored["last_us"], new["last_us"]])
    last = np.full(len(merged_ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, inverse, lasts)
    at_last = lasts == last[inverse]
    # Every store has a row at its last instant; UNKNOWN (-1) stays where no other row is there.
    inactive = np.full(len(merged_ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(inactive, inverse[at_last], np.concatenate([stored["last_inactive"], new["last_inactive"]])[at_last])
    return {"store_id": merged_ids, "first_us": first, "last_us": last, "last_inactive": inactive}


def _catalog_delta_rows(deltas: list[dict[str, Any]]) -> Columns:
    return {
        name: np.array([v for doc in deltas for v in doc[name]], dtype=object if kind == STR else np.int64)
        for name, kind in CATALOG_TABLE.kinds
    }


def append_catalog_rows(db: Database, rows: Columns, seq: int, *, create_head: bool = False) -> int:
    """Store a small batch's catalog rows as the catalog delta numbered ``seq`` or the first free one
    after it (one insert: no part is rewritten); returns the number taken. ``create_head``: the catalog
    has no head yet (the compaction finds the deltas from it)."""
    if create_head:
        try:
            db[STATUS].insert_one(
                {"_id": CATALOG, "version": 0, "token": "", "parts": part_index([]), "rows": 0, DELTA_LOG: True}
            )
        except DuplicateKeyError:
            pass
    doc: dict[str, Any] = {
        name: [str(v) if kind == STR else int(v) for v in rows[name]] for name, kind in CATALOG_TABLE.kinds
    }
    return MOVED_CATALOG_LOG.append(db, doc, seq)


def deltas_moved(head: dict[str, Any] | None) -> bool:
    """Whether the head's deltas go to ``DELTAS`` (every head written since; see ``DELTA_LOG``)."""
    return _moved(head)


def move_catalog_log(db: Database) -> None:
    """Move a catalog head written before ``DELTAS`` existed, under its lock, its pending deltas folded first
    (no writer appends beside the parts any more, so none is left behind)."""
    with _lock_catalog(db) as locked:
        if not locked:
            raise TableMoved("the store catalog stayed locked while its deltas were to be moved")
        catalog = read_store_catalog(db)
        if catalog.head is None or _moved(catalog.head):
            return
        through = catalog.next_delta - 1
        if through > _through(catalog.head):
            fields = _folded_head_fields(catalog.head, through)
            if not CATALOG_TABLE.replace(db, catalog.head, catalog_columns(catalog), extra=fields):
                raise RuntimeError("the store catalog was replaced while locked")
        else:
            _mark_moved(db, CATALOG, catalog.head, through)


def catalog_deltas_through(db: Database) -> int:
    return _through(db[STATUS].find_one({"_id": CATALOG}, {DELTAS_THROUGH: 1}))


def compact_catalog(db: Database) -> int:
    """Fold the catalog's pending deltas into its parts (under its lock; 0 when another process is at it)."""
    head = db[STATUS].find_one({"_id": CATALOG})
    if not _has_pending(db, head, _catalog_log(head)):
        return 0
    with _lock_catalog(db, wait=0) as locked:
        if not locked:
            return 0
        catalog = read_store_catalog(db)
        folded = catalog.next_delta - 1 - _through(catalog.head)
        if folded > 0:
            through = catalog.next_delta - 1
            if not CATALOG_TABLE.replace(
                db, catalog.head, catalog_columns(catalog), extra=_folded_head_fields(catalog.head, through)
            ):
                raise RuntimeError("the store catalog was replaced while locked")
        _remove_old_deltas(db, CATALOG, _catalog_log)
        return max(folded, 0)


def merge_into_catalog(
    db: Database,
    rows: Columns,
    fill_unknown: Callable[[Catalog], Catalog] | None = None,
    *,
    later: list[tuple[str, str]] | None = None,
) -> None:
    """Merge ``rows`` (and the pending catalog deltas) into the catalog's parts, under its lock; nothing is
    written when nothing changes. ``fill_unknown`` completes a catalog from before last polls were kept;
    ``later``: as for ``replace_day``."""
    with _lock_catalog(db):
        for _ in range(MERGE_ATTEMPTS):
            stored = read_store_catalog(db)
            if fill_unknown is not None and (stored.last_inactive == UNKNOWN).any():
                stored = fill_unknown(stored)
            old = catalog_columns(stored)
            merged = merge_catalog_columns(old, rows)
            through = stored.next_delta - 1
            if (
                stored.head is not None
                and through == _through(stored.head)
                and len(merged["store_id"]) == len(old["store_id"])
                and all(np.array_equal(merged[name], old[name]) for name in merged)
            ):
                return
            if CATALOG_TABLE.replace(
                db, stored.head, merged, extra=_folded_head_fields(stored.head, through), later=later
            ):
                return
    raise RuntimeError(f"the store catalog was replaced by other writers {MERGE_ATTEMPTS} times in a row")


def replace_catalog(
    db: Database,
    expected: dict[str, Any] | None,
    ids: np.ndarray,
    first_us: np.ndarray,
    *,
    last_us: np.ndarray,
    last_inactive: np.ndarray,
) -> bool:
    """Store the catalog (ids sorted); False if another writer replaced it first (tests, migration)."""
    return CATALOG_TABLE.replace(
        db, expected, {"store_id": ids, "first_us": first_us, "last_us": last_us, "last_inactive": last_inactive}
    )


def last_polls(polls: PollColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(store indexes present, each one's last poll us, 1 if a poll at that instant is inactive else 0)."""
    if len(polls) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    last = np.full(len(polls.store_ids), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, polls.store, polls.t_us)
    inactive = np.zeros(len(polls.store_ids), dtype=np.int64)
    at_last = polls.t_us == last[polls.store]
    np.maximum.at(inactive, polls.store[at_last], polls.inactive[at_last].astype(np.int64))
    present = np.unique(polls.store)
    return present, last[present], inactive[present]


def widen_poll_range(db: Database, t_min: int, t_max: int, *, changed: bool = False) -> None:
    """Keep the oldest and newest stored poll in one small document ($min/$max: safe for concurrent writers).

    Called after a load's days are written. ``changed`` (polls were inserted or made inactive) also
    bumps the data version in the same update; the new ``days_token`` (random, so it never repeats,
    even for a database dropped and loaded again) tells readers' head caches a day may have changed.
    """
    update: dict[str, Any] = {
        "$min": {"t_min": t_min},
        "$max": {"t_max": t_max, WRITTEN_AT: time.time()},
        "$set": {"days_token": secrets.token_hex(8)},
    }
    if changed:
        update["$inc"] = {DATA_VERSION: 1}
    db[STATUS].update_one({"_id": RANGE}, update, upsert=True)


def bump_data_version(db: Database) -> None:
    """Hours or zones changed: a report triggered from now on must not reuse one triggered before ($inc)."""
    db[STATUS].update_one({"_id": RANGE}, {"$inc": {DATA_VERSION: 1}}, upsert=True)


@dataclass(frozen=True)
class PollStamp:
    """What identifies the stored polls at one moment: the newest poll, and a stamp that changes with every write."""

    newest: pd.Timestamp | None
    stamp: str
    written_at: float | None  # wall clock (epoch seconds) of the newest write


def poll_stamp(db: Database) -> PollStamp:
    """The newest poll and a stamp of the writes so far (one small document)."""
    doc = db[STATUS].find_one({"_id": RANGE}) or {}
    newest = us_to_ts(int(doc["t_max"])) if "t_max" in doc else None
    stamp = f"{doc.get('t_max', '')}:{doc.get(DATA_VERSION, 0)}:{doc.get('days_token', '')}"
    written = doc.get(WRITTEN_AT)
    return PollStamp(newest, stamp, None if written is None else float(written))


def data_state(db: Database) -> tuple[pd.Timestamp | None, int]:
    """(newest stored poll, data version) from one read of the range document (version 0 before any write)."""
    doc = db[STATUS].find_one({"_id": RANGE})
    if doc is None:
        return None, 0
    newest = us_to_ts(int(doc["t_max"])) if "t_max" in doc else None
    return newest, int(doc.get(DATA_VERSION, 0))


# --- reads ------------------------------------------------------------------------------


def read_polls(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Polls with start <= timestamp_utc <= end, in the engine's frame shape (few large reads)."""
    return read_poll_columns(db, start, end).to_frame()


def read_poll_columns(
    db: Database,
    start: pd.Timestamp,
    end: pd.Timestamp,
    store_id: str | None = None,
    *,
    keep_whole_days: bool = False,
    store_range: StoreRange | None = None,
    stores: np.ndarray | None = None,
) -> PollColumns:
    """Polls in [start, end] as columns (one store's when ``store_id`` is given, or only those of the stores
    in ``store_range``: a report shard's, or of the sorted ``stores``: a few the alert evaluation looks
    further back for; both read only the parts that can hold them), sorted by store and time.

    The days are read concurrently: each is a short chain of ``_id`` lookups (head, then
    parts), so the wait is about one day's, not the sum of all of them.
    """
    start_us, end_us = ts_to_us(start), ts_to_us(end)
    if end_us < start_us:
        return PollColumns.empty()
    heads, free, fetched = _known_heads_and_free(db, _days_between(start_us, end_us))

    def read(day: str) -> tuple[dict[str, Any] | None, PollColumns]:
        found = read_day_full(
            db,
            day,
            store_id,
            heads[day],
            head_seen_at=fetched[day],
            keep_whole_day=keep_whole_days,
            known_free=free.get(day),
            store_ids=store_range if store_range is not None else stores,
        )
        free[day] = found.next_delta
        columns = found.columns  # only ``stores``' polls already (``read_day_full``); a range's parts are whole
        if store_range is not None and len(columns):
            columns = columns.take(store_range.mask(columns.store_ids)[columns.store]).compact()
        return found.head, columns

    days = list(heads)
    results = list(_reader_pool().map(read, days)) if len(days) > 1 else [read(day) for day in days]
    pieces = [
        columns.take((columns.t_us >= start_us) & (columns.t_us <= end_us)) for _, columns in results if len(columns)
    ]
    return concat_columns(pieces)


_pools: dict[int, ThreadPoolExecutor] = {}


def _reader_pool() -> ThreadPoolExecutor:
    # One pool per process: threads must not cross a fork (gunicorn, Celery's prefork pool).
    pid = os.getpid()
    if pid not in _pools:
        _pools[pid] = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="poll-reader")
    return _pools[pid]


def read_store_polls(
    db: Database, store_id: str, start: pd.Timestamp, end: pd.Timestamp, *, keep_whole_days: bool = False
) -> pd.DataFrame:
    """One store's polls in [start, end] (what the store drill-down reads)."""
    return read_poll_columns(db, start, end, store_id=store_id, keep_whole_days=keep_whole_days).compact().to_frame()


def week_polls(db: Database, now: pd.Timestamp, *, store_range: StoreRange | None = None) -> pd.DataFrame:
    """The polls the report can count: now - 7 days <= timestamp <= now (only ``store_range``'s, given one)."""
    now = to_utc(now)
    return read_poll_columns(db, now - REPORT_WEEK, now, store_range=store_range).to_frame()


def scan_polls(db: Database, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Bare read of the polls in [start, end] (the benchmark's floor for the database path)."""
    return len(read_poll_columns(db, start, end))


@dataclass(frozen=True)
class RecentPolls:
    """The stored range and the polls of its last ``span``: (newest - span, newest]."""

    oldest: pd.Timestamp | None
    newest: pd.Timestamp | None
    polls: int
    inactive: int
    stores: int


_recent_cache: dict[tuple[int, int, str, str | None, int], RecentPolls] = {}


def recent_polls(db: Database, span: pd.Timedelta) -> RecentPolls:
    """Oldest and newest stored poll, and how many polls (inactive ones, distinct stores) the last ``span``
    before the newest holds.

    The counts read the newest day's parts (and the day before when the span crosses midnight), so each
    process keeps them while the range document's ``days_token`` holds: every load changes it, and until
    then the answer is one small lookup.
    """
    doc = db[STATUS].find_one({"_id": RANGE}, {"t_min": 1, "t_max": 1, "days_token": 1})
    if doc is None or "t_max" not in doc:
        return RecentPolls(None, None, 0, 0, 0)
    span_us = int(span / pd.Timedelta(microseconds=1))
    key = (os.getpid(), id(db.client), db.name, doc.get("days_token"), span_us)
    with _heads_lock:
        cached = _recent_cache.get(key)
    if cached is not None:
        return cached
    newest = us_to_ts(int(doc["t_max"]))
    columns = read_poll_columns(db, us_to_ts(int(doc["t_max"]) - span_us + 1), newest)
    answer = RecentPolls(
        oldest=us_to_ts(int(doc["t_min"])),
        newest=newest,
        polls=len(columns),
        inactive=int(np.count_nonzero(columns.inactive)),
        stores=len(np.unique(columns.store)),
    )
    with _heads_lock:
        if len(_recent_cache) > 64:  # tokens of old loads: never asked for again
            _recent_cache.clear()
        _recent_cache[key] = answer
    return answer


def store_count(db: Database) -> int:
    """Stores with at least one stored poll: the catalog head's row count (no part is read)."""
    head = db[STATUS].find_one({"_id": CATALOG}, {"rows": 1, DELTAS_THROUGH: 1, DELTA_LOG: 1})
    if _catalog_log(head).exists(db, _through(head) + 1):
        return len(read_store_catalog(db).store_ids)  # small batches' stores, not folded yet
    return 0 if head is None else int(head.get("rows", 0))


def newest_poll_time(db: Database) -> pd.Timestamp | None:
    """The newest stored poll (one small document: no poll or day head is read)."""
    return data_state(db)[0]


# How far back ``newest_poll_at_or_before`` walks, day by day, before the oldest poll stops it anyway.
NEWEST_BEFORE_MAX_DAYS = 3660


def newest_poll_at_or_before(db: Database, instant: pd.Timestamp) -> pd.Timestamp | None:
    """The newest stored poll at or before ``instant`` (a scheduled report's ``now``), or None.

    At or after the newest poll (live data) it is the range document alone; otherwise the days before
    ``instant`` are read newest first (``_id`` lookups of their heads and parts) until one has a poll.
    """
    doc = db[STATUS].find_one({"_id": RANGE}, {"t_min": 1, "t_max": 1})
    if doc is None or "t_max" not in doc:
        return None
    at_us = ts_to_us(instant)
    if at_us >= int(doc["t_max"]):
        return us_to_ts(int(doc["t_max"]))
    if at_us < int(doc.get("t_min", doc["t_max"])):
        return None
    end_us = at_us
    for _ in range(NEWEST_BEFORE_MAX_DAYS):
        start_us = (end_us // DAY_US) * DAY_US
        columns = read_poll_columns(db, us_to_ts(start_us), us_to_ts(end_us))
        if len(columns):
            return us_to_ts(int(columns.t_us.max()))
        if start_us <= int(doc.get("t_min", 0)):
            return None
        end_us = start_us - 1
    return None


def store_ids_polled_through(db: Database, now: pd.Timestamp, *, store_range: StoreRange | None = None) -> list[str]:
    """Ids of the stores with at least one poll at or before ``now`` (from the catalog), sorted; only those in
    ``store_range`` (reading only the catalog parts that can hold them) when given."""
    catalog = read_store_catalog(db, store_ids=store_range)
    keep = catalog.first_us <= ts_to_us(now)
    if store_range is not None:
        keep &= store_range.mask(catalog.store_ids)
    return catalog.store_ids[keep].astype(str).tolist()


def read_all_polls(db: Database) -> PollColumns:
    """Every stored poll (migration checks, ops, tests; reports read only their week)."""
    return concat_columns(read_day(db, day)[1] for day in sorted(_read_heads(db)))


def stored_day_counts(db: Database) -> dict[str, int]:
    """Polls per stored day (for ops and tests)."""
    counts = {}
    for day, head in sorted(_read_heads(db).items()):
        pending = _day_log(day, head).exists(db, _through(head) + 1)
        counts[day] = len(read_day(db, day)[1]) if pending else int(head.get("n", 0))
    return counts
