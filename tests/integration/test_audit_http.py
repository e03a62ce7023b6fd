"""The audit log over real HTTP: gunicorn (DEBUG=0, API_TOKEN set), the Celery worker, the MongoDB-wire server and
Django's database (the stack's migrated SQLite file). A run of every kind of write, each with its own
X-Request-ID, then GET /audit/ finds each one with its actor, target and request id, newest first.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.integration import Stack, private_app
from tests.support.polling import http_report, wait_for_report

pytestmark = pytest.mark.integration

FULL = "it-audit-full-7d1e2c9b40"
READ = "it-audit-read-3f8a6b1c52"
ACTOR = "token:API_TOKEN"


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[str]:
    with private_app(stack, "audit", API_TOKEN=FULL, API_READ_TOKEN=READ) as (url, _env):
        yield url


class Writer:
    """Sends each write with the full token and a request id of its own; remembers (action, request id)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.run = uuid.uuid4().hex[:8]
        self.sent: list[tuple[str, str, str]] = []  # (action, request id, target)

    def __call__(
        self, action: str, method: str, path: str, *, target: str = "", target_key: str = "", **kwargs: Any
    ) -> requests.Response:
        """One write; its target is ``target``, or the answer's ``target_key`` field (an id the server made)."""
        request_id = f"it-{self.run}-{len(self.sent):02d}"
        headers = {"Authorization": f"Bearer {FULL}", "X-Request-ID": request_id}
        response = requests.request(method, f"{self.base}{path}", headers=headers, timeout=60, **kwargs)
        assert response.status_code < 300, (action, response.status_code, response.text)
        assert response.headers["X-Request-ID"] == request_id
        self.sent.append((action, request_id, response.json()[target_key] if target_key else target))
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


def test_every_write_of_a_run_is_in_the_audit_log(app: str) -> None:
    base = app
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    write = Writer(base)

    polls = [
        {"store_id": "it-aud", "status": "active", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
        {"store_id": "it-aud", "status": "inactive", "timestamp_utc": "2024-10-14 11:00:00 UTC"},
    ]
    write("polls.ingest", "POST", "/store_status/", json=polls)
    hours = [{"dayOfWeek": 0, "start_time_local": "00:00", "end_time_local": "23:59"}]
    write("hours.update", "PUT", "/stores/it-aud/business_hours/", target="it-aud", json=hours)
    holiday = [{"date_local": "2024-12-25", "start_time_local": None, "end_time_local": None}]
    write("special_hours.update", "PUT", "/stores/it-aud/special_hours/", target="it-aud", json=holiday)
    write("zone.update", "PUT", "/stores/it-aud/timezone/", target="it-aud", json={"timezone_str": "UTC"})
    write("profile.update", "PUT", "/stores/it-aud/profile/", target="it-aud", json={"name": "Audit St"})
    write("profile.delete", "DELETE", "/stores/it-aud/profile/", target="it-aud")

    trigger = write("report.trigger", "POST", "/trigger_report/", target_key="report_id", json={"force": True})
    report_id = trigger.json()["report_id"]
    done = wait_for_report(http_report(base, report_id, headers={"Authorization": f"Bearer {READ}"}), timeout=180)
    assert done["status"] == "Complete", done
    write("report.delete", "DELETE", f"/reports/{report_id}/", target=report_id)

    csv = b"store_id,status,timestamp_utc\nit-imp,active,2024-10-14 10:30:00 UTC\n"
    write("import.create", "POST", "/imports/", target_key="import_id", files={"store_status": ("polls.csv", csv)})

    alert_id = wait_for_alert(base, "it-aud")
    write("alert.ack", "POST", f"/alerts/{alert_id}/ack/", target=alert_id, json={"by": "it", "note": "audit"})

    window = {"all": True, "start": "2030-01-01T00:00:00Z", "end": "2030-01-01T01:00:00Z"}
    window_id = write("maintenance.create", "POST", "/maintenance/", target_key="window_id", json=window).json()[
        "window_id"
    ]
    write("maintenance.delete", "DELETE", f"/maintenance/{window_id}/", target=window_id)

    channel = {"name": "it mail", "kind": "email", "email": "ops@example.com", "events": ["alert.opened"]}
    channel_id = write("channel.create", "POST", "/channels/", target_key="channel_id", json=channel).json()[
        "channel_id"
    ]
    write("channel.update", "PATCH", f"/channels/{channel_id}/", target=channel_id, json={"name": "it mail 2"})
    delivery_id = write("channel.test", "POST", f"/channels/{channel_id}/test/", target=channel_id).json()[
        "delivery_id"
    ]
    write("delivery.retry", "POST", f"/deliveries/{delivery_id}/retry/", target=delivery_id)
    write("channel.delete", "DELETE", f"/channels/{channel_id}/", target=channel_id)

    # A refused write (400) leaves no entry.
    refused = requests.put(
        f"{base}/stores/it-aud/timezone/",
        json={"timezone_str": "Mars/Olympus_Mons"},
        headers={"Authorization": f"Bearer {FULL}", "X-Request-ID": f"it-{write.run}-refused"},
        timeout=30,
    )
    assert refused.status_code == 400

    # The log, newest first, read by an admin (the full token) with the run's window.
    response = requests.get(
        f"{base}/audit/", params={"since": since, "limit": 100}, headers={"Authorization": f"Bearer {FULL}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    mine = [e for e in response.json()["results"] if e["request_id"].startswith(f"it-{write.run}-")]
    assert [(e["action"], e["request_id"], e["target"]) for e in reversed(mine)] == write.sent
    assert {e["actor"] for e in mine} == {ACTOR}
    assert {e["address"] for e in mine} == {"127.0.0.1"}
    assert all(e["at"].endswith("Z") for e in mine)
    by_action = {e["action"]: e for e in mine}
    assert by_action["polls.ingest"]["detail"] == {"read": 2, "inserted": 2, "duplicates": 0, "rejected": 0}
    assert by_action["zone.update"]["detail"] == {
        "before": {"timezone_str": "America/Chicago", "is_default": True},
        "after": {"timezone_str": "UTC", "is_default": False},
    }

    # A family of actions.
    channel_only = requests.get(
        f"{base}/audit/",
        params={"since": since, "action": "channel."},
        headers={"Authorization": f"Bearer {FULL}"},
        timeout=30,
    ).json()
    assert [e["action"] for e in channel_only["results"]] == [
        "channel.delete",
        "channel.test",
        "channel.update",
        "channel.create",
    ]
