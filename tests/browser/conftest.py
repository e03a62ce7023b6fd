"""The dashboard in a real headless browser, against the real stack.

The app runs under gunicorn with DEBUG=0 (static files from WhiteNoise) and a real Celery worker,
on Redis and the MongoDB-wire server, with a database and queue of its own and a small generated
data set loaded by ``load_data``. Two more gunicorns share it: one behind API_TOKEN, and one whose
MongoDB is away. Helpers are in tests/support/browser.py.

A missing browser, Playwright or server skips these tests locally and fails them when CI is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from tests.support.browser import (
    API_TOKEN,
    DESKTOP,
    REPORT_PAUSE_S,
    BrowserStack,
    build_dataset,
    chromium_problem,
    launch_args,
    page_stack_env,
    wait_answering,
    watch,
)
from tests.support.integration import (
    MONGO_URL,
    Stack,
    delete_queues,
    skip_or_fail,
)
from tests.support.processes import Web, start_celery_worker, start_gunicorn


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session."""
    problem = chromium_problem()
    if problem:
        skip_or_fail(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_args())
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserStack]:
    made_env = page_stack_env(tmp_path_factory, "browser", TRIGGER_RATE_LIMIT="")
    env, db_name, queue, logs = made_env.env, made_env.db_name, made_env.queue, made_env.logs
    dataset = build_dataset(tmp_path_factory.mktemp("browser-data"))
    worker = start_celery_worker(env, None, 1, logs / "worker.log", report_delay_s=REPORT_PAUSE_S)
    web = start_gunicorn(env, 2, logs / "web.log")
    token_web = start_gunicorn({**env, "API_TOKEN": API_TOKEN}, 1, logs / "web-token.log")
    down_env = {**env, "MONGO_URL": "mongodb://127.0.0.1:9/?directConnection=true", "MONGO_TIMEOUT_MS": "300"}
    down_web = start_gunicorn(down_env, 1, logs / "web-down.log")
    webs: list[Web] = [web, token_web, down_web]
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    stack = Stack(web.url, env, mongo, db_name, logs)
    try:
        web.wait_healthy()
        token_web.wait_healthy()
        wait_answering(down_web.url)
        loaded = stack.manage("load_data", str(dataset.folder))
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        worker.wait_ready()
        yield BrowserStack(stack, dataset, token_web.url, down_web.url)
    finally:
        for each in webs:
            each.stop()
        worker.shutdown()
        mongo.drop_database(db_name)
        mongo.close()
        delete_queues(queue)


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    """Makes pages in fresh contexts (own sessionStorage); each has ``page.seen``, a PageWatch."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Any:
        context = chromium.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.seen = watch(page)
        return page

    yield make
    for context in contexts:
        context.close()
