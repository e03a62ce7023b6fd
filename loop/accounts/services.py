"""Writes of the accounts: roles of users, API keys (created, checked on use, revoked)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.functional import SimpleLazyObject

from loop import errors
from loop.accounts import keys
from loop.accounts.capabilities import (
    SCOPE_CAPABILITIES,
    Capability,
    Principal,
    Role,
    Scope,
    key_capabilities,
    scope_allowed,
)
from loop.accounts.models import ApiKey
from loop.accounts.selectors import find_user, key_by_prefix, role_of

INVALID_KEY = "Invalid API token or key."


class KeyRefused(Exception):
    """A bearer key that may not be used now; the message is safe to answer (a 401)."""


@dataclass(frozen=True)
class CreatedKey:
    """A new key: ``key`` is the only time the full key exists outside its holder."""

    key: str
    api_key: ApiKey


# --- users and roles ----------------------------------------------------------------------------------


def set_role(*, user: Any, role: Role) -> None:
    """Make ``role`` the user's only role group; an admin is also a Django superuser and staff (the admin site)."""
    user.groups.remove(*Group.objects.filter(name__in=[r.value for r in Role]))
    user.groups.add(Group.objects.get(name=role.value))
    user.is_superuser = user.is_staff = role is Role.ADMIN
    user.save(update_fields=["is_superuser", "is_staff"])


@transaction.atomic
def save_account(*, username: str, role: Role, password: str | None, clear_password: bool) -> tuple[Any, bool]:
    """Create or update an account with exactly one role; (user, created).

    The username must pass Django's own username rules (as ``createsuperuser``); ``password`` is checked
    with the password validators. A new account without a password (a service account) can only use keys.
    """
    user_model = get_user_model()
    user = find_user(username=username)
    created = user is None
    if user is None:
        user = user_model(username=username)
        try:
            user_model._meta.get_field("username").run_validators(username)
        except ValidationError as exc:
            raise errors.InvalidInput("username", " ".join(exc.messages)) from None
    if password is not None:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise errors.InvalidInput("password", " ".join(exc.messages)) from None
        user.set_password(password)
    elif clear_password or created:
        user.set_unusable_password()
    user.is_active = True
    user.save()
    set_role(user=user, role=role)
    return user, created


# --- API keys -------------------------------------------------------------------------------------------


def _digest(key: str) -> str:
    return keys.key_digest(key, secret=settings.KEY_HASH_SECRET)


# Compared against when no row has the prefix, so an unknown prefix takes the same path as a wrong secret.
_NO_DIGEST = "0" * 64


def authenticate_key(*, key: str, now: dt.datetime) -> tuple[Any, Principal]:
    """The owner and principal of a bearer key, or ``KeyRefused`` saying why (revoked, expired, owner).

    One indexed query by prefix (the owner's flags and role groups joined in), kept per process by
    ``loop.accounts.cache``, which every change empties in every process (a revocation or a deactivated
    owner is refused from the next request on). No write except
    ``last_used_at`` at most once per ``KEY_LAST_USED_INTERVAL`` seconds. The owner is returned lazily (read
    only if a view asks for ``request.user``). Why a key is refused is told only once the whole key matched
    (its holder already knows it exists).
    """
    prefix = keys.key_prefix(key)
    if prefix is None:
        raise KeyRefused(INVALID_KEY)
    found = key_by_prefix(prefix=prefix)
    row, owner_role = found if found is not None else (None, None)
    matched = keys.digest_matches(_digest(key), row.digest if row is not None else _NO_DIGEST)
    if row is None or not matched:
        raise KeyRefused(INVALID_KEY)
    if row.revoked_at is not None:
        raise KeyRefused(f"This API key ({row.prefix}) was revoked.")
    # The server's clock decides: a key is refused from the instant it expires on.
    if row.expires_at is not None and now >= row.expires_at:
        raise KeyRefused(f"This API key ({row.prefix}) expired at {row.expires_at.isoformat()}.")
    if owner_role is None:
        raise KeyRefused(f"This API key's ({row.prefix}) owner is deactivated or has no role.")
    _note_use(row, now)
    capabilities = key_capabilities(scope=Scope(row.scope), owner_role=owner_role)
    principal = Principal(
        kind="key", name=f"key:{row.prefix}", capabilities=capabilities, user_id=row.owner_id, key_id=row.id
    )
    owner_id = row.owner_id
    return SimpleLazyObject(lambda: get_user_model().objects.get(pk=owner_id)), principal


