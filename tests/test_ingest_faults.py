"""MongoDB failing during an ingestion: a JSON 503, and posting the batch again repairs whatever was half done."""

from __future__ import annotations

import pytest
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError
from rest_framework.test import APIClient

from loop import storage
from tests.support.stored import stored_poll_rows

BATCH = (
    "store_id,status,timestamp_utc\n"
    "s1,active,2024-10-03 10:00:00 UTC\n"
    "s1,inactive,2024-10-04 10:00:00 UTC\n"
    "s2,active,2024-10-05 10:00:00 UTC\n"
)


def post(api: APIClient) -> object:
    return api.generic("POST", "/store_status/", BATCH, content_type="text/csv")


def test_mongodb_down_is_a_503_json_and_nothing_is_stored(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise ServerSelectionTimeoutError("no server")

    monkeypatch.setattr(storage, "day_head_for_deltas", down)  # a small batch's first read of a day
    response = post(api)
    assert response.status_code == 503
    assert response.json() == {"error": "The database is unavailable; try again later."}
    monkeypatch.undo()
    assert stored_poll_rows(mdb) == []


def test_a_failure_after_some_days_were_written_is_repaired_by_posting_again(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = storage.append_delta  # a small batch stores a delta per day

    def fails_on_one_day(db: Database, day: str, *args: object, **kwargs: object) -> int:
        if day == "2024-10-04":
            raise AutoReconnect("connection lost")
        return real(db, day, *args, **kwargs)

    monkeypatch.setattr(storage, "append_delta", fails_on_one_day)
    assert post(api).status_code == 503
    monkeypatch.undo()
    # The failed day is untouched; other days either landed whole or were not started (a day's delta
    # is one insert), so what is there is a subset of the batch without 2024-10-04.
    expected = [
        ("s1", "active", "2024-10-03T10:00:00+00:00"),
        ("s1", "inactive", "2024-10-04T10:00:00+00:00"),
        ("s2", "active", "2024-10-05T10:00:00+00:00"),
    ]
    landed = stored_poll_rows(mdb)
    assert set(landed) <= set(expected) and expected[1] not in landed

    again = post(api)
    assert again.status_code == 201
    assert again.json()["inserted"] == 3 - len(landed) and again.json()["duplicates"] == len(landed)
    assert stored_poll_rows(mdb) == expected
    assert storage.newest_poll_time(mdb).isoformat() == "2024-10-05T10:00:00+00:00"
