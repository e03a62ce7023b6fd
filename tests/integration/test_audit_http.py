"""The audit log over real HTTP: gunicorn (DEBUG=0, API_TOKEN set, so AUTH_REQUIRED), the Celery worker, the
MongoDB-wire server and Django's database (the stack's migrated SQLite file). A run of every kind of write, made by
four actors (an operator's API key, an admin's API key, API_TOKEN and an admin signed in with a session), each
with its own X-Request-ID; then GET /audit/ finds each one with its actor, target and request id, newest first.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.support.integration import Stack, private_app
from tests.support.polling import http_report, wait_for_report
from tests.support.processes import run_manage

pytestmark = [pytest.mark.integration, pytest.mark.accounts]

FULL = "it-audit-full-7d1e2c9b40"
READ = "it-audit-read-3f8a6b1c52"
PASSWORD = "audit run harbour lantern 77"


@dataclass
class Actor:
    """Who makes a write: what the log must record (``name``, ``kind``) and how its requests are sent."""

    name: str
    kind: str
    session: requests.Session


@dataclass
class Run:
    base: str
    env: dict[str, str]
    tag: str  # makes this run's usernames unique in the stack's shared accounts database


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[Run]:
    with private_app(stack, "audit", API_TOKEN=FULL, API_READ_TOKEN=READ) as (url, env):
        yield Run(url, env, uuid.uuid4().hex[:6])


def bearer(name: str, kind: str, credential: str) -> Actor:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {credential}"
    return Actor(name, kind, session)


def manage(run: Run, *args: str) -> str:
    done = run_manage({**run.env, "AUDIT_PW": PASSWORD}, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def key_actor(run: Run, owner: str, scope: str) -> Actor:
    """An API key made by ``manage.py create_key``; the log names it by its visible prefix."""
    key = manage(run, "create_key", owner, "--name", f"audit {scope}", "--scope", scope)
    return bearer(f"key:{key[:12]}", "key", key)


def session_actor(run: Run, username: str) -> Actor:
    """Signed in through the dashboard's sign-in form: the session cookie, and the CSRF token on every write."""
    session = requests.Session()
    form = session.get(f"{run.base}/accounts/login/", timeout=30)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert found, form.text[:500]
    body = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": found.group(1), "next": "/"}
    signed_in = session.post(f"{run.base}/accounts/login/", data=body, allow_redirects=False, timeout=30)
    assert signed_in.status_code == 302, signed_in.text[:500]
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]  # rotated by the sign-in
    return Actor(username, "user", session)


class Writer:
    """Sends each write as an actor with a request id of its own; remembers (action, request id, target, actor)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.run = uuid.uuid4().hex[:8]
        self.sent: list[tuple[str, str, str, str]] = []

    def __call__(
        self,
        actor: Actor,
        action: str,
        method: str,
        path: str,
        *,
        target: str = "",
        target_key: str = "",
        **kwargs: Any,
    ) -> requests.Response:
        """One write; its target is ``target``, or the answer's ``target_key`` field (an id the server made)."""
        request_id = f"it-{self.run}-{len(self.sent):02d}"
        response = actor.session.request(
            method, f"{self.base}{path}", headers={"X-Request-ID": request_id}, timeout=60, **kwargs
        )
        assert response.status_code < 300, (action, actor.name, response.status_code, response.text)
        assert response.headers["X-Request-ID"] == request_id
        self.sent.append((action, request_id, response.json()[target_key] if target_key else target, actor.name))
        return response


def wait_for_alert(base: str, store_id: str, timeout: float = 60) -> str:
    """The open alert of ``store_id`` once the worker's evaluation has opened it."""
    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(f"{base}/alerts/", headers={"Authorization": f"Bearer {READ}"}, timeout=30).json()
        found = [a["alert_id"] for a in body["results"] if a["store_id"] == store_id]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no alert for {store_id}: {body}"
        time.sleep(0.3)


