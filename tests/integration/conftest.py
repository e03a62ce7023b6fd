"""The real stack for the integration tests.

Needs Redis and a MongoDB-wire server (``make services`` starts both on
127.0.0.1:6379 and 127.0.0.1:27017; override with IT_BROKER_URL / IT_MONGO_URL).
Starts a real ``celery -A myproject worker`` and the app under gunicorn on a
free port, each in a subprocess, against a database and a queue of its own
(so a developer's running worker never takes these tasks). Unreachable servers
skip the tests, or fail them when CI is set. The helpers behind these fixtures
are in tests/support/integration.py and tests/support/processes.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from pymongo import MongoClient

from tests.support.integration import (
    BROKER_URL,
    HOW_TO_START,
    MONGO_URL,
    Dataset,
    Stack,
    build_dataset,
    service_env,
    skip_or_fail,
    unreachable,
)
from tests.support.processes import run_manage, start_celery_worker, start_gunicorn


@pytest.fixture(scope="session")
def servers() -> None:
    problem = unreachable()
    if problem:
        skip_or_fail(f"integration servers not reachable ({problem}): {HOW_TO_START}")


@pytest.fixture(scope="session")
def stack(servers: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("stack-logs")
    db_name = f"loop_it_{run_id}"
    queue = f"loop_it_{run_id}"
    # Production-like: DEBUG off, so a SECRET_KEY is required.
    env = service_env(os.environ, db_name=db_name, queue=queue, secret=f"integration-{run_id}", logs=logs)
    # Django's own tables (the audit log) in the stack's SQLite file (SQLITE_PATH), before anything serves.
    migrated = run_manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr + migrated.stdout
    worker = start_celery_worker(env, None, 1, logs / "worker.log")
    web = start_gunicorn(env, 2, logs / "web.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    stack = Stack(web.url, env, mongo, db_name, logs)
    try:
        web.wait_healthy()
        yield stack
    finally:
        web.stop()
        worker.shutdown()
        mongo.drop_database(db_name)
        mongo.close()
        redis.Redis.from_url(BROKER_URL).delete(queue)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("data"))
