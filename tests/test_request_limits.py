"""Bodies of any size get the documented 413, and the API and the offline command accept the same ``now``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.ingest import load_sources
from tests.support.csv_files import write_dataset

POLLS = ["s1,active,2024-10-08 11:00:00 UTC", "s1,inactive,2024-10-08 12:00:00 UTC"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "csv", POLLS, ["s1,1,09:00,17:00"], ["s1,America/Chicago"])


@pytest.fixture
def client(api: APIClient, mdb: Database, data_dir: Path) -> APIClient:
    load_sources(data_dir, mdb)
    return api


@pytest.mark.parametrize(
    "size",
    [
        4097,  # one byte over API_MAX_BODY_BYTES: our parser refuses it
        64 * 1024 + 1,  # over Django's DATA_UPLOAD_MAX_MEMORY_SIZE: Django refuses it before our parser
        3 * 1024 * 1024,
    ],
)
def test_a_body_over_the_limit_is_413_json_whatever_its_size(client: APIClient, mdb: Database, size: int) -> None:
    prefix = b'{"now": "'
    body = prefix + b"x" * (size - len(prefix) - 2) + b'"}'
    assert len(body) == size
    response = client.generic("POST", "/trigger_report/", body, content_type="application/json")
    assert response.status_code == 413, response.content[:200]
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Request body is larger than 4096 bytes."}
    assert mdb[storage.REPORTS].count_documents({}) == 0


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("2024-10-08T10:00:00Z", True),
        ("2024-10-08 10:00:00.123456 UTC", True),  # Loop's own format
        ("2024-10-08T12:00:00+02:00", True),
        ("2024-10-08", True),  # midnight UTC
        ("  2024-10-08T10:00:00  ", True),
        ("08/10/2024 10:00", False),
        ("2024-10-08T10:00:00 EST", False),
        ("yesterday", False),
        ("1600-01-01T00:00:00Z", False),  # outside the range the engine can count in
        ("2024-13-01T00:00:00Z", False),
    ],
)
def test_the_api_and_the_offline_command_accept_the_same_now(
    client: APIClient, data_dir: Path, tmp_path: Path, text: str, accepted: bool
) -> None:
    response = client.post("/trigger_report/", {"now": text}, format="json")
    assert response.status_code == (202 if accepted else 400), response.content[:300]
    out = tmp_path / "report.csv"
    args = ["generate_report", "--csv-dir", str(data_dir), "--now", text, "--output", str(out)]
    if accepted:
        call_command(*args)
        assert out.read_text().startswith("store_id,")
    else:
        with pytest.raises(CommandError) as refused:
            call_command(*args)
        assert refused.value.returncode == 2
        assert response.json()["fields"]["now"][0] in str(refused.value)
