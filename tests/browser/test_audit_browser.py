"""The audit log page in headless Chromium: an admin signed in sees the entries of a few writes, newest first, and
filters them by actor and action; a viewer signed in gets the API's refusal and no entry; API_TOKEN given on the
sign-in page sees them too. A stack of its own: one gunicorn (DEBUG=0, API_TOKEN set so AUTH_REQUIRED is on, the
embedded worker) on a MongoDB database and a migrated SQLite file of its own, with two accounts made by
``create_account`` (which the log records under ``manage.py``), so the log holds exactly the writes made here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from pymongo import MongoClient

from tests.support.browser import API_TOKEN, TOKEN_AUTH, page_stack_env, sign_in_to, wait_ready
from tests.support.integration import MONGO_URL
from tests.support.processes import run_manage, start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.accounts]

AUTH = TOKEN_AUTH
PASSWORD = "audit page lantern harbour 58"
# What the admin sees, newest first: (actor, action, target, from, request id).
ENTRIES = [
    ("token:API_TOKEN", "hours.update", "s2", "127.0.0.1", "page-2"),
    ("token:API_TOKEN", "zone.update", "s1", "127.0.0.1", "page-1"),
    ("token:API_TOKEN", "hours.update", "s1", "127.0.0.1", "page-0"),
    ("manage.py", "user.create", "vera", "", ""),
    ("manage.py", "user.create", "ada", "", ""),
]
VIEWER_REFUSED = (
    "Loading the audit log: This account (vera) may not administer (keys of others, channels, deletions); "
    "it may only read."
)


@pytest.fixture(scope="module")
def audit_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    made_env = page_stack_env(tmp_path_factory, "audit_browser", CELERY_BROKER_URL="memory://", API_TOKEN=API_TOKEN)
    env, db_name, logs = made_env.env, made_env.db_name, made_env.logs
    migrated = run_manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    for name, role in (("ada", "admin"), ("vera", "viewer")):
        made = run_manage(
            {**env, "AUDIT_PW": PASSWORD}, "create_account", name, "--role", role, "--password-from-env", "AUDIT_PW"
        )
        assert made.returncode == 0, made.stderr
    web = start_gunicorn(env, 1, logs / "web.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    try:
        web.wait_healthy()
        writes = [
            (
                "PUT",
                "/stores/s1/business_hours/",
                [{"dayOfWeek": 0, "start_time_local": "09:00", "end_time_local": "17:00"}],
            ),
            ("PUT", "/stores/s1/timezone/", {"timezone_str": "UTC"}),
            ("PUT", "/stores/s2/business_hours/", []),
        ]
        for n, (method, path, body) in enumerate(writes):
            headers = {**AUTH, "X-Request-ID": f"page-{n}"}
            response = requests.request(method, f"{web.url}{path}", json=body, headers=headers, timeout=30)
            assert response.status_code == 200, response.text
        yield web.url
    finally:
        web.stop()
        mongo.drop_database(db_name)
        mongo.close()


def sign_in(page: Any, base: str, username: str) -> None:
    sign_in_to(page, base, "/dashboard/audit/", username, PASSWORD)


def rows(page: Any) -> list[list[str]]:
    found = page.locator("#audit-table tbody tr")
    return [[c.strip() for c in found.nth(i).locator("th, td").all_inner_texts()] for i in range(found.count())]


def assert_lists_the_entries(page: Any) -> None:
    # The sign-ins of these tests are entries too (session.login, newest first): the writes are the others.
    listed = [r for r in rows(page) if not r[2].startswith("session.")]
    assert [(r[1], r[2], r[3], r[5], r[6]) for r in listed] == ENTRIES
    assert listed[1][4] == (
        '{"before":{"timezone_str":"America/Chicago","is_default":true},'
        '"after":{"timezone_str":"UTC","is_default":false}}'
    )
    # The account's entry: its role and flags, whether it has a password, never the password.
    assert '"role":"viewer"' in listed[3][4] and '"password":"set"' in listed[3][4] and PASSWORD not in listed[3][4]
    assert listed[0][0].endswith(" UTC")
    assert page.locator("#next-page").is_disabled() and page.locator("#prev-page").is_disabled()


def filter_by(page: Any, *, actor: str = "", action: str = "") -> None:
    before = page.locator("#audit-table tbody tr").first.element_handle()
    page.get_by_label("Actor").fill(actor)
    page.get_by_label("Action").fill(action)
    page.get_by_role("button", name="Filter").click()
    # The filtered page replaces the rows (the page's policy refuses evaluated scripts: locators wait instead).
    before.wait_for_element_state("hidden")


def test_the_audit_page_lists_and_filters_the_writes(audit_live: str, new_page: Callable[..., Any]) -> None:
    page = new_page()
    sign_in(page, audit_live, "ada")
    assert page.locator("#who-name").inner_text() == "Signed in as ada (admin)"
    assert_lists_the_entries(page)
    # Signing in was recorded too, under ada, from the browser's address, with the sign-in request's id.
    newest = rows(page)[0]
    assert (newest[1], newest[2], newest[3], newest[5]) == ("ada", "session.login", "ada", "127.0.0.1")
    assert newest[6]

    filter_by(page, action="zone.")
    assert [r[6] for r in rows(page)] == ["page-1"]
    filter_by(page, actor="manage.py")
    assert [(r[1], r[2], r[3]) for r in rows(page)] == [("manage.py", "user.create", t) for t in ("vera", "ada")]
    filter_by(page, actor="manage.py", action="hours.")
    assert rows(page) == [["No entry."]]
    filter_by(page, actor="token:API_TOKEN", action="hours.")
    assert [r[6] for r in rows(page)] == ["page-2", "page-0"]
    assert page.seen.failed == [] and page.seen.errors == []


def test_a_viewer_gets_the_apis_refusal_and_no_entry(audit_live: str, new_page: Callable[..., Any]) -> None:
    page = new_page()
    sign_in(page, audit_live, "vera")
    assert page.locator("#messages").inner_text().strip() == VIEWER_REFUSED
    assert page.locator("#audit-table tbody tr").count() == 0
    # The refusal is the API's (403), not only the page's choice.
    assert page.seen.failed == [f"403 {audit_live}/audit/?limit=50"]


def test_the_token_given_on_the_sign_in_page_sees_the_log(audit_live: str, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(f"{audit_live}/dashboard/audit/")
    page.get_by_label("API key or token").fill(API_TOKEN)
    page.get_by_role("button", name="Use token").click()
    page.wait_for_url(f"{audit_live}/dashboard/audit/")
    wait_ready(page)
    assert_lists_the_entries(page)
    assert page.seen.failed == []
