"""The audit log page in headless Chromium: the entries of a few writes, newest first, and the actor and action
filters. A stack of its own: one gunicorn (DEBUG=0, API_TOKEN set, the embedded worker) on a MongoDB database and a
migrated SQLite file of its own, so the log holds exactly the writes made here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from pymongo import MongoClient

from tests.support.browser import API_TOKEN, wait_ready
from tests.support.integration import HOW_TO_START, MONGO_URL, service_env, skip_or_fail, unreachable
from tests.support.processes import run_manage, start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser]

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="module")
def audit_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problem = unreachable()
    if problem:
        skip_or_fail(f"integration servers not reachable ({problem}): {HOW_TO_START}")
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("audit-browser-logs")
    db_name = f"loop_audit_browser_{run_id}"
    without_tokens = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "API_READ_TOKEN")}
    env = {
        **service_env(without_tokens, db_name=db_name, queue=f"unused_{run_id}", secret=f"audit-{run_id}", logs=logs),
        "CELERY_BROKER_URL": "memory://",
        "API_TOKEN": API_TOKEN,
    }
    migrated = run_manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
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


def rows(page: Any) -> list[list[str]]:
    found = page.locator("#audit-table tbody tr")
    return [[c.strip() for c in found.nth(i).locator("th, td").all_inner_texts()] for i in range(found.count())]


def test_the_audit_page_lists_and_filters_the_writes(audit_live: str, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(f"{audit_live}/dashboard/audit/")
    page.get_by_role("textbox", name="Token").fill(API_TOKEN)
    page.get_by_role("button", name="Use token").click()
    wait_ready(page)
    listed = rows(page)
    assert [(r[1], r[2], r[3], r[5], r[6]) for r in listed] == [
        ("token:API_TOKEN", "hours.update", "s2", "127.0.0.1", "page-2"),
        ("token:API_TOKEN", "zone.update", "s1", "127.0.0.1", "page-1"),
        ("token:API_TOKEN", "hours.update", "s1", "127.0.0.1", "page-0"),
    ]
    assert listed[1][4] == (
        '{"before":{"timezone_str":"America/Chicago","is_default":true},'
        '"after":{"timezone_str":"UTC","is_default":false}}'
    )
    assert listed[0][0].endswith(" UTC")
    assert page.locator("#next-page").is_disabled() and page.locator("#prev-page").is_disabled()

    page.get_by_label("Action").fill("zone.")
    page.get_by_role("button", name="Filter").click()
    # The filtered page replaces the rows (the page's policy refuses evaluated scripts: locators wait instead).
    page.locator("#audit-table tbody tr").nth(1).wait_for(state="detached")
    assert rows(page)[0][6] == "page-1"

    page.get_by_label("Action").fill("")
    page.get_by_label("Actor").fill("maria")
    page.get_by_role("button", name="Filter").click()
    page.locator("#audit-table tbody td", has_text="No entry.").wait_for()
    # Only the first call, before the token was given, was refused.
    assert page.seen.failed == [f"401 {audit_live}/audit/?limit=50"]
    assert [e for e in page.seen.errors if "401" not in e] == []
