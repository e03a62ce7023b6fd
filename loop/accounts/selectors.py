"""Reads of the accounts: a user's role (the one place it is decided), principals, and key lists."""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import QuerySet

from loop.accounts import cache
from loop.accounts.capabilities import ROLE_CAPABILITIES, Capability, Principal, Role, Scope
from loop.accounts.models import ApiKey

# Highest first: a user in several role groups has the highest of them.
ROLE_ORDER = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)
ROLE_NAMES = tuple(role.value for role in Role)
# Set on a user read by ``user_with_role_groups`` (a session's user): their role groups, so ``role_of``
# needs no query of its own.
ROLE_GROUPS_ATTRIBUTE = "_loop_role_groups"


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
    groups = getattr(user, ROLE_GROUPS_ATTRIBUTE, None)
    if groups is None:
        with connection.cursor() as cursor:
            cursor.execute(_role_groups_sql(), [user.pk, *ROLE_NAMES])
            groups = [name for (name,) in cursor.fetchall()]
    return role_from(is_active=True, is_superuser=False, groups=groups)


def user_with_role_groups(*, user_id: Any) -> Any | None:
    """The user of an id with their role groups, in one query (a session's user, read on every request;
    kept by ``loop.accounts.cache``). Each call answers its own copy: a request may change its user."""
    user = cache.cached("user", str(user_id), lambda: _read_user_with_role_groups(user_id))
    return copy.copy(user) if user is not None else None


def _read_user_with_role_groups(user_id: Any) -> Any | None:
    rows: list[Any] = list(get_user_model()._default_manager.raw(_user_sql(), [*ROLE_NAMES, user_id]))
    if not rows:
        return None
    user = rows[0]
    setattr(user, ROLE_GROUPS_ATTRIBUTE, [row.role_group for row in rows if row.role_group is not None])
    return user


def key_by_prefix(*, prefix: str) -> tuple[ApiKey, Role | None] | None:
    """The key of a prefix and its owner's role, in one indexed query (the owner's flags and role groups joined).

    On every request with a key, so written as SQL once per process: the ORM compiled the same lookup on
    every call, about 0.3 ms a query (two: the key with its owner, then the groups) on the 2-core bench
    machine; this takes about 0.1 ms. The row's ``owner`` is still loaded only when something reads it.
    Kept by ``loop.accounts.cache`` (no query at all while nothing changes).
    """
    return cache.cached("key", prefix, lambda: _read_key_by_prefix(prefix))


def _read_key_by_prefix(prefix: str) -> tuple[ApiKey, Role | None] | None:
    # One row per group of the owner (at least one): the key's columns and the owner's flags repeat, the
    # group's name is there for a role group, else null.
    rows: list[Any] = list(ApiKey.objects.raw(_key_sql(), [*ROLE_NAMES, prefix]))
    if not rows:
        return None
    row = rows[0]
    groups = [found.owner_role_group for found in rows if found.owner_role_group is not None]
    role = role_from(is_active=bool(row.owner_is_active), is_superuser=bool(row.owner_is_superuser), groups=groups)
    return row, role


def _quoted(model: Any, field: str | None = None) -> str:
    """A model's table, or one of its columns, quoted for this database."""
    meta = model._meta
    return str(connection.ops.quote_name(meta.db_table if field is None else meta.get_field(field).column))


def _groups_of_users() -> tuple[str, str, str]:
    """The user-groups table and its two columns (the user's, the group's), whatever the user model."""
    m2m: Any = get_user_model()._meta.get_field("groups")
    q = connection.ops.quote_name
    return q(m2m.remote_field.through._meta.db_table), q(m2m.m2m_column_name()), q(m2m.m2m_reverse_name())


def _role_groups_join(user_id: str) -> str:
    """LEFT JOINs adding ``g``, the user's role groups (null when none), to a query about user ``user_id``
    (a quoted column); its parameters are ROLE_NAMES."""
    through, of_user, of_group = _groups_of_users()
    group_name = _quoted(Group, "name")
    return (
        f"LEFT JOIN {through} ug ON ug.{of_user} = {user_id} "
        f"LEFT JOIN {_quoted(Group)} g ON g.{_quoted(Group, 'id')} = ug.{of_group} "
        f"AND g.{group_name} IN ({', '.join(['%s'] * len(ROLE_NAMES))}) "
    )


@functools.cache
def _key_sql() -> str:
    # Tables and columns from the models, quoted; only values are parameters.
    user = get_user_model()
    user_id = f"u.{_quoted(user, 'id')}"
    return (
        f"SELECT k.*, u.{_quoted(user, 'is_active')} AS owner_is_active, "
        f"u.{_quoted(user, 'is_superuser')} AS owner_is_superuser, g.{_quoted(Group, 'name')} AS owner_role_group "
        f"FROM {_quoted(ApiKey)} k "
        f"JOIN {_quoted(user)} u ON {user_id} = k.{_quoted(ApiKey, 'owner')} "
        f"{_role_groups_join(user_id)}"
        f"WHERE k.{_quoted(ApiKey, 'prefix')} = %s"
    )


@functools.cache
def _user_sql() -> str:
    user = get_user_model()
    user_id = f"u.{_quoted(user, 'id')}"
    return (
        f"SELECT u.*, g.{_quoted(Group, 'name')} AS role_group FROM {_quoted(user)} u "
        f"{_role_groups_join(user_id)}"
        f"WHERE {user_id} = %s"
    )


@functools.cache
def _role_groups_sql() -> str:
    through, of_user, of_group = _groups_of_users()
    group_name = _quoted(Group, "name")
    return (
        f"SELECT g.{group_name} FROM {through} ug JOIN {_quoted(Group)} g ON g.{_quoted(Group, 'id')} = ug.{of_group} "
        f"WHERE ug.{of_user} = %s AND g.{group_name} IN ({', '.join(['%s'] * len(ROLE_NAMES))})"
    )


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
