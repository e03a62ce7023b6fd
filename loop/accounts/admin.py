"""The Django admin (/admin/): users and groups come with django.contrib.auth; API keys are listed and revoked here.

Keys are created by POST /keys/ or ``manage.py create_key`` (the full key is shown once, which the admin's
forms cannot do); the digest never appears.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from loop.accounts.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "owner", "scope", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("scope",)
    search_fields = ("prefix", "name", "owner__username")
    fields = ("prefix", "name", "owner", "scope", "created_at", "expires_at", "revoked_at", "last_used_at")
    readonly_fields = ("prefix", "owner", "scope", "created_at", "revoked_at", "last_used_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} key(s) revoked.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revoke, do not erase: a revoked key still says who held it
        return actions
