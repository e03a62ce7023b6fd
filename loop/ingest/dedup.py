"""Which polls of a load are new: the loader's de-duplication, with "inactive wins" for repeats.

Duplicates are found before inserting instead of through the unique index:
FerretDB (SQLite) answers a batch holding one duplicate by inserting the whole
batch again one document per transaction, orders of magnitude slower. So the
writer keeps compact keys (store code, microseconds, status, _id; about 30
bytes per poll) of the polls stored before this run (read once, and only when
a chunk holds a poll inside a store's known range) and of the polls this run
wrote. "Inactive wins" for a repeated poll becomes an update by _id. The
unique index still guards against a concurrent loader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop import storage
from loop.rules import INACTIVE, first_poll_per_instant
from loop.timeutil import series_to_us


@dataclass
class PollWrite:
    """Outcome of writing polls."""

    inserted: int = 0
    duplicates: int = 0
    made_inactive: int = 0

    def add(self, other: PollWrite) -> None:
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.made_inactive += other.made_inactive


def _empty_keys() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "code": np.empty(0, np.int64),
            "t": np.empty(0, np.int64),
            "inactive": np.empty(0, bool),
            "hi": np.empty(0, np.uint64),
            "lo": np.empty(0, np.uint32),
        }
    )


class PollWriter:
    """Writes the polls of one load run, skipping (and counting) the ones already stored."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.totals = PollWrite()
        self._codes: dict[str, int] = {}
        self._ranges = storage.read_poll_ranges(db)
        # The ranges as they were before this run: only polls inside them can be stored already.
        self._before = dict(self._ranges)
        self._stored: pd.DataFrame | None = None
        self._written = _empty_keys()

    def _encode(self, store_ids: Iterable[str]) -> np.ndarray:
        codes = self._codes
        return np.fromiter((codes.setdefault(s, len(codes)) for s in store_ids), dtype=np.int64)

    def _load_stored(self) -> pd.DataFrame:
        keys = storage.read_poll_keys(self.db)
        return pd.DataFrame(
            {
                "code": self._encode(keys["store_id"].tolist()),
                "t": keys["t"].to_numpy(),
                "inactive": keys["inactive"].to_numpy(),
                "hi": keys["hi"].to_numpy(),
                "lo": keys["lo"].to_numpy(),
            }
        )

    def write(self, polls: pd.DataFrame) -> PollWrite:
        """Write a chunk of valid polls (store_id, status, timestamp_utc)."""
        out = PollWrite()
        if polls.empty:
            return out
        store_ids = polls["store_id"].astype(str).to_numpy(dtype=object)
        codes = self._encode(store_ids)
        t_us = series_to_us(polls["timestamp_utc"])
        inactive = (polls["status"] == INACTIVE).to_numpy(dtype=bool)
        keep = np.sort(first_poll_per_instant(codes, t_us, inactive))
        out.duplicates += len(polls) - len(keep)
        frame = pd.DataFrame(
            {"code": codes[keep], "t": t_us[keep], "inactive": inactive[keep], "store_id": store_ids[keep]}
        )

        # Ranges first: they may cover a poll not yet written, never miss a written one.
        self._widen_ranges(frame)

        known = np.zeros(len(frame), dtype=bool)
        flips: list[pd.DataFrame] = []
        maybe = self._inside_before_ranges(frame)
        if maybe.any():
            if self._stored is None:
                self._stored = self._load_stored()
            known |= self._match(frame, maybe, self._stored, flips)
        if len(self._written):
            known |= self._match(frame, ~known, self._written, flips)
        out.duplicates += int(known.sum())
        for flip in flips:
            out.made_inactive += storage.mark_polls_inactive(self.db, flip["hi"].to_numpy(), flip["lo"].to_numpy())

        fresh = frame.loc[~known].reset_index(drop=True)
        out.add(self._insert(fresh))
        self.totals.add(out)
        return out

    def _inside_before_ranges(self, frame: pd.DataFrame) -> np.ndarray:
        if not self._before:
            return np.zeros(len(frame), dtype=bool)
        # Per store code: the range stored before this run (empty range when none).
        first = np.ones(len(self._codes), dtype=np.int64)
        last = np.zeros(len(self._codes), dtype=np.int64)
        for sid, (lo, hi) in self._before.items():
            code = self._codes.get(sid)
            if code is not None:
                first[code], last[code] = lo, hi
        codes = frame["code"].to_numpy()
        t = frame["t"].to_numpy()
        return (first[codes] <= t) & (t <= last[codes])

    @staticmethod
    def _match(frame: pd.DataFrame, rows: np.ndarray, keys: pd.DataFrame, flips: list[pd.DataFrame]) -> np.ndarray:
        """Mark the rows already in ``keys``; queue "inactive wins" updates for them."""
        found = np.zeros(len(frame), dtype=bool)
        if not rows.any() or keys.empty:
            return found
        probe = frame.loc[rows, ["code", "t", "inactive"]].reset_index(names="row")
        hits = probe.merge(
            keys[["code", "t", "inactive", "hi", "lo"]].reset_index(names="key_row"),
            on=["code", "t"],
            suffixes=("", "_stored"),
        )
        found[hits["row"].to_numpy()] = True
        flip = hits[hits["inactive"] & ~hits["inactive_stored"]]
        if len(flip):
            keys.loc[flip["key_row"].to_numpy(), "inactive"] = True
            flips.append(flip[["hi", "lo"]])
        return found

    def _widen_ranges(self, frame: pd.DataFrame) -> None:
        agg = frame.groupby("store_id", sort=False)["t"].agg(["min", "max"])
        widened: list[tuple[str, int, int]] = []
        for sid, lo, hi in zip(agg.index.tolist(), agg["min"].tolist(), agg["max"].tolist(), strict=True):
            old = self._ranges.get(sid)
            if old is not None and old[0] <= lo and hi <= old[1]:
                continue
            new = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))
            self._ranges[sid] = new
            widened.append((sid, *new))
        storage.widen_poll_ranges(self.db, widened)

    def _insert(self, fresh: pd.DataFrame) -> PollWrite:
        if fresh.empty:
            return PollWrite()
        inserted = storage.insert_new_polls(
            self.db, fresh["store_id"].tolist(), fresh["t"].to_numpy(), fresh["inactive"].to_numpy()
        )
        written = fresh[["code", "t", "inactive"]].assign(hi=inserted.hi, lo=inserted.lo)
        if inserted.lost:
            written = written.drop(index=inserted.lost)
        self._written = pd.concat([self._written, written], ignore_index=True)
        return PollWrite(inserted.inserted, inserted.duplicates, inserted.made_inactive)


def insert_polls(db: Database, polls: pd.DataFrame) -> PollWrite:
    """Write one frame of polls (a one-chunk load)."""
    return PollWriter(db).write(polls)
