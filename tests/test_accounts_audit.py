"""The audit log of keys, users and groups (docs/audit.md): POST /keys/ and DELETE /keys/<id>/, the Django admin's
user, group and key pages, and the create_account / create_key commands each append their entry, with who, what,
the target and a detail that never holds a key or a password; the admin keeps the role groups' names. Also who
the open service records: the signed-in user by name."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from loop.accounts.capabilities import Role, Scope
from loop.accounts.models import ApiKey
from loop.audit.models import AuditEntry
from tests.support.accounts import bearer, make_key, make_user
from tests.support.api import FULL, assert_json_error

pytestmark = [pytest.mark.accounts, pytest.mark.django_db]

PASSWORD = "Tall-Harbour-Lantern-58"  # passes the password validators
NEW_PASSWORD = "Quiet-Meadow-Copper-91"


def entries() -> list[AuditEntry]:
    """Every entry, oldest first."""
    return list(AuditEntry.objects.order_by("id"))


def summary(entry: AuditEntry) -> tuple[str, str, str, str]:
    return entry.actor, entry.actor_kind, entry.action, entry.target


@pytest.fixture
def fast_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(mdb: Any, tokens: None) -> SimpleNamespace:
    return SimpleNamespace(
        viewer=make_user("vera", Role.VIEWER),
        operator=make_user("otto", Role.OPERATOR),
        admin=make_user("ada", Role.ADMIN),
    )


def session(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


# --- POST /keys/, DELETE /keys/<id>/ ---------------------------------------------------------------------


def test_creating_a_key_records_what_the_list_shows_never_the_key(people: SimpleNamespace) -> None:
    client = session(people.admin)
    body = {"name": "poller eu-1", "scope": "ingest", "owner": "otto", "expires_at": "2030-01-01T00:00:00Z"}
    response = client.post("/keys/", body, format="json", HTTP_X_REQUEST_ID="make-key-1", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 201, response.content
    created = response.json()
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "key.create", created["key_id"])
    assert entry.detail == {
        "prefix": created["prefix"],
        "name": "poller eu-1",
        "scope": "ingest",
        "owner": "otto",
        "expires_at": "2030-01-01T00:00:00Z",
    }
    assert (entry.request_id, entry.address) == ("make-key-1", "203.0.113.9")
    assert created["key"] not in str(entry.detail) and created["key"][13:] not in str(entry.detail)


def test_a_static_token_creating_a_key_is_the_actor(people: SimpleNamespace) -> None:
    api = APIClient()
    response = api.post("/keys/", {"name": "ro", "scope": "read", "owner": "vera"}, format="json", **bearer(FULL))
    assert response.status_code == 201, response.content
    (entry,) = entries()
    assert summary(entry) == ("token:API_TOKEN", "token", "key.create", response.json()["key_id"])
    assert (entry.detail["owner"], entry.detail["expires_at"]) == ("vera", None)


def test_a_refused_key_creation_appends_nothing(people: SimpleNamespace) -> None:
    # An operator may not make an admin key (wider than the role), nor a key for someone else.
    client = session(people.operator)
    assert_json_error(client.post("/keys/", {"name": "x", "scope": "admin"}, format="json"), 403)
    assert_json_error(client.post("/keys/", {"name": "x", "scope": "read", "owner": "vera"}, format="json"), 403)
    assert entries() == []


def test_revoking_a_key_records_it_and_a_second_revoke_says_already(people: SimpleNamespace) -> None:
    key, row = make_key(people.operator, Scope.OPERATE, name="automation")
    client = APIClient()
    assert client.delete(f"/keys/{row.id}/", **bearer(key), HTTP_X_REQUEST_ID="revoke-1").status_code == 204
    # The revoked key cannot revoke again; its owner (signed in) can, which changes nothing.
    assert client.delete(f"/keys/{row.id}/", **bearer(key)).status_code == 401
    assert session(people.operator).delete(f"/keys/{row.id}/").status_code == 204
    first, second = entries()
    expected = {"prefix": row.prefix, "name": "automation", "scope": "operate", "owner": "otto", "expires_at": None}
    assert summary(first) == (f"key:{row.prefix}", "key", "key.revoke", row.id)
    assert (first.detail, first.request_id) == ({**expected, "already_revoked": False}, "revoke-1")
    assert summary(second) == ("otto", "user", "key.revoke", row.id)
    assert second.detail == {**expected, "already_revoked": True}


def test_revoking_someone_elses_key_is_404_and_appends_nothing(people: SimpleNamespace) -> None:
    _, row = make_key(people.operator, Scope.READ)
    assert_json_error(session(people.viewer).delete(f"/keys/{row.id}/"), 404)
    assert entries() == []


# --- the commands --------------------------------------------------------------------------------------


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_create_account_records_the_account_then_its_changes(
    fast_hashing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("create_account", "poller", "--role", "operator", "--no-password")
    monkeypatch.setenv("NEW_PW", PASSWORD)
    run("create_account", "poller", "--role", "viewer", "--password-from-env", "NEW_PW")
    made, changed, password = entries()
    assert summary(made) == ("manage.py", "command", "user.create", "poller")
    operator = {
        "username": "poller",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
        "groups": ["operator"],
        "role": "operator",
    }
    assert made.detail == {**operator, "password": "unusable"}
    assert (made.request_id, made.address) == ("", "")
    assert summary(changed) == ("manage.py", "command", "user.update", "poller")
    assert changed.detail == {"before": operator, "after": {**operator, "groups": ["viewer"], "role": "viewer"}}
    assert summary(password) == ("manage.py", "command", "user.password", "poller")
    assert password.detail == {"password": "set"}
    assert PASSWORD not in str([e.detail for e in entries()])


def test_create_account_without_a_password_change_records_no_password_entry() -> None:
    run("create_account", "root", "--role", "admin", "--no-password")
    run("create_account", "root", "--role", "admin")
    assert [e.action for e in entries()] == ["user.create", "user.update"]
    after = entries()[1].detail["after"]
    assert (after["is_superuser"], after["is_staff"], after["role"]) == (True, True, "admin")


def test_create_key_records_the_key_not_its_text() -> None:
    make_user("poller", Role.OPERATOR)
    key = run("create_key", "poller", "--name", "poller eu-1", "--scope", "ingest").strip()
    (entry,) = entries()
    row = ApiKey.objects.get()
    assert summary(entry) == ("manage.py", "command", "key.create", row.id)
    assert entry.detail == {
        "prefix": row.prefix,
        "name": "poller eu-1",
        "scope": "ingest",
        "owner": "poller",
        "expires_at": None,
    }
    assert key.startswith(row.prefix + "_") and key not in str(entry.detail)


# --- the Django admin ----------------------------------------------------------------------------------


@pytest.fixture
def admin_site(fast_hashing: None) -> Client:
    """A superuser signed in to /admin/."""
    client = Client()
    client.force_login(make_user("ada", Role.ADMIN))
    return client


def change_form(user: Any, **changes: Any) -> dict[str, Any]:
    """The admin's user change form as submitted, with ``changes`` over the user's current values."""
    form: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [str(g.pk) for g in user.groups.all()],
        "user_permissions": [],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        **changes,
    }
    return {k: v for k, v in form.items() if v != ""}  # an unticked box is absent


def test_the_admin_records_a_user_added(admin_site: Client) -> None:
    body = {"username": "maria", "usable_password": "true", "password1": PASSWORD, "password2": PASSWORD}
    response = admin_site.post("/admin/auth/user/add/", body, HTTP_X_REQUEST_ID="add-maria", REMOTE_ADDR="192.0.2.4")
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = [e for e in entries() if e.action != "user.update"]
    assert summary(entry) == ("ada", "user", "user.create", "maria")
    assert entry.detail == {
        "username": "maria",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
        "groups": [],
        "role": None,
        "password": "set",
    }
    assert (entry.request_id, entry.address) == ("add-maria", "192.0.2.4")
    assert PASSWORD not in str(entry.detail) and "md5$" not in str(entry.detail)


def test_the_admin_records_a_change_with_before_and_after(admin_site: Client) -> None:
    vera = make_user("vera", Role.VIEWER)
    operator = Group.objects.get(name="operator")
    form = change_form(vera, is_active="", groups=[str(operator.pk)], email="vera@example.com")
    response = admin_site.post(f"/admin/auth/user/{vera.pk}/change/", form, HTTP_X_REQUEST_ID="change-vera")
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "user.update", "vera")
    before = {
        "username": "vera",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
        "groups": ["viewer"],
        "role": "viewer",
        "permissions": [],
    }
    # Deactivated: no role, whatever the groups say.
    after = {**before, "is_active": False, "groups": ["operator"], "role": None}
    assert entry.detail == {"before": before, "after": after}
    assert entry.request_id == "change-vera"
    vera.refresh_from_db()
    assert not vera.is_active


def test_the_admin_records_a_superuser_granted(admin_site: Client) -> None:
    otto = make_user("otto", Role.OPERATOR)
    response = admin_site.post(f"/admin/auth/user/{otto.pk}/change/", change_form(otto, is_superuser="on"))
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert (entry.detail["before"]["is_superuser"], entry.detail["before"]["role"]) == (False, "operator")
    assert (entry.detail["after"]["is_superuser"], entry.detail["after"]["role"]) == (True, "admin")


def test_the_admin_records_a_users_own_permissions_changed(admin_site: Client) -> None:
    # A staff member's own permissions say what they may do in /admin/: a change of them alone is visible.
    otto = make_user("otto", Role.OPERATOR)
    granted = Permission.objects.get(codename="change_user")
    form = change_form(otto, is_staff="on", user_permissions=[str(granted.pk)])
    response = admin_site.post(f"/admin/auth/user/{otto.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert (entry.detail["before"]["permissions"], entry.detail["before"]["is_staff"]) == ([], False)
    assert (entry.detail["after"]["permissions"], entry.detail["after"]["is_staff"]) == (["auth.change_user"], True)


def test_the_admin_records_a_staff_members_own_password_change(fast_hashing: None) -> None:
    ada = make_user("ada", Role.ADMIN)
    ada.set_password(PASSWORD)
    ada.save()
    client = Client()
    client.force_login(ada)
    body = {"old_password": "not it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert client.post("/admin/password_change/", body).status_code == 200  # the form again: nothing changed
    assert entries() == []
    body["old_password"] = PASSWORD
    response = client.post("/admin/password_change/", body, HTTP_X_REQUEST_ID="own-pw", REMOTE_ADDR="192.0.2.8")
    assert response.status_code == 302 and response["Location"] == "/admin/password_change/done/"
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "user.password", "ada")
    assert (entry.detail, entry.request_id, entry.address) == ({"password": "set"}, "own-pw", "192.0.2.8")
    ada.refresh_from_db()
    assert ada.check_password(NEW_PASSWORD)
    # Still signed in (Django keeps the session that changed the password); the page needs staff, as before.
    assert client.get("/admin/password_change/").status_code == 200
    assert Client().get("/admin/password_change/").status_code == 302


def test_the_admin_records_a_password_change_without_the_password(admin_site: Client) -> None:
    otto = make_user("otto", Role.OPERATOR)
    body = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    response = admin_site.post(f"/admin/auth/user/{otto.pk}/password/", body, HTTP_X_REQUEST_ID="pw-otto")
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "user.password", "otto")
    assert (entry.detail, entry.request_id) == ({"password": "set"}, "pw-otto")
    otto.refresh_from_db()
    assert otto.check_password(NEW_PASSWORD)


def test_the_admin_records_a_user_deleted_with_their_keys(admin_site: Client) -> None:
    otto = make_user("otto", Role.OPERATOR)
    _, row = make_key(otto, Scope.INGEST)
    response = admin_site.post(f"/admin/auth/user/{otto.pk}/delete/", {"post": "yes"}, HTTP_X_REQUEST_ID="del-otto")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not get_user_model().objects.filter(username="otto").exists()
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "user.delete", "otto")
    assert (entry.detail["role"], entry.detail["keys_deleted"], entry.request_id) == (
        "operator",
        [row.prefix],
        "del-otto",
    )


def test_the_admin_records_each_user_of_a_bulk_delete(admin_site: Client) -> None:
    users = [make_user(name, Role.VIEWER) for name in ("u1", "u2")]
    body = {"action": "delete_selected", "_selected_action": [str(u.pk) for u in users], "post": "yes"}
    response = admin_site.post("/admin/auth/user/", body)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert sorted((e.action, e.target) for e in entries()) == [("user.delete", "u1"), ("user.delete", "u2")]


def test_the_admin_records_keys_revoked_and_changed(admin_site: Client) -> None:
    vera = make_user("vera", Role.VIEWER)
    _, first = make_key(vera, Scope.READ, name="laptop")
    _, second = make_key(vera, Scope.READ, name="phone")
    body = {"action": "revoke", "_selected_action": [first.pk, second.pk]}
    assert admin_site.post("/admin/accounts/apikey/", body).status_code == 302
    assert admin_site.post("/admin/accounts/apikey/", body).status_code == 302  # already revoked: no entries
    revokes = entries()
    assert sorted((e.detail["name"], e.action, e.target) for e in revokes) == [
        ("laptop", "key.revoke", first.pk),
        ("phone", "key.revoke", second.pk),
    ]
    form = {"name": "old laptop", "expires_at_0": "2031-02-03", "expires_at_1": "04:05:06"}
    response = admin_site.post(f"/admin/accounts/apikey/{first.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    changed = entries()[-1]
    assert summary(changed) == ("ada", "user", "key.update", first.pk)
    assert (changed.detail["before"]["name"], changed.detail["before"]["expires_at"]) == ("laptop", None)
    assert (changed.detail["after"]["name"], changed.detail["after"]["expires_at"]) == (
        "old laptop",
        "2031-02-03T04:05:06Z",
    )


# --- the Django admin: groups ----------------------------------------------------------------------------

ROLE_GROUP_KEPT = "The role groups viewer, operator and admin cannot be renamed or deleted"


def perm(codename: str) -> Permission:
    return Permission.objects.get(codename=codename)


def test_the_admin_records_a_group_added_with_its_permissions(admin_site: Client) -> None:
    body = {"name": "auditors", "permissions": [str(perm("view_auditentry").pk), str(perm("view_apikey").pk)]}
    response = admin_site.post(
        "/admin/auth/group/add/", body, HTTP_X_REQUEST_ID="add-auditors", REMOTE_ADDR="192.0.2.5"
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "group.create", "auditors")
    assert entry.detail == {"name": "auditors", "permissions": ["accounts.view_apikey", "audit.view_auditentry"]}
    assert (entry.request_id, entry.address) == ("add-auditors", "192.0.2.5")


def test_the_admin_records_a_group_renamed_and_its_permissions_changed(admin_site: Client) -> None:
    group = Group.objects.create(name="auditors")
    group.permissions.add(perm("view_auditentry"))
    body = {"name": "log readers", "permissions": [str(perm("view_apikey").pk)]}
    response = admin_site.post(f"/admin/auth/group/{group.pk}/change/", body, HTTP_X_REQUEST_ID="rename")
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "group.update", "log readers")
    assert entry.detail == {
        "before": {"name": "auditors", "permissions": ["audit.view_auditentry"]},
        "after": {"name": "log readers", "permissions": ["accounts.view_apikey"]},
    }
    assert entry.request_id == "rename"


def test_a_role_groups_permissions_may_change_and_are_recorded(admin_site: Client) -> None:
    viewer = Group.objects.get(name="viewer")
    body = {"name": "viewer", "permissions": [str(perm("view_auditentry").pk)]}
    response = admin_site.post(f"/admin/auth/group/{viewer.pk}/change/", body)
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "group.update", "viewer")
    assert entry.detail["after"] == {"name": "viewer", "permissions": ["audit.view_auditentry"]}


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_the_admin_refuses_to_rename_a_role_group(admin_site: Client, role: str) -> None:
    group = Group.objects.get(name=role)
    response = admin_site.post(f"/admin/auth/group/{group.pk}/change/", {"name": f"{role}s", "permissions": []})
    assert response.status_code == 200  # the form again, with the reason
    assert ROLE_GROUP_KEPT in response.content.decode().replace("&#x27;", "'")
    assert Group.objects.filter(name=role).exists() and not Group.objects.filter(name=f"{role}s").exists()
    assert entries() == []


def test_the_admin_refuses_to_delete_a_role_group(admin_site: Client) -> None:
    vera = make_user("vera", Role.VIEWER)
    viewer = Group.objects.get(name="viewer")
    page = admin_site.get(f"/admin/auth/group/{viewer.pk}/change/").content.decode()
    assert f"/admin/auth/group/{viewer.pk}/delete/" not in page  # no Delete link
    response = admin_site.post(f"/admin/auth/group/{viewer.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.redirect_chain == [(f"/admin/auth/group/{viewer.pk}/change/", 302)]
    assert ROLE_GROUP_KEPT in response.content.decode().replace("&#x27;", "'")
    # The bulk action with a role group among the selected deletes nothing, not even the others.
    other = Group.objects.create(name="auditors")
    body = {"action": "delete_selected", "_selected_action": [str(viewer.pk), str(other.pk)], "post": "yes"}
    response = admin_site.post("/admin/auth/group/", body, follow=True)
    assert ROLE_GROUP_KEPT in response.content.decode().replace("&#x27;", "'")
    assert Group.objects.filter(pk__in=[viewer.pk, other.pk]).count() == 2
    assert list(vera.groups.values_list("name", flat=True)) == ["viewer"]
    assert entries() == []


def test_the_admin_records_a_group_deleted_with_its_members(admin_site: Client) -> None:
    group = Group.objects.create(name="auditors")
    group.permissions.add(perm("view_auditentry"))
    for name in ("vera", "otto"):
        make_user(name, Role.VIEWER).groups.add(group)
    response = admin_site.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}, HTTP_X_REQUEST_ID="del-g")
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not Group.objects.filter(name="auditors").exists()
    (entry,) = entries()
    assert summary(entry) == ("ada", "user", "group.delete", "auditors")
    assert entry.detail == {"name": "auditors", "permissions": ["audit.view_auditentry"], "members": ["otto", "vera"]}
    assert entry.request_id == "del-g"


def test_the_admin_records_each_group_of_a_bulk_delete(admin_site: Client) -> None:
    groups = [Group.objects.create(name=name) for name in ("g1", "g2")]
    body = {"action": "delete_selected", "_selected_action": [str(g.pk) for g in groups], "post": "yes"}
    response = admin_site.post("/admin/auth/group/", body)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not Group.objects.filter(name__in=["g1", "g2"]).exists()
    assert sorted((e.action, e.target) for e in entries()) == [("group.delete", "g1"), ("group.delete", "g2")]


# --- who the open service records ------------------------------------------------------------------------


def test_the_open_service_records_the_signed_in_user_by_name(mdb: Any, settings: Any) -> None:
    settings.AUTH_REQUIRED = False
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user("maria", Role.VIEWER))
    assert client.get("/dashboard/me/").status_code == 200  # a page sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    # Without the CSRF token (a forged cross-site request) the open service still lets it through, unnamed.
    forged = client.put("/stores/s1/timezone/", {"timezone_str": "UTC"}, format="json")
    assert forged.status_code == 200, forged.content
    assert [(e.actor, e.actor_kind) for e in entries()] == [("maria", "user"), ("anonymous", "anonymous")]
