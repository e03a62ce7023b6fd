"""The daily figures and report schedules in headless Chromium: the home page's 90-day fleet chart (one bar per
date of GET /trends/?days=90, with its uptime %) and the data's lag behind the server's clock in words; the
"fell most this week" table in GET /trends/movers/'s order, linking to store pages; a store page's 90-day
chart whose every date carries the numbers of GET /stores/<id>/history/?days=90; and the Schedules page: an
operator signed in (the session's CSRF token on every write) adds a schedule through the form, sees the API
refuse a bad cron, runs it now and sees its e-mail delivery sent; a viewer sees the list and no add or run
control.

A stack of its own: one gunicorn (DEBUG=0, API_TOKEN set so sign-in is required, the embedded worker: reports
and deliveries run in its process, e-mails go to its log) on a MongoDB database and a migrated SQLite file of
its own, with a generated fleet of 12 stores over 16 days loaded by ``load_data`` (which builds the daily
figures: two whole weeks for the movers), an e-mail channel and two accounts (an operator, a viewer).
The expected values are the API's own answers: the pages must draw exactly those.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import MongoClient

from loop.freshness import data_lag_text
from tests.support.browser import (
    API_TOKEN,
    TokenClient,
    build_dataset,
    page_stack_env,
    screenshot,
    sign_in_to,
    wait_ready,
)
from tests.support.integration import MONGO_URL
from tests.support.processes import run_manage, start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.accounts]

PASSWORD = "ninety days of lanterns 31"
CHART_DAYS = 90  # loop.dashboard.CHART_DAYS
USERS = f"""
from django.contrib.auth.models import Group, User
for name, role in (("otto", "operator"), ("vera", "viewer")):
    User.objects.create_user(name, password={PASSWORD!r}).groups.add(Group.objects.get_or_create(name=role)[0])
