"""The store catalog's last poll and status (what GET /stores/ lists), kept by the poll writer.

The expected values come from a plain dictionary walk over every poll written,
independent of the writer's vectorised merge.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop import storage
from loop.ingest import insert_polls
from loop.storage.packed import INT, STR, PackedTable
from loop.storage.polls import CATALOG, CATALOG_PARTS
from loop.storage.schema import STATUS
from loop.timeutil import ts_to_us

BASE = pd.Timestamp("2024-10-01", tz="UTC")


def frame(rows: list[tuple[str, bool, int]]) -> pd.DataFrame:
    """(store, inactive, minutes after BASE) rows as the writer's input frame."""
    return pd.DataFrame(
        {
            "store_id": [r[0] for r in rows],
            "status": ["inactive" if r[1] else "active" for r in rows],
            "timestamp_utc": pd.DatetimeIndex([BASE + pd.Timedelta(minutes=r[2]) for r in rows]).as_unit("us"),
        }
    )


def catalog(db: Database) -> dict[str, tuple[int, int, int]]:
    got = storage.read_store_catalog(db)
    return {
        str(s): (int(f), int(last), int(i))
        for s, f, last, i in zip(got.store_ids, got.first_us, got.last_us, got.last_inactive, strict=True)
    }


def reference(rows: list[tuple[str, bool, int]]) -> dict[str, tuple[int, int, int]]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for store, _, minute in rows:
        first[store] = min(first.get(store, minute), minute)
        last[store] = max(last.get(store, minute), minute)
    inactive = {s: int(any(i for st, i, m in rows if st == s and m == last[s])) for s in last}
    us = lambda minute: ts_to_us(BASE + pd.Timedelta(minutes=minute))  # noqa: E731
    return {s: (us(first[s]), us(last[s]), inactive[s]) for s in sorted(first)}


def test_last_poll_and_status_hold_for_appends_in_any_order(mdb: Database) -> None:
    rng = random.Random(7)
    rows = [(f"s{rng.randrange(6)}", rng.random() < 0.3, rng.randrange(0, 4 * 1440, 30)) for _ in range(400)]
    batches = [rows[i : i + 37] for i in range(0, len(rows), 37)]
    rng.shuffle(batches)  # newest polls may arrive first, the oldest last
    for batch in batches:
        insert_polls(mdb, frame(batch))
    assert catalog(mdb) == reference(rows)


def test_a_later_inactive_poll_at_the_same_instant_wins_and_an_older_one_changes_nothing(mdb: Database) -> None:
    insert_polls(mdb, frame([("a", False, 60), ("b", True, 60)]))
    assert catalog(mdb)["a"][1:] == (ts_to_us(BASE + pd.Timedelta(minutes=60)), 0)
    insert_polls(mdb, frame([("a", True, 60)]))  # same instant, now inactive: inactive wins
    insert_polls(mdb, frame([("b", False, 30)]))  # older: b's last poll stays the inactive one at 60
    got = catalog(mdb)
    assert got["a"][2] == 1
    assert got["b"] == (ts_to_us(BASE + pd.Timedelta(minutes=30)), ts_to_us(BASE + pd.Timedelta(minutes=60)), 1)


def test_a_catalog_written_before_last_polls_is_filled_in_by_the_next_load(mdb: Database) -> None:
    rows = [("a", False, 10), ("a", True, 50), ("b", False, 20), ("c", True, 5)]
    insert_polls(mdb, frame(rows))
    # Rewrite the catalog as the old layout stored it: store ids and first polls only.
    old = PackedTable(STATUS, CATALOG, CATALOG_PARTS, (("store_id", STR), ("first_us", INT)))
    head, columns = old.read(mdb)
    assert old.replace(mdb, head, columns)
    unknown = storage.read_store_catalog(mdb)
    assert unknown.last_inactive.tolist() == [-1, -1, -1]
    more = [("b", True, 20), ("d", False, 7)]
    insert_polls(mdb, frame(more))
    assert catalog(mdb) == reference(rows + more)


def test_one_stores_row_is_read_alone(mdb: Database) -> None:
    insert_polls(mdb, frame([("a", False, 10), ("b", True, 20)]))
    one = storage.read_store_catalog(mdb, "b")
    assert one.store_ids.tolist() == ["b"] and one.last_inactive.tolist() == [1]
    assert len(storage.read_store_catalog(mdb, "zz").store_ids) == 0
    assert np.array_equal(storage.read_catalog(mdb)[1], np.array(["a", "b"], dtype=object))
