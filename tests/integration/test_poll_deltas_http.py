"""Small POST /store_status/ batches on real servers: gunicorn (2 processes, DEBUG=0), a Celery worker that
compacts, Redis and FerretDB (or mongod).

Many clients post small batches for the same stores and days at once (new polls, repeats, the same
instant active in one batch and inactive in another, repeats of loaded polls); then every stored poll
is checked against the set the batches define, and the reads (reports, timelines, the store list)
against a database that got the same polls through the day-merge path, while the worker compacts
and after. The crash test runs in process on the same server.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from pymongo import MongoClient
from pymongo.database import Database

from loop import storage
from loop.ingest import insert_polls, load_sources
from loop.ingest.dedup import PollWriter
from loop.report_engine import report_to_csv
from loop.services.ingest import compact_polls
from loop.storage import polls as polls_storage
from loop.storage.polls import DELTAS
from loop.utils import generate_report
from tests.support.integration import MONGO_URL, Dataset, Stack, private_app
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

CLIENTS = 16
BATCHES_PER_CLIENT = 12


def polls_as_set(db: Database) -> dict[tuple[str, int], bool]:
    columns = storage.read_all_polls(db)
    ids = columns.store_ids[columns.store].tolist()
    return {(s, t): bool(i) for s, t, i in zip(ids, columns.t_us.tolist(), columns.inactive.tolist(), strict=True)}


def as_item(store_id: str, t_us: int, inactive: bool) -> dict[str, str]:
    when = pd.Timestamp(t_us, unit="us", tz="UTC").strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    return {"store_id": store_id, "status": "inactive" if inactive else "active", "timestamp_utc": when}


def reads(base_url: str, db: Database, stores: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "loop": report_to_csv(generate_report(db=db).report),
        "extended": report_to_csv(generate_report(db=db, extended=True).report),
    }
    for path in [
        "/stores/?page_size=100",
        *(f"/stores/{s}/" for s in stores),
        *(f"/stores/{s}/timeline/" for s in stores),
    ]:
        response = requests.get(f"{base_url}{path}", timeout=60)
        assert response.status_code == 200, (path, response.text[:300])
        out[path] = response.content
    return out


def pending_deltas(db: Database) -> int:
    """Deltas stored and not folded yet, over the days and the catalog (in their collection: ``DELTAS``)."""
    deltas = db[DELTAS]
    pending = 0
    for head in db[storage.STATUS].find({"kind": "day"}):
        through = int(head.get("deltas_through", 0))
        pending += deltas.count_documents({"_id": {"$regex": f"^{head['day']}\\|d\\|"}, "seq": {"$gt": through}})
    catalog = db[storage.STATUS].find_one({"_id": "catalog"}) or {}
    return pending + deltas.count_documents(
        {"_id": {"$regex": "^catalog\\|c\\|"}, "seq": {"$gt": catalog.get("deltas_through", 0)}}
    )


@pytest.fixture
def app(stack: Stack) -> Iterator[tuple[str, dict[str, str]]]:
    with private_app(stack, "deltas") as found:
        yield found


def test_concurrent_small_batches_store_exactly_the_polls_sent_and_read_like_a_load(
    app: tuple[str, dict[str, str]], stack: Stack, dataset: Dataset
) -> None:
    base_url, env = app
    proc = run_manage(env, "load_data", str(dataset.old))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    db = stack.mongo[env["MONGO_DB"]]
    base = polls_as_set(db)
    rng = random.Random(16)
    stores = sorted({s for s, _ in base})[:10]
    newest_us = max(t for _, t in base)
    # New instants around the newest poll (some on the next UTC day) and loaded polls of these stores.
    fresh = [(s, newest_us + rng.randrange(1, 30 * 3600) * 1_000_000) for s in stores for _ in range(6)]
    loaded = [key for key in base if key[0] in stores and key[1] > newest_us - 3 * 86_400_000_000]
    pool = fresh + rng.sample(loaded, 40)

    batches = []
    for _ in range(CLIENTS * BATCHES_PER_CLIENT):
        picks = rng.sample(pool, rng.choice([1, 1, 2, 5]))
        batches.append([as_item(s, t, rng.random() < 0.3) for s, t in picks])
    answers: list[dict[str, Any]] = []
    errors: list[str] = []
    seen_pending: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        for batch in batches[index::CLIENTS]:
            response = session.post(f"{base_url}/store_status/", json=batch, timeout=60)
            with lock:
                if response.status_code in (200, 201):
                    answers.append(response.json())
                else:
                    errors.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        seen_pending.append(pending_deltas(db))
        threads[0].join(timeout=0.2)
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert max(seen_pending) > 0  # the batches went through deltas

    expected = dict(base)
    for batch in batches:
        for item in batch:
            key = (
                item["store_id"],
                int(pd.Timestamp(item["timestamp_utc"].removesuffix(" UTC"), tz="UTC").value // 1000),
            )
            expected[key] = expected.get(key, False) or item["status"] == "inactive"
    assert polls_as_set(db) == expected
    # Each new poll is counted as inserted by exactly one batch: the first appended.
    assert sum(a["inserted"] for a in answers) == len(expected) - len(base)
    assert all(a["inserted"] + a["duplicates"] == a["read"] for a in answers)

    reference_name = f"{env['MONGO_DB']}_ref"
    reference = storage.get_db(reference_name, MONGO_URL)
    try:
        load_sources(dataset.old, reference)
        items = [as_item(s, t, i) for (s, t), i in expected.items() if (s, t) not in base or i != base[(s, t)]]
        frame = pd.DataFrame(items)
        frame["timestamp_utc"] = pd.to_datetime(frame["timestamp_utc"].str.removesuffix(" UTC"), utc=True)
        insert_polls(reference, frame)
        want_loop = report_to_csv(generate_report(db=reference).report)
        want_extended = report_to_csv(generate_report(db=reference, extended=True).report)
    finally:
        MongoClient(MONGO_URL).drop_database(reference_name)

    # While the worker compacts (it was asked after the first delta of each burst) and after.
    snapshots = [reads(base_url, db, stores[:3])]
    snapshots.append(reads(base_url, db, stores[:3]))
    compact_polls(db)  # whatever the worker left
    assert pending_deltas(db) == 0
    snapshots.append(reads(base_url, db, stores[:3]))
    assert polls_as_set(db) == expected
    for snapshot in snapshots:
        assert snapshot["loop"] == want_loop and snapshot["extended"] == want_extended
        assert snapshot == snapshots[0]


def test_a_compaction_killed_after_writing_parts_loses_nothing_on_the_server(
    servers: None, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"loop_deltas_{uuid.uuid4().hex[:10]}"
    db = storage.get_db(name, MONGO_URL)
    try:
        load_sources(dataset.old, db)
        base = polls_as_set(db)
        stores = sorted({s for s, _ in base})[:5]
        newest_us = max(t for _, t in base)
        for k, store in enumerate(stores):
            writer = PollWriter(db, deltas_up_to=10)
            times = [newest_us + (k + 1) * 1_000_000, newest_us - 86_400_000_000 + k]
            writer.write(
                pd.DataFrame(
                    {
                        "store_id": [store, store],
                        "status": ["inactive", "active"],
                        "timestamp_utc": pd.to_datetime(np.array(times, dtype="datetime64[us]"), utc=True),
                    }
                )
            )
            assert writer.flush().inserted == 2
        assert pending_deltas(db) > 0
        before = (polls_as_set(db), report_to_csv(generate_report(db=db).report))

        def die_after_the_parts(database: Database, **kwargs: Any) -> bool:
            database[kwargs["parts"]].insert_many(kwargs["docs"])
            raise RuntimeError("killed between the parts and the head")

        monkeypatch.setattr(polls_storage, "publish_version", die_after_the_parts)
        with pytest.raises(RuntimeError, match="killed"):
            compact_polls(db)
        polls_storage.forget_cached_heads(db)
        assert (polls_as_set(db), report_to_csv(generate_report(db=db).report)) == before
        monkeypatch.undo()
        assert compact_polls(db) > 0 and pending_deltas(db) == 0
        assert (polls_as_set(db), report_to_csv(generate_report(db=db).report)) == before
    finally:
        MongoClient(MONGO_URL).drop_database(name)
