"""Small POST /store_status/ batches as deltas (mongomock, embedded worker): reads are the same before, during
and after the compaction, and the same as when the same polls are loaded by the day-merge path.

The reference is a second database where the base load and every batch go through ``insert_polls``
(the day-merge path a load takes); expected counts are written by hand from the batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import queue, storage
from loop.ingest import insert_polls, load_sources
from loop.report_engine import report_to_csv
from loop.services.ingest import compact_polls
from loop.storage import polls as polls_storage
from loop.utils import generate_report
from tests.support.csv_files import write_dataset
from tests.support.stored import stored_poll_rows

URL = "/store_status/"
BASE_POLLS = [
    "a,active,2024-10-07 10:00:00 UTC",
    "a,active,2024-10-07 11:00:00 UTC",
    "a,active,2024-10-08 09:00:00 UTC",
    "b,active,2024-10-07 10:30:00 UTC",
    "b,inactive,2024-10-08 10:30:00 UTC",
    "c,active,2024-10-01 08:00:00 UTC",
    "old,active,2024-09-20 12:00:00 UTC",
]
HOURS = ["a,0,09:00:00,17:00:00", "a,1,09:00:00,17:00:00", "b,1,08:00:00,20:00:00"]
ZONES = ["a,America/Chicago", "b,Europe/Berlin"]


def item(store_id: str, status: str, when: str) -> dict[str, str]:
    return {"store_id": store_id, "status": status, "timestamp_utc": when}


# (batch, inserted, duplicates) by hand: the first batch of a poll counts it.
BATCHES: list[tuple[list[dict[str, str]], int, int]] = [
    ([item("a", "active", "2024-10-08 10:00:00")], 1, 0),  # new, newest day
    ([item("a", "active", "2024-10-07 10:00:00")], 0, 1),  # already loaded
    ([item("a", "inactive", "2024-10-07 11:00:00")], 0, 1),  # makes a loaded poll inactive
    ([item("b", "active", "2024-10-08 10:30:00")], 0, 1),  # inactive stays: nothing changes
    (
        [
            item("new", "active", "2024-10-08 11:00:00"),  # a new store
            item("new", "inactive", "2024-10-08 11:00:00"),  # same instant: inactive wins
            item("a", "inactive", "2024-10-09 00:30:00"),  # a new day
            item("c", "active", "2024-10-02 08:00:00"),  # an older day
            item("a", "active", "2024-10-08 10:00:00"),  # repeats the first batch
        ],
        3,
        2,
    ),
]
LATER: list[tuple[list[dict[str, str]], int, int]] = [
    (
        [
            item("b", "active", "2024-10-09 01:00:00"),
            item("a", "active", "2024-10-09 00:45:00"),
            item("c", "inactive", "2024-10-02 08:00:00"),  # turns a poll of a pending delta inactive
        ],
        2,
        1,
    ),
    ([item("new", "active", "2024-10-08 11:00:00")], 0, 1),
]


def frame(items: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": [i["store_id"] for i in items],
            "status": [i["status"] for i in items],
            "timestamp_utc": pd.to_datetime([i["timestamp_utc"] for i in items], utc=True),
        }
    )


@pytest.fixture
def no_background_compaction(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The test runs the compaction itself; asks for one are recorded."""
    asked: list[float] = []
    monkeypatch.setattr(queue, "_embedded_compactor", asked.append)
    return asked


@pytest.fixture
def reference(settings, mdb: Database, tmp_path: Path) -> Iterator[Callable[[list[list[dict[str, str]]]], str]]:
    """A database name holding the base load and ``batches`` written by the day-merge path."""
    made: list[str] = []

    def build(batches: list[list[dict[str, str]]]) -> str:
        name = f"{settings.MONGO_DB}_ref{len(made)}"
        made.append(name)
        db = storage.get_client()[name]
        load_sources(write_dataset(tmp_path / name, BASE_POLLS, HOURS, ZONES), db)
        for batch in batches:
            insert_polls(db, frame(batch))
        return name

    yield build
    for name in made:
        storage.get_client().drop_database(name)


