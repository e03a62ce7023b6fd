"""The audit log in the Django admin, read-only. Django imports this module only when
``django.contrib.admin`` is installed (its autodiscovery), so the app works without the admin too."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from loop.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):  # not subscripted: django-stubs-ext is not a runtime dependency
    list_display = ("at", "actor", "action", "target", "address", "request_id")
    list_filter = ("action", "actor_kind")
    search_fields = ("actor", "action", "target", "request_id")
    readonly_fields = ("at", "actor", "actor_kind", "action", "target", "detail", "address", "request_id")
    # Counting a large log on every page is slow; the admin shows "more" instead.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
