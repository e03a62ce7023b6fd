"""The accounts cache (loop/accounts/cache.py) over real HTTP: gunicorn (2 processes x 8 threads), Redis,
and a SQLite accounts database of the module's own.

Each web process keeps the keys, sessions and users its requests read. What must hold: a change made
anywhere (another web process, a management command, a shell) is seen by every process on the next
request; a change that bypasses Django (raw SQL, which nothing in the project does) is seen at once when
any announced change comes after it (and after ``ACCOUNTS_CACHE_SECONDS`` at the latest: test_accounts_cache.py).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.integration import Stack, private_app
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

TOKEN = "it-accounts-cache-token-5d4c3b2a"
PASSWORD = "a-long-test-password-for-cache-41"
# Enough requests that both gunicorn processes answer some (each request is a new connection, which
# either process may accept).
ROUNDS = 12
# Warming up: enough that both processes have surely read the key (and kept it).
WARM_ROUNDS = 60


@dataclass
class App:
    base_url: str
    env: dict[str, str]
    sqlite: str

    def manage(self, *args: str, **env: str) -> str:
        done = run_manage({**self.env, **env}, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip()

    def key(self, owner: str, scope: str) -> str:
        return self.manage("create_key", owner, "--name", f"cache {scope}", "--scope", scope)

    def statuses(self, path: str, credential: str, rounds: int = ROUNDS) -> set[int]:
        headers = {"Authorization": f"Bearer {credential}"}
        return {requests.get(f"{self.base_url}{path}", headers=headers, timeout=30).status_code for _ in range(rounds)}

    def raw_sql(self, sql: str, *params: Any) -> None:
        """A change behind Django's back: no signal, no announcement."""
        with sqlite3.connect(self.sqlite) as connection:
            connection.execute(sql, params)


def _start(stack: Stack, tmp_path_factory: pytest.TempPathFactory, name: str, **extra: str) -> Iterator[App]:
    sqlite = str(Path(tmp_path_factory.mktemp(name)) / "accounts.sqlite3")
    settings = {"SQLITE_PATH": sqlite, "DATABASE_URL": "", "AUTH_REQUIRED": "1", "API_TOKEN": TOKEN, **extra}
    migrated = run_manage({**stack.env, **settings}, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    with private_app(stack, name, **settings) as (url, env):
        app = App(url, env, sqlite)
        for username, role in (("vera", "viewer"), ("otto", "operator"), ("ada", "admin")):
            app.manage("create_account", username, "--role", role, "--password-from-env", "PW", PW=PASSWORD)
        yield app


@pytest.fixture(scope="module")
def app(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    # A long entry life: only the announcements can make these tests pass.
    yield from _start(stack, tmp_path_factory, "acache", ACCOUNTS_CACHE_SECONDS="3600")


def _signed_in(app: App, username: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{app.base_url}/accounts/login/", timeout=30)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert found, form.text[:300]
    body = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": found.group(1), "next": "/"}
    assert (
        session.post(f"{app.base_url}/accounts/login/", data=body, allow_redirects=False, timeout=30).status_code == 302
    )
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def test_keys_are_served_from_the_cache_until_an_announced_change(app: App) -> None:
    key, other = app.key("vera", "read"), app.key("vera", "read")
    assert app.statuses("/reports/", key, WARM_ROUNDS) == {200}  # read once by each process: kept
    # Revoked behind Django's back: both processes still know the key as it was (it is cached) ...
    app.raw_sql("UPDATE accounts_apikey SET revoked_at = '2020-01-01 00:00:00' WHERE prefix = ?", key[:12])
    assert app.statuses("/reports/", key) == {200}
    # ... until any change is announced (a revocation of another key, by a management shell: a third process).
    app.manage(
        "shell",
        "-c",
        f"from loop.accounts.models import ApiKey; k = ApiKey.objects.get(prefix='{other[:12]}'); "
        "k.name = 'renamed'; k.save()",
    )
    assert app.statuses("/reports/", key) == {401}


def test_a_key_revoked_over_http_is_refused_by_every_process_at_once(app: App) -> None:
    admin, key = app.key("ada", "admin"), app.key("vera", "read")
    assert app.statuses("/reports/", key) == {200}
    key_id = next(
        item["key_id"]
        for item in requests.get(
            f"{app.base_url}/keys/", headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ).json()["results"]
        if item["prefix"] == key[:12]
    )
    revoked = requests.delete(
        f"{app.base_url}/keys/{key_id}/", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    )
    assert revoked.status_code == 204
    assert app.statuses("/reports/", key) == {401}


def test_a_role_change_and_a_deactivation_from_another_process_count_at_the_next_request(app: App) -> None:
    key = app.key("otto", "operate")
    hours = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    body = "[]"  # open 24x7
    url = f"{app.base_url}/stores/cache-store/business_hours/"
    assert {requests.put(url, data=body, headers=hours, timeout=30).status_code for _ in range(ROUNDS)} == {200}
    app.manage("create_account", "otto", "--role", "viewer")  # demoted: the key may now only read
    assert {requests.put(url, data=body, headers=hours, timeout=30).status_code for _ in range(ROUNDS)} == {403}
    assert app.statuses("/reports/", key) == {200}
    app.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; u = User.objects.get(username='otto'); "
        "u.is_active = False; u.save()",
    )
    assert app.statuses("/reports/", key) == {401}


def test_signing_out_ends_the_session_in_every_process(app: App) -> None:
    session = _signed_in(app, "vera")
    assert {session.get(f"{app.base_url}/me/", timeout=30).status_code for _ in range(ROUNDS)} == {200}
    cookie = session.cookies["sessionid"]
    assert session.post(f"{app.base_url}/accounts/logout/", allow_redirects=False, timeout=30).status_code == 302
    stale = requests.Session()
    stale.cookies.set("sessionid", cookie)
    assert {stale.get(f"{app.base_url}/me/", timeout=30).status_code for _ in range(ROUNDS)} == {401}


def test_a_sessions_user_changed_elsewhere_counts_at_the_next_request(app: App) -> None:
    session = _signed_in(app, "ada")
    assert {session.get(f"{app.base_url}/audit/", timeout=30).status_code for _ in range(ROUNDS)} == {200}
    app.manage("create_account", "ada", "--role", "operator")
    assert {session.get(f"{app.base_url}/audit/", timeout=30).status_code for _ in range(ROUNDS)} == {403}
