"""The accounts' own table: API keys (users, groups and sessions are Django's ``auth`` and ``sessions``).

Roles are Django groups (``viewer``, ``operator``, ``admin``, made by migration 0002); see
``loop.accounts.selectors.role_of``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from loop.accounts import cache
from loop.accounts.capabilities import Scope
from loop.ids import new_id

# Fields whose change never changes what a key may do: their writes leave the cache alone.
NOT_ACCESS_FIELDS = frozenset({"last_used_at"})


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def update(self, **kwargs: object) -> int:
        """A bulk update (a revocation) empties every process's cache of keys, as a save does."""
        changed = super().update(**kwargs)
        if changed and not set(kwargs) <= NOT_ACCESS_FIELDS:
            cache.accounts_changed()
        return changed


class ApiKey(models.Model):
    """One API key: only its prefix and a keyed hash are stored (``loop/accounts/keys.py``), never the key."""

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=[(scope.value, scope.value) for scope in Scope])
    # The visible part (kind + 8 random characters): unique, so it finds the row with one indexed query.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Written at most once per KEY_LAST_USED_INTERVAL seconds per key, not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"
