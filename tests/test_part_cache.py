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
from loop.storage import polls as polls_module
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
    queries = part_queries(mdb, monkeypatch)
    few = np.array(["s00003", f"s{2 * PART_POLLS + 9:05d}"], dtype=object)
    found = storage.read_poll_columns(mdb, start, end, stores=few).to_frame()
    # Each day's first and last part of its three: two of three, so one $in query a day.
    assert sorted(len(ids) for ids in queries) == [2, 2]
    assert all(ids[0].endswith("|0") and ids[1].endswith("|2") for ids in queries)
    queries.clear()
    whole = storage.read_poll_columns(mdb, start, end).to_frame()
    assert sorted(len(ids) for ids in queries) == [3, 3]
    assert len(found) == 5
    assert found.astype(str).values.tolist() == whole[whole["store_id"].isin(few)].astype(str).values.tolist()
    queries.clear()
    storage.read_poll_columns(mdb, start, end, stores=few)
    assert queries == []  # kept: a settled day's parts never change


def part_queries(mdb: Database, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The part ids each query of a day's parts asks for from now on (``find_one`` by ``_id``, or ``find``
    with ``$in``; deltas left out), sorted (mongomock)."""
    queries: list[list[str]] = []
    collection = type(mdb["x"])

    def spy(original: Any, many: bool) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            wanted = args[0].get("_id", "") if args and isinstance(args[0], dict) else ""
            if many:  # mongomock's find_one calls find: only a find's $in counts as a find
                ids = [str(i) for i in wanted["$in"]] if isinstance(wanted, dict) and "$in" in wanted else []
            else:
                ids = [str(wanted)]
            ids = sorted(i for i in ids if "|" in i and "|d|" not in i)
            if self.name.startswith(f"{storage.STATUS}.") and ids:
                queries.append(ids)
            return original(self, *args, **kwargs)

        return call

    monkeypatch.setattr(collection, "find_one", spy(collection.find_one, many=False))
    monkeypatch.setattr(collection, "find", spy(collection.find, many=True))
    return queries


def test_many_parts_come_in_one_query_and_few_by_id(mdb: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day read whole (a report, the daily figures' build) asks once for all its parts; one store's read asks
    for its one part by ``_id`` (on FerretDB a lookup costs ~2.4x a part of a full pass)."""
    start, end = pd.Timestamp("2024-10-07", tz="UTC"), pd.Timestamp("2024-10-08", tz="UTC")
    monkeypatch.setattr(polls_module, "PART_POLLS", 4)
    rows = [(f"s{i:02d}", "active" if i % 3 else "inactive", "2024-10-07 10:00") for i in range(40)]
    insert_polls(mdb, polls(rows))
    queries = part_queries(mdb, monkeypatch)
    whole = storage.read_poll_columns(mdb, start, end).to_frame()
    assert [len(ids) for ids in queries] == [10]
    assert whole["store_id"].astype(str).tolist() == [r[0] for r in rows]
    assert whole["status"].astype(str).tolist() == [r[1] for r in rows]
    queries.clear()
    one = storage.read_poll_columns(mdb, start, end, store_id="s13").to_frame()
    assert [len(ids) for ids in queries] == [1]
    assert one["store_id"].astype(str).tolist() == ["s13"] and one["status"].tolist() == ["active"]
    queries.clear()
    three = storage.read_poll_columns(mdb, start, end, stores=np.array(["s00", "s05", "s09"], dtype=object))
    assert [len(ids) for ids in queries] == [1, 1, 1]  # three of ten: one lookup each
    assert three.store_ids[three.store].tolist() == ["s00", "s05", "s09"]


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