def test_every_write_of_a_run_is_in_the_audit_log_with_its_actor(app: Run) -> None:
    base = app.base
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    operator_name, admin_name, viewer_name = (f"it-{role}-{app.tag}" for role in ("op", "ad", "vi"))
    manage(app, "create_account", operator_name, "--role", "operator", "--no-password")
    manage(app, "create_account", admin_name, "--role", "admin", "--password-from-env", "AUDIT_PW")
    manage(app, "create_account", viewer_name, "--role", "viewer", "--no-password")
    operator, admin_key = key_actor(app, operator_name, "operate"), key_actor(app, admin_name, "admin")
    token, signed_in = bearer("token:API_TOKEN", "token", FULL), session_actor(app, admin_name)
    write = Writer(base)

    polls = [
        {"store_id": "it-aud", "status": "active", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
        {"store_id": "it-aud", "status": "inactive", "timestamp_utc": "2024-10-14 11:00:00 UTC"},
    ]
    write(operator, "polls.ingest", "POST", "/store_status/", json=polls)
    hours = [{"dayOfWeek": 0, "start_time_local": "00:00", "end_time_local": "23:59"}]
    write(operator, "hours.update", "PUT", "/stores/it-aud/business_hours/", target="it-aud", json=hours)
    holiday = [{"date_local": "2024-12-25", "start_time_local": None, "end_time_local": None}]
    write(operator, "special_hours.update", "PUT", "/stores/it-aud/special_hours/", target="it-aud", json=holiday)
    write(token, "zone.update", "PUT", "/stores/it-aud/timezone/", target="it-aud", json={"timezone_str": "UTC"})
    write(signed_in, "profile.update", "PUT", "/stores/it-aud/profile/", target="it-aud", json={"name": "Audit St"})
    write(operator, "profile.delete", "DELETE", "/stores/it-aud/profile/", target="it-aud")

    trigger = write(
        admin_key, "report.trigger", "POST", "/trigger_report/", target_key="report_id", json={"force": True}
    )
    report_id = trigger.json()["report_id"]
    done = wait_for_report(http_report(base, report_id, headers={"Authorization": f"Bearer {READ}"}), timeout=180)
    assert done["status"] == "Complete", done
    write(admin_key, "report.delete", "DELETE", f"/reports/{report_id}/", target=report_id)

    csv = b"store_id,status,timestamp_utc\nit-imp,active,2024-10-14 10:30:00 UTC\n"
    files = {"store_status": ("polls.csv", csv)}
    write(operator, "import.create", "POST", "/imports/", target_key="import_id", files=files)

    alert_id = wait_for_alert(base, "it-aud")
    ack = {"by": "it", "note": "audit"}
    write(operator, "alert.ack", "POST", f"/alerts/{alert_id}/ack/", target=alert_id, json=ack)

    window = {"all": True, "start": "2030-01-01T00:00:00Z", "end": "2030-01-01T01:00:00Z"}
    made = write(signed_in, "maintenance.create", "POST", "/maintenance/", target_key="window_id", json=window)
    window_id = made.json()["window_id"]
    write(operator, "maintenance.delete", "DELETE", f"/maintenance/{window_id}/", target=window_id)

    channel = {"name": "it mail", "kind": "email", "email": "ops@example.com", "events": ["alert.opened"]}
    made = write(admin_key, "channel.create", "POST", "/channels/", target_key="channel_id", json=channel)
    channel_id = made.json()["channel_id"]
    write(signed_in, "channel.update", "PATCH", f"/channels/{channel_id}/", target=channel_id, json={"name": "it 2"})
    tested = write(admin_key, "channel.test", "POST", f"/channels/{channel_id}/test/", target=channel_id)
    delivery_id = tested.json()["delivery_id"]
    write(operator, "delivery.retry", "POST", f"/deliveries/{delivery_id}/retry/", target=delivery_id)
    write(token, "channel.delete", "DELETE", f"/channels/{channel_id}/", target=channel_id)

    # Keys: the token makes one for the viewer; the signed-in admin revokes it.
    key_body = {"name": "it laptop", "scope": "read", "owner": viewer_name}
    key_id = write(token, "key.create", "POST", "/keys/", target_key="key_id", json=key_body).json()["key_id"]
    write(signed_in, "key.revoke", "DELETE", f"/keys/{key_id}/", target=key_id)

    # A refused write (400) and a write refused by access (the operator may not make channels) leave no entry.
    refused = token.session.put(
        f"{base}/stores/it-aud/timezone/",
        json={"timezone_str": "Mars/Olympus_Mons"},
        headers={"X-Request-ID": f"it-{write.run}-refused"},
        timeout=30,
    )
    assert refused.status_code == 400
    forbidden = operator.session.post(
        f"{base}/channels/", json=channel, headers={"X-Request-ID": f"it-{write.run}-forbidden"}, timeout=30
    )
    assert forbidden.status_code == 403

    # The log, newest first, read by an admin (the full token) with the run's window.
    response = token.session.get(f"{base}/audit/", params={"since": since, "limit": 100}, timeout=30)
    assert response.status_code == 200, response.text
    mine = [e for e in response.json()["results"] if e["request_id"].startswith(f"it-{write.run}-")]
    assert [(e["action"], e["request_id"], e["target"], e["actor"]) for e in reversed(mine)] == write.sent
    kinds = {e["actor"]: e["actor_kind"] for e in mine}
    assert kinds == {
        operator.name: "key",
        admin_key.name: "key",
        "token:API_TOKEN": "token",
        admin_name: "user",
    }
    assert operator.name.startswith("key:lpo_") and admin_key.name.startswith("key:lpa_")
    assert {e["address"] for e in mine} == {"127.0.0.1"}
    assert all(e["at"].endswith("Z") for e in mine)
    by_action = {e["action"]: e for e in mine}
    assert by_action["polls.ingest"]["detail"] == {"read": 2, "inserted": 2, "duplicates": 0, "rejected": 0}
    assert by_action["zone.update"]["detail"] == {
        "before": {"timezone_str": "America/Chicago", "is_default": True},
        "after": {"timezone_str": "UTC", "is_default": False},
    }
    assert by_action["key.revoke"]["detail"]["owner"] == viewer_name
    assert by_action["key.revoke"]["detail"]["already_revoked"] is False

    # One actor's writes: the operator's key, exactly.
    by_key = token.session.get(f"{base}/audit/", params={"since": since, "actor": operator.name}, timeout=30).json()
    assert [e["request_id"] for e in reversed(by_key["results"])] == [
        request_id for (_, request_id, _, name) in write.sent if name == operator.name
    ]

    # A family of actions.
    channel_only = token.session.get(f"{base}/audit/", params={"since": since, "action": "channel."}, timeout=30)
    assert [(e["action"], e["actor"]) for e in channel_only.json()["results"]] == [
        ("channel.delete", "token:API_TOKEN"),
        ("channel.test", admin_key.name),
        ("channel.update", admin_name),
        ("channel.create", admin_key.name),
    ]

    # The accounts made by manage.py are in the log too, without a request id.
    accounts = token.session.get(f"{base}/audit/", params={"since": since, "actor": "manage.py"}, timeout=30).json()
    made_here = [(e["action"], e["target"], e["request_id"]) for e in accounts["results"] if app.tag in e["target"]]
    assert ("user.create", admin_name, "") in made_here and ("user.create", viewer_name, "") in made_here
