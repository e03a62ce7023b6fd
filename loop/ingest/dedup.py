"""Which polls of a load are new, merged day by day into the stored days ("inactive wins" for repeats).

A load buffers its valid polls as compact columns (about 13 bytes a poll), then
``flush`` writes them one of two ways, by size (``DELTA_MAX_POLLS``):

- a big load merges each UTC day it touches with that day's stored polls and
  replaces the day in one step (``loop.storage.replace_day``); if another writer
  replaced the day meanwhile, the merge is done again on its version;
- a small batch (the HTTP pollers') appends only the polls it changes as a delta
  of each day, and its stores' rows to the catalog head (``loop.storage.append_delta``,
  ``append_catalog_rows``): its cost follows the batch, not the day. A background
  compaction folds the deltas into the days later (``loop.storage.compact_deltas``).

Either way a day with nothing new is not written, so loading the same files again
writes nothing, and what is stored depends only on the set of polls written.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop import storage
from loop.rules import INACTIVE
from loop.storage.packed import Columns
from loop.storage.polls import (
    DAY_US,
    DELTAS_THROUGH,
    UNKNOWN,
    Catalog,
    PollColumns,
    catalog_columns,
    day_of,
    last_polls,
    merge_catalog_columns,
    merge_polls,
    poll_changes,
)
from loop.timeutil import series_to_us

__all__ = ["DELTA_MAX_POLLS", "PollWrite", "PollWriter", "insert_polls", "merge_polls"]

MERGE_ATTEMPTS = 20
MERGE_THREADS = 3
# HTTP batches of at most this many polls are written as deltas. Rewriting a day costs the whole day
# (~0.1 s at Loop's 1x rates, ~0.7 s at 10x, plus ~0.4 s for the catalog) whatever the batch, while a
# delta costs a few small writes but is merged by every reader of its day until compacted, and its
# catalog rows ride on the catalog head. So pollers' batches (one to a few hundred polls) take the
# delta path, and loads and hourly files (a poll per store: thousands) the day merge, which leaves
# nothing for readers or the compaction to do.
DELTA_MAX_POLLS = 1000
# A compaction is asked for by the first delta after a fold, and again every this many deltas.
COMPACT_EVERY = 256


@dataclass
class PollWrite:
    """Outcome of writing polls: new ones, repeats (of the batch or of stored polls), stored polls made inactive.

    ``compaction_due``: deltas were written that no compaction has been asked for yet. ``changed_us``: the
    first and last instant of the written polls on the UTC days the write changed (None: it changed no
    day), what the daily figures recompute after a load (``history.build_after_load``).
    """

    inserted: int = 0
    duplicates: int = 0
    made_inactive: int = 0
    compaction_due: bool = False
    changed_us: tuple[int, int] | None = None

    def add(self, other: PollWrite) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.made_inactive += other.made_inactive
        self.compaction_due = self.compaction_due or other.compaction_due
        self.widen(other.changed_us)

    def widen(self, span: tuple[int, int] | None) -> None:
        if span is not None:
            lo, hi = span if self.changed_us is None else self.changed_us
            self.changed_us = (min(lo, span[0]), max(hi, span[1]))


def _catalog_rows(batch: PollColumns) -> Columns:
    """The batch's stores' first and last poll, and whether a poll at the last instant is inactive."""
    present, batch_last, batch_inactive = last_polls(batch)
    first = np.full(len(batch.store_ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, batch.store, batch.t_us)
    return {
        "store_id": batch.store_ids[present].astype(str).astype(object),
        "first_us": first[present],
        "last_us": batch_last,
        "last_inactive": batch_inactive,
    }


class PollWriter:
    """Collects the polls of one load run; ``flush`` writes them and says what was new."""

    def __init__(self, db: Database, *, deltas_up_to: int = 0, delete_later: bool = False) -> None:
        """``deltas_up_to``: a flush of at most this many polls appends deltas instead of merging days
        (the HTTP batches: ``DELTA_MAX_POLLS``); loads and imports keep 0, they are big. ``delete_later``:
        the versions a merge replaces are kept in ``replaced``, for ``delete_replaced_later`` (the HTTP
        hourly batch, whose answer should not wait for their deletion)."""
        self.db = db
        self.deltas_up_to = deltas_up_to
        self.delete_later = delete_later
        self.replaced: list[tuple[str, str]] = []
        self.totals = PollWrite()
        self._codes: dict[str, int] = {}
        self._store: list[np.ndarray] = []
        self._t_us: list[np.ndarray] = []
        self._inactive: list[np.ndarray] = []
        self._valid = 0

    def write(self, polls: pd.DataFrame) -> None:
        """Buffer a chunk of valid polls (store_id, status, timestamp_utc)."""
        if polls.empty:
            return
        local, uniques = pd.factorize(polls["store_id"], sort=False)
        codes = self._codes
        mapping = np.fromiter(
            (codes.setdefault(str(s), len(codes)) for s in uniques), dtype=np.int64, count=len(uniques)
        )
        self._store.append(mapping[local])
        self._t_us.append(series_to_us(polls["timestamp_utc"]))
        self._inactive.append((polls["status"] == INACTIVE).to_numpy(dtype=bool))
        self._valid += len(polls)

    def flush(self) -> PollWrite:
        """Merge the buffered polls into the stored days and the store catalog."""
        out = PollWrite()
        if self._valid == 0:
            return out
        batch = PollColumns(
            np.array(list(self._codes), dtype=object),
            np.concatenate(self._store),
            np.concatenate(self._t_us),
            np.concatenate(self._inactive),
        )
        valid = self._valid
        self._store, self._t_us, self._inactive, self._valid = [], [], [], 0
        day_number = batch.t_us // DAY_US
        order = np.argsort(day_number, kind="stable")
        numbers, starts = np.unique(day_number[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        days = day_of(numbers * DAY_US).tolist()

        def day_batch(i: int) -> PollColumns:
            return batch.take(order[bounds[i] : bounds[i + 1]])

        def count_day(i: int, inserted: int, made_inactive: int) -> None:
            out.inserted += inserted
            out.made_inactive += made_inactive
            if inserted or made_inactive:
                t_us = batch.t_us[order[bounds[i] : bounds[i + 1]]]
                out.widen((int(t_us.min()), int(t_us.max())))

        if valid <= self.deltas_up_to:
            for i, day in enumerate(days):
                inserted, made_inactive, due = self._append_day(day, day_batch(i))
                count_day(i, inserted, made_inactive)
                out.compaction_due = out.compaction_due or due
            out.compaction_due = self._append_catalog(batch) or out.compaction_due
        else:
            later = self.replaced if self.delete_later else None

            def merge(i: int) -> tuple[int, int]:
                return storage.merge_day(self.db, days[i], day_batch(i), later=later)

            # Days and the catalog are independent: while one waits on the server another sorts (numpy
            # releases the GIL). Readers key off the poll range, widened after both.
            with ThreadPoolExecutor(max_workers=MERGE_THREADS + 1, thread_name_prefix="day-merge") as pool:
                catalog = pool.submit(self._merge_catalog, batch, later)
                for i, (inserted, made_inactive) in enumerate(pool.map(merge, range(len(days)))):
                    count_day(i, inserted, made_inactive)
                catalog.result()
        # Last: a report triggered from now on may pin a `now` up to these polls, which are all stored,
        # and (when something changed) may not reuse a report triggered before them.
        changed = out.inserted > 0 or out.made_inactive > 0
        storage.widen_poll_range(self.db, int(batch.t_us.min()), int(batch.t_us.max()), changed=changed)
        out.duplicates = valid - out.inserted
        self.totals.add(out)
        return out

    def delete_replaced_later(self) -> None:
        """Hand the versions the flushes replaced to a thread that deletes them (``storage.delete_versions_later``)."""
        replaced, self.replaced = self.replaced, []
        storage.delete_versions_later(self.db, replaced)

    def _append_day(self, day: str, batch: PollColumns) -> tuple[int, int, bool]:
        """Store the polls of a small batch that change the day as its next delta: (inserted, made
        inactive, compaction due).

        The counts are against what was stored when the delta took its number: the day's parts and the
        deltas numbered below it. Concurrent batches carrying the same new poll both store it (readers
        count it once), but only the one numbered first counts it as inserted, so the inserted counts of
        all batches add up to the polls stored.
        """
        stores = np.unique(batch.store_ids[np.unique(batch.store)].astype(str)).astype(object)
        head = storage.day_head_for_deltas(self.db, day)
        seen = storage.read_day_full(self.db, day, head=head, store_ids=stores)
        changes, inserted, made_inactive = poll_changes(seen.columns, batch)
        if len(changes) == 0:
            return 0, 0, False
        seq = storage.append_delta(self.db, day, changes, seen.next_delta)
        if seq != seen.next_delta:  # other batches took the numbers between: count against them too
            inserted, made_inactive = self._count_before(day, seq, stores, batch) or (inserted, made_inactive)
        return inserted, made_inactive, self._due(seq, seen.head)

    @staticmethod
    def _due(seq: int, head: dict[str, Any] | None) -> bool:
        """The first delta after a fold asks for a compaction (the task waits, so one run folds the burst);
        so does every ``COMPACT_EVERY``-th, in case that request was lost."""
        through = 0 if head is None else int(head.get(DELTAS_THROUGH, 0))
        return seq == through + 1 or seq % COMPACT_EVERY == 0

    def _count_before(self, day: str, seq: int, stores: np.ndarray, batch: PollColumns) -> tuple[int, int] | None:
        """(inserted, made inactive) against the day's parts and the deltas numbered below ``seq``. None
        when a compaction already folded delta ``seq`` (the request stalled that long): the counts
        against what the batch read then stand."""
        for _ in range(MERGE_ATTEMPTS):
            head = storage.read_day_head(self.db, day)
            if head is None or int(head.get(DELTAS_THROUGH, 0)) >= seq:
                return None
            found = storage.read_day_full(self.db, day, head=head, store_ids=stores, deltas_before=seq)
            if found.head is head:
                _, inserted, made_inactive = merge_polls(found.columns, batch)
                return inserted, made_inactive
        return None

    def _append_catalog(self, batch: PollColumns) -> bool:
        """A small batch's stores' first and last poll, stored as a catalog delta when they change the
        catalog (whether or not a poll was new: a batch sent again after a failed request repairs it).
        Returns whether a compaction is due."""
        rows = _catalog_rows(batch)
        stores = np.sort(rows["store_id"])
        stored = storage.read_store_catalog(self.db, store_ids=stores)
        if stored.head is not None and not storage.deltas_moved(stored.head):
            storage.move_catalog_log(self.db)  # once, for a catalog written before the deltas had their place
            stored = storage.read_store_catalog(self.db, store_ids=stores)
        mine = np.isin(stored.store_ids.astype(str), stores.astype(str))
        if (stored.last_inactive[mine] == UNKNOWN).any():
            self._merge_catalog(batch)  # a catalog from before last polls were kept: filled in once, in full
            return False
        current = {name: values[mine] for name, values in catalog_columns(stored).items()}
        merged = merge_catalog_columns(current, rows)
        if len(merged["store_id"]) == len(current["store_id"]) and all(
            np.array_equal(merged[name], current[name]) for name in merged
        ):
            return False
        seq = storage.append_catalog_rows(self.db, rows, stored.next_delta, create_head=stored.head is None)
        return self._due(seq, stored.head)

    def _merge_catalog(self, batch: PollColumns, later: list[tuple[str, str]] | None = None) -> None:
        """Each store's first and last poll (and the last one's status) over the stored ones and the batch.

        Order-free (``storage.polls.merge_catalog_columns``), so appends in any order agree; the pending
        catalog deltas are folded in with it.
        """
        storage.merge_into_catalog(self.db, _catalog_rows(batch), self._fill_unknown_lasts, later=later)

    def _fill_unknown_lasts(self, stored: Catalog) -> Catalog:
        """A catalog written before it kept last polls: read them once from every stored day."""
        polls = storage.read_all_polls(self.db)
        present, last, inactive = last_polls(polls)
        found = {str(store_id): i for i, store_id in enumerate(polls.store_ids[present].tolist())}
        where = np.array([found.get(str(store_id), -1) for store_id in stored.store_ids.tolist()], dtype=np.int64)
        known = where >= 0
        last_us, last_inactive = stored.last_us.copy(), stored.last_inactive.copy()
        last_us[known], last_inactive[known] = last[where[known]], inactive[where[known]]
        return Catalog(stored.head, stored.store_ids, stored.first_us, last_us, last_inactive)


def insert_polls(db: Database, polls: pd.DataFrame) -> PollWrite:
    """Write one frame of polls (a one-chunk load)."""
    writer = PollWriter(db)
    writer.write(polls)
    return writer.flush()
