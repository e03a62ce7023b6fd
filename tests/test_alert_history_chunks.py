"""The alert history's day chunks (loop.storage.alerts): new alerts fill the day's last chunk up to
CHUNK_ROWS and then start the next; one evaluation's alerts stay together; changes land in the chunk that
holds the alert (mongomock)."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from loop.storage.alerts import CHUNK_ROWS, read_alert, read_alerts, record_transitions

DAY = "2024-10-14"


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"alert_id": f"a{k:04d}", "store_id": f"s{k:04d}", "started_us": k, "opened_us": k, "resolved_us": None}
        for k in range(first, first + count)
    ]


def test_chunks_roll_over_and_changes_find_their_chunk(mdb: Database) -> None:
    assert CHUNK_ROWS == 200
    assert record_transitions(mdb, opened=rows(0, 150), day=DAY) == f"{DAY}|0000"
    assert record_transitions(mdb, opened=rows(150, 50), day=DAY) == f"{DAY}|0000"  # exactly full
    assert record_transitions(mdb, opened=rows(200, 1), day=DAY) == f"{DAY}|0001"
    # More than a chunk at once: all of them in one new chunk.
    assert record_transitions(mdb, opened=rows(201, 450), day=DAY) == f"{DAY}|0002"
    assert record_transitions(mdb, opened=rows(651, 1), day=DAY) == f"{DAY}|0003"

    record_transitions(
        mdb,
        changes=[(f"{DAY}|0000", "a0003", {"resolved_us": 99}), (f"{DAY}|0002", "a0500", {"resolved_us": 98})],
    )
    found = read_alerts(mdb, ["a0003", "a0199", "a0200", "a0500", "a0651"])
    assert {a: (r["chunk"], r["resolved_us"]) for a, r in found.items()} == {
        "a0003": (f"{DAY}|0000", 99),
        "a0199": (f"{DAY}|0000", None),
        "a0200": (f"{DAY}|0001", None),
        "a0500": (f"{DAY}|0002", 98),
        "a0651": (f"{DAY}|0003", None),
    }
    one = read_alert(mdb, "a0650")
    assert one is not None and one["chunk"] == f"{DAY}|0002"


def test_a_chunk_is_stored_as_one_packed_field_and_an_older_list_chunk_still_reads(mdb: Database) -> None:
    chunk = record_transitions(mdb, opened=rows(0, 3), day=DAY)
    stored = mdb["alert_history"].find_one({"_id": chunk})
    assert stored is not None and sorted(stored) == ["_id", "packed"]  # one binary field, not 3 subdocuments
    # A chunk written before packing: its rows as a list of subdocuments.
    old_rows = [dict(row, chunk=f"{DAY}|0001") for row in rows(10, 2)]
    mdb["alert_history"].insert_one({"_id": f"{DAY}|0001", "rows": old_rows})
    mdb["alerts"].insert_many([{"_id": row["alert_id"], "chunk": f"{DAY}|0001"} for row in old_rows])
    index = mdb["alert_history"].find_one({"_id": "index"})
    assert index is not None
    entry = {"id": f"{DAY}|0001", "n": 2, "resolved": 0, "v": 1}
    mdb["alert_history"].update_one({"_id": "index"}, {"$set": {"chunks": [*index["chunks"], entry]}})
    assert read_alert(mdb, "a0011") == old_rows[1]
    record_transitions(mdb, changes=[(f"{DAY}|0001", "a0010", {"resolved_us": 7})])
    assert read_alert(mdb, "a0010") == dict(old_rows[0], resolved_us=7)
    assert read_alert(mdb, "a0002") == dict(rows(0, 3)[2], chunk=chunk)
