"""Django's own database (users, groups, keys, sessions) through Django's auth, on whichever backend
DATABASE_URL selects.

Marked ``accounts``: `make test` runs every such test a second time with DATABASE_URL at a local
PostgreSQL (TEST_POSTGRES_URL, started by `make services`), so each of these holds on SQLite and on
PostgreSQL alike.
"""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

pytestmark = [pytest.mark.accounts, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def fast_hashing(settings) -> None:
    # The default hasher takes ~0.3 s a password by design; these tests are about the database.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_backend_in_use_is_the_one_database_url_names() -> None:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url.startswith(("postgres://", "postgresql://")):
        assert connection.vendor == "postgresql"
        # pytest-django's own database beside the configured one, never the configured one itself
        assert connection.settings_dict["NAME"] == "test_" + url.rsplit("/", 1)[1].split("?")[0]
    else:
        assert connection.vendor == "sqlite"


def test_users_get_the_permissions_of_their_groups() -> None:
    # The role groups come with the migrations (accounts.0002).
    viewer = Group.objects.get(name="viewer")
    operator = Group.objects.get(name="operator")
    operator.permissions.add(Permission.objects.get(content_type__app_label="auth", codename="change_group"))
    alice = User.objects.create_user("alice", password="alice-password-1")
    bob = User.objects.create_user("bob", password="bob-password-1")
    alice.groups.add(viewer)
    bob.groups.add(viewer, operator)

    # fresh objects: the answers come from the database, not from the instances above
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    assert not alice.has_perm("auth.change_group")
    assert bob.has_perm("auth.change_group")
    assert list(User.objects.filter(groups__name="viewer").order_by("username").values_list("username", flat=True)) == [
        "alice",
        "bob",
    ]
    assert list(User.objects.filter(groups__name="operator").values_list("username", flat=True)) == ["bob"]
    assert bob.check_password("bob-password-1") and not bob.check_password("alice-password-1")


def test_a_failed_transaction_leaves_nothing_behind() -> None:
    with pytest.raises(RuntimeError, match="half-way"), transaction.atomic():
        user = User.objects.create_user("carol")
        user.groups.add(Group.objects.create(name="cooks"))
        raise RuntimeError("failed half-way")
    assert not User.objects.filter(username="carol").exists()
    assert not Group.objects.filter(name="cooks").exists()
    # the connection is usable afterwards
    User.objects.create_user("carol")
    assert User.objects.filter(username="carol").count() == 1


def test_a_username_is_unique() -> None:
    User.objects.create_user("dave")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user("dave")
    assert User.objects.filter(username="dave").count() == 1


def test_sql_in_a_username_is_only_text() -> None:
    User.objects.create_user("erin")
    injected = "x' OR '1'='1'; DROP TABLE auth_user; --"
    assert not User.objects.filter(username="x' OR '1'='1").exists()
    User.objects.create_user(injected)
    assert User.objects.get(username=injected).username == injected
    assert sorted(User.objects.values_list("username", flat=True)) == sorted(["erin", injected])


def test_the_repository_has_every_migration_the_models_need() -> None:
    # exits non-zero (SystemExit) when a model changed without its migration
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_sqlite_connections_wait_for_the_write_lock_and_commit_without_an_fsync() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's own settings")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 20_000  # ms: a writer waits for another process's write
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL (FULL is 2): WAL commits without an fsync each
