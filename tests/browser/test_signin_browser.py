"""Signing in to the dashboard in headless Chromium: the sign-in page, a viewer (no ack, edit, maintenance or
channel controls; the report trigger stays: a report changes no data; a write through the page's own API
client refused), an operator (ack from Down now, with the session's CSRF token), a wrong password, sign-out,
and the lockout after AXES_FAILURE_LIMIT failures, allowed again after the window.

A stack of its own: gunicorn (DEBUG=0, AUTH_REQUIRED=1, no API_TOKEN, the embedded worker) on a MongoDB
database of its own loaded by ``load_data`` from hand-made polls, and Django's tables in a migrated SQLite
file with the users made by ``manage.py shell``. A second gunicorn on a copy of that file (its own sign-in
attempts) has a limit of 3 failures and a 6-second window. Stores open 24x7 (no hours), America/Chicago,
G = 60 min, D = 30 min, evaluated at 12:00 UTC by load_data:

- down-1: active 10:00, inactive 10:40 to 12:00: open alert since 10:20 (100 min).
- down-2: active 10:00 and 10:40, inactive 11:00 to 12:00: open alert since 10:50 (70 min).
- up-1: active at every poll.

The viewer's refused write is the API's own refusal (loop/api/access.py), not only a hidden control.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.support.browser import page_stack_env, screenshot, wait_ready
from tests.support.integration import MONGO_URL
from tests.support.processes import run_manage, start_gunicorn

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.accounts]

PASSWORD = "correct horse battery staple 42"
GENERIC = "Please enter a correct username and password. Note that both fields may be case-sensitive."
LOCKOUT_LIMIT = 3
LOCKOUT_SECONDS = 6
LOCKED = "Too many failed sign-in attempts. Signing in is paused for up to 6 seconds; try again later."
DAY = "2024-10-14"
POLLS = {
    "down-1": {"10:00": "active", "10:40": "inactive", "11:00": "inactive", "11:30": "inactive", "12:00": "inactive"},
    "down-2": {"10:00": "active", "10:40": "active", "11:00": "inactive", "11:30": "inactive", "12:00": "inactive"},
    "up-1": {"10:00": "active", "10:40": "active", "11:00": "active", "11:30": "active", "12:00": "active"},
}
# Users, and what the shell seeds besides them: a maintenance window and a channel (so the viewer has rows
# whose Delete / Test buttons it must not see), and a key each for vera and ada (the admin lists both).
SEED = f"""
from django.contrib.auth.models import Group, User
for name, role in (("vera", "viewer"), ("otto", "operator"), ("ada", "admin")):
    user = User.objects.create_user(name, password={PASSWORD!r})
    user.groups.add(Group.objects.get_or_create(name=role)[0])
from loop.services.maintenance import create_window
from loop.services.channels import create_channel
create_window(store_ids=["up-1"], all_stores=None, start="2024-10-20T00:00:00Z", end="2024-10-20T02:00:00Z")
create_channel(name="ops mail", kind="email", email="ops@example.com", events=["alert.opened"])
from django.utils import timezone
from loop.accounts.capabilities import ALL, Principal, Scope
from loop.accounts.services import create_key
seeder = Principal(kind="command", name="command:seed", capabilities=ALL)
for owner, name, scope in (("vera", "vera laptop", Scope.READ), ("ada", "ada script", Scope.ADMIN)):
    create_key(caller=seeder, name=name, scope=scope, expires_at=None, owner_username=owner, now=timezone.now())
"""


@dataclass
class SignInStack:
    base_url: str  # AUTH_REQUIRED=1, a generous failure limit
    lockout_url: str  # the same, but AXES_FAILURE_LIMIT=3 and a 6-second window, its own sign-in attempts


def write_sources(folder: Path) -> None:
    folder.mkdir()
    rows = [f"{store},{status},{DAY} {hhmm}:00 UTC" for store, polls in POLLS.items() for hhmm, status in polls.items()]
    (folder / "store_status.csv").write_text("store_id,status,timestamp_utc\n" + "\n".join(rows) + "\n")
    (folder / "menu_hours.csv").write_text("store_id,dayOfWeek,start_time_local,end_time_local\n")
    (folder / "timezones.csv").write_text("store_id,timezone_str\n")


def managed(env: dict[str, str], *args: str) -> str:
    done = run_manage(env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def signin_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInStack]:
    made_env = page_stack_env(
        tmp_path_factory,
        "signin_browser",
        CELERY_BROKER_URL="memory://",
        AUTH_REQUIRED="1",
        AXES_FAILURE_LIMIT="50",
        TRIGGER_RATE_LIMIT="",
    )
    env, db_name, logs = made_env.env, made_env.db_name, made_env.logs
    sources = tmp_path_factory.mktemp("signin-data") / "loop"
    write_sources(sources)
    managed(env, "migrate", "--noinput")
    managed(env, "shell", "-c", SEED)
    loaded = managed(env, "load_data", str(sources))
    assert "2 opened, 0 resolved" in loaded, loaded
    lockout_db = logs / "lockout.sqlite3"
    shutil.copyfile(env["SQLITE_PATH"], lockout_db)
    lockout_env = {
        **env,
        "SQLITE_PATH": str(lockout_db),
        "AXES_FAILURE_LIMIT": str(LOCKOUT_LIMIT),
        "AXES_COOLOFF_SECONDS": str(LOCKOUT_SECONDS),
    }
    web = start_gunicorn(env, 1, logs / "web.log")
    lockout_web = start_gunicorn(lockout_env, 1, logs / "web-lockout.log")
    mongo = MongoClient(MONGO_URL, serverSelectionTimeoutMS=5000)
    try:
        web.wait_healthy()
        lockout_web.wait_healthy()
        yield SignInStack(web.url, lockout_web.url)
    finally:
        web.stop()
        lockout_web.stop()
        mongo.drop_database(db_name)
        mongo.close()


def sign_in(page: Any, username: str, password: str) -> Any:
    """Fill the sign-in form and submit it; the answer to the POST."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_response(lambda r: "/accounts/login/" in r.url and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return answer.value


