"""Shared fixtures: an in-process MongoDB (mongomock) and the embedded worker.

Only tests that ask for ``mdb`` (or ``api``) touch the store; each gets a
fresh database, and background reports are drained before settings revert.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pymongo.database import Database

from loop import storage
from loop.embedded_worker import wait_embedded_idle


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
def api(mdb: Database):
    from rest_framework.test import APIClient

    return APIClient()
