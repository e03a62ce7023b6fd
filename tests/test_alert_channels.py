"""Alert channels and deliveries end to end in one process: the API, publish, the embedded worker sending to a
loopback receiver, retries, claims, the sweep. mongomock for MongoDB, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import pytest
from django.core import mail
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import queue, storage
from loop.embedded_worker import wait_embedded_idle
from loop.events import Event
from loop.services import deliveries
from loop.timeutil import utcnow
from tests.support.api import FULL, READ, VALID_ID, assert_json_error
from tests.support.receiver import receiver

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
OPENED = Event(type="alert.opened", timestamp=NOW, data={"alert_id": "a1", "store_id": "s1", "rule": "offline"})


@pytest.fixture
def channels_api(api: APIClient, settings: Any) -> APIClient:
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on 127.0.0.1
    settings.DELIVERY_RETRY_BASE_SECONDS = 0  # retries at once
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return api


@pytest.fixture
def no_queue(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sends are not queued: the test makes each attempt itself. The ids that would have been queued."""
    queued: list[str] = []
    monkeypatch.setattr(queue, "enqueue_delivery", lambda delivery_id, countdown=0: queued.append(delivery_id))
    return queued


def create(api: APIClient, **body: Any) -> dict[str, Any]:
    response = api.post("/channels/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def only_delivery(mdb: Database) -> dict[str, Any]:
    page = deliveries.list_deliveries()
    assert page.count == 1
    found = storage.get_delivery(mdb, page.results[0].delivery_id)
    assert found is not None
    return found


# --- channels API -------------------------------------------------------------------------------------


def test_a_webhook_channel_answers_its_secret_once(channels_api: APIClient) -> None:
    created = create(channels_api, name="ops hook", kind="webhook", url="http://127.0.0.1:9/hook")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == [
        "alert.opened",
        "alert.resolved",
        "alert.reminder",
        "alert.grouped",
        "ingestion.stale",
        "ingestion.resumed",
    ]
    assert created["enabled"] is True and created["created_at"].endswith("Z")
    one = channels_api.get(f"/channels/{created['channel_id']}/").json()
    listed = channels_api.get("/channels/").json()
    assert "secret" not in one and one["name"] == "ops hook"
    assert listed["count"] == 1 and "secret" not in listed["results"][0]
    assert created["secret"] not in json.dumps([one, listed])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "kind": "pager", "url": "http://127.0.0.1/"}, "kind"),
        ({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/", "events": ["alert.nope"]}, "events"),
        ({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/", "events": ["channel.test"]}, "events"),
        ({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/", "events": []}, "events"),
        ({"name": "x", "kind": "email", "email": "not-an-address"}, "email"),
        ({"name": "x", "kind": "email", "email": "a@example.com", "url": "http://127.0.0.1/"}, "url"),
        ({"name": "x", "kind": "webhook"}, "url"),
        ({"name": "x", "kind": "slack", "url": "ftp://127.0.0.1/"}, "url"),
        ({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/", "colour": "red"}, "colour"),
        ({"name": " ", "kind": "email", "email": "a@example.com"}, "name"),
    ],
)
def test_bad_channels_are_400_json(channels_api: APIClient, body: dict[str, Any], field: str) -> None:
    error = assert_json_error(channels_api.post("/channels/", body, format="json"), 400)
    assert field in error["error"]
    assert channels_api.get("/channels/").json()["count"] == 0


def test_private_urls_are_refused_with_the_reason(api: APIClient, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/"):
        body = {"name": "x", "kind": "webhook", "url": url}
        error = assert_json_error(api.post("/channels/", body, format="json"), 400)
        assert "private, loopback" in error["error"] and "WEBHOOK_ALLOW_PRIVATE" in error["error"]


def test_unknown_ids_are_404_json(channels_api: APIClient) -> None:
    for path in (f"/channels/{VALID_ID}/", "/channels/nope/", f"/deliveries/{VALID_ID}/"):
        assert_json_error(channels_api.get(path), 404)
    assert_json_error(channels_api.patch(f"/channels/{VALID_ID}/", {"name": "y"}, format="json"), 404)
    assert_json_error(channels_api.delete(f"/channels/{VALID_ID}/"), 404)
    assert_json_error(channels_api.post(f"/channels/{VALID_ID}/test/"), 404)
    assert_json_error(channels_api.post(f"/deliveries/{VALID_ID}/retry/"), 404)


def test_patch_and_delete(channels_api: APIClient) -> None:
    channel = create(channels_api, name="mail", kind="email", email="ops@example.com")
    path = f"/channels/{channel['channel_id']}/"
    changed = channels_api.patch(path, {"events": ["ingestion.stale"], "enabled": False}, format="json").json()
    assert changed["events"] == ["ingestion.stale"]
    assert changed["enabled"] is False and changed["disabled_reason"] == "disabled by a user"
    enabled = channels_api.patch(path, {"enabled": True}, format="json").json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    assert_json_error(channels_api.patch(path, {"kind": "webhook"}, format="json"), 400)
    assert_json_error(channels_api.patch(path, {"email": "nope"}, format="json"), 400)
    assert channels_api.delete(path).status_code == 204
    assert_json_error(channels_api.get(path), 404)


def test_the_read_token_reads_but_does_not_write(channels_api: APIClient, tokens: None) -> None:
    channels_api.credentials(HTTP_AUTHORIZATION=f"Bearer {READ}")
    assert channels_api.get("/channels/").status_code == 200
    assert channels_api.get("/deliveries/").status_code == 200
    body = {"name": "x", "kind": "email", "email": "a@example.com"}
    assert_json_error(channels_api.post("/channels/", body, format="json"), 403)
    channels_api.credentials(HTTP_AUTHORIZATION=f"Bearer {FULL}")
    assert channels_api.post("/channels/", body, format="json").status_code == 201


# --- delivery ------------------------------------------------------------------------------------------


def verify_like_the_docs(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The snippet of docs/alerts.md ("Verifying a signature"), as written there."""
    from standardwebhooks.webhooks import Webhook

    wh = Webhook(secret)  # the whsec_... secret answered by POST /channels/
    event = wh.verify(body, headers)  # raises WebhookVerificationError if the signature is wrong
    return event


def test_a_webhook_delivery_is_signed_and_recorded(channels_api: APIClient, mdb: Database) -> None:
    with receiver([204]) as hook:
        channel = create(channels_api, name="hook", kind="webhook", url=hook.url)
        assert deliveries.publish(events=[OPENED]) == 1
        assert wait_embedded_idle(30)
    assert len(hook.received) == 1
    got = hook.received[0]
    expected_body = {
        "type": "alert.opened",
        "timestamp": "2026-03-01T12:00:00Z",
        "data": {"alert_id": "a1", "store_id": "s1", "rule": "offline"},
    }
    assert json.loads(got.body) == expected_body
    assert verify_like_the_docs(channel["secret"], got.body, got.headers) == expected_body
    # The same check by hand: HMAC-SHA256 over "id.timestamp.body" with the secret's decoded bytes.
    key = base64.b64decode(channel["secret"].removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert got.headers["webhook-signature"] == f"v1,{mac}"
    assert got.headers["content-type"] == "application/json"
    listed = channels_api.get(f"/deliveries/?channel={channel['channel_id']}").json()
    assert listed["count"] == 1
    delivery = listed["results"][0]
    assert delivery["status"] == "delivered" and delivery["webhook_id"] == got.headers["webhook-id"]
    assert delivery["webhook_id"].startswith("msg_") and delivery["event"] == expected_body
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempts"]] == [(1, 204, None)]
    assert delivery["attempts"][0]["at"].endswith("Z") and delivery["next_attempt_at"] is None


def test_failures_are_retried_with_the_same_id_and_body(channels_api: APIClient) -> None:
    with receiver([500, 503, 200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        assert wait_embedded_idle(30)
    assert len(hook.received) == 3
    assert len({r.headers["webhook-id"] for r in hook.received}) == 1
    assert len({r.body for r in hook.received}) == 1
    delivery = channels_api.get("/deliveries/").json()["results"][0]
    assert delivery["status"] == "delivered"
    assert [(a["attempt"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 503), (3, 200)]
    assert delivery["attempts"][0]["error"].startswith("HTTP 500")
    assert delivery["attempts"][0]["next_retry_at"] is not None and delivery["attempts"][2]["next_retry_at"] is None


def test_retry_after_is_honoured(channels_api: APIClient, mdb: Database, no_queue: list[str]) -> None:
    with receiver([(429, {"Retry-After": "120"}), 200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        delivery_id = only_delivery(mdb)["delivery_id"]
        now = utcnow() + dt.timedelta(seconds=1)
        first = deliveries.attempt_delivery(delivery_id=delivery_id, now=now)
        assert first is not None and first.status == "pending"
        assert first.next_attempt_at == now + dt.timedelta(seconds=120)
        assert deliveries.attempt_delivery(delivery_id=delivery_id, now=now + dt.timedelta(seconds=119)) is None
        assert len(hook.received) == 1
        second = deliveries.attempt_delivery(delivery_id=delivery_id, now=now + dt.timedelta(seconds=120))
        assert second is not None and second.status == "delivered"
    assert len(hook.received) == 2


def test_410_disables_the_channel(channels_api: APIClient, mdb: Database) -> None:
    with receiver([410]) as hook:
        channel = create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        assert wait_embedded_idle(30)
        after = channels_api.get(f"/channels/{channel['channel_id']}/").json()
        assert after["enabled"] is False and "410 Gone" in after["disabled_reason"]
        assert only_delivery(mdb)["status"] == "failed"
        assert deliveries.publish(events=[OPENED]) == 0  # a disabled channel gets nothing
    assert len(hook.received) == 1


def test_other_4xx_fail_at_once(channels_api: APIClient, mdb: Database) -> None:
    with receiver([400, 200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        assert wait_embedded_idle(30)
        failed = only_delivery(mdb)
        assert failed["status"] == "failed" and failed["next_attempt_at"] is None
        assert [a["status_code"] for a in failed["attempts"]] == [400]
        # A manual retry: a new attempt with the same webhook-id, answered 202.
        response = channels_api.post(f"/deliveries/{failed['delivery_id']}/retry/")
        assert response.status_code == 202
        assert wait_embedded_idle(30)
    assert len(hook.received) == 2
    assert hook.received[0].headers["webhook-id"] == hook.received[1].headers["webhook-id"]
    again = channels_api.get(f"/deliveries/{failed['delivery_id']}/").json()
    assert again["status"] == "delivered" and [a["attempt"] for a in again["attempts"]] == [1, 2]


def test_a_claimed_attempt_is_not_sent_twice(
    channels_api: APIClient, mdb: Database, no_queue: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with receiver([200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        before = only_delivery(mdb)
        delivery_id = before["delivery_id"]
        assert deliveries.attempt_delivery(delivery_id=delivery_id) is not None
        # A second worker that read the delivery before the first recorded its attempt (a stale read):
        monkeypatch.setattr(storage, "get_delivery", lambda db, _id: dict(before))
        assert deliveries.attempt_delivery(delivery_id=delivery_id) is None
    assert len(hook.received) == 1


def test_an_attempt_held_by_another_worker_is_left_to_it(
    channels_api: APIClient, mdb: Database, no_queue: list[str]
) -> None:
    with receiver([200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        delivery_id = only_delivery(mdb)["delivery_id"]
        assert storage.claim_attempt(mdb, delivery_id, 1, worker="other:1")
        assert deliveries.attempt_delivery(delivery_id=delivery_id) is None
        assert hook.received == []
        # Six minutes on, that worker has not recorded attempt 1: it is recorded lost and attempt 2 is made.
        later = deliveries.attempt_delivery(delivery_id=delivery_id, now=utcnow() + dt.timedelta(minutes=6))
        assert later is not None and later.status == "delivered"
    assert len(hook.received) == 1
    attempts = only_delivery(mdb)["attempts"]
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, None), (2, 200)]
    assert "stopped" in attempts[0]["error"]


def test_broker_down_keeps_the_deliveries_for_the_sweep(
    channels_api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(delivery_id: str, countdown: float = 0) -> None:
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    with receiver([200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        create(channels_api, name="other", kind="webhook", url=hook.url, events=["alert.opened"])
        with monkeypatch.context() as patched:
            patched.setattr(queue, "enqueue_delivery", broker_down)
            assert deliveries.publish(events=[OPENED]) == 2
        assert wait_embedded_idle(30)
        assert hook.received == []
        assert deliveries.list_deliveries(status=deliveries.DeliveryStatus.PENDING).count == 2
        # Not overdue yet (the sweep leaves SWEEP_GRACE_SECONDS to the queued task) ...
        assert deliveries.send_due_deliveries(now=utcnow()) == 0
        # ... then it queues both.
        assert deliveries.send_due_deliveries(now=utcnow() + dt.timedelta(seconds=31)) == 2
        assert wait_embedded_idle(30)
    assert len(hook.received) == 2
    assert deliveries.list_deliveries(status=deliveries.DeliveryStatus.DELIVERED).count == 2


def test_the_url_is_checked_again_at_send_time(channels_api: APIClient, mdb: Database, settings: Any) -> None:
    with receiver([200]) as hook:
        create(channels_api, name="hook", kind="webhook", url=hook.url)
        settings.WEBHOOK_ALLOW_PRIVATE = False
        deliveries.publish(events=[OPENED])
        assert wait_embedded_idle(30)
    assert hook.received == []
    failed = only_delivery(mdb)
    assert failed["status"] == "failed" and failed["attempts"][0]["error"].startswith("URL refused: the host 127.0.0.1")
    assert failed["attempts"][0]["status_code"] is None  # nothing was sent


def test_a_deleted_channel_fails_its_pending_deliveries(
    channels_api: APIClient, mdb: Database, no_queue: list[str]
) -> None:
    with receiver([200]) as hook:
        channel = create(channels_api, name="hook", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        assert channels_api.delete(f"/channels/{channel['channel_id']}/").status_code == 204
        outcome = deliveries.attempt_delivery(delivery_id=only_delivery(mdb)["delivery_id"])
        assert outcome is not None and outcome.status == "failed"
    assert hook.received == []
    attempt = only_delivery(mdb)["attempts"][0]
    assert (attempt["status_code"], attempt["error"]) == (None, "the channel was deleted")


def test_grouped_events_reach_channels_by_their_lists(channels_api: APIClient, mdb: Database) -> None:
    grouped = Event(
        type="alert.grouped", timestamp=NOW, data={"opened": [{"alert_id": "a1"}], "resolved": [{"alert_id": "r1"}]}
    )
    with receiver([200]) as hook:
        create(channels_api, name="opened only", kind="webhook", url=hook.url, events=["alert.opened"])
        create(channels_api, name="stale only", kind="webhook", url=hook.url, events=["ingestion.stale"])
        create(channels_api, name="grouped", kind="webhook", url=hook.url, events=["alert.grouped"])
        assert deliveries.publish(events=[grouped]) == 2
        assert wait_embedded_idle(30)
    bodies = sorted((json.loads(r.body)["data"] for r in hook.received), key=lambda data: len(data["resolved"]))
    assert bodies == [
        {"opened": [{"alert_id": "a1"}], "resolved": []},
        {"opened": [{"alert_id": "a1"}], "resolved": [{"alert_id": "r1"}]},
    ]


def test_slack_gets_a_text_and_email_a_mail(channels_api: APIClient) -> None:
    with receiver([200]) as hook:
        create(channels_api, name="slack", kind="slack", url=hook.url)
        create(channels_api, name="mail", kind="email", email="ops@example.com")
        assert deliveries.publish(events=[OPENED]) == 2
        assert wait_embedded_idle(30)
    assert len(hook.received) == 1
    assert json.loads(hook.received[0].body) == {"text": "Alert opened: offline (store s1) at 2026-03-01T12:00:00Z"}
    assert "webhook-signature" not in hook.received[0].headers
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["ops@example.com"]
    assert sent.subject == "[store monitoring] Alert opened: offline (store s1) at 2026-03-01T12:00:00Z"
    assert '"alert_id": "a1"' in sent.body
    delivered = deliveries.list_deliveries(status=deliveries.DeliveryStatus.DELIVERED)
    assert delivered.count == 2


def test_the_test_event_goes_to_the_tested_channel_only(channels_api: APIClient) -> None:
    with receiver([200]) as hook:
        tested = create(channels_api, name="a", kind="webhook", url=hook.url, events=["ingestion.stale"])
        create(channels_api, name="b", kind="webhook", url=hook.url)
        response = channels_api.post(f"/channels/{tested['channel_id']}/test/")
        assert response.status_code == 202
        answer = response.json()
        assert answer["event_type"] == "channel.test" and answer["channel_id"] == tested["channel_id"]
        assert wait_embedded_idle(30)
    assert len(hook.received) == 1 and json.loads(hook.received[0].body)["type"] == "channel.test"
    delivery = channels_api.get(f"/deliveries/{answer['delivery_id']}/").json()
    assert delivery["status"] == "delivered"


def test_delivery_list_filters_and_bad_queries(channels_api: APIClient) -> None:
    with receiver([200]) as hook:
        first = create(channels_api, name="a", kind="webhook", url=hook.url)
        create(channels_api, name="b", kind="webhook", url=hook.url)
        deliveries.publish(events=[OPENED])
        assert wait_embedded_idle(30)
    assert channels_api.get("/deliveries/").json()["count"] == 2
    assert channels_api.get(f"/deliveries/?channel={first['channel_id']}").json()["count"] == 1
    assert channels_api.get("/deliveries/?status=failed").json()["count"] == 0
    assert channels_api.get("/deliveries/?status=delivered&page_size=1").json()["results"][0]["status"] == "delivered"
    assert_json_error(channels_api.get("/deliveries/?status=lost"), 400)
    assert_json_error(channels_api.get("/deliveries/?page=0"), 400)
    assert_json_error(channels_api.get("/deliveries/?colour=red"), 400)
