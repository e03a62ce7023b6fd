"""Roles (loop.accounts.selectors.role_of), the account commands, key text and hashing, the open-access warning."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from loop.accounts import keys
from loop.accounts.capabilities import Role, Scope
from loop.accounts.models import ApiKey
from loop.accounts.selectors import role_of
from loop.accounts.services import KeyRefused, authenticate_key
from loop.checks import open_access_check

User = get_user_model()


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- roles ---------------------------------------------------------------------------------------------


@pytest.mark.accounts
@pytest.mark.django_db
def test_role_is_the_highest_role_group_superuser_is_admin_inactive_none() -> None:
    user = User.objects.create_user("pat")
    assert role_of(user=user) is None  # no group: no access
    user.groups.add(Group.objects.get(name="viewer"))
    assert role_of(user=user) is Role.VIEWER
    user.groups.add(Group.objects.get(name="operator"))
    assert role_of(user=user) is Role.OPERATOR
    user.groups.add(Group.objects.create(name="cooks"))  # other groups do not count
    assert role_of(user=user) is Role.OPERATOR
    user.groups.add(Group.objects.get(name="admin"))
    assert role_of(user=user) is Role.ADMIN
    user.groups.clear()
    user.is_superuser = True
    assert role_of(user=user) is Role.ADMIN
    user.is_active = False
    assert role_of(user=user) is None
    assert role_of(user=None) is None


# --- create_account ------------------------------------------------------------------------------------


@pytest.mark.accounts
@pytest.mark.django_db
def test_create_account_creates_then_updates_with_exactly_one_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALICE_PASSWORD", "a-Long-pass-phrase-42")
    out, _ = run("create_account", "alice", "--role", "operator", "--password-from-env", "ALICE_PASSWORD")
    assert out.strip() == "Created alice: operator, password set."
    alice = User.objects.get(username="alice")
    assert alice.check_password("a-Long-pass-phrase-42") and role_of(user=alice) is Role.OPERATOR
    assert not alice.is_staff
    out, _ = run("create_account", "alice", "--role", "admin")
    assert out.strip() == "Updated alice: admin, password set."  # the password kept
    alice.refresh_from_db()
    assert role_of(user=alice) is Role.ADMIN and alice.is_staff and alice.is_superuser
    assert sorted(alice.groups.values_list("name", flat=True)) == ["admin"]
    run("create_account", "alice", "--role", "viewer", "--no-password")
    alice.refresh_from_db()
    assert role_of(user=alice) is Role.VIEWER and not alice.is_superuser and not alice.is_staff
    assert not alice.has_usable_password()
    assert sorted(alice.groups.values_list("name", flat=True)) == ["viewer"]


@pytest.mark.accounts
@pytest.mark.django_db
def test_a_service_account_has_no_password() -> None:
    out, _ = run("create_account", "poller", "--role", "operator")
    assert out.strip() == "Created poller: operator, no password (API keys only)."
    assert not User.objects.get(username="poller").has_usable_password()


@pytest.mark.accounts
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("robert'); DROP TABLE auth_user;--",), "username: Enter a valid username."),
        (("x' OR '1'='1",), "username: Enter a valid username."),
        (("bob", "--password-from-env", "NO_SUCH_VARIABLE_1234"), "NO_SUCH_VARIABLE_1234 is unset or empty"),
        (("bob", "--password-from-env", "WEAK_PASSWORD"), "password: This password is too short."),
    ],
)
def test_create_account_refuses_bad_names_and_passwords(
    monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.setenv("WEAK_PASSWORD", "abc")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("create_account", *args, "--role", "viewer")
    assert User.objects.count() == 0  # the table is there, and empty


@pytest.mark.accounts
@pytest.mark.django_db
def test_createsuperuser_is_an_admin() -> None:
    call_command("createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com")
    assert role_of(user=User.objects.get(username="root")) is Role.ADMIN


# --- create_key ----------------------------------------------------------------------------------------


@pytest.mark.accounts
@pytest.mark.django_db
def test_create_key_prints_only_the_key_on_stdout_and_it_works(settings: Any) -> None:
    run("create_account", "poller", "--role", "operator")
    out, err = run(
        "create_key", "poller", "--name", "poller eu-1", "--scope", "ingest", "--expires-at", "2031-01-02T03:04:05"
    )
    key = out.strip()
    assert key.startswith("lpi_") and "\n" not in key
    row = ApiKey.objects.get()
    assert err.strip() == (
        f"Key {row.prefix} (ingest) for poller, expires 2031-01-02T03:04:05+00:00. It is shown once; keep it secret."
    )
    assert (row.name, row.scope, row.expires_at) == (
        "poller eu-1",
        "ingest",
        dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    owner, principal = authenticate_key(key=key, now=timezone.now())
    assert owner.username == "poller" and principal.name == f"key:{row.prefix}"
    assert principal.capabilities == {"ingest"}


@pytest.mark.accounts
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nobody", "--scope", "read"), "owner: No such user."),
        (("vic", "--scope", "operate"), "vic is viewer, and the operate scope is wider"),
        (("vic", "--scope", "read", "--expires-at", "soon"), "not an ISO 8601 instant"),
        (("vic", "--scope", "read", "--expires-at", "2001-01-01T00:00:00Z"), "expiry must lie in the future"),
    ],
)
def test_create_key_refusals(args: tuple[str, ...], message: str) -> None:
    run("create_account", "vic", "--role", "viewer")
    with pytest.raises(CommandError, match=message):
        run("create_key", *args[:1], "--name", "x", *args[1:])
    assert ApiKey.objects.count() == 0


# --- key text and hashing (pure) ---------------------------------------------------------------------


def test_key_text_and_its_prefix() -> None:
    prefix = keys.new_prefix(Scope.OPERATE)
    key = keys.new_key(prefix)
    assert prefix.startswith("lpo_") and len(prefix) == 12 and len(key) == 12 + 1 + 43
    assert keys.key_prefix(key) == prefix
    assert keys.new_key(prefix) != key  # 256 random bits each time
    for not_a_key in ("", FULL_LOOKALIKE, key + "x", key[:-1], "lpx_" + key[4:], key.replace("_", "-", 1)):
        assert keys.key_prefix(not_a_key) is None, not_a_key


FULL_LOOKALIKE = "full-Token_1234567890"


def test_the_digest_is_keyed_and_not_the_key() -> None:
    key = "lpr_abcdEFGH_" + "x" * 43
    digest = keys.key_digest(key, secret="one")
    # HMAC-SHA256 under a key derived from the secret: fixed for a fixed input, other under another secret.
    assert digest == keys.key_digest(key, secret="one") and len(digest) == 64
    assert digest != keys.key_digest(key, secret="two")
    assert "x" * 43 not in digest
    assert keys.digest_matches(digest, digest) and not keys.digest_matches(digest, "0" * 64)


@pytest.mark.accounts
@pytest.mark.django_db
def test_changing_the_hash_secret_voids_keys(settings: Any) -> None:
    run("create_account", "vic", "--role", "viewer")
    key = run("create_key", "vic", "--name", "x", "--scope", "read")[0].strip()
    settings.KEY_HASH_SECRET = "another-secret"
    with pytest.raises(KeyRefused, match="Invalid API token or key"):
        authenticate_key(key=key, now=timezone.now())


# --- the open-access warning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("debug", "required", "ids"), [(False, False, ["loop.W001"]), (True, False, []), (False, True, [])]
)
def test_open_access_warns_only_in_a_deployment(settings: Any, debug: bool, required: bool, ids: list[str]) -> None:
    settings.DEBUG, settings.AUTH_REQUIRED = debug, required
    assert [message.id for message in open_access_check(None)] == ids
