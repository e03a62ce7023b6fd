"""Reads about people: which role a user has.

Minimal version of the sign-in branch (accounts-signin); the accounts branch (H1) has the full one with
the same ``role_of``: keep that one when merging.
"""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, PermissionsMixin

from loop.accounts.capabilities import Role

# The highest role a user's groups give wins (a user in viewer and operator is an operator).
_HIGHEST_FIRST = (Role.ADMIN, Role.OPERATOR, Role.VIEWER)


def role_of(user: AbstractBaseUser | AnonymousUser) -> Role | None:
    """The role of an active user: admin for a superuser, else the highest of its groups; None without one."""
    if not user.is_authenticated or not user.is_active or not isinstance(user, PermissionsMixin):
        return None
    if user.is_superuser:
        return Role.ADMIN
    names = set(user.groups.values_list("name", flat=True))
    return next((role for role in _HIGHEST_FIRST if role.value in names), None)
