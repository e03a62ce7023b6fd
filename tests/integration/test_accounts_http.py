"""Users and API keys over real HTTP: gunicorn (2 worker processes, DEBUG=0), a Celery worker, Redis and a
MongoDB-wire server, with the accounts in a SQLite file of the module's own (migrated first).

Accounts and keys are made by the commands an operator runs; the keys then do one job each, and a key
revoked through one worker process is refused by every one of them at once (each process's accounts cache is
emptied by the revocation: loop/accounts/cache.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.integration import Stack, private_app
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

TOKEN = "it-accounts-token-7c6b5a4d3e"
POLLS = "store_id,status,timestamp_utc\nk1,active,2024-10-14 10:00:00 UTC\nk1,inactive,2024-10-14 11:00:00 UTC\n"


@dataclass
class Accounts:
    base_url: str
    env: dict[str, str]

    def key(self, owner: str, scope: str) -> str:
        proc = run_manage(self.env, "create_key", owner, "--name", f"{scope} key", "--scope", scope)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def call(self, method: str, path: str, credential: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        headers.update(kwargs.pop("headers", {}))
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def accounts(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    # The accounts database: a SQLite file of this module, migrated before the server starts.
    sqlite = str(Path(tmp_path_factory.mktemp("accounts")) / "accounts.sqlite3")
    settings = {"SQLITE_PATH": sqlite, "DATABASE_URL": "", "AUTH_REQUIRED": "1", "API_TOKEN": TOKEN}
    migrated = run_manage({**stack.env, **settings}, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    with private_app(stack, "accounts", **settings) as (url, env):
        for name, role in (("poller", "operator"), ("vera", "viewer"), ("ada", "admin")):
            made = run_manage(env, "create_account", name, "--role", role, "--no-password")
            assert made.returncode == 0, made.stderr
        yield Accounts(url, env)


def test_each_key_does_its_one_job_over_http(accounts: Accounts) -> None:
    ingest, read = accounts.key("poller", "ingest"), accounts.key("vera", "read")
    csv = {"Content-Type": "text/csv"}
    posted = accounts.call("POST", "/store_status/", ingest, data=POLLS, headers=csv)
    assert posted.status_code == 201, posted.text
    assert posted.json()["inserted"] == 2
    refused = accounts.call("GET", "/stores/", ingest)
    assert refused.status_code == 403 and "may only ingest" in refused.json()["error"]
    assert accounts.call("GET", "/stores/k1/", read).status_code == 200
    assert accounts.call("POST", "/store_status/", read, data=POLLS, headers=csv).status_code == 403
    me = accounts.call("GET", "/me/", ingest).json()
    assert (me["kind"], me["scope"], me["capabilities"]) == ("key", "ingest", ["ingest"])
    # The static token still works beside the keys, and the keys list shows when each was used.
    listed = accounts.call("GET", "/keys/", TOKEN).json()["results"]
    used = {item["scope"]: item["last_used_at"] for item in listed}
    assert used["ingest"] is not None and used["read"] is not None


def test_a_revoked_key_is_refused_by_every_worker_process_at_once(accounts: Accounts) -> None:
    admin = accounts.key("ada", "admin")
    created = accounts.call("POST", "/keys/", admin, json={"name": "laptop", "scope": "read", "owner": "vera"})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert all(accounts.call("GET", "/reports/", key).status_code == 200 for _ in range(6))
    assert accounts.call("DELETE", f"/keys/{key_id}/", admin).status_code == 204
    answers = [accounts.call("GET", "/reports/", key) for _ in range(8)]  # both gunicorn processes
    assert {answer.status_code for answer in answers} == {401}
    assert all(answer.json()["error"].endswith("was revoked.") for answer in answers)
    assert accounts.call("GET", "/reports/").status_code == 401
    assert accounts.call("GET", "/health/").status_code == 200
