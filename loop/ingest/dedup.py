"""Which polls of a load are new, merged day by day into the stored days ("inactive wins" for repeats).

A load buffers its valid polls as compact columns (about 13 bytes a poll), then
``flush`` merges each UTC day it touches with that day's stored polls and
replaces the day in one step (``loop.storage.replace_day``). A day with nothing
new is not written, so loading the same files again writes nothing; any number
of hourly appends leaves each day exactly as one load of the concatenated
files would. If another writer replaced the day meanwhile, the merge is done
again on its version, so concurrent loads lose nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop import storage
from loop.rules import INACTIVE, first_poll_per_instant, group_polls_by_instant
from loop.storage.polls import DAY_US, UNKNOWN, Catalog, PollColumns, concat_columns, day_of, last_polls
from loop.timeutil import series_to_us

MERGE_ATTEMPTS = 20
MERGE_THREADS = 3


@dataclass
class PollWrite:
    """Outcome of writing polls: new ones, repeats (of the batch or of stored polls), stored polls made inactive."""

    inserted: int = 0
    duplicates: int = 0
    made_inactive: int = 0

    def add(self, other: PollWrite) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.made_inactive += other.made_inactive


def merge_polls(stored: PollColumns, batch: PollColumns) -> tuple[PollColumns, int, int]:
    """(merged polls sorted by store and time, polls new to ``stored``, stored polls turned inactive)."""
    if len(stored) == 0:
        batch = concat_columns([batch])  # store ids sorted, so the day sorts by store id
        merged = batch.take(first_poll_per_instant(batch.store, batch.t_us, batch.inactive))
        return merged, len(merged), 0
    both = concat_columns([stored, batch])
    # One sort serves the rule (the first of each instant: inactive wins) and the accounting.
    order, starts = group_polls_by_instant(both.store, both.t_us, both.inactive)
    merged = both.take(order[starts])
    group = np.cumsum(starts) - 1
    n_groups = len(merged)
    from_stored = np.arange(len(both))[order] < len(stored)
    was_stored = np.bincount(group, weights=from_stored, minlength=n_groups) > 0
    stored_inactive = np.bincount(group, weights=from_stored & both.inactive[order], minlength=n_groups) > 0
    inserted = int((~was_stored).sum())
    made_inactive = int((was_stored & ~stored_inactive & merged.inactive).sum())
    return merged, inserted, made_inactive


class PollWriter:
    """Collects the polls of one load run; ``flush`` writes them and says what was new."""

    def __init__(self, db: Database) -> None:
        self.db = db
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

        def merge(i: int) -> tuple[int, int]:
            return self._merge_day(days[i], batch.take(order[bounds[i] : bounds[i + 1]]))

        # Days are independent: while one waits on the server another sorts (numpy releases the GIL).
        with ThreadPoolExecutor(max_workers=MERGE_THREADS, thread_name_prefix="day-merge") as pool:
            for inserted, made_inactive in pool.map(merge, range(len(days))):
                out.inserted += inserted
                out.made_inactive += made_inactive
        self._merge_catalog(batch)
        # Last: a report triggered from now on may pin a `now` up to these polls, which are all stored,
        # and (when something changed) may not reuse a report triggered before them.
        changed = out.inserted > 0 or out.made_inactive > 0
        storage.widen_poll_range(self.db, int(batch.t_us.min()), int(batch.t_us.max()), changed=changed)
        out.duplicates = valid - out.inserted
        self.totals.add(out)
        return out

    def _merge_day(self, day: str, batch: PollColumns) -> tuple[int, int]:
        for _ in range(MERGE_ATTEMPTS):
            head, stored = storage.read_day(self.db, day)
            merged, inserted, made_inactive = merge_polls(stored, batch)
            if inserted == 0 and made_inactive == 0:
                return 0, 0
            if storage.replace_day(self.db, day, head, merged):
                return inserted, made_inactive
        raise RuntimeError(f"day {day}: other writers replaced it {MERGE_ATTEMPTS} times in a row")

    def _merge_catalog(self, batch: PollColumns) -> None:
        """Each store's first and last poll (and the last one's status) over the stored ones and the batch.

        Order-free: a batch older than what is stored moves only ``first``; a poll at the stored last
        instant can only turn its status inactive (inactive wins), so appends in any order agree.
        """
        present, batch_last, batch_inactive = last_polls(batch)
        first = np.full(len(batch.store_ids), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, batch.store, batch.t_us)
        new_ids, new_first = batch.store_ids[present], first[present]
        for _ in range(MERGE_ATTEMPTS):
            stored = storage.read_store_catalog(self.db)
            if (stored.last_inactive == UNKNOWN).any():
                stored = self._fill_unknown_lasts(stored)
            ids = np.concatenate([stored.store_ids, new_ids]).astype(object)
            merged_ids, inverse = np.unique(ids, return_inverse=True)
            merged_first = np.full(len(merged_ids), np.iinfo(np.int64).max, dtype=np.int64)
            np.minimum.at(merged_first, inverse, np.concatenate([stored.first_us, new_first]))
            lasts = np.concatenate([stored.last_us, batch_last])
            merged_last = np.full(len(merged_ids), np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(merged_last, inverse, lasts)
            at_last = lasts == merged_last[inverse]
            merged_inactive = np.zeros(len(merged_ids), dtype=np.int64)
            np.maximum.at(
                merged_inactive, inverse[at_last], np.concatenate([stored.last_inactive, batch_inactive])[at_last]
            )
            if (
                stored.head is not None
                and len(merged_ids) == len(stored.store_ids)
                and np.array_equal(merged_first, stored.first_us)
                and np.array_equal(merged_last, stored.last_us)
                and np.array_equal(merged_inactive, stored.last_inactive)
            ):
                return
            if storage.replace_catalog(
                self.db, stored.head, merged_ids, merged_first, last_us=merged_last, last_inactive=merged_inactive
            ):
                return
        raise RuntimeError(f"the store catalog was replaced by other writers {MERGE_ATTEMPTS} times in a row")

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
