"""Swagger UI at /api/docs/ in headless Chromium: drawn from the app's own files, nothing from elsewhere.

The app runs under gunicorn with DEBUG=0 (static files from WhiteNoise), as in production; the page
needs no data, so the store and broker are the in-memory ones of `make run` (no servers).
The operations expected are read from the schema here, not from the page.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.processes import Web, start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def docs_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    logs: Path = tmp_path_factory.mktemp("api-docs-logs")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "API_READ_TOKEN")},
        "DEBUG": "0",
        "SECRET_KEY": "api-docs-browser-test-key-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "MONGO_URL": "mongomock://",
        "CELERY_BROKER_URL": "memory://",
        "SQLITE_PATH": str(logs / "db.sqlite3"),
    }
    web = start_gunicorn(env, 1, logs / "web.log")
    try:
        web.wait_healthy()
        yield web
    finally:
        web.stop()


def schema_operations(base_url: str) -> set[tuple[str, str]]:
    schema = requests.get(f"{base_url}/api/schema/", headers={"Accept": "application/json"}, timeout=30).json()
    methods = {"get", "post", "put", "patch", "delete"}
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item if method in methods}


def test_swagger_ui_draws_every_operation_from_the_apps_own_files(docs_web: Web, new_page: Callable[..., Any]) -> None:
    expected = schema_operations(docs_web.url)
    assert ("POST", "/trigger_report/") in expected and len(expected) >= 15

    page = new_page()
    response = page.goto(f"{docs_web.url}/api/docs/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector('.opblock-summary-path[data-path="/trigger_report/"]', timeout=30_000)
    drawn = {
        tuple(operation)
        for operation in page.eval_on_selector_all(
            ".opblock",
            "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.trim(),"
            " b.querySelector('.opblock-summary-path').getAttribute('data-path')])",
        )
    }
    assert drawn == expected

    assert page.seen.foreign(docs_web.url) == []
    assert page.seen.errors == []
    assert page.seen.failed == []
