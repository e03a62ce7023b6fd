"""The accounts database of the app as deployed (gunicorn, DEBUG=0): the live servers get Django's tables
before they serve, and a gunicorn whose database cannot be opened still answers, as docs/failures.md says.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from tests.support.integration import Stack
from tests.support.polling import wait_until
from tests.support.processes import start_gunicorn

pytestmark = pytest.mark.integration

TOKEN = "accounts-db-static-token-0123456789"


def test_the_live_server_serves_with_a_migrated_accounts_database(stack: Stack) -> None:
    with sqlite3.connect(stack.env["SQLITE_PATH"]) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"auth_user", "auth_group", "django_session", "django_migrations"} <= tables
    health = requests.get(f"{stack.base_url}/health/", timeout=10)
    assert health.status_code == 200 and health.json()["accounts"] == "ok"


def test_a_gunicorn_whose_accounts_database_cannot_be_opened_keeps_static_token_reads(
    stack: Stack, tmp_path: Path
) -> None:
    env = {**stack.env, "SQLITE_PATH": str(tmp_path / "no-such-folder" / "db.sqlite3"), "API_TOKEN": TOKEN}
    web = start_gunicorn(env, 1, tmp_path / "web-accounts-down.log", migrate=False)

    def answers() -> bool:
        try:
            requests.get(f"{web.url}/health/", timeout=5)
            return True
        except requests.RequestException:  # not listening yet, or slow first answers on a busy machine
            return False

    try:
        wait_until(answers, 60, "gunicorn answering", alive=web.proc, details=lambda: web.log.read_text()[-3000:])
        health = requests.get(f"{web.url}/health/", timeout=10)
        assert health.status_code == 503
        assert health.json() == {
            "status": "unavailable",
            "mongo": "ok",
            "broker": "ok",
            "accounts": "error: OperationalError",
        }
        read = requests.get(f"{web.url}/overview/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert read.status_code == 200, read.text
        assert read.headers["Content-Type"] == "application/json"
    finally:
        web.stop()
