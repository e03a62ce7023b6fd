"""Sign-ins in the audit log (docs/audit.md): a sign-in, a sign-out, a failed sign-in (the username tried, never
the password; an unknown username recorded exactly like a known one) and django-axes' lockout, each with the
request's id and the client's address, through the real forms (/accounts/login/, /admin/login/)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, User
from django.test import Client

from loop.audit.models import AuditEntry

pytestmark = [pytest.mark.accounts]

PASSWORD = "Tall-Harbour-Lantern-58"


@pytest.fixture
def people(db: None, settings: Any) -> dict[str, User]:
    """A viewer, a staff admin (for /admin/) and a deactivated operator."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    made = {}
    for name, role, active, staff in (
        ("vera", "viewer", True, False),
        ("ada", "admin", True, True),
        ("gone", "operator", False, False),
    ):
        user = User.objects.create_user(name, password=PASSWORD, is_active=active, is_staff=staff)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        made[name] = user
    return made


@pytest.fixture
def limits(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(
    client: Client,
    username: str,
    password: str,
    *,
    address: str = "10.0.0.1",
    path: str = "/accounts/login/",
    **headers: str,
) -> Any:
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


def entries() -> list[AuditEntry]:
    return list(AuditEntry.objects.order_by("id"))


def row(entry: AuditEntry) -> tuple[str, str, str, str]:
    return entry.actor, entry.actor_kind, entry.action, entry.target


def test_a_sign_in_is_recorded_under_the_user_with_its_request_and_address(people: dict[str, User]) -> None:
    client = Client()
    # The test client's login() signs in without an HTTP request: no entry.
    assert client.login(username="vera", password=PASSWORD)
    client.logout()
    response = sign_in(Client(), "vera", PASSWORD, address="203.0.113.7", HTTP_X_REQUEST_ID="sign-in-1")
    assert response.status_code == 302
    (entry,) = entries()
    assert row(entry) == ("vera", "user", "session.login", "vera")
    assert entry.detail == {"path": "/accounts/login/"}
    assert (entry.request_id, entry.address) == ("sign-in-1", "203.0.113.7")


def test_a_sign_in_to_the_admin_is_recorded_with_its_path(people: dict[str, User]) -> None:
    response = sign_in(Client(), "ada", PASSWORD, path="/admin/login/")
    assert response.status_code == 302, response.content.decode()[:2000]
    (entry,) = entries()
    assert (row(entry), entry.detail) == (("ada", "user", "session.login", "ada"), {"path": "/admin/login/"})


def test_a_sign_out_is_recorded_and_signing_out_nobody_is_not(people: dict[str, User]) -> None:
    client = Client()
    assert sign_in(client, "vera", PASSWORD).status_code == 302
    out = client.post("/accounts/logout/", REMOTE_ADDR="198.51.100.2", HTTP_X_REQUEST_ID="bye")
    assert out.status_code == 302
    assert client.post("/accounts/logout/").status_code == 302  # nobody signed in any more
    signed_in, signed_out = entries()
    assert row(signed_in)[2] == "session.login"
    assert row(signed_out) == ("vera", "user", "session.logout", "vera")
    assert (signed_out.detail, signed_out.request_id, signed_out.address) == (
        {"path": "/accounts/logout/"},
        "bye",
        "198.51.100.2",
    )


def test_failed_sign_ins_record_the_username_tried_alike_and_never_the_password(people: dict[str, User]) -> None:
    tries = [("vera", "not-it-1"), ("nobody-here", "not-it-2"), ("gone", PASSWORD)]  # wrong, unknown, deactivated
    for n, (username, password) in enumerate(tries):
        response = sign_in(Client(), username, password, address=f"192.0.2.{n}", HTTP_X_REQUEST_ID=f"try-{n}")
        assert response.status_code == 200
    found = entries()
    assert [row(e) for e in found] == [
        ("anonymous", "anonymous", "session.login_failed", "vera"),
        ("anonymous", "anonymous", "session.login_failed", "nobody-here"),
        ("anonymous", "anonymous", "session.login_failed", "gone"),
    ]
    # The same shape whether the user exists, is deactivated or not: what was tried, where.
    assert [e.detail for e in found] == [
        {"username": name, "path": "/accounts/login/"} for name in ("vera", "nobody-here", "gone")
    ]
    assert [(e.request_id, e.address) for e in found] == [(f"try-{n}", f"192.0.2.{n}") for n in range(3)]
    text = str([(e.detail, e.target, e.actor) for e in found])
    assert all(password not in text for _, password in tries)
    assert "********" not in text  # Django's masked password is not kept either


def test_a_failed_sign_in_to_the_admin_is_recorded(people: dict[str, User]) -> None:
    assert sign_in(Client(), "ada", "wrong", path="/admin/login/").status_code == 200
    (entry,) = entries()
    assert (entry.action, entry.detail) == ("session.login_failed", {"username": "ada", "path": "/admin/login/"})


def test_a_lockout_is_recorded_once_after_the_failure_that_caused_it(people: dict[str, User], limits: None) -> None:
    for n in range(3):
        sign_in(Client(), "nobody-here", "wrong", address=f"10.0.5.{n}", HTTP_X_REQUEST_ID=f"f{n}")
    # Refused during the lockout (no password checked): not recorded one by one, whatever the password.
    assert sign_in(Client(), "nobody-here", "wrong", address="10.0.5.9").status_code == 429
    assert sign_in(Client(), "nobody-here", PASSWORD, address="10.0.5.10").status_code == 429
    found = entries()
    assert [row(e)[2:] for e in found] == [
        ("session.login_failed", "nobody-here"),
        ("session.login_failed", "nobody-here"),
        ("session.login_failed", "nobody-here"),
        ("session.locked_out", "nobody-here"),
    ]
    lockout = found[-1]
    assert (lockout.actor, lockout.actor_kind) == ("anonymous", "anonymous")
    assert lockout.detail == {"username": "nobody-here", "path": "/accounts/login/", "failures": 3}
    # The locking failure's request: both entries carry its id and address.
    assert (lockout.request_id, lockout.address) == ("f2", "10.0.5.2") == (found[2].request_id, found[2].address)


def test_a_known_and_an_unknown_username_lock_out_with_the_same_entries(people: dict[str, User], limits: None) -> None:
    shapes = {}
    for name, subnet in (("vera", 6), ("nobody-here", 7)):
        before = AuditEntry.objects.count()
        for n in range(4):
            sign_in(Client(), name, "wrong", address=f"10.0.{subnet}.{n}")
        shapes[name] = [
            (e.action, e.target.replace(name, "NAME"), re.sub(name, "NAME", str(e.detail))) for e in entries()[before:]
        ]
    assert shapes["vera"] == shapes["nobody-here"]
    assert [action for action, _, _ in shapes["vera"]] == ["session.login_failed"] * 3 + ["session.locked_out"]


def test_the_lockout_follows_its_failure_whichever_receiver_runs_first(people: dict[str, User], limits: None) -> None:
    # Today axes' failure handler (which sends user_locked_out) runs before the audit's; put it after, then back.
    from axes.signals import handle_user_login_failed
    from django.contrib.auth.signals import user_login_failed

    from loop.accounts.signin import audit_login_failed

    uid = "loop.audit.session.login_failed"
    user_login_failed.disconnect(handle_user_login_failed)
    user_login_failed.connect(handle_user_login_failed)
    try:
        for n in range(3):
            sign_in(Client(), "vera", "wrong", address=f"10.0.8.{n}")
    finally:
        user_login_failed.disconnect(dispatch_uid=uid)
        user_login_failed.connect(audit_login_failed, dispatch_uid=uid)
    assert [e.action for e in entries()] == ["session.login_failed"] * 3 + ["session.locked_out"]
    assert entries()[-1].detail["failures"] == 3


def test_unlocking_in_the_admin_is_recorded(people: dict[str, User], limits: None) -> None:
    for n in range(3):
        sign_in(Client(), "vera", "wrong", address=f"10.0.9.{n}")
    assert sign_in(Client(), "vera", PASSWORD, address="10.0.9.50").status_code == 429
    attempts = list(AccessAttempt.objects.filter(username="vera").order_by("id"))
    assert len(attempts) == 3  # one per address
    User.objects.filter(username="ada").update(is_superuser=True)  # may delete axes' rows in /admin/
    admin_site = Client()
    admin_site.force_login(people["ada"])
    one = attempts[0]
    response = admin_site.post(f"/admin/axes/accessattempt/{one.pk}/delete/", {"post": "yes"}, HTTP_X_REQUEST_ID="u1")
    assert response.status_code == 302, response.content.decode()[:2000]
    rest = [str(a.pk) for a in attempts[1:]]
    body = {"action": "delete_selected", "_selected_action": rest, "post": "yes"}
    assert admin_site.post("/admin/axes/accessattempt/", body).status_code == 302
    unlocks = [e for e in entries() if e.action == "session.unlock"]
    assert [(e.actor, e.target) for e in unlocks] == [("ada", "vera")] * 3
    assert unlocks[0].detail == {"username": "vera", "ip_address": "10.0.9.0", "failures": 1}
    assert unlocks[0].request_id == "u1"
    assert sorted(e.detail["ip_address"] for e in unlocks) == ["10.0.9.0", "10.0.9.1", "10.0.9.2"]
    assert sign_in(Client(), "vera", PASSWORD, address="10.0.9.50").status_code == 302  # unlocked
