"""The alert pages in headless Chromium: Down now (with an ack from the page), the stores' state now on the
worst-stores page (no data, never down), the store page's state in words, and channels.

A stack of their own: one gunicorn (DEBUG=0, API_TOKEN set, the embedded worker: evaluations and reports
run in its process) on a database of its own, fed hand-made polls through POST /store_status/, so every
expected value below is worked by hand. Stores have no hours (open 24x7) and no zone row (America/Chicago,
CDT = UTC-5 in October); an outage starts halfway between the last active and the first inactive poll;
G = 60 min, D = 30 min. Evaluated at 12:00 UTC (the last batch):

- silent-2: active 10:00, inactive 10:20 and 10:40; opens at 10:40 from 10:10; no poll after 10:40, so at
  12:00 its latest poll is 80 min old: no data (its alert stays open: 110 min).
- down-1 ("Pizza Place #7", Midwest): active 10:00, inactive 10:40 to 12:00; opens at 11:00 from 10:20: 100 min.
- down-2: active 10:00 to 11:00, inactive 11:30 and 12:00; opens at 12:00 from 11:15: 45 min.
- resolved-1: active 10:00, inactive 10:40 and 11:00 (opens from 10:20), active 11:30: resolved at 11:30,
  ended 11:15, 55 min.
- up-1: active every batch; silent-1: active 10:00 only (no data at 12:00, 120 min, never alerted).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from pymongo import MongoClient

from tests.support.browser import API_TOKEN, screenshot, wait_ready
from tests.support.integration import HOW_TO_START, MONGO_URL, service_env, skip_or_fail, unreachable
from tests.support.processes import start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DAY = "2024-10-14"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ON, OFF = "active", "inactive"  # a poll's status
BATCHES = [
    ("10:00", {"silent-2": ON, "down-1": ON, "down-2": ON, "resolved-1": ON, "up-1": ON, "silent-1": ON}),
    ("10:20", {"silent-2": OFF}),
    ("10:40", {"silent-2": OFF, "down-1": OFF, "down-2": ON, "resolved-1": OFF, "up-1": ON}),
    ("11:00", {"down-1": OFF, "down-2": ON, "resolved-1": OFF, "up-1": ON}),
    ("11:30", {"down-1": OFF, "down-2": OFF, "resolved-1": ON, "up-1": ON}),
    ("12:00", {"down-1": OFF, "down-2": OFF, "up-1": ON}),
]


class AlertStack:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.base_url}{path}", headers=AUTH, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def send(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.base_url}{path}", json=body, headers=AUTH, timeout=30)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def wait_evaluated(self, hhmm: str, timeout: float = 60) -> None:
        """Each batch gets its own evaluation: wait for it before the next (they would share one)."""
        deadline = time.monotonic() + timeout
        while self.get("/alerts/?page_size=1")["evaluated_at"] != f"{DAY}T{hhmm}:00Z":
            assert time.monotonic() < deadline, f"no evaluation at {hhmm}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def alert_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertStack]:
    problem = unreachable()
    if problem:
        skip_or_fail(f"integration servers not reachable ({problem}): {HOW_TO_START}")
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("alert-browser-logs")
    db_name = f"loop_alert_browser_{run_id}"
    without_tokens = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "API_READ_TOKEN")}
    env = {
        **service_env(without_tokens, db_name=db_name, queue=f"unused_{run_id}", secret=f"alerts-{run_id}", logs=logs),
        "CELERY_BROKER_URL": "memory://",
        "API_TOKEN": API_TOKEN,
    }
    web = start_gunicorn(env, 1, logs / "web.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    try:
        web.wait_healthy()
        stack = AlertStack(web.url)
        for hhmm, polls in BATCHES:
            items = [{"store_id": s, "status": st, "timestamp_utc": f"{DAY} {hhmm}:00 UTC"} for s, st in polls.items()]
            stack.send("POST", "/store_status/", items)
            stack.wait_evaluated(hhmm)
        stack.send("PUT", "/stores/down-1/profile/", {"name": "Pizza Place #7", "region": "Midwest"})
        yield stack
    finally:
        web.stop()
        mongo.drop_database(db_name)
        mongo.close()


def give_token(page: Any) -> None:
    page.get_by_role("textbox", name="Token").fill(API_TOKEN)
    page.get_by_role("button", name="Use token").click()


def cells(row: Any) -> list[str]:
    return [c.strip() for c in row.locator("th, td").all_inner_texts()]


def test_down_now_lists_longest_first_and_acks_from_the_page(
    alert_live: AlertStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(f"{alert_live.base_url}/dashboard/alerts/")
    give_token(page)
    wait_ready(page)
    assert page.locator("nav a").first.inner_text() == "Down now"
    rows = page.locator("#open-table tbody tr")
    assert [r.get_attribute("data-store-id") for r in rows.all()] == ["silent-2", "down-1", "down-2"]
    assert cells(rows.nth(1)) == [
        "Pizza Place #7\ndown-1",
        "Midwest",
        "2024-10-14 05:20 (America/Chicago)",
        "2024-10-14 10:20 UTC",
        "1 h 40 min",
        "Ack",
    ]
    assert cells(rows.nth(0))[4] == "1 h 50 min" and cells(rows.nth(2))[4] == "45 min"
    assert page.locator("#open-title").inner_text() == "Open alerts, longest down first (3, 3 not acknowledged)"
    resolved = page.locator("#resolved-table tbody tr")
    assert resolved.count() == 1
    assert cells(resolved.first) == [
        "resolved-1",
        "–",
        "2024-10-14 05:20",
        "2024-10-14 11:30 UTC",
        "55 min",
        "back up",
        "–",
    ]
    screenshot(page, "alerts")

    page.get_by_label("Acknowledge as").fill("maria")
    page.get_by_label("Acknowledge as").dispatch_event("change")
    page.get_by_role("button", name="Acknowledge the alert of Pizza Place #7").click()
    acked = page.locator("#open-table tr[data-store-id='down-1'] td.acked")
    acked.filter(has_text="maria").wait_for(timeout=10_000)
    assert acked.inner_text().startswith("maria, ")
    assert page.locator("#open-title").inner_text() == "Open alerts, longest down first (3, 2 not acknowledged)"
    # The others still have their button; the API agrees.
    assert page.locator("#open-table button.ack").count() == 2
    listed = {a["store_id"]: a["acknowledged_by"] for a in alert_live.get("/alerts/")["results"]}
    assert listed == {"silent-2": None, "down-1": "maria", "down-2": None}

    # The store page says it in words; the home page counts it.
    page.goto(f"{alert_live.base_url}/dashboard/stores/down-1/")
    wait_ready(page)
    assert page.locator("#store-now").inner_text() == (
        "Down since 05:20 local (2024-10-14 10:20 UTC), 1 h 40 min; acknowledged by maria."
    )
    assert page.locator("#alerts-table tbody tr").count() == 1
    page.goto(f"{alert_live.base_url}/")
    wait_ready(page)
    assert page.locator("#down-now").inner_text() == "3 stores, 2 not acknowledged"
    assert page.seen.foreign(alert_live.base_url) == []


def test_a_store_whose_last_poll_is_old_shows_no_data_not_down(
    alert_live: AlertStack, new_page: Callable[..., Any]
) -> None:
    report = alert_live.send("POST", "/trigger_report/", {"force": True})
    deadline = time.monotonic() + 120
    while alert_live.get(f"/get_report/{report['report_id']}/")["status"] == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    page = new_page()
    page.goto(f"{alert_live.base_url}/dashboard/stores/")
    give_token(page)
    wait_ready(page)

    def now(store_id: str) -> tuple[str, str]:
        row = page.locator(f"#stores-table tbody tr[data-store-id='{store_id}']")
        return row.locator("td").nth(0).inner_text(), row.locator("td").nth(1).inner_text()

    # silent-2 has an open alert, but its latest poll is 80 min old: no data, never down.
    assert now("silent-2") == ("no data", "1 h 20 min")
    assert now("silent-1") == ("no data", "2 h 0 min")
    assert now("down-1") == ("down since 2024-10-14 10:20 UTC", "0 min")
    assert now("up-1") == ("ok", "0 min")
    assert now("resolved-1") == ("ok", "30 min")
    grey = page.locator("#stores-table tbody tr[data-store-id='silent-2']")
    assert grey.get_attribute("class") == "row-no_data"
    assert (
        page.evaluate("getComputedStyle(document.querySelector(\"tr[data-store-id='silent-2'] .state\")).color")
        == "rgb(97, 97, 97)"
    )
    # The down-in-the-last-hour list says the same for every store in it.
    for item in page.locator("#down-list li").all():
        store_id = item.get_attribute("data-store-id")
        assert now(store_id)[0] in item.inner_text(), store_id
    assert "no data" in page.locator("#down-list li[data-store-id='silent-2']").inner_text()
    screenshot(page, "stores-now")

    page.goto(f"{alert_live.base_url}/dashboard/stores/silent-2/")
    wait_ready(page)
    assert page.locator("#store-now").inner_text() == (
        "No data: last poll 2024-10-14 10:40 UTC, 1 h 20 min before the newest poll "
        "(its alert since 05:10 local stays open)."
    )


def test_channels_are_added_tested_and_deleted_from_the_page(
    alert_live: AlertStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{alert_live.base_url}/dashboard/alerting/")
    give_token(page)
    wait_ready(page)
    assert page.locator("#channels-none").is_visible()
    page.get_by_label("Name").fill("ops mail")
    page.get_by_label("URL or e-mail address").fill("ops@example.com")
    page.get_by_label("Events").fill("alert.opened, alert.resolved")
    page.get_by_role("button", name="Add channel").click()
    row = page.locator("#channels-table tbody tr")
    row.first.wait_for()
    assert cells(row.first)[:5] == ["ops mail", "email", "ops@example.com", "alert.opened, alert.resolved", "yes"]
    assert [c["name"] for c in alert_live.get("/channels/")["results"]] == ["ops mail"]

    page.get_by_role("button", name="Send a test message to ops mail").click()
    page.locator("#messages .notice", has_text="Test message to ops mail queued").wait_for()
    # A refused form shows the API's message.
    page.get_by_label("Name").fill("bad")
    page.get_by_label("URL or e-mail address").fill("ops@example.com")
    page.get_by_label("Events").fill("alert.exploded")
    page.get_by_role("button", name="Add channel").click()
    page.locator("#messages .error", has_text="alert.exploded").wait_for()
    screenshot(page, "alerting")

    page.get_by_role("button", name="Delete channel ops mail").click()
    page.locator("#channels-none").wait_for(state="visible")
    assert alert_live.get("/channels/")["count"] == 0
