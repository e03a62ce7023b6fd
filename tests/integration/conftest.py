"""The real stack for the integration tests.

Needs Redis and a MongoDB-wire server (``make services`` starts both on
127.0.0.1:6379 and 127.0.0.1:27017; override with IT_BROKER_URL / IT_MONGO_URL).
Starts real ``celery -A myproject worker`` processes (reports and imports in one,
notifications and maintenance in another) and the app under gunicorn on a free
port, each in a subprocess, against a database and queues of their own
(so a developer's running worker never takes these tasks). Unreachable servers
skip the tests, or fail them when CI is set. The helpers behind these fixtures
are in tests/support/integration.py and tests/support/processes.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from tests.support.integration import (
    HOW_TO_START,
    MONGO_URL,
    Dataset,
    Stack,
    build_dataset,
    delete_queues,
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
    # Workers by kind, as `make worker` starts them (scripts/worker.sh), one process each: reports and imports
    # in one (its log is Stack.worker_log's), alert work and maintenance in the other, so a test's delivery
    # never waits behind another test's report.
    jobs = start_celery_worker(env, f"jobs-{run_id}", 1, logs / "worker.log", {"WORKER_QUEUES": "reports,imports"})
    rest = start_celery_worker(
        env, f"rest-{run_id}", 1, logs / "worker-rest.log", {"WORKER_QUEUES": "notifications,maintenance"}
    )
    web = start_gunicorn(env, 2, logs / "web.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    stack = Stack(web.url, env, mongo, db_name, logs)
    try:
        web.wait_healthy()
        yield stack
    finally:
        web.stop()
        jobs.shutdown()
        rest.shutdown()
        mongo.drop_database(db_name)
        mongo.close()
        delete_queues(queue)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("data"))
