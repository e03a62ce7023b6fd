"""Helpers for the account tests: users with a role, keys made straight through the service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from loop.accounts.capabilities import ALL, Principal, Role, Scope
from loop.accounts.services import create_key, save_account

# Creates keys for anyone, as manage.py create_key does.
SYSTEM = Principal(kind="command", name="command:tests", capabilities=ALL)


def make_user(username: str, role: Role) -> Any:
    """An active account without a password (sessions come from force_login: no slow password hashing)."""
    user, _ = save_account(username=username, role=role, password=None, clear_password=True)
    return user


def make_key(owner: Any, scope: Scope, *, expires_at: dt.datetime | None = None, name: str = "test") -> tuple[str, Any]:
    """(the full key, its row)."""
    created = create_key(
        caller=SYSTEM,
        name=name,
        scope=scope,
        expires_at=expires_at,
        owner_username=owner.get_username(),
        now=timezone.now(),
    )
    return created.key, created.api_key


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}
