"""The audit log (loop/audit/, docs/audit.md): every successful write through the API appends exactly one
entry with who, what, what it was done to and its before/after; failed writes append none; entries cannot
be changed or removed; GET /audit/ filters and pages them. mongomock for the service's data, Django's test
database (SQLite here, PostgreSQL in CI's second run) for the log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import queue, storage
from loop.accounts.capabilities import Capability, Principal
from loop.audit.models import AppendOnlyError, AuditEntry, AuditEntryQuerySet
from loop.embedded_worker import wait_embedded_idle
from tests.support.api import FULL, READ, VALID_ID, assert_json_error, trigger
from tests.support.worked_example import EXAMPLE_NOW, load_example

pytestmark = pytest.mark.accounts

UTC = dt.UTC
HOURS = [{"dayOfWeek": 0, "start_time_local": "09:00", "end_time_local": "17:00"}]
HOURS_ANSWER = [{"dayOfWeek": 0, "start_time_local": "09:00:00", "end_time_local": "17:00:00"}]
SPECIAL = [{"date_local": "2024-12-25", "start_time_local": None, "end_time_local": None}]


def entries() -> list[AuditEntry]:
    """Every entry, oldest first."""
    return list(AuditEntry.objects.order_by("id"))


def only_entry() -> AuditEntry:
    found = entries()
    assert len(found) == 1, [(e.action, e.target) for e in found]
    return found[0]


@pytest.fixture
def full(api: APIClient, tokens: None) -> APIClient:
    """The API with API_TOKEN set, called with it."""
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {FULL}")
    return api


@pytest.fixture
def no_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Alert deliveries are recorded but not sent (the ids that would have been queued)."""
    queued: list[str] = []
    monkeypatch.setattr(queue, "enqueue_delivery", lambda delivery_id, countdown=0: queued.append(delivery_id))
    return queued


# --- who, from where, which request ------------------------------------------------------------------


