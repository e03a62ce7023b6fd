"""Reads of the accounts: a user's role (the one place it is decided), principals, and key lists."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from loop.accounts.capabilities import ROLE_CAPABILITIES, Capability, Principal, Role, Scope
from loop.accounts.models import ApiKey

# Highest first: a user in several role groups has the highest of them.
ROLE_ORDER = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)


def role_from(*, is_active: bool, is_superuser: bool, groups: Iterable[str]) -> Role | None:
    """The rule: admin if superuser or in group ``admin``, else operator, else viewer, else none; inactive: none."""
    if not is_active:
        return None
    if is_superuser:
        return Role.ADMIN
    names = set(groups)
    return next((role for role in ROLE_ORDER if role.value in names), None)


def role_of(*, user: Any) -> Role | None:
    """A user's role (``role_from``), reading their role groups unless the answer is known without."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    groups = user.groups.filter(name__in=[role.value for role in Role]).values_list("name", flat=True)
    return role_from(is_active=True, is_superuser=False, groups=groups)


def key_by_prefix(*, prefix: str) -> tuple[ApiKey, Role | None] | None:
    """The key of a prefix (owner joined: one indexed query) and the owner's role (one more, unless superuser).

    Two plain queries: one query with the role groups as EXISTS subqueries measured twice as slow (the ORM
    compiles it on every call).
    """
    rows = list(ApiKey.objects.select_related("owner").filter(prefix=prefix).order_by()[:1])
    if not rows:
        return None
    return rows[0], role_of(user=rows[0].owner)


def account_summary(*, user: Any) -> dict[str, Any]:
    """What the audit log records of an account (never its password): username, flags, groups and role."""
    groups = sorted(user.groups.values_list("name", flat=True)) if user.pk is not None else []
    role = role_from(is_active=user.is_active, is_superuser=user.is_superuser, groups=groups)
    return {
        "username": user.get_username(),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "groups": groups,
        "role": role.value if role is not None else None,
    }


def key_summary(*, api_key: ApiKey) -> dict[str, Any]:
    """What the audit log records of a key: what the list shows of it, never the key or its digest."""
    return {
        "prefix": api_key.prefix,
        "name": api_key.name,
        "scope": api_key.scope,
        "owner": api_key.owner.get_username(),
        "expires_at": utc_text(api_key.expires_at),
    }


def utc_text(value: dt.datetime | None) -> str | None:
    """An instant as the API shows it (``2030-01-01T00:00:00Z``), or None."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def user_principal(*, user: Any) -> Principal:
    """A signed-in person: their username and what their role may do (nothing without a role)."""
    role = role_of(user=user)
    capabilities = ROLE_CAPABILITIES[role] if role is not None else frozenset()
    return Principal(kind="user", name=user.get_username(), capabilities=capabilities, user_id=user.pk)


def find_user(*, username: str) -> Any | None:
    """The user of that exact username, or None (a plain parameterised lookup: any text is just a name)."""
    return get_user_model().objects.filter(username=username).first()


def visible_keys(*, caller: Principal) -> QuerySet[ApiKey]:
    """The keys a caller may list: everyone's for admins, else the caller's own (none without a user)."""
    keys = ApiKey.objects.select_related("owner").order_by("-created_at")
    if caller.can(Capability.ADMIN):
        return keys
    if caller.user_id is None:
        return keys.none()
    return keys.filter(owner_id=caller.user_id)


def key_scope(*, key_id: str) -> Scope | None:
    scope = ApiKey.objects.filter(pk=key_id).values_list("scope", flat=True).first()
    return Scope(scope) if scope is not None else None