def outputs(settings, api: APIClient, name: str) -> dict[str, Any]:
    """What clients read: reports (Loop and extended CSVs), timelines, the store list and details, the overview."""
    settings.MONGO_DB = name
    db = storage.get_db()
    out: dict[str, Any] = {
        "loop": report_to_csv(generate_report(db=db).report),
        "extended": report_to_csv(generate_report(db=db, extended=True).report),
        "week_of_first_load": report_to_csv(generate_report(pd.Timestamp("2024-10-08 12:00", tz="UTC"), db=db).report),
        "polls": stored_poll_rows(db),
        "newest": storage.data_state(db)[0],
    }
    for path in (
        "/stores/?page_size=50",
        "/stores/?search=e",
        "/overview/",
        *(f"/stores/{s}/" for s in ("a", "b", "c", "new", "old")),
        *(f"/stores/{s}/timeline/" for s in ("a", "b", "new")),
        "/stores/a/timeline/?from=2024-10-06T00:00:00Z&to=2024-10-10T00:00:00Z",
    ):
        response = api.get(path)
        assert response.status_code == 200, (path, response.content)
        out[path] = response.content
    # The data's lag is measured against the wall clock, which moves between the two reads.
    overview = json.loads(out["/overview/"])
    assert overview.pop("data_lag_seconds") > 0 and overview.pop("data_lag_text").startswith("data ends ")
    out["/overview/"] = overview
    return out


def delta_docs(db: Database, day: str) -> list[int]:
    """The delta numbers stored for ``day`` (folded or not)."""
    return sorted(doc["seq"] for doc in db[polls_storage.DELTAS].find({"_id": {"$regex": f"^{day}\\|d\\|"}}))


def through(db: Database, head_id: str) -> int:
    return int(db[storage.STATUS].find_one({"_id": head_id}).get("deltas_through", 0))