"""


@dataclass
class HistoryStack(TokenClient):
    channel_id: str


@pytest.fixture(scope="module")
def history_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HistoryStack]:
    made_env = page_stack_env(
        tmp_path_factory, "history_browser", CELERY_BROKER_URL="memory://", API_TOKEN=API_TOKEN, TRIGGER_RATE_LIMIT=""
    )
    env, db_name, logs = made_env.env, made_env.db_name, made_env.logs
    migrated = run_manage(env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr
    made = run_manage(env, "shell", "-c", USERS)  # one process for both (a manage.py start is seconds)
    assert made.returncode == 0, made.stdout + made.stderr
    dataset = build_dataset(tmp_path_factory.mktemp("history-data"), stores=12, days=16, seed=19)
    loaded = run_manage(env, "load_data", str(dataset.folder))
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    web = start_gunicorn(env, 1, logs / "web.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    try:
        web.wait_healthy()
        stack = HistoryStack(web.url, "")
        made = stack.send("POST", "/channels/", {"name": "ops mail", "kind": "email", "email": "ops@example.com"})
        stack.channel_id = made["channel_id"]
        yield stack
    finally:
        web.stop()
        mongo.drop_database(db_name)
        mongo.close()


def sign_in(page: Any, base: str, path: str, username: str) -> None:
    sign_in_to(page, base, path, username, PASSWORD)


def cells(row: Any) -> list[str]:
    return [c.strip() for c in row.locator("th, td").all_inner_texts()]


def number(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def page_errors(page: Any) -> list[str]:
    """Script errors only (a refused call's 400 is also a console error, on purpose)."""
    return [e for e in page.seen.errors if e.startswith("page error")]


def test_home_shows_the_fleet_chart_the_lag_and_the_movers(
    history_live: HistoryStack, new_page: Callable[..., Any]
) -> None:
    trend = history_live.get(f"/trends/?days={CHART_DAYS}")
    movers = history_live.get("/trends/movers/?limit=10")
    newest = dt.datetime.fromisoformat(history_live.get("/overview/")["newest_poll_utc"].replace("Z", "+00:00"))
    before = data_lag_text(newest, dt.datetime.now(dt.UTC))
    page = new_page()
    sign_in(page, history_live.base_url, "/", "otto")
    after = data_lag_text(newest, dt.datetime.now(dt.UTC))

    # The range: 90 local dates ending at the newest kept date; one bar per date with figures, as the API says.
    first, last = dt.date.fromisoformat(trend["from"]), dt.date.fromisoformat(trend["to"])
    assert (last - first).days == CHART_DAYS - 1
    assert 14 <= len(trend["days"]) <= 18 and trend["days"][-1]["date_local"] == trend["to"]
    chart = page.locator("#fleet-chart svg")
    assert (chart.get_attribute("data-from"), chart.get_attribute("data-to")) == (trend["from"], trend["to"])
    bars = chart.locator("g.day")
    assert [g.get_attribute("data-date") for g in bars.all()] == [d["date_local"] for d in trend["days"]]
    assert [number(g.get_attribute("data-uptime-pct")) for g in bars.all()] == [d["uptime_pct"] for d in trend["days"]]
    # Taller bars for higher uptime: the drawn heights follow the numbers.
    heights = [float(g.locator("rect").get_attribute("height")) for g in bars.all() if g.locator("rect").count()]
    pcts = [d["uptime_pct"] for d in trend["days"] if d["uptime_pct"] is not None]
    assert len(heights) == len(pcts)
    assert all(abs(h / max(heights) * max(pcts) - p) < 0.05 for h, p in zip(heights, pcts, strict=True))
    assert "% up" in bars.first.locator("title").text_content()

    # The lag: the newest poll against the server's clock, in loop.freshness's words.
    lag = page.locator("#data-lag").inner_text()
    assert lag.startswith((before, after)) and lag.startswith("data ends ") and lag.endswith(" UTC).")

    # Movers: the API's order, each linking to its store page.
    assert movers["stores"], movers
    rows = page.locator("#movers-table tbody tr")
    assert [r.get_attribute("data-store-id") for r in rows.all()] == [m["store_id"] for m in movers["stores"]]
    top = movers["stores"][0]
    assert cells(rows.first) == [
        top["store_id"],
        f"{top['this_week_pct']:.2f}%",
        f"{top['previous_week_pct']:.2f}%",
        f"{top['change_pct']:+.2f}" if top["change_pct"] else "0.00",
    ]
    assert (
        page.locator("#movers-weeks")
        .inner_text()
        .startswith(f"Uptime % of business time, {movers['this_week']['from']} to {movers['this_week']['to']} against ")
    )
    page.locator("#fleet-title").evaluate("h => h.scrollIntoView()")
    screenshot(page, "home-history")
    rows.first.get_by_role("link").click()
    page.wait_for_url(f"{history_live.base_url}/dashboard/stores/{top['store_id']}/")
    wait_ready(page)
    assert page.locator("#history-chart svg g.day").count() > 0
    assert page_errors(page) == [] and page.seen.foreign(history_live.base_url) == []


def test_a_store_page_draws_its_90_days_with_the_history_apis_numbers(
    history_live: HistoryStack, new_page: Callable[..., Any]
) -> None:
    store_id = history_live.get("/trends/movers/?limit=1")["stores"][0]["store_id"]
    history = history_live.get(f"/stores/{store_id}/history/?days={CHART_DAYS}")
    assert len(history["days"]) >= 14
    page = new_page()
    sign_in(page, history_live.base_url, f"/dashboard/stores/{store_id}/", "otto")
    chart = page.locator("#history-chart svg")
    assert (chart.get_attribute("data-from"), chart.get_attribute("data-to")) == (history["from"], history["to"])
    drawn = [
        {
            "date_local": g.get_attribute("data-date"),
            "uptime_hours": number(g.get_attribute("data-uptime-hours")),
            "downtime_hours": number(g.get_attribute("data-downtime-hours")),
            "unobserved_hours": number(g.get_attribute("data-unobserved-hours")),
        }
        for g in chart.locator("g.day").all()
    ]
    keys = ("date_local", "uptime_hours", "downtime_hours", "unobserved_hours")
    assert drawn == [{k: d[k] for k in keys} for d in history["days"]]
    # Each date's stack: up, down and unobserved rects, in that order, in the page's colours.
    fills = chart.locator("g.day").first.locator("rect").evaluate_all("rs => rs.map(r => r.getAttribute('class'))")
    assert fills == ["part part-uptime-hours", "part part-downtime-hours", "part part-unobserved-hours"]
    up = sum(d["uptime_hours"] for d in history["days"])
    assert (
        page.locator("#history-summary")
        .inner_text()
        .startswith(f"{history['from']} to {history['to']} (local dates): up {up:,.1f} h, ")
    )
    page.locator("#history-title").evaluate("h => h.scrollIntoView()")
    screenshot(page, "store-history")
    assert page_errors(page) == []


def test_an_operator_adds_a_schedule_runs_it_and_sees_its_delivery(
    history_live: HistoryStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    sign_in(page, history_live.base_url, "/dashboard/schedules/", "otto")
    assert page.locator("nav a[aria-current='page']").inner_text() == "Schedules"
    form = page.get_by_role("form", name="Add a schedule")
    assert form.is_visible()

    # Refused by the API: its message, nothing added.
    form.get_by_label("Name").fill("Monday morning")
    form.get_by_label("Cron").fill("0 9 * *")
    form.get_by_label("Time zone").fill("America/New_York")
    form.get_by_label("Channels").select_option(label="ops mail (email)")
    form.get_by_role("button", name="Add schedule").click()
    error = page.locator("#messages .error")
    error.wait_for()
    assert error.inner_text().startswith("Adding the schedule: cron: needs five fields")
    assert history_live.get("/schedules/")["count"] == 0

    form.get_by_label("Cron").fill("0 9 * * MON")
    form.get_by_label("Format").select_option("extended")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/schedules/")) as sent:
        form.get_by_role("button", name="Add schedule").click()
    assert sent.value.headers.get("x-csrftoken")  # a session write carries its CSRF token
    rows = page.locator("#schedules-table tbody tr")
    rows.first.wait_for()
    listed = history_live.get("/schedules/")["results"]
    assert [(s["name"], s["cron"], s["timezone"], s["format"], s["channels"], s["region"]) for s in listed] == [
        ("Monday morning", "0 9 * * MON", "America/New_York", "extended", [history_live.channel_id], None)
    ]
    schedule = listed[0]
    assert cells(rows.first)[:7] == [
        "Monday morning",
        "0 9 * * MON (America/New_York)",
        "extended",
        "all",
        "ops mail",
        page.evaluate(f"window.Loop.fmtTime({schedule['next_run_at']!r})"),
        "none yet",
    ]

    page.get_by_role("button", name="Run Monday morning now").click()
    delivered = rows.first.locator("li[data-status='delivered']")
    delivered.wait_for(timeout=60_000)
    sent_to = history_live.get(f"/deliveries/?schedule={schedule['schedule_id']}")
    assert sent_to["count"] == 1
    delivery = sent_to["results"][0]
    assert (delivery["status"], delivery["event_type"], delivery["channel_id"]) == (
        "delivered",
        "report.completed",
        history_live.channel_id,
    )
    data = delivery["event"]["data"]
    assert delivered.get_attribute("data-delivery-id") == delivery["delivery_id"]
    assert delivered.inner_text().startswith(f"delivered: report.completed, {data['rows']} store(s) to ops mail, ")
    assert data["schedule_id"] == schedule["schedule_id"] and data["format"] == "extended"
    assert history_live.get(f"/get_report/{data['report_id']}/")["status"] == "Complete"
    assert page.locator("#messages .notice").inner_text() == "Run of Monday morning: delivered to ops mail."
    screenshot(page, "schedules")
    assert page_errors(page) == []


def test_a_viewer_sees_the_schedules_but_no_add_or_run_control(
    history_live: HistoryStack, new_page: Callable[..., Any]
) -> None:
    if history_live.get("/schedules/")["count"] == 0:  # run alone: the operator's test made none
        history_live.send(
            "POST",
            "/schedules/",
            {"name": "Monday morning", "cron": "0 9 * * MON", "timezone": "UTC", "channels": [history_live.channel_id]},
        )
    page = new_page()
    sign_in(page, history_live.base_url, "/dashboard/schedules/", "vera")
    assert page.locator("#who-name").inner_text() == "Signed in as vera (viewer)"
    rows = page.locator("#schedules-table tbody tr")
    assert rows.count() == 1 and cells(rows.first)[0] == "Monday morning"
    assert cells(rows.first)[-1] == "–"
    assert page.get_by_role("button", name="Run Monday morning now").count() == 0
    assert page.locator("#schedule-form").is_hidden()
    assert page_errors(page) == []