def cells(row: Any) -> list[str]:
    return [c.strip() for c in row.locator("th, td").all_inner_texts()]


def test_a_visitor_is_sent_to_sign_in_and_a_wrong_password_says_only_that(
    signin_live: SignInStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/dashboard/alerts/")
    assert page.url == f"{signin_live.base_url}/accounts/login/?next=/dashboard/alerts/"
    screenshot(page, "signin")
    for username in ("vera", "nobody-here"):
        assert sign_in(page, username, "not the password").status == 200
        assert page.locator("#login-error").inner_text() == GENERIC
    assert page.url.startswith(f"{signin_live.base_url}/accounts/login/")
    assert page.seen.foreign(signin_live.base_url) == []


def test_a_viewer_sees_the_data_and_no_write_controls_but_the_report_trigger(
    signin_live: SignInStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/dashboard/alerts/")
    assert sign_in(page, "vera", PASSWORD).status == 302
    assert page.url == f"{signin_live.base_url}/dashboard/alerts/"
    wait_ready(page)
    assert page.locator("#who-name").inner_text() == "Signed in as vera (viewer)"
    rows = page.locator("#open-table tbody tr")
    assert [r.get_attribute("data-store-id") for r in rows.all()] == ["down-1", "down-2"]
    assert cells(rows.first)[-1] == "–"  # no Ack button, nobody acknowledged it
    assert page.locator("button.ack").count() == 0
    assert page.locator("#ack-by").is_hidden()
    screenshot(page, "alerts-viewer")

    page.goto(f"{signin_live.base_url}/dashboard/alerting/")
    wait_ready(page)
    assert cells(page.locator("#channels-table tbody tr").first) == [
        "ops mail",
        "email",
        "ops@example.com",
        "alert.opened",
        "yes",
        "–",
    ]
    assert cells(page.locator("#windows-table tbody tr").first)[-1] == "–"
    assert page.locator("#channel-form").is_hidden() and page.locator("#window-form").is_hidden()
    assert page.get_by_role("button", name="Delete this window").count() == 0

    page.goto(f"{signin_live.base_url}/dashboard/reports/")
    wait_ready(page)
    assert page.locator("#import-form").is_hidden()
    assert page.get_by_text("Uploads need the operator role (or an ingest key).").is_visible()

    page.goto(f"{signin_live.base_url}/")
    wait_ready(page)
    assert page.get_by_role("button", name="Trigger a new report").is_visible()


def test_a_viewers_write_through_the_pages_own_client_is_refused(
    signin_live: SignInStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/dashboard/alerts/")
    sign_in(page, "vera", PASSWORD)
    wait_ready(page)
    alert_id = page.locator("#open-table tbody tr").first.get_attribute("data-alert-id")
    attempt = """([path, body]) => Loop.postJSON(path, body).then(() => "written", (err) => err.status)"""
    assert page.evaluate(attempt, [f"/alerts/{alert_id}/ack/", {"by": "vera"}]) == 403
    window = {"all": True, "start": "2024-10-21T00:00:00Z", "end": "2024-10-21T01:00:00Z"}
    assert page.evaluate(attempt, ["/maintenance/", window]) == 403
    # A report changes no data: a viewer may trigger one.
    assert page.evaluate(attempt, ["/trigger_report/", {}]) == "written"


def test_an_operator_acknowledges_from_down_now_with_the_sessions_csrf_token(
    signin_live: SignInStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    posts: list[dict[str, str]] = []
    page.on("request", lambda r: posts.append(r.headers) if r.method == "POST" and "/ack/" in r.url else None)
    page.goto(f"{signin_live.base_url}/dashboard/alerts/")
    sign_in(page, "otto", PASSWORD)
    wait_ready(page)
    assert page.locator("#who-name").inner_text() == "Signed in as otto (operator)"
    assert page.get_by_label("Acknowledge as").input_value() == "otto"  # acknowledged as yourself
    page.get_by_role("button", name="Acknowledge the alert of down-2").click()
    acked = page.locator("#open-table tr[data-store-id='down-2'] td.acked")
    acked.filter(has_text="otto").wait_for(timeout=10_000)
    assert acked.inner_text().startswith("otto, 20")
    csrf = page.context.cookies(signin_live.base_url)
    token = next(c["value"] for c in csrf if c["name"] == "csrftoken")
    assert len(posts) == 1 and posts[0]["x-csrftoken"] == token and "authorization" not in posts[0]

    # An operator manages maintenance windows, not channels.
    page.goto(f"{signin_live.base_url}/dashboard/alerting/")
    wait_ready(page)
    assert page.locator("#window-form").is_visible() and page.locator("#channel-form").is_hidden()
    assert page.get_by_role("button", name="Delete this window").count() == 1
    assert page.locator("#channels-table tbody button").count() == 0  # no Edit, Disable, Test or Delete


def test_who_you_are_lists_role_capabilities_and_keys(signin_live: SignInStack, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/dashboard/me/")
    sign_in(page, "otto", PASSWORD)
    wait_ready(page)
    assert page.locator("#me-name").inner_text() == "otto"
    assert page.locator("#me-kind").inner_text() == "a username and password"
    assert page.locator("#me-role").inner_text() == "operator"
    listed = page.locator("#me-capabilities li").evaluate_all("items => items.map(i => i.dataset.capability)")
    assert listed == ["read", "ingest", "operate"]
    assert page.locator("#keys-none").inner_text() == "No API key."  # GET /keys/: otto has none yet
    assert page.locator("#messages .error").count() == 0


def test_an_admin_sees_everyones_keys_with_their_owner(signin_live: SignInStack, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/dashboard/me/")
    sign_in(page, "ada", PASSWORD)
    wait_ready(page)
    assert page.locator("#keys-title").inner_text() == "API keys (everyone's: you are an admin)"
    assert page.locator("#keys-owner").is_visible()
    listed = [cells(row) for row in page.locator("#keys-table tbody tr").all()]
    # Newest first: Name, Owner, Prefix, Scope, ...
    assert [(c[0], c[1], c[2][:4], c[3]) for c in listed] == [
        ("ada script", "ada", "lpa_", "admin"),
        ("vera laptop", "vera", "lpr_", "read"),
    ]


def test_a_viewer_sees_only_their_keys_without_an_owner_column(
    signin_live: SignInStack, new_page: Callable[..., Any]
) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/dashboard/me/")
    sign_in(page, "vera", PASSWORD)
    wait_ready(page)
    assert page.locator("#keys-title").inner_text() == "Your API keys"
    assert page.locator("#keys-owner").is_hidden()
    listed = [cells(row) for row in page.locator("#keys-table tbody tr").all()]
    assert [(c[0], c[1][:4], c[2]) for c in listed] == [("vera laptop", "lpr_", "read")]
    assert len(listed[0]) == 6  # no owner cell


def test_sign_out_ends_the_session(signin_live: SignInStack, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(f"{signin_live.base_url}/")
    sign_in(page, "ada", PASSWORD)
    wait_ready(page)
    assert page.locator("#who-name").inner_text() == "Signed in as ada (admin)"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{signin_live.base_url}/accounts/login/")
    page.goto(f"{signin_live.base_url}/dashboard/stores/")
    assert page.url == f"{signin_live.base_url}/accounts/login/?next=/dashboard/stores/"


def test_failures_lock_signing_in_until_the_window_ends(signin_live: SignInStack, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto(f"{signin_live.lockout_url}/")
    for _ in range(LOCKOUT_LIMIT - 1):
        assert sign_in(page, "vera", "wrong").status == 200
        assert page.locator("#login-error").inner_text() == GENERIC
    assert sign_in(page, "vera", "wrong").status == 429
    locked_at = time.monotonic()
    assert page.locator("#login-error").inner_text() == LOCKED
    screenshot(page, "signin-locked")
    # The right password does not get through the lockout, nor does another user from this address.
    assert sign_in(page, "vera", PASSWORD).status == 429
    assert sign_in(page, "otto", PASSWORD).status == 429
    assert time.monotonic() - locked_at < LOCKOUT_SECONDS, "too slow to see the lockout before it ended"
    time.sleep(max(0.0, LOCKOUT_SECONDS + 1 - (time.monotonic() - locked_at)))
    assert sign_in(page, "vera", PASSWORD).status == 302
    wait_ready(page)
    assert page.locator("#who-name").inner_text() == "Signed in as vera (viewer)"
