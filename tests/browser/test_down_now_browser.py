"""The alert pages in headless Chromium: Down now (with an ack from the page), the stores' state now on the
worst-stores page (no data, never down), the store page's state in words, and the channels and maintenance
windows page (add, edit, disable and enable, test, delete).

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

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from tests.support.browser import API_TOKEN, TokenClient, page_stack_env, screenshot, wait_ready
from tests.support.integration import MONGO_URL
from tests.support.processes import start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DAY = "2024-10-14"
ON, OFF = "active", "inactive"  # a poll's status
BATCHES = [
    ("10:00", {"silent-2": ON, "down-1": ON, "down-2": ON, "resolved-1": ON, "up-1": ON, "silent-1": ON}),
    ("10:20", {"silent-2": OFF}),
    ("10:40", {"silent-2": OFF, "down-1": OFF, "down-2": ON, "resolved-1": OFF, "up-1": ON}),
    ("11:00", {"down-1": OFF, "down-2": ON, "resolved-1": OFF, "up-1": ON}),
    ("11:30", {"down-1": OFF, "down-2": OFF, "resolved-1": ON, "up-1": ON}),
    ("12:00", {"down-1": OFF, "down-2": OFF, "up-1": ON}),
]


class AlertStack(TokenClient):
    def wait_evaluated(self, hhmm: str, timeout: float = 60) -> None:
        """Each batch gets its own evaluation: wait for it before the next (they would share one)."""
        deadline = time.monotonic() + timeout
        while self.get("/alerts/?page_size=1")["evaluated_at"] != f"{DAY}T{hhmm}:00Z":
            assert time.monotonic() < deadline, f"no evaluation at {hhmm}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def alert_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertStack]:
    made_env = page_stack_env(tmp_path_factory, "alert_browser", CELERY_BROKER_URL="memory://", API_TOKEN=API_TOKEN)
    env, db_name, logs = made_env.env, made_env.db_name, made_env.logs
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


# A public address needs no DNS here; nothing is sent to it (no event reaches the channel in these tests).
SLACK_URL = "https://93.184.215.14/services/T0/B0/abc"


def page_errors(page: Any) -> list[str]:
    """Script errors only (a refused call's 400 is also a console error, on purpose)."""
    return [e for e in page.seen.errors if e.startswith("page error")]


def test_a_channel_is_edited_disabled_and_enabled_from_the_page(
    alert_live: AlertStack, new_page: Callable[..., Any]
) -> None:
    made = alert_live.send("POST", "/channels/", {"name": "ops slack", "kind": "slack", "url": SLACK_URL})
    path = f"/channels/{made['channel_id']}/"
    page = new_page()
    page.goto(f"{alert_live.base_url}/dashboard/alerting/")
    give_token(page)
    wait_ready(page)
    row = page.locator(f"#channels-table tbody tr[data-channel-id='{made['channel_id']}']")
    buttons = row.locator("button")
    assert buttons.all_inner_texts() == ["Edit", "Disable", "Test", "Delete"]
    assert [b.get_attribute("data-needs") for b in buttons.all()] == ["admin"] * 4

    # The form starts from the channel as it is: a slack channel has a URL, no e-mail field.
    page.get_by_role("button", name="Edit channel ops slack").click()
    form = page.get_by_role("form", name="Edit channel ops slack")
    assert form.get_by_label("Name").input_value() == "ops slack"
    assert form.get_by_label("URL").input_value() == SLACK_URL
    assert form.get_by_label("E-mail address").count() == 0
    assert form.get_by_label("Events").input_value() == (
        "alert.opened, alert.resolved, alert.reminder, alert.grouped, ingestion.stale, ingestion.resumed"
    )
    form.get_by_label("Name").fill("night shift slack")
    form.get_by_label("Events").fill("alert.resolved, alert.opened")
    with page.expect_request(lambda r: r.method == "PATCH") as sent:
        form.get_by_role("button", name="Save channel ops slack").click()
    # Only what changed goes: the unchanged URL is not sent (nor checked) again.
    assert json.loads(sent.value.post_data) == {
        "name": "night shift slack",
        "events": ["alert.resolved", "alert.opened"],
    }
    page.get_by_role("button", name="Disable channel night shift slack").wait_for()
    assert cells(row)[:5] == ["night shift slack", "slack", SLACK_URL, "alert.opened, alert.resolved", "yes"]
    assert page.locator("#messages .notice").inner_text() == "Saved channel night shift slack."
    assert page.locator("tr.edit-row").count() == 0
    stored = alert_live.get(path)
    assert (stored["name"], stored["url"], stored["events"]) == (
        "night shift slack",
        SLACK_URL,
        ["alert.opened", "alert.resolved"],
    )

    page.get_by_role("button", name="Disable channel night shift slack").click()
    page.get_by_role("button", name="Enable channel night shift slack").wait_for()
    assert cells(row)[4] == "no (disabled by a user)"
    stored = alert_live.get(path)
    assert (stored["enabled"], stored["disabled_reason"]) == (False, "disabled by a user")

    page.get_by_role("button", name="Enable channel night shift slack").click()
    page.get_by_role("button", name="Disable channel night shift slack").wait_for()
    assert cells(row)[4] == "yes"
    stored = alert_live.get(path)
    assert (stored["enabled"], stored["disabled_reason"]) == (True, None)

    # A private address is refused by the API: its message is shown, the form keeps what was typed, and
    # nothing changes, not even the name typed beside it.
    page.get_by_role("button", name="Edit channel night shift slack").click()
    form = page.get_by_role("form", name="Edit channel night shift slack")
    form.get_by_label("Name").fill("renamed")
    form.get_by_label("URL").fill("http://10.0.0.7/hook")
    form.get_by_role("button", name="Save channel night shift slack").click()
    error = page.locator("#messages .error")
    error.wait_for()
    assert error.inner_text().startswith(
        "Editing channel night shift slack: url: refused: the host 10.0.0.7 resolves to 10.0.0.7, a private"
    )
    assert form.get_by_label("URL").input_value() == "http://10.0.0.7/hook"
    assert alert_live.get(path) == stored
    assert cells(row)[:3] == ["night shift slack", "slack", SLACK_URL]
    form.get_by_role("button", name="Cancel editing night shift slack").click()
    assert page.locator("tr.edit-row").count() == 0
    assert page_errors(page) == []
    alert_live.send("DELETE", path)


def test_maintenance_windows_are_added_and_deleted_from_the_page(
    alert_live: AlertStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{alert_live.base_url}/dashboard/alerting/")
    give_token(page)
    wait_ready(page)
    assert page.locator("#windows-none").is_visible()
    form = page.locator("#window-form")
    rows = page.locator("#windows-table tbody tr")

    form.get_by_label("Store ids").fill("down-1, down-2")
    form.get_by_label("Start (UTC").fill("2024-10-15T02:00:00Z")
    form.get_by_label("End (UTC)").fill("2024-10-15T04:30:00Z")
    form.get_by_label("Note").fill("POS upgrade")
    form.get_by_role("button", name="Add window").click()
    rows.first.wait_for()
    assert cells(rows.first) == [
        "down-1, down-2",
        "2024-10-15 02:00 UTC to 2024-10-15 04:30 UTC",
        "POS upgrade",
        "Delete",
    ]
    assert form.get_by_label("Store ids").input_value() == ""  # the form was reset

    # Weekly, all stores (empty ids), past local midnight: Sunday 23:00 to Monday 01:30 in each store's zone.
    form.get_by_label("Kind").select_option("weekly")
    form.get_by_label("Weekday").fill("6")
    form.get_by_label("Local start").fill("23:00")
    form.get_by_label("Local end").fill("01:30")
    form.get_by_label("Note").fill("weekly deploy")
    form.get_by_role("button", name="Add window").click()
    rows.nth(1).wait_for()
    # Newest first.
    assert cells(rows.nth(0)) == ["all stores", "every Sunday 23:00:00–01:30:00 local", "weekly deploy", "Delete"]
    assert cells(rows.nth(1))[:2] == ["down-1, down-2", "2024-10-15 02:00 UTC to 2024-10-15 04:30 UTC"]
    listed = alert_live.get("/maintenance/")["results"]
    picked = ("kind", "all", "store_ids", "start", "end", "weekday", "local_start", "local_end", "note")
    assert [{k: w[k] for k in picked} for w in listed] == [
        {
            "kind": "weekly",
            "all": True,
            "store_ids": None,
            "start": None,
            "end": None,
            "weekday": 6,
            "local_start": "23:00:00",
            "local_end": "01:30:00",
            "note": "weekly deploy",
        },
        {
            "kind": "one_off",
            "all": False,
            "store_ids": ["down-1", "down-2"],
            "start": "2024-10-15T02:00:00Z",
            "end": "2024-10-15T04:30:00Z",
            "weekday": None,
            "local_start": None,
            "local_end": None,
            "note": "POS upgrade",
        },
    ]

    # End before start: the API's 400 message, nothing added.
    form.get_by_label("Store ids").fill("up-1")
    form.get_by_label("Start (UTC").fill("2024-10-15T04:00:00Z")
    form.get_by_label("End (UTC)").fill("2024-10-15T03:00:00Z")
    form.get_by_role("button", name="Add window").click()
    page.locator("#messages .error").wait_for()
    assert page.locator("#messages .error").inner_text() == "Adding the window: end: must be after start"
    assert rows.count() == 2
    assert alert_live.get("/maintenance/")["count"] == 2

    one_off, weekly = listed[1]["window_id"], listed[0]["window_id"]
    page.locator(f"#windows-table tr[data-window-id='{one_off}']").get_by_role("button", name="Delete").click()
    page.locator(f"#windows-table tr[data-window-id='{one_off}']").wait_for(state="detached")
    assert rows.count() == 1
    assert [w["window_id"] for w in alert_live.get("/maintenance/")["results"]] == [weekly]
    assert page_errors(page) == []
    alert_live.send("DELETE", f"/maintenance/{weekly}/")
