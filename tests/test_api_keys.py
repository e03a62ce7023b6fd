"""API keys and who a request is: POST/GET/DELETE /keys/, GET /me/, sessions and CSRF, the faults of issue 18.

Keys are answered once and stored hashed; a key never does more than its owner's role or its creator;
revoked, expired (by the server's clock) and orphaned keys are 401 at once; a request authenticated at
its start completes even if its key is revoked meanwhile.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from loop.accounts.capabilities import Role, Scope
from loop.accounts.models import ApiKey
from loop.accounts.sessions import SessionStore
from loop.api import access, uploads
from loop.storage.schema import IMPORT_FILES
from tests.support.accounts import bearer, make_key, make_user
from tests.support.api import FULL, READ, assert_json_error

pytestmark = [pytest.mark.accounts, pytest.mark.django_db]

KEY_SHAPE = re.compile(r"lp[riao]_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def auth(mdb: Any, tokens: None) -> None:
    """AUTH_REQUIRED on (the tokens fixture), with the in-memory store."""


@pytest.fixture
def people(auth: None) -> SimpleNamespace:
    return SimpleNamespace(
        viewer=make_user("vera", Role.VIEWER),
        operator=make_user("otto", Role.OPERATOR),
        admin=make_user("ada", Role.ADMIN),
        poller=make_user("poller", Role.OPERATOR),
    )


def session(user: Any, *, csrf: bool = False) -> APIClient:
    client = APIClient(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def create(client: APIClient, **body: Any) -> Any:
    return client.post("/keys/", body, format="json")


# --- created once, listed by prefix, stored hashed -------------------------------------------------


def test_a_key_is_answered_once_and_then_only_its_prefix(people: SimpleNamespace) -> None:
    client = session(people.viewer)
    response = create(client, name="laptop", scope="read")
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    key = body["key"]
    assert KEY_SHAPE.fullmatch(key) and key.startswith("lpr_") and key.startswith(body["prefix"] + "_")
    assert len(body["prefix"]) == 12
    assert (body["name"], body["scope"], body["owner"], body["expires_at"]) == ("laptop", "read", "vera", None)
    listed = client.get("/keys/")
    assert listed.status_code == 200
    assert key not in listed.content.decode() and key[13:] not in listed.content.decode()
    [item] = listed.json()["results"]
    assert item["key_id"] == body["key_id"] and item["prefix"] == body["prefix"]
    assert "key" not in item and "digest" not in item
    # The key works, and says who it is.
    me = APIClient().get("/me/", **bearer(key)).json()
    assert me == {
        "name": f"key:{body['prefix']}",
        "kind": "key",
        "role": None,
        "scope": "read",
        "capabilities": ["read"],
    }


def test_the_database_row_holds_no_key(people: SimpleNamespace) -> None:
    key = create(session(people.operator), name="ci", scope="operate").json()["key"]
    row = ApiKey.objects.get(prefix=key[:12])
    stored = " ".join(str(value) for value in ApiKey.objects.filter(pk=row.pk).values().first().values())
    secret = key[13:]
    assert secret not in stored and key not in stored
    assert re.fullmatch(r"[0-9a-f]{64}", row.digest)


def test_each_scope_has_its_visible_prefix(people: SimpleNamespace) -> None:
    client = session(people.admin)
    prefixes = {scope: create(client, name=scope, scope=scope).json()["prefix"][:4] for scope in Scope}
    assert prefixes == {"read": "lpr_", "ingest": "lpi_", "operate": "lpo_", "admin": "lpa_"}


def test_a_tampered_or_unknown_key_is_401_without_saying_more(people: SimpleNamespace) -> None:
    key, _ = make_key(people.viewer, Scope.READ)
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "lpa_" + key[4:], "lpr_ZZZZZZZZ_" + "x" * 43):
        response = APIClient().get("/reports/", **bearer(wrong))
        assert assert_json_error(response, 401)["error"] == "Invalid API token or key."
        assert response["WWW-Authenticate"].startswith("Bearer")


# --- scopes never wider than the owner or the creator ----------------------------------------------


def test_an_operator_may_not_create_an_admin_key(people: SimpleNamespace) -> None:
    client = session(people.operator)
    error = assert_json_error(create(client, name="x", scope="admin"), 403)["error"]
    assert "otto is operator" in error
    assert create(client, name="x", scope="operate").status_code == 201
    assert ApiKey.objects.filter(scope="admin").count() == 0


def test_a_key_may_not_create_a_wider_key_nor_an_ingest_key_any(people: SimpleNamespace) -> None:
    read_key, _ = make_key(people.operator, Scope.READ)
    client = APIClient()
    response = client.post("/keys/", {"name": "x", "scope": "operate"}, format="json", **bearer(read_key))
    assert "would do more than the caller" in assert_json_error(response, 403)["error"]
    assert client.post("/keys/", {"name": "x", "scope": "read"}, format="json", **bearer(read_key)).status_code == 201
    ingest_key, _ = make_key(people.poller, Scope.INGEST)
    response = client.post("/keys/", {"name": "x", "scope": "ingest"}, format="json", **bearer(ingest_key))
    assert "may not read" in assert_json_error(response, 403)["error"]


def test_only_an_admin_creates_keys_for_others(people: SimpleNamespace) -> None:
    error = assert_json_error(create(session(people.operator), name="x", scope="ingest", owner="poller"), 403)
    assert error["error"] == "Only an admin may create a key for another user."
    created = create(session(people.admin), name="poller eu-1", scope="ingest", owner="poller")
    assert created.status_code == 201 and created.json()["owner"] == "poller"
    # A viewer cannot hold an operate key, even from an admin.
    assert_json_error(create(session(people.admin), name="x", scope="operate", owner="vera"), 403)


def test_static_tokens_need_an_owner_and_the_read_token_cannot_name_one(people: SimpleNamespace) -> None:
    full = APIClient()
    full.credentials(**bearer(FULL))
    assert "name the key's owner" in assert_json_error(create(full, name="x", scope="read"), 403)["error"]
    assert create(full, name="bootstrap", scope="admin", owner="ada").status_code == 201
    read = APIClient()
    read.credentials(**bearer(READ))
    assert_json_error(create(read, name="x", scope="read", owner="vera"), 403)
    assert ApiKey.objects.count() == 1


def test_sql_looking_owner_names_are_just_names(people: SimpleNamespace) -> None:
    users = get_user_model().objects.count()
    for name in ("' OR '1'='1", "ada' --", 'ada"; DROP TABLE auth_user; --'):
        response = create(session(people.admin), name="x", scope="read", owner=name)
        assert assert_json_error(response, 400)["fields"] == {"owner": "No such user."}
    assert get_user_model().objects.count() == users and ApiKey.objects.count() == 0


def test_bad_bodies_are_400(people: SimpleNamespace) -> None:
    client = session(people.admin)
    assert_json_error(create(client, name="x", scope="root"), 400)
    assert_json_error(create(client, scope="read"), 400)
    assert_json_error(create(client, name="x", scope="read", colour="red"), 400)
    past = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    assert "in the future" in assert_json_error(create(client, name="x", scope="read", expires_at=past), 400)["error"]


# --- revoked, expired, orphaned -----------------------------------------------------------------------


def test_a_revoked_key_is_401_at_once_and_revoking_is_idempotent(people: SimpleNamespace) -> None:
    owner = session(people.viewer)
    body = create(owner, name="x", scope="read").json()
    assert APIClient().get("/reports/", **bearer(body["key"])).status_code == 200
    assert owner.delete(f"/keys/{body['key_id']}/").status_code == 204
    response = APIClient().get("/reports/", **bearer(body["key"]))
    assert assert_json_error(response, 401)["error"] == f"This API key ({body['prefix']}) was revoked."
    first = ApiKey.objects.get(pk=body["key_id"]).revoked_at
    assert owner.delete(f"/keys/{body['key_id']}/").status_code == 204
    assert ApiKey.objects.get(pk=body["key_id"]).revoked_at == first


def test_only_the_owner_or_an_admin_revokes(people: SimpleNamespace) -> None:
    _, row = make_key(people.operator, Scope.READ)
    assert_json_error(session(people.viewer).delete(f"/keys/{row.pk}/"), 404)  # not even confirmed
    assert ApiKey.objects.get(pk=row.pk).revoked_at is None
    assert session(people.admin).delete(f"/keys/{row.pk}/").status_code == 204
    assert ApiKey.objects.get(pk=row.pk).revoked_at is not None
    assert_json_error(session(people.admin).delete("/keys/not-an-id/"), 404)


def test_lists_show_own_keys_and_admins_see_all(people: SimpleNamespace) -> None:
    make_key(people.viewer, Scope.READ, name="v")
    make_key(people.operator, Scope.OPERATE, name="o")
    assert [k["name"] for k in session(people.viewer).get("/keys/").json()["results"]] == ["v"]
    everyone = session(people.admin).get("/keys/").json()
    assert everyone["count"] == 2 and {k["owner"] for k in everyone["results"]} == {"vera", "otto"}


def test_expiry_is_by_the_server_clock_to_the_instant(people: SimpleNamespace, monkeypatch: Any) -> None:
    expiry = dt.datetime(2031, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    key, row = make_key(people.viewer, Scope.READ, expires_at=expiry)
    for now, status in [
        (expiry - dt.timedelta(seconds=1), 200),
        (expiry, 401),  # exactly now: refused
        (expiry + dt.timedelta(seconds=1), 401),
    ]:
        monkeypatch.setattr(access, "timezone", SimpleNamespace(now=lambda now=now: now))
        response = APIClient().get("/reports/", **bearer(key))
        assert response.status_code == status, (now, response.content)
    assert response.json()["error"] == f"This API key ({row.prefix}) expired at 2031-05-01T12:00:00+00:00."


def test_a_key_follows_its_owner(people: SimpleNamespace) -> None:
    key, row = make_key(people.operator, Scope.OPERATE)
    client = APIClient()
    client.credentials(**bearer(key))
    assert client.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json").status_code == 200
    # Demoted: the key keeps only what the new role allows.
    people.operator.groups.clear()
    people.operator.groups.add(Group.objects.get(name="viewer"))
    assert client.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json").status_code == 403
    assert client.get("/stores/s1/timezone/").status_code == 200
    # Deactivated: refused altogether.
    people.operator.is_active = False
    people.operator.save()
    error = assert_json_error(client.get("/stores/s1/timezone/"), 401)["error"]
    assert error == f"This API key's ({row.prefix}) owner is deactivated or has no role."


@pytest.mark.parametrize(
    ("groups", "superuser", "capabilities"),
    [
        (["strangers", "viewer"], False, ["read"]),  # a group that is no role does not hide the role
        (["viewer", "operator", "strangers"], False, ["read", "ingest", "operate"]),  # the highest role
        (["strangers"], False, None),  # no role: refused
        ([], False, None),
        ([], True, ["read", "ingest", "operate"]),  # a superuser is an admin, within the key's operate scope
    ],
)
def test_a_keys_owner_role_comes_with_its_one_lookup(
    people: SimpleNamespace, groups: list[str], superuser: bool, capabilities: list[str] | None
) -> None:
    owner = make_user("kim", Role.OPERATOR)
    key, row = make_key(owner, Scope.OPERATE)
    owner.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    owner.is_superuser = superuser
    owner.save()
    client = APIClient()
    client.credentials(**bearer(key))
    client.get("/me/")  # last_used_at written once; not part of the count below
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/me/")
    if capabilities is None:
        assert (
            assert_json_error(response, 401)["error"]
            == f"This API key's ({row.prefix}) owner is deactivated or has no role."
        )
    else:
        assert response.status_code == 200, response.content
        assert response.json()["capabilities"] == capabilities
    # The key, its owner's flags and role groups in one query; /me/ reads the key's scope (one more) when known.
    lookups = [q["sql"] for q in queries.captured_queries if "accounts_apikey" in q["sql"]]
    assert len(lookups) == (2 if capabilities is not None else 1), lookups
    assert not [q for q in queries.captured_queries if 'FROM "auth_user"' in q["sql"]]  # the owner is not loaded


def test_a_key_revoked_during_its_upload_completes_that_upload_only(people: SimpleNamespace, monkeypatch: Any) -> None:
    key, row = make_key(people.poller, Scope.INGEST)
    original = uploads.GridFSUploadHandler.receive_data_chunk
    revoked_mid_body = []

    def revoke_then_receive(self: Any, raw_data: bytes, start: int) -> Any:
        if not revoked_mid_body:
            ApiKey.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
            revoked_mid_body.append(start)
        return original(self, raw_data, start)

    monkeypatch.setattr(uploads.GridFSUploadHandler, "receive_data_chunk", revoke_then_receive)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("store_status.csv", "store_id,status,timestamp_utc\ns1,active,2024-10-14 10:14:00 UTC\n")
    archive_file = SimpleUploadedFile("loop.zip", buffer.getvalue())
    client = APIClient()
    client.credentials(**bearer(key))
    response = client.post("/imports/", {"archive": archive_file}, format="multipart")
    assert revoked_mid_body == [0]
    assert response.status_code == 202, response.content  # authenticated when it started: it completes
    again = client.post("/imports/", {}, format="multipart")
    assert "was revoked" in assert_json_error(again, 401)["error"]


# --- last used, without a write per request ---------------------------------------------------------


def test_last_used_is_written_at_most_once_per_interval(people: SimpleNamespace, settings: Any) -> None:
    settings.KEY_LAST_USED_INTERVAL = 300
    key, row = make_key(people.viewer, Scope.READ)
    assert row.last_used_at is None
    client = APIClient()
    client.credentials(**bearer(key))
    assert client.get("/me/").status_code == 200
    first = ApiKey.objects.get(pk=row.pk).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/me/").status_code == 200
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert ApiKey.objects.get(pk=row.pk).last_used_at == first
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=first - dt.timedelta(seconds=301))
    assert client.get("/me/").status_code == 200
    assert ApiKey.objects.get(pk=row.pk).last_used_at > first - dt.timedelta(seconds=1)


# --- sessions, CSRF, /me/ ---------------------------------------------------------------------------


def test_a_session_write_without_its_csrf_token_is_403_json(people: SimpleNamespace) -> None:
    client = session(people.operator, csrf=True)
    assert client.get("/stores/s1/timezone/").status_code == 200  # reads need no token
    response = client.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json")
    assert "CSRF check failed" in assert_json_error(response, 403)["error"]
    token = "a" * 32
    client.cookies["csrftoken"] = token
    response = client.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    # A bearer key is not a cookie a browser sends by itself: no CSRF token needed.
    key, _ = make_key(people.operator, Scope.OPERATE)
    bare = APIClient(enforce_csrf_checks=True)
    assert bare.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json", **bearer(key)).status_code == 200


def _zip_upload() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("store_status.csv", "store_id,status,timestamp_utc\ns1,active,2024-10-14 10:14:00 UTC\n")
    return SimpleUploadedFile("loop.zip", buffer.getvalue())


@pytest.mark.parametrize("required", [True, False])
def test_a_session_upload_streams_into_gridfs_and_takes_its_csrf_token_from_the_header(
    people: SimpleNamespace, settings: Any, mdb: Any, required: bool
) -> None:
    # Django's CSRF check looks for a form field first, which would parse the multipart body with Django's
    # own upload handlers (memory, temporary files) before the GridFS one and its size limit.
    settings.AUTH_REQUIRED = required
    client = session(people.operator, csrf=True)
    token = "b" * 32
    client.cookies["csrftoken"] = token
    response = client.post("/imports/", {"archive": _zip_upload()}, format="multipart", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202, response.content
    assert mdb[IMPORT_FILES].count_documents({}) == 1  # stored by loop.api.uploads, in GridFS
    if required:
        refused = client.post("/imports/", {"archive": _zip_upload()}, format="multipart")
        assert "CSRF check failed" in assert_json_error(refused, 403)["error"]


def test_me_answers_each_kind_of_caller(people: SimpleNamespace) -> None:
    assert session(people.operator).get("/me/").json() == {
        "name": "otto",
        "kind": "user",
        "role": "operator",
        "scope": None,
        "capabilities": ["read", "ingest", "operate"],
    }
    ingest_key, row = make_key(people.poller, Scope.INGEST)
    me = APIClient().get("/me/", **bearer(ingest_key)).json()  # may ask who it is, though it may not read
    assert (me["name"], me["scope"], me["capabilities"]) == (f"key:{row.prefix}", "ingest", ["ingest"])
    me = APIClient().get("/me/", **bearer(READ)).json()
    assert (me["name"], me["kind"], me["capabilities"]) == ("token:API_READ_TOKEN", "token", ["read"])
    assert_json_error(APIClient().get("/me/"), 401)


def test_a_user_without_a_role_is_known_but_may_nothing(people: SimpleNamespace) -> None:
    people.viewer.groups.clear()
    client = session(people.viewer)
    assert client.get("/me/").json()["capabilities"] == []
    assert "nothing (no role)" in assert_json_error(client.get("/reports/"), 403)["error"]


def test_when_open_everyone_is_the_open_principal(people: SimpleNamespace, settings: Any) -> None:
    settings.AUTH_REQUIRED = False
    assert APIClient().get("/me/").json()["name"] == "anonymous"
    assert APIClient().get("/me/", **bearer("whatever")).json()["kind"] == "open"  # headers are not read
    assert session(people.viewer).get("/me/").json() == {
        "name": "vera",
        "kind": "open",
        "role": None,
        "scope": None,
        "capabilities": ["read", "ingest", "operate", "admin"],
    }


def test_when_open_a_forged_session_write_is_not_recorded_under_the_user(
    people: SimpleNamespace, settings: Any
) -> None:
    settings.AUTH_REQUIRED = False
    factory = APIRequestFactory(enforce_csrf_checks=True)
    authenticator = access.PrincipalAuthentication()
    for method, name in (("get", "vera"), ("post", "anonymous")):
        request = getattr(factory, method)("/keys/")
        request.user = people.viewer  # what AuthenticationMiddleware leaves for a session
        _, principal = authenticator.authenticate(Request(request))
        assert principal.name == name, method


# --- the accounts database down ---------------------------------------------------------------------


def test_accounts_database_down_is_503_for_keys_and_sessions_only(people: SimpleNamespace, monkeypatch: Any) -> None:
    key, _ = make_key(people.viewer, Scope.READ)
    client = session(people.viewer)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(ApiKey.objects, "raw", down)  # the key's lookup (selectors.key_by_prefix)
    monkeypatch.setattr(SessionStore, "_get_session_from_db", down)  # the session's row (SESSION_ENGINE)
    for response in (APIClient().get("/reports/", **bearer(key)), client.get("/reports/")):
        assert assert_json_error(response, 503)["error"] == "The accounts database is unavailable; try again later."
    # What needs no accounts database keeps working.
    assert APIClient().get("/reports/", **bearer(FULL)).status_code == 200
    assert APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").status_code == 200
    assert_json_error(APIClient().get("/reports/"), 401)  # no session cookie: nothing to look up


def test_the_django_admin_is_mounted(auth: None) -> None:
    response = APIClient().get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
