"""Where accounts live: DATABASE_URL or SQLite (myproject/settings.py), and migrations applied where a
human would forget them (`make run`'s serve_demo, the tests' live servers)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from myproject.settings import accounts_database
from tests.support.processes import environment_without_config, migrate_accounts_database, run_manage

SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
}


def database(url: str) -> tuple[dict, str]:
    return accounts_database(
        url=url, sqlite_path="/srv/loop/db.sqlite3", conn_max_age=60, health_checks=True, connect_timeout=3
    )


def test_without_a_url_accounts_live_in_sqlite_at_sqlite_path_in_wal_mode() -> None:
    assert database("") == (
        {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "/srv/loop/db.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        },
        "",
    )


def test_a_postgres_url_selects_postgresql_with_a_connect_timeout() -> None:
    settings, problem = database("postgres://loop:p%40ss@db.internal:6432/accounts")
    assert problem == ""
    assert {key: settings[key] for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")} == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "accounts",
        "USER": "loop",
        "PASSWORD": "p@ss",
        "HOST": "db.internal",
        "PORT": 6432,
    }
    assert settings["OPTIONS"] == {"connect_timeout": 3}
    assert (settings["CONN_MAX_AGE"], settings["CONN_HEALTH_CHECKS"]) == (60, True)


def test_the_urls_own_options_win() -> None:
    settings, _ = database("postgresql://db/accounts?sslmode=require&connect_timeout=10")
    assert settings["OPTIONS"] == {"connect_timeout": 10, "sslmode": "require"}


def test_a_sqlite_url_gets_the_sqlite_options() -> None:
    settings, problem = database("sqlite:////var/lib/loop/accounts.sqlite3")
    assert problem == ""
    assert (settings["ENGINE"], settings["NAME"]) == ("django.db.backends.sqlite3", "/var/lib/loop/accounts.sqlite3")
    assert settings["OPTIONS"] == SQLITE_OPTIONS


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://loop:s3cret@db/loop", "its scheme 'mysql' is not postgres://, postgresql:// or sqlite:///"),
        ("loop:s3cret@db:5432/loop", "its scheme is not postgres://, postgresql:// or sqlite:///"),
        ("s3cret", "its scheme is not postgres://, postgresql:// or sqlite:///"),
        (
            "postgres://loop:s3cret@db:port/loop",
            "it is not a valid URL (quote special characters of the password: @ as %40, / as %2F)",
        ),
        ("postgres://loop:s3cret@db:5432", "it names no database (postgres://user:password@host:5432/<name>)"),
    ],
)
def test_a_url_that_cannot_be_used_keeps_sqlite_and_says_why_without_the_password(url: str, problem: str) -> None:
    settings, said = database(url)
    assert said == problem
    assert "s3cret" not in said
    # the start is refused (loop.E012); meanwhile nothing points at a half-understood server
    assert (settings["ENGINE"], settings["NAME"]) == ("django.db.backends.sqlite3", "/srv/loop/db.sqlite3")


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def test_migrate_makes_a_fresh_sqlite_file_with_djangos_tables_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "accounts.sqlite3"
    env = {**environment_without_config(), "SQLITE_PATH": str(path)}
    first = run_manage(env, "migrate", "--noinput", timeout=120)
    assert first.returncode == 0, first.stderr
    assert {"auth_user", "auth_group", "django_session", "django_migrations"} <= tables(path)
    assert journal_mode(path) == "wal"  # kept in the file: every process that opens it writes ahead
    again = run_manage(env, "migrate", "--noinput", timeout=120)
    assert again.returncode == 0 and "No migrations to apply." in again.stdout


def test_serve_demo_migrates_before_it_loads_anything(tmp_path: Path) -> None:
    # `make run`: the data folder is missing, so the command stops right after its first step
    path = tmp_path / "demo.sqlite3"
    env = {
        **environment_without_config(),
        "SQLITE_PATH": str(path),
        "MONGO_URL": "mongomock://",
        "CELERY_BROKER_URL": "memory://",
    }
    proc = run_manage(env, "serve_demo", "--data", str(tmp_path / "missing"), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert {"auth_user", "django_session"} <= tables(path)


def test_each_live_server_gets_a_migrated_database_of_its_own(tmp_path: Path) -> None:
    env = environment_without_config()
    first, second = tmp_path / "one" / "db.sqlite3", tmp_path / "two" / "db.sqlite3"
    migrate_accounts_database({**env, "SQLITE_PATH": str(first)})
    migrate_accounts_database({**env, "SQLITE_PATH": str(second)})
    for path in (first, second):
        assert {"auth_user", "auth_group", "django_session"} <= tables(path), path
        assert journal_mode(path) == "wal"
    with sqlite3.connect(first) as db:
        db.execute("INSERT INTO auth_group (name) VALUES ('only-in-one')")
    with sqlite3.connect(second) as db:
        assert db.execute("SELECT count(*) FROM auth_group WHERE name = 'only-in-one'").fetchone()[0] == 0
