"""The per-process cache of part documents used by one store's reads (loop/storage/packed.PartCache).

Parts never change (their _id names their version's random token), so a cached part is always the
stored one; these tests check that a replaced day or table is still read fresh, and the byte bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from bson.binary import Binary
from pymongo.database import Database

from loop import storage
from loop.ingest import insert_polls
from loop.storage.packed import PartCache
from loop.storage.polls import PART_POLLS


def polls(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "timestamp_utc": pd.to_datetime([r[2] for r in rows], utc=True).as_unit("us"),
        }
    )


def reads_of(collection: Any, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The filters of every find / find_one on ``collection`` from now on (mongomock)."""
    seen: list[object] = []

    def spy(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.name == collection.name:
                seen.append(args)
            return original(self, *args, **kwargs)

        return call

    monkeypatch.setattr(type(collection), "find", spy(type(collection).find))
    monkeypatch.setattr(type(collection), "find_one", spy(type(collection).find_one))
    return seen


def test_a_replaced_day_and_table_are_read_fresh_by_one_stores_reads(mdb: Database) -> None:
    start, end = pd.Timestamp("2024-10-07", tz="UTC"), pd.Timestamp("2024-10-08", tz="UTC")
    insert_polls(mdb, polls([("a", "active", "2024-10-07 10:00"), ("b", "active", "2024-10-07 11:00")]))
    assert storage.read_store_polls(mdb, "a", start, end)["status"].tolist() == ["active"]
    assert storage.read_store_polls(mdb, "a", start, end)["status"].tolist() == ["active"]  # from the cache
    insert_polls(mdb, polls([("a", "inactive", "2024-10-07 12:00"), ("a", "inactive", "2024-10-07 10:00")]))
    # The day was replaced under a new token: the new parts are read, never the kept old one.
    assert storage.read_store_polls(mdb, "a", start, end)["status"].tolist() == ["inactive", "inactive"]

    hours = {"store_id": ["a"], "day_of_week": [0], "start_seconds": [0]}
    storage.replace_hours(mdb, pd.DataFrame({**hours, "end_seconds": [60]}))
    assert storage.read_hours(mdb, "a")["end_seconds"].tolist() == [60]
    storage.replace_hours(mdb, pd.DataFrame({**hours, "end_seconds": [120]}))
    assert storage.read_hours(mdb, "a")["end_seconds"].tolist() == [120]


def test_the_cache_keeps_at_most_its_bytes_and_drops_the_least_recently_used(mdb: Database) -> None:
    cache = PartCache(max_bytes=100)

    def doc(n: int) -> dict[str, object]:
        return {"_id": f"t|{n}", "token": "t", "blob": Binary(b"x" * 40)}

    for n in range(3):
        cache.put(mdb, "p", f"t|{n}", doc(n))
    # 3 x 40 bytes > 100: the first one went.
    assert cache.get(mdb, "p", "t|0") is None
    assert cache.get(mdb, "p", "t|1") is not None  # now the most recently used
    cache.put(mdb, "p", "t|3", doc(3))
    assert cache.get(mdb, "p", "t|2") is None and cache.get(mdb, "p", "t|1") is not None
    cache.put(mdb, "p", "big", {"_id": "big", "blob": Binary(b"x" * 101)})  # larger than the cache: not kept
    assert cache.get(mdb, "p", "big") is None
    # Another database's part of the same name is another part.
    assert cache.get(mdb.client["other"], "p", "t|1") is None


@pytest.mark.parametrize("keep_whole_days", [True, False])
def test_a_drill_down_that_keeps_whole_days_lets_the_next_store_read_no_part(
    mdb: Database, monkeypatch: pytest.MonkeyPatch, keep_whole_days: bool
) -> None:
    start, end = pd.Timestamp("2024-10-07", tz="UTC"), pd.Timestamp("2024-10-08", tz="UTC")
    # Enough stores for several parts of the day (PART_POLLS each).
    rows = [(f"s{i:05d}", "active", "2024-10-07 10:00") for i in range(2 * PART_POLLS + 10)]
    insert_polls(mdb, polls(rows))
    first = storage.read_store_polls(mdb, "s00000", start, end, keep_whole_days=keep_whole_days)
    assert first["store_id"].tolist() == ["s00000"]
    part_reads = reads_of(mdb[f"{storage.STATUS}.2024-10-07"], monkeypatch)
    # A store in the day's last part.
    last = f"s{2 * PART_POLLS + 9:05d}"
    assert storage.read_store_polls(mdb, last, start, end)["store_id"].tolist() == [last]
    # Kept whole: from memory. Not kept: its own part is fetched.
    assert (part_reads == []) is keep_whole_days


def test_a_read_of_a_few_stores_fetches_only_their_parts_once(mdb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alert evaluation's week-long look at a few stores: their parts only, and kept for the next."""
    start, end = pd.Timestamp("2024-10-07", tz="UTC"), pd.Timestamp("2024-10-08 23:00", tz="UTC")
    rows = [(f"s{i:05d}", "active", f"2024-10-0{7 + d} 10:00") for d in (0, 1) for i in range(2 * PART_POLLS + 10)]
    rows.append(("s00003", "inactive", "2024-10-08 11:00"))
    insert_polls(mdb, polls(rows))
    fetched: list[str] = []
    original = type(mdb["x"]).find_one

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        part = str(args[0].get("_id", "")) if args else ""
        if self.name.startswith(f"{storage.STATUS}.") and "|" in part and not part.startswith("d|"):  # not a delta
            fetched.append(part)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(mdb["x"]), "find_one", spy)
    few = np.array(["s00003", f"s{2 * PART_POLLS + 9:05d}"], dtype=object)
    found = storage.read_poll_columns(mdb, start, end, stores=few).to_frame()
    assert len(fetched) == 2 * 2  # each day's first and last part of its three
    fetched.clear()
    whole = storage.read_poll_columns(mdb, start, end).to_frame()
    assert len(fetched) == 3 * 2
    assert len(found) == 5
    assert found.astype(str).values.tolist() == whole[whole["store_id"].isin(few)].astype(str).values.tolist()
    fetched.clear()
    storage.read_poll_columns(mdb, start, end, stores=few)
    assert fetched == []  # kept: a settled day's parts never change


def test_a_table_this_process_wrote_is_read_back_without_fetching_its_parts(
    mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    hours = {"store_id": ["a", "b"], "day_of_week": [0, 1], "start_seconds": [0, 60]}
    storage.replace_hours(mdb, pd.DataFrame({**hours, "end_seconds": [60, 120]}))
    parts = mdb["business_hours.parts"]
    assert parts.count_documents({}) >= 1
    fetched = reads_of(parts, monkeypatch)
    assert storage.read_hours(mdb)["end_seconds"].tolist() == [60, 120]
    assert fetched == []