def test_an_ingestion_batch_is_one_entry_with_its_counts(full: APIClient) -> None:
    batch = [
        {"store_id": "s1", "status": "active", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
        {"store_id": "s2", "status": "inactive", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
        {"store_id": "s1", "status": "active", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
        {"store_id": "s3", "status": "sleepy", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
    ]
    response = full.post(
        "/store_status/", batch, format="json", HTTP_X_REQUEST_ID="batch-0001", REMOTE_ADDR="198.51.100.7"
    )
    assert response.status_code == 201, response.content
    entry = only_entry()
    assert (entry.action, entry.actor, entry.actor_kind, entry.target) == (
        "polls.ingest",
        "token:API_TOKEN",
        "token",
        "",
    )
    assert entry.detail == {"read": 4, "inserted": 2, "duplicates": 1, "rejected": 1}
    assert (entry.address, entry.request_id) == ("198.51.100.7", "batch-0001")
    assert response["X-Request-ID"] == "batch-0001"
    now = dt.datetime.now(UTC)
    assert now - dt.timedelta(minutes=1) < entry.at <= now


def test_the_open_service_records_anonymous(api: APIClient) -> None:
    assert api.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json").status_code == 200
    entry = only_entry()
    assert (entry.actor, entry.actor_kind) == ("anonymous", "anonymous")
    assert len(entry.request_id) == 32  # made by the middleware when the client sends none


def test_the_read_token_is_named_on_what_it_may_write(
    api: APIClient, mdb: Database, tokens: None, tmp_path: Path
) -> None:
    load_example(mdb, tmp_path)
    response = trigger(api, {"now": EXAMPLE_NOW.isoformat()}, HTTP_AUTHORIZATION=f"Bearer {READ}")
    assert response.status_code == 202, response.content
    entry = only_entry()
    assert (entry.action, entry.actor, entry.target) == (
        "report.trigger",
        "token:API_READ_TOKEN",
        response.json()["report_id"],
    )
    assert entry.detail == {
        "now": "2024-10-07T18:00:00+00:00",
        "force": False,
        "format": "loop",
        "max_gap_minutes": 60,
        "reused": False,
    }


def test_a_principal_is_recorded_by_its_name(api: APIClient) -> None:
    # What accounts' authentication puts in request.auth: a key here.
    key = Principal(kind="key", name="key:lpo_4f2a", capabilities=frozenset({Capability.OPERATE}), key_id="k1")
    api.force_authenticate(token=key)
    assert api.put("/stores/s1/business_hours/", HOURS, format="json").status_code == 200
    entry = only_entry()
    assert (entry.actor, entry.actor_kind) == ("key:lpo_4f2a", "key")


def test_the_open_principal_is_anonymous(api: APIClient) -> None:
    api.force_authenticate(token=Principal(kind="open", name="open", capabilities=frozenset(Capability)))
    assert api.delete("/stores/s1/profile/").status_code == 204
    assert (only_entry().actor, only_entry().actor_kind) == ("anonymous", "anonymous")


def test_a_signed_in_user_is_recorded_by_username(api: APIClient) -> None:
    user = get_user_model().objects.create_user(username="maria", password="not-used-here-1")
    api.force_authenticate(user=user)
    assert api.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json").status_code == 200
    assert (only_entry().actor, only_entry().actor_kind) == ("maria", "user")


# --- each write: action, target, before/after --------------------------------------------------------


def test_hours_record_before_and_after(full: APIClient) -> None:
    assert full.put("/stores/s1/business_hours/", HOURS, format="json").status_code == 200
    assert full.put("/stores/s1/business_hours/", [], format="json").status_code == 200
    first, second = entries()
    assert (first.action, first.target) == ("hours.update", "s1")
    assert first.detail == {"before": [], "after": HOURS_ANSWER}
    assert second.detail == {"before": HOURS_ANSWER, "after": []}


def test_holiday_hours_record_before_and_after(full: APIClient) -> None:
    assert full.put("/stores/s9/special_hours/", SPECIAL, format="json").status_code == 200
    entry = only_entry()
    assert (entry.action, entry.target) == ("special_hours.update", "s9")
    assert entry.detail == {"before": [], "after": SPECIAL}


def test_a_zone_records_before_and_after(full: APIClient) -> None:
    assert full.put("/stores/s1/timezone/", {"timezone_str": "Europe/Berlin"}, format="json").status_code == 200
    entry = only_entry()
    assert (entry.action, entry.target) == ("zone.update", "s1")
    assert entry.detail == {
        "before": {"timezone_str": "America/Chicago", "is_default": True},
        "after": {"timezone_str": "Europe/Berlin", "is_default": False},
    }


def test_a_profile_records_before_and_after_and_its_removal(full: APIClient) -> None:
    body = {"name": "Main St", "brand": "Loop", "region": ""}
    assert full.put("/stores/s1/profile/", body, format="json").status_code == 200
    assert full.delete("/stores/s1/profile/").status_code == 204
    put, removed = entries()
    assert (put.action, put.target, removed.action, removed.target) == ("profile.update", "s1", "profile.delete", "s1")
    nothing = {"name": None, "brand": None, "region": None}
    assert put.detail == {"before": nothing, "after": {"name": "Main St", "brand": "Loop", "region": None}}
    assert removed.detail == {"before": {"name": "Main St", "brand": "Loop", "region": None}, "after": nothing}


def test_deleting_a_report(full: APIClient, mdb: Database) -> None:
    storage.create_report(mdb, "B" * 32, EXAMPLE_NOW)
    storage.fail_report(mdb, "B" * 32, "boom")
    assert full.delete(f"/reports/{'B' * 32}/").status_code == 204
    entry = only_entry()
    assert (entry.action, entry.target, entry.detail) == ("report.delete", "B" * 32, {})


def test_an_upload(full: APIClient) -> None:
    status = SimpleUploadedFile("polls.csv", b"store_id,status,timestamp_utc\ns1,active,2024-10-14 10:00:00 UTC\n")
    response = full.post("/imports/", {"store_status": status}, format="multipart")
    assert response.status_code == 202, response.content
    assert wait_embedded_idle(timeout=30)
    entry = only_entry()
    assert (entry.action, entry.target) == ("import.create", response.json()["import_id"])
    assert entry.detail == {"files": [{"field": "store_status", "name": "polls.csv", "bytes": 64}]}


def test_acknowledging_an_alert(full: APIClient) -> None:
    polls = [
        {"store_id": "a", "status": "active", "timestamp_utc": "2024-10-14 10:00:00 UTC"},
        {"store_id": "a", "status": "inactive", "timestamp_utc": "2024-10-14 11:00:00 UTC"},
    ]
    assert full.post("/store_status/", polls, format="json").status_code == 201
    assert wait_embedded_idle(timeout=30)
    alert_id = full.get("/alerts/").json()["results"][0]["alert_id"]
    acked = full.post(f"/alerts/{alert_id}/ack/", {"by": "maria", "note": "on it"}, format="json")
    assert acked.status_code == 200, acked.content
    ingest, ack = entries()
    assert ingest.action == "polls.ingest"
    assert (ack.action, ack.target, ack.detail) == (
        "alert.ack",
        alert_id,
        {"store_id": "a", "by": "maria", "note": "on it"},
    )


def test_maintenance_windows(full: APIClient) -> None:
    body = {"store_ids": ["s1"], "start": "2024-10-14T02:00:00Z", "end": "2024-10-14T04:00:00Z", "note": "fryer"}
    created = full.post("/maintenance/", body, format="json")
    assert created.status_code == 201, created.content
    window_id = created.json()["window_id"]
    assert full.delete(f"/maintenance/{window_id}/").status_code == 204
    made, removed = entries()
    assert (made.action, made.target, removed.action, removed.target) == (
        "maintenance.create",
        window_id,
        "maintenance.delete",
        window_id,
    )
    expected = {"kind": "one_off", "all": False, "store_ids": ["s1"], "start": "2024-10-14T02:00:00Z"}
    assert {key: made.detail[key] for key in expected} == expected
    assert (made.detail["end"], made.detail["note"]) == ("2024-10-14T04:00:00Z", "fryer")


def test_channels_and_deliveries(full: APIClient, no_sends: list[str]) -> None:
    made = full.post("/channels/", {"name": "mail", "kind": "email", "email": "ops@example.com"}, format="json")
    assert made.status_code == 201, made.content
    channel_id = made.json()["channel_id"]
    secretless = made.json()
    path = f"/channels/{channel_id}/"
    assert full.patch(path, {"enabled": False, "name": "night mail"}, format="json").status_code == 200
    tested = full.post(f"{path}test/")
    assert tested.status_code == 202
    delivery_id = tested.json()["delivery_id"]
    assert full.post(f"/deliveries/{delivery_id}/retry/").status_code == 202
    assert full.delete(path).status_code == 204
    create, update, test, retry, delete = entries()
    assert [e.action for e in entries()] == [
        "channel.create",
        "channel.update",
        "channel.test",
        "delivery.retry",
        "channel.delete",
    ]
    assert [e.target for e in (create, update, test, delete)] == [channel_id] * 4
    assert (create.detail["name"], create.detail["kind"], create.detail["email"]) == (
        "mail",
        "email",
        "ops@example.com",
    )
    assert "secret" not in create.detail and secretless.get("secret") is None
    assert update.detail == {"changes": {"enabled": False, "name": "night mail"}}
    assert test.detail == {"delivery_id": delivery_id}
    assert (retry.target, retry.detail) == (delivery_id, {"channel_id": channel_id, "event_type": "channel.test"})
    assert delete.detail == {}


def test_a_webhook_secret_never_reaches_the_log(full: APIClient, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    made = full.post("/channels/", {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}, format="json")
    assert made.status_code == 201, made.content
    secret = made.json()["secret"]
    assert secret.startswith("whsec_")
    assert secret not in str(only_entry().detail)
    assert only_entry().detail["url"] == "http://127.0.0.1:9/hook"


# --- failed writes and reads append nothing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("put", "/stores/s1/business_hours/", [{"dayOfWeek": 9, "start_time_local": "x", "end_time_local": "y"}], 400),
        ("put", "/stores/s1/timezone/", {"timezone_str": "Mars/Olympus_Mons"}, 400),
        ("put", "/stores/s1/profile/", {"name": ""}, 400),
        ("post", "/store_status/?strict=1", [{"store_id": "s1", "status": "sleepy", "timestamp_utc": "x"}], 400),
        ("delete", f"/reports/{VALID_ID}/", None, 404),
        ("post", f"/alerts/{VALID_ID}/ack/", None, 404),
        ("delete", f"/channels/{VALID_ID}/", None, 404),
        ("post", f"/deliveries/{VALID_ID}/retry/", None, 404),
        ("post", "/maintenance/", {"all": True}, 400),
    ],
)
def test_a_refused_write_appends_nothing(full: APIClient, method: str, path: str, body: Any, status: int) -> None:
    assert_json_error(getattr(full, method)(path, body, format="json"), status)
    assert entries() == []


def test_writes_refused_by_access_append_nothing(api: APIClient, tokens: None) -> None:
    assert_json_error(api.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json"), 401)
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    assert_json_error(api.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json", **read), 403)
    assert entries() == []


def test_reads_append_nothing(full: APIClient) -> None:
    for path in ("/stores/s1/business_hours/", "/reports/", "/alerts/", "/channels/", "/audit/"):
        assert full.get(path).status_code == 200, path
    assert entries() == []


def test_the_accounts_database_away_does_not_undo_the_write(
    full: APIClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(self: AuditEntry, *args: Any, **kwargs: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(AuditEntry, "save", down)
    response = full.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json", HTTP_X_REQUEST_ID="lost-1")
    assert response.status_code == 200
    assert full.get("/stores/s1/timezone/").json()["timezone_str"] == "UTC"
    # The entry is in the log instead, whole.
    lines = [r.getMessage() for r in caplog.records if r.name == "loop.audit.services"]
    assert len(lines) == 1
    assert "audit entry not stored (database is locked)" in lines[0]
    assert '"actor": "token:API_TOKEN", "action": "zone.update", "target": "s1"' in lines[0]
    assert '"request_id": "lost-1"' in lines[0]


# --- append-only -------------------------------------------------------------------------------------


def make(at: dt.datetime, actor: str = "maria", action: str = "hours.update", target: str = "s1") -> AuditEntry:
    return AuditEntry.objects.create(at=at, actor=actor, actor_kind="user", action=action, target=target)


@pytest.mark.django_db
def test_entries_cannot_be_changed_or_removed() -> None:
    entry = make(dt.datetime(2024, 10, 14, 10, tzinfo=UTC))
    entry.actor = "someone-else"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(id=entry.id).update(actor="someone-else")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    assert [(e.actor, e.action) for e in AuditEntry.objects.all()] == [("maria", "hours.update")]


@pytest.mark.django_db
def test_the_admin_shows_entries_read_only() -> None:
    from django.test import RequestFactory, modify_settings

    # The admin is another part's (accounts); the audit app must work with and without it.
    with modify_settings(INSTALLED_APPS={"append": "django.contrib.admin"}):
        from django.contrib.admin.sites import AdminSite

        from loop.audit.admin import AuditEntryAdmin

        admin = AuditEntryAdmin(AuditEntry, AdminSite())
        request = RequestFactory().get("/admin/audit/auditentry/")
        entry = make(dt.datetime(2024, 10, 14, 10, tzinfo=UTC))
        assert not admin.has_add_permission(request)
        assert not admin.has_change_permission(request, entry)
        assert not admin.has_delete_permission(request, entry)
        assert admin.check() == []


# --- GET /audit/ ---------------------------------------------------------------------------------------


def at(hour: int) -> dt.datetime:
    return dt.datetime(2024, 10, 14, hour, tzinfo=UTC)


def listed(api: APIClient, **query: Any) -> dict[str, Any]:
    response = api.get("/audit/", query)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_log_is_newest_first_with_utc_times(full: APIClient) -> None:
    first = make(at(10), target="s1")
    make(at(11), actor="key:lpi_9", action="polls.ingest", target="")
    body = listed(full)
    assert body["next_cursor"] is None and body["limit"] == 20
    assert [(e["actor"], e["action"], e["at"]) for e in body["results"]] == [
        ("key:lpi_9", "polls.ingest", "2024-10-14T11:00:00Z"),
        ("maria", "hours.update", "2024-10-14T10:00:00Z"),
    ]
    assert body["results"][1] == {
        "id": first.id,
        "at": "2024-10-14T10:00:00Z",
        "actor": "maria",
        "actor_kind": "user",
        "action": "hours.update",
        "target": "s1",
        "detail": {},
        "address": "",
        "request_id": "",
    }


def test_filters_by_actor_action_family_and_time(full: APIClient) -> None:
    make(at(9), action="hours.update", target="a")
    make(at(10), action="hours.delete", target="b")
    make(at(11), action="special_hours.update", target="c")
    make(at(12), action="hoursx.update", target="d")
    make(at(13), actor="token:API_TOKEN", action="hours.update", target="e")

    def targets(**query: Any) -> list[str]:
        return [e["target"] for e in listed(full, **query)["results"]]

    assert targets(actor="maria") == ["d", "c", "b", "a"]
    assert targets(actor="token:API_TOKEN") == ["e"]
    assert targets(actor="mari") == []  # exact, not a prefix
    assert targets(action="hours.update") == ["e", "a"]
    assert targets(action="hours.") == ["e", "b", "a"]  # the family, not hoursx nor special_hours
    assert targets(action="hours") == []
    assert targets(since="2024-10-14T10:00:00Z", until="2024-10-14T12:00:00Z") == ["c", "b"]  # since in, until out
    assert targets(since="2024-10-14T12:00:00Z", actor="maria", action="hours.") == []


def test_pages_by_cursor(full: APIClient) -> None:
    made = [make(at(8 + n), target=f"t{n}") for n in range(5)]
    first = listed(full, limit=2)
    assert [e["target"] for e in first["results"]] == ["t4", "t3"]
    assert first["next_cursor"] == str(made[3].id)
    # An entry appended meanwhile does not shift the next pages.
    make(at(20), target="new")
    second = listed(full, limit=2, cursor=first["next_cursor"])
    assert [e["target"] for e in second["results"]] == ["t2", "t1"]
    third = listed(full, limit=2, cursor=second["next_cursor"])
    assert [e["target"] for e in third["results"]] == ["t0"]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "0"}, "cursor"),
        ({"cursor": "abc"}, "cursor"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-01T00:00:00Z"}, "until"),
        ({"since": "2024-10-14T12:00:00Z", "until": "2024-10-14T12:00:00Z"}, "until"),
        ({"actor": "x" * 151}, "actor"),
        ({"who": "maria"}, "unexpected field(s): who"),
    ],
)
def test_bad_queries_are_400_json(full: APIClient, query: dict[str, str], field: str) -> None:
    body = assert_json_error(full.get("/audit/", query), 400)
    assert field in body["error"]


def test_the_log_needs_a_token_when_the_server_sets_one(api: APIClient, tokens: None) -> None:
    assert_json_error(api.get("/audit/"), 401)


def test_the_accounts_database_away_is_a_503(full: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(self: AuditEntryQuerySet) -> None:
        raise OperationalError("unable to open database file")

    monkeypatch.setattr(AuditEntryQuerySet, "_fetch_all", down)
    body = assert_json_error(full.get("/audit/"), 503)
    assert body["error"] == "The accounts database is unavailable; try again later."
