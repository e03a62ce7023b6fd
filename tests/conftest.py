"""Shared fixtures: an in-process MongoDB (mongomock), the embedded worker and the API client.

Only tests that ask for ``mdb`` (or ``api``/``loaded``) touch the store; each gets a
fresh database, and background reports are drained before settings revert. Fixtures
used by more than one test module live here, so no test module imports another.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pymongo.database import Database

from loop import storage
from loop.embedded_worker import wait_embedded_idle
from tests.support.api import FULL, READ
from tests.support.query_spy import spy_queries
from tests.support.worked_example import load_example

if TYPE_CHECKING:
    from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def no_accounts_cache(settings) -> None:
    """Unit tests roll Django's database back between tests, which no cache hears of: keep nothing
    (loop/accounts/cache.py is proven against real processes in tests/integration/test_accounts_cache_http.py)."""
    settings.ACCOUNTS_CACHE_SECONDS = 0


@pytest.fixture
def mdb(settings) -> Iterator[Database]:
    settings.MONGO_URL = "mongomock://"
    settings.MONGO_DB = f"test_{uuid.uuid4().hex[:12]}"
    settings.CELERY_BROKER_URL = "memory://"
    settings.REPORT_TASK_RETRY_BACKOFF = 0
    settings.REPORT_TASK_MAX_RETRIES = 2
    db = storage.get_db()
    yield db
    assert wait_embedded_idle(timeout=60), "embedded reports still running after the test"
    storage.drop_database(db)


@pytest.fixture
def api(mdb: Database, db: None) -> APIClient:
    """The API client; with Django's database, where every write appends its audit entry (loop.audit)."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def loaded(api: APIClient, mdb: Database, tmp_path: Path) -> APIClient:
    """The API client with the worked example (tests/support/worked_example.py) loaded."""
    load_example(mdb, tmp_path)
    return api


@pytest.fixture
def tokens(settings) -> None:
    """The API asks for credentials (AUTH_REQUIRED): FULL may do everything, READ may only read."""
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN = FULL
    settings.API_READ_TOKEN = READ


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every filter (or pipeline) that reaches a mongomock collection during the test."""
    yield from spy_queries(monkeypatch)
