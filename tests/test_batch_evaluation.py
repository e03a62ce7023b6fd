"""A batch that rewrites its days (more than DELTA_MAX_POLLS polls: an hourly file) is evaluated in its own
request, on the days it has just written; a small batch only asks the worker (mongomock, in process)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop.ingest.dedup import DELTA_MAX_POLLS
from loop.storage.polls import PollColumns, merge_day, read_day_full, replace_day

DAY = "2024-10-14"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[int]:
    """The delays of the requests for a worker's evaluation (none runs: only the request's own can)."""
    settings.BATCH_FOLLOW_UP_SECONDS = 3
    calls: list[int] = []
    monkeypatch.setattr("loop.services.ingest.request_evaluation", lambda delay=0: calls.append(delay))
    return calls


def batch(stores: int, minute: int) -> list[dict[str, Any]]:
    return [
        {"store_id": f"s{k:05d}", "status": "active", "timestamp_utc": f"{DAY} 10:{minute:02d}:00 UTC"}
        for k in range(stores)
    ]


def evaluated_at(api: APIClient) -> str | None:
    response = api.get("/alerts/", {"page_size": 1})
    assert response.status_code == 200, response.content
    return response.json()["evaluated_at"]


def test_an_hourly_file_is_evaluated_before_its_answer(api: APIClient, asked: list[int]) -> None:
    response = api.post("/store_status/", batch(DELTA_MAX_POLLS + 1, 7), format="json")
    assert response.status_code == 201, response.content
    assert evaluated_at(api) == f"{DAY}T10:07:00Z"
    assert asked == [0]  # the worker is still asked, at once: batches that came meanwhile are its to evaluate


def test_a_small_batch_only_asks_the_worker(api: APIClient, asked: list[int]) -> None:
    response = api.post("/store_status/", batch(DELTA_MAX_POLLS, 7), format="json")
    assert response.status_code == 201, response.content
    assert evaluated_at(api) is None
    assert asked == [3]  # BATCH_FOLLOW_UP_SECONDS later, with the batches that come meanwhile


def test_a_merged_day_is_kept_in_the_process(mdb: Database, queries: list[Any]) -> None:
    ids = np.array(["a", "b"], dtype=object)
    t0 = 1_728_900_000_000_000  # 2024-10-14T10:00:00Z
    merge_day(mdb, DAY, PollColumns(ids, np.array([0, 1]), np.array([t0, t0 + 1]), np.array([False, True])))
    queries.clear()
    found = read_day_full(mdb, DAY, keep_whole_day=True)
    assert found.columns.t_us.tolist() == [t0, t0 + 1]
    assert found.columns.inactive.tolist() == [False, True]
    # The head and the probe for a first delta; no part ("<token>|<k>") is fetched again.
    assert {str(q["_id"]) for q in queries} == {"day:2024-10-14", "2024-10-14|d|1"}


def test_the_next_merge_of_a_day_this_process_wrote_reads_no_part(mdb: Database, queries: list[Any]) -> None:
    """An hourly batch's day, merged again an hour later: the kept version, not its parts, is merged."""
    ids = np.array(["a", "b"], dtype=object)
    t0 = 1_728_900_000_000_000  # 2024-10-14T10:00:00Z
    merge_day(mdb, DAY, PollColumns(ids, np.array([0, 1]), np.array([t0, t0]), np.array([False, False])))
    queries.clear()
    hour = 3_600_000_000
    batch = PollColumns(ids, np.array([0, 1]), np.array([t0 + hour] * 2), np.array([True, False]))
    assert merge_day(mdb, DAY, batch)[0] == 2
    assert not any("|" in str(q.get("_id", "")) and "|d|" not in str(q["_id"]) for q in queries)
    found = read_day_full(mdb, DAY)  # from the database, not the process
    assert found.columns.t_us.tolist() == [t0, t0 + hour, t0, t0 + hour]
    assert found.columns.inactive.tolist() == [False, True, False, False]


def test_a_day_another_process_replaced_is_read_again_before_merging(mdb: Database) -> None:
    ids = np.array(["a", "b"], dtype=object)
    t0 = 1_728_900_000_000_000
    merge_day(mdb, DAY, PollColumns(ids, np.array([0]), np.array([t0]), np.array([False])))
    # Another process's version (not kept here): the kept one is stale now.
    head = read_day_full(mdb, DAY).head
    other = PollColumns(ids, np.array([1]), np.array([t0 + 5]), np.array([True]))
    assert replace_day(mdb, DAY, head, other, keep_in_process=False)
    merge_day(mdb, DAY, PollColumns(ids, np.array([0]), np.array([t0 + 9]), np.array([False])))
    found = read_day_full(mdb, DAY)
    assert list(zip(found.columns.store_ids[found.columns.store], found.columns.t_us.tolist(), strict=True)) == [
        ("a", t0 + 9),
        ("b", t0 + 5),
    ]


def test_an_hourly_batch_leaves_the_versions_it_replaced_to_a_thread_that_deletes_them(
    api: APIClient, mdb: Database, asked: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loop import storage
    from loop.storage import packed

    def tokens(collection: str) -> set[str]:
        return {str(doc["token"]) for doc in mdb[collection].find({}) if "token" in doc}

    assert api.post("/store_status/", batch(DELTA_MAX_POLLS + 1, 7), format="json").status_code == 201
    storage.wait_for_deletions()
    day_before, catalog_before = tokens(f"store_status.{DAY}"), tokens("store_status.catalog")
    handed: list[list[tuple[str, str]]] = []
    real = packed._delete_versions
    monkeypatch.setattr(packed, "_delete_versions", lambda db, versions: handed.append(versions))
    assert api.post("/store_status/", batch(DELTA_MAX_POLLS + 1, 8), format="json").status_code == 201
    storage.wait_for_deletions()
    # The answer came with the old versions still stored; they were handed over, not deleted in the request.
    assert sorted(handed[0]) == sorted(
        [(f"store_status.{DAY}", *day_before), ("store_status.catalog", *catalog_before)]
    )
    assert day_before < tokens(f"store_status.{DAY}") and catalog_before < tokens("store_status.catalog")
    real(mdb, handed[0])
    head = read_day_full(mdb, DAY).head
    assert head is not None and tokens(f"store_status.{DAY}") == {head["token"]}
    catalog = mdb["store_status"].find_one({"_id": "catalog"})
    assert catalog is not None and tokens("store_status.catalog") == {catalog["token"]}
    assert len(read_day_full(mdb, DAY).columns) == 2 * (DELTA_MAX_POLLS + 1)