def _note_use(row: ApiKey, now: dt.datetime) -> None:
    interval = dt.timedelta(seconds=settings.KEY_LAST_USED_INTERVAL)
    if row.last_used_at is not None and now - row.last_used_at < interval:
        return
    # Conditional: of several processes using the key at once, one writes.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - interval)
    ApiKey.objects.filter(stale, pk=row.pk).update(last_used_at=now)
    # The row may be the cached one (loop.accounts.cache): the next requests of this process need no write.
    row.last_used_at = now


def _key_owner(*, caller: Principal, owner_username: str | None) -> Any:
    if owner_username is None:
        if caller.user_id is None:
            raise errors.Forbidden(
                f"{caller.name} has no user to own a key: name the key's owner ('owner': a username)."
            )
        return get_user_model().objects.get(pk=caller.user_id)
    owner = find_user(username=owner_username)
    if owner is not None and owner.pk == caller.user_id:
        return owner
    if not caller.can(Capability.ADMIN):
        raise errors.Forbidden("Only an admin may create a key for another user.")
    if owner is None:
        raise errors.InvalidInput("owner", "No such user.")
    return owner


def create_key(
    *,
    caller: Principal,
    name: str,
    scope: Scope,
    expires_at: dt.datetime | None,
    owner_username: str | None,
    now: dt.datetime,
) -> CreatedKey:
    """A new key for the caller (or, for an admin, another user), never wider than its owner's role or the caller."""
    owner = _key_owner(caller=caller, owner_username=owner_username)
    owner_role = role_of(user=owner)
    if owner_role is None:
        raise errors.InvalidInput("owner", f"{owner.get_username()} is deactivated or has no role.")
    if not scope_allowed(scope=scope, role=owner_role):
        raise errors.Forbidden(
            f"A key may not do more than its owner: {owner.get_username()} is {owner_role.value}, "
            f"and the {scope.value} scope is wider."
        )
    if not SCOPE_CAPABILITIES[scope] <= caller.capabilities:
        raise errors.Forbidden(f"{caller.name} may not create a {scope.value} key: it would do more than the caller.")
    if expires_at is not None and expires_at <= now:
        raise errors.InvalidInput("expires_at", "The expiry must lie in the future.")
    for _ in range(3):  # a prefix collision (62^8 space) is all but impossible; retry rather than fail
        prefix = keys.new_prefix(scope)
        key = keys.new_key(prefix)
        try:
            with transaction.atomic():
                row = ApiKey.objects.create(
                    owner=owner,
                    name=name,
                    scope=scope.value,
                    prefix=prefix,
                    digest=_digest(key),
                    created_at=now,
                    expires_at=expires_at,
                )
        except IntegrityError:
            continue
        return CreatedKey(key=key, api_key=row)
    raise errors.Conflict("Could not pick a unique key prefix; try again.")


@dataclass(frozen=True)
class RevokedKey:
    """A revoked key's row; ``already``: it was revoked before this call (which then changed nothing)."""

    api_key: ApiKey
    already: bool


def revoke_key(*, caller: Principal, key_id: str, now: dt.datetime) -> RevokedKey:
    """Revoke a key (its owner or an admin): refused from the next request on. Revoking twice keeps the first time."""
    row = ApiKey.objects.select_related("owner").filter(pk=key_id).first()
    # Someone else's key is "not found": ids of other users' keys are not confirmed.
    if row is None or not (caller.can(Capability.ADMIN) or row.owner_id == caller.user_id):
        raise errors.NotFound(f"No API key {key_id}.")
    revoked = ApiKey.objects.filter(pk=key_id, revoked_at__isnull=True).update(revoked_at=now)
    return RevokedKey(api_key=row, already=revoked == 0)