def post(api: APIClient, batch: list[dict[str, str]]) -> dict[str, Any]:
    response = api.post(URL, batch, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_deltas_read_like_the_day_merge_before_during_and_after_compaction(
    settings, api: APIClient, mdb: Database, tmp_path: Path, reference, no_background_compaction, monkeypatch
) -> None:
    name = settings.MONGO_DB
    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    for batch, inserted, duplicates in BATCHES:
        answer = post(api, batch)
        assert (answer["inserted"], answer["duplicates"]) == (inserted, duplicates), batch
    assert no_background_compaction, "a compaction was asked for"
    # Deltas pending: nothing was rewritten but a delta per day touched and the catalog entries.
    assert mdb[storage.STATUS].find_one({"_id": "day:2024-10-08"})["version"] == 1
    assert delta_docs(mdb, "2024-10-08") == [1, 2] and through(mdb, "day:2024-10-08") == 0
    assert mdb[storage.STATUS].find_one({"_id": "catalog"})["version"] == 1

    expected = outputs(settings, api, reference([b for b, _, _ in BATCHES]))
    assert outputs(settings, api, name) == expected

    # During a compaction: it has read the days; more batches arrive and are read before it publishes.
    real_publish = polls_storage.publish_version
    later_done: list[dict[str, Any]] = []

    def publish_after_more_batches(db: Database, **kwargs: Any) -> bool:
        if not later_done and kwargs["heads"] == storage.STATUS and kwargs["head_id"].startswith("day:"):
            settings.MONGO_DB = name
            later_done.extend(post(api, batch) for batch, _, _ in LATER)
            assert outputs(settings, api, name) == expected_later
            settings.MONGO_DB = name
        return real_publish(db, **kwargs)

    expected_later = outputs(settings, api, reference([b for b, _, _ in BATCHES + LATER]))
    settings.MONGO_DB = name
    monkeypatch.setattr(polls_storage, "publish_version", publish_after_more_batches)
    folded = compact_polls(mdb)
    assert [(a["inserted"], a["duplicates"]) for a in later_done] == [(i, d) for _, i, d in LATER]
    # Days are folded oldest first; LATER arrived while 2024-10-02 was being folded, so its delta there
    # waits for the next run. Day deltas: 10-02: 1, 10-07: 1, 10-08: 2, 10-09: 2; catalog entries: 3.
    assert folded == 6 + 3
    assert delta_docs(mdb, "2024-10-02") == [1, 2] and through(mdb, "day:2024-10-02") == 1
    assert outputs(settings, api, name) == expected_later

    settings.MONGO_DB = name
    monkeypatch.setattr(polls_storage, "publish_version", real_publish)
    assert compact_polls(mdb) == 1
    assert through(mdb, "day:2024-10-02") == 2 and through(mdb, "catalog") == 3
    # Folded deltas stay for a grace period (a read that began before the fold may fetch them) ...
    assert delta_docs(mdb, "2024-10-08") == [1, 2]
    monkeypatch.setattr(polls_storage, "DELTA_GRACE_SECONDS", -1)
    assert compact_polls(mdb) == 0  # ... then the next run deletes them
    assert delta_docs(mdb, "2024-10-08") == [] and delta_docs(mdb, "2024-10-02") == []
    assert mdb[polls_storage.DELTAS].count_documents({"_id": {"$regex": "^catalog\\|c\\|"}}) == 0
    assert outputs(settings, api, name) == expected_later


def test_a_compaction_that_dies_after_writing_parts_loses_nothing(
    settings, api: APIClient, mdb: Database, tmp_path: Path, reference, no_background_compaction, monkeypatch
) -> None:
    name = settings.MONGO_DB
    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    for batch, _, _ in BATCHES:
        post(api, batch)
    expected = outputs(settings, api, reference([b for b, _, _ in BATCHES]))
    settings.MONGO_DB = name

    def die_after_the_parts(db: Database, **kwargs: Any) -> bool:
        for start in range(0, len(kwargs["docs"]), 64):
            db[kwargs["parts"]].insert_many(kwargs["docs"][start : start + 64])
        raise RuntimeError("killed between the parts and the head")

    monkeypatch.setattr(polls_storage, "publish_version", die_after_the_parts)
    with pytest.raises(RuntimeError, match="killed"):
        compact_polls(mdb)
    assert outputs(settings, api, name) == expected
    settings.MONGO_DB = name
    monkeypatch.undo()
    assert compact_polls(mdb) > 0
    assert outputs(settings, api, name) == expected


def test_the_data_version_moves_exactly_as_with_the_day_merge(
    settings, api: APIClient, mdb: Database, tmp_path: Path, reference, no_background_compaction
) -> None:
    name = settings.MONGO_DB
    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    versions = []
    for batch, _, _ in BATCHES + LATER:
        post(api, batch)
        versions.append(storage.data_state(mdb)[1])
    ref = storage.get_client()[reference([])]
    ref_versions = []
    for batch, _, _ in BATCHES + LATER:
        insert_polls(ref, frame(batch))
        ref_versions.append(storage.data_state(ref)[1])
    assert versions == ref_versions
    assert len(set(versions)) < len(versions)  # batches with nothing new left it alone
    settings.MONGO_DB = name
    compact_polls(mdb)
    assert storage.data_state(mdb)[1] == versions[-1]  # folding changes no poll


def test_a_batch_counts_against_the_deltas_appended_before_its_own(
    mdb: Database, tmp_path: Path, no_background_compaction, monkeypatch
) -> None:
    """Two batches with the same new poll race: both store a delta, the one appended first counts it."""
    from loop.ingest.dedup import PollWriter

    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    poll = [item("a", "inactive", "2024-10-08 13:00:00"), item("z", "active", "2024-10-08 13:00:00")]
    real_append = storage.append_delta
    raced: list[int] = []

    def the_other_batch_appends_first(db: Database, day: str, columns: Any, seq: int) -> int:
        if not raced:  # between this batch's read and its append, the other batch is written whole
            raced.append(1)
            other = PollWriter(db, deltas_up_to=10)
            other.write(frame(poll))
            raced.append(other.flush().inserted)
        return real_append(db, day, columns, seq)

    monkeypatch.setattr(storage, "append_delta", the_other_batch_appends_first)
    writer = PollWriter(mdb, deltas_up_to=10)
    writer.write(frame(poll))
    mine = writer.flush()
    assert raced == [1, 2] and (mine.inserted, mine.duplicates) == (0, 2)
    assert delta_docs(mdb, "2024-10-08") == [1, 2]
    rows = [r for r in stored_poll_rows(mdb) if r[2].startswith("2024-10-08T13")]
    assert rows == [("a", "inactive", "2024-10-08T13:00:00+00:00"), ("z", "active", "2024-10-08T13:00:00+00:00")]


def test_a_batch_counts_against_a_delta_another_process_wrote(
    mdb: Database, tmp_path: Path, no_background_compaction
) -> None:
    """A delta another process wrote (not held here) is read before the batch takes the next number, and
    the batch counts against it; sent again, the batch stores nothing new."""
    from loop.ingest.dedup import PollWriter
    from loop.storage.packed import _part_cache

    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    first = PollWriter(mdb, deltas_up_to=10)
    first.write(frame([item("a", "active", "2024-10-08 13:00:00")]))
    assert first.flush().inserted == 1
    _part_cache.clear()  # this process now holds none of the deltas: as if another process had written them
    second = PollWriter(mdb, deltas_up_to=10)
    second.write(frame([item("a", "active", "2024-10-08 13:00:00"), item("z", "active", "2024-10-08 14:00:00")]))
    mine = second.flush()
    assert (mine.inserted, mine.duplicates) == (1, 1)
    assert delta_docs(mdb, "2024-10-08") == [1, 2]
    rows = [r for r in stored_poll_rows(mdb) if r[2] >= "2024-10-08T13"]
    assert rows == [("a", "active", "2024-10-08T13:00:00+00:00"), ("z", "active", "2024-10-08T14:00:00+00:00")]
    # Sent again, from a process that holds neither delta, the batch stores nothing new.
    _part_cache.clear()
    third = PollWriter(mdb, deltas_up_to=10)
    third.write(frame([item("a", "active", "2024-10-08 13:00:00"), item("z", "active", "2024-10-08 14:00:00")]))
    again = third.flush()
    assert (again.inserted, again.duplicates) == (0, 2)


def test_a_slow_read_whose_deltas_were_folded_and_deleted_reads_again(
    mdb: Database, tmp_path: Path, no_background_compaction, monkeypatch
) -> None:
    """Folded deltas go ``DELTA_GRACE_SECONDS`` after their fold; a read that fetches deltas longer than the
    guard after its head was known current checks the head, and reads again when a fold came between."""
    from loop.ingest.dedup import PollWriter
    from loop.storage.packed import _part_cache

    day = "2024-10-08"
    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    small = PollWriter(mdb, deltas_up_to=10)
    small.write(frame([item("a", "inactive", "2024-10-08 13:00:00")]))
    assert small.flush().inserted == 1
    old_head = storage.read_day_head(mdb, day)
    # A day merge folds delta 1; the replaced version's parts stay a while (as after a big batch) ...
    big = PollWriter(mdb, delete_later=True)
    big.write(frame([item("b", "active", "2024-10-08 14:00:00")]))
    big.flush()
    assert big.replaced and through(mdb, f"day:{day}") == 1
    monkeypatch.setattr(polls_storage, "DELTA_GRACE_SECONDS", -1)
    compact_polls(mdb)
    assert delta_docs(mdb, day) == []  # ... and the folded delta is gone
    _part_cache.clear()  # the reader holds none of the deltas
    wanted = np.array(["a"], dtype=object)

    def a_times(seen_at: float) -> list[tuple[int, bool]]:
        found = polls_storage.read_day_full(mdb, day, head=old_head, store_ids=wanted, head_seen_at=seen_at)
        columns = polls_storage.only_stores(found.columns, wanted)
        return sorted(zip(columns.t_us.tolist(), columns.inactive.tolist(), strict=True))

    thirteen = int(pd.Timestamp("2024-10-08 13:00", tz="UTC").value // 1000)
    # Within the guard the old head is trusted (a fold after it deletes nothing that soon) ...
    assert (thirteen, True) not in a_times(time.monotonic())
    # ... past it, the read notices the fold and reads the current head.
    assert (thirteen, True) in a_times(time.monotonic() - polls_storage.DELTA_READ_GUARD_SECONDS - 1)


def test_a_cached_head_counts_from_when_it_was_fetched(
    mdb: Database, tmp_path: Path, no_background_compaction, monkeypatch
) -> None:
    """A process keeps heads while the range document's token holds; a fold changes the token only when its
    compaction ends. A read with a head fetched longer than the guard ago checks for a fold first."""
    from loop.ingest.dedup import PollWriter
    from loop.storage.packed import _part_cache

    day = "2024-10-08"
    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    small = PollWriter(mdb, deltas_up_to=10)
    small.write(frame([item("a", "inactive", "2024-10-08 13:00:00")]))
    small.flush()
    start, end = pd.Timestamp("2024-10-08", tz="UTC"), pd.Timestamp("2024-10-08 23:59", tz="UTC")
    polls_storage.read_poll_columns(mdb, start, end)  # the head of the day is now kept here
    token = mdb[storage.STATUS].find_one({"_id": "range"})["days_token"]
    big = PollWriter(mdb, delete_later=True)  # folds delta 1; the replaced parts stay a while
    big.write(frame([item("b", "active", "2024-10-08 14:00:00")]))
    big.flush()
    monkeypatch.setattr(polls_storage, "DELTA_GRACE_SECONDS", -1)
    polls_storage.compact_day(mdb, day)
    assert delta_docs(mdb, day) == []
    # As inside a compaction that has folded the day but not yet changed the token:
    mdb[storage.STATUS].update_one({"_id": "range"}, {"$set": {"days_token": token}})
    _part_cache.clear()
    thirteen = int(pd.Timestamp("2024-10-08 13:00", tz="UTC").value // 1000)

    def has_the_inactive_poll(fetched_ago: float) -> bool:
        for cached in polls_storage._heads_cache.values():
            for kept in cached[2]:
                cached[2][kept] = time.monotonic() - fetched_ago
        columns = polls_storage.read_poll_columns(mdb, start, end)
        return bool(((columns.t_us == thirteen) & columns.inactive).any())

    assert not has_the_inactive_poll(0.0)  # fetched just now: trusted, and the fold deleted its delta
    assert has_the_inactive_poll(polls_storage.DELTA_READ_GUARD_SECONDS + 1)


def test_an_append_to_a_taken_number_reads_on_and_takes_the_first_free_one(mdb: Database) -> None:
    """A number another process took meanwhile: the append reads the deltas from it on (held from then on)
    and inserts under the first missing number, not one insert per number taken."""
    from loop.storage.packed import DeltaLog, _part_cache

    log = DeltaLog(polls_storage.DELTAS, "test|d")
    assert log.append(mdb, {"n": 1}, 1) == 1
    for seq in (2, 3):  # another process's
        mdb[polls_storage.DELTAS].insert_one({"_id": log.doc_id(seq), "seq": seq, "n": seq})
    _part_cache.clear()
    assert log.append(mdb, {"n": 4}, 2) == 4
    # What the append read is held: with 2 and 3 gone from the server, a read still has them.
    mdb[polls_storage.DELTAS].delete_many({"_id": {"$in": [log.doc_id(2), log.doc_id(3)]}})
    docs, free = log.read(mdb, 1, known_free=5)
    assert [doc["n"] for doc in docs] == [2, 3, 4] and free == 5


def test_big_batches_merge_days_and_fold_pending_deltas(
    api: APIClient, mdb: Database, tmp_path: Path, no_background_compaction
) -> None:
    from loop.ingest.dedup import DELTA_MAX_POLLS

    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    post(api, [item("a", "active", "2024-10-08 10:00:00")])
    assert delta_docs(mdb, "2024-10-08") == [1] and through(mdb, "day:2024-10-08") == 0
    start = pd.Timestamp("2024-10-08 00:00:00", tz="UTC")
    big = [
        item(f"s{i:04d}", "active", (start + pd.Timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"))
        for i in range(DELTA_MAX_POLLS + 1)
    ]
    answer = post(api, big)
    assert answer["inserted"] == DELTA_MAX_POLLS + 1
    head = mdb[storage.STATUS].find_one({"_id": "day:2024-10-08"})
    assert head["version"] == 2 and head["deltas_through"] == 1  # rewritten, the pending delta folded in
    assert head["n"] == 2 + 1 + DELTA_MAX_POLLS + 1
    assert ("a", "active", "2024-10-08T10:00:00+00:00") in stored_poll_rows(mdb)


def test_the_embedded_worker_compacts_after_a_burst(
    api: APIClient, mdb: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setattr(queue, "COMPACT_POLLS_DELAY_SECONDS", 0.05)
    load_sources(write_dataset(tmp_path / "base", BASE_POLLS, HOURS, ZONES), mdb)
    post(api, [item("a", "active", "2024-10-08 10:00:00")])
    deadline = time.monotonic() + 10
    while through(mdb, "day:2024-10-08") == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (
        through(mdb, "day:2024-10-08") == 1 and mdb[storage.STATUS].find_one({"_id": "day:2024-10-08"})["version"] == 2
    )
    assert ("a", "active", "2024-10-08T10:00:00+00:00") in stored_poll_rows(mdb)
