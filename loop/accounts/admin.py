"""The Django admin (/admin/): users and groups come with django.contrib.auth; API keys are listed and revoked here.

Keys are created by POST /keys/ or ``manage.py create_key`` (the full key is shown once, which the admin's
forms cannot do); the digest never appears. Every change to a user or a key made here goes to the audit log
(``loop.audit``) under the signed-in admin's name: Django's own user admin is re-registered with the hooks.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from loop.accounts.models import ApiKey
from loop.accounts.selectors import account_summary, key_summary
from loop.audit.actions import Action
from loop.audit.services import record_audit

# Set on the user get_object read, before a form changes it: the audit entry's "before".
_BEFORE = "_audit_before"
_PASSWORD_BEFORE = "_audit_password_before"  # only compared, never recorded


def _password_state(user: Any) -> str:
    return "set" if user.has_usable_password() else "unusable"


class AuditedUserAdmin(UserAdmin):
    """Django's user admin; additions, changes, password changes and deletions are recorded."""

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # The change and password views both start here, and their forms modify this very instance.
        user = super().get_object(request, object_id, from_field)
        if user is not None:
            setattr(user, _BEFORE, account_summary(user=user))
            setattr(user, _PASSWORD_BEFORE, user.password)
        return user

    # log_addition and log_change run after the user and its groups are saved (save_model, save_related).
    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        logged = super().log_addition(request, obj, message)
        detail = {**account_summary(user=obj), "password": _password_state(obj)}
        record_audit(request=request, action=Action.USER_CREATE, target=_username(obj), detail=detail)
        return logged

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        logged = super().log_change(request, obj, message)
        if getattr(obj, _PASSWORD_BEFORE, None) not in (None, getattr(obj, "password", None)):
            detail: dict[str, Any] = {"password": _password_state(obj)}
            record_audit(request=request, action=Action.USER_PASSWORD, target=_username(obj), detail=detail)
        else:
            detail = {"before": getattr(obj, _BEFORE, None), "after": account_summary(user=obj)}
            record_audit(request=request, action=Action.USER_UPDATE, target=_username(obj), detail=detail)
        return logged

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        detail = _deleted(obj)
        super().delete_model(request, obj)
        record_audit(request=request, action=Action.USER_DELETE, target=detail["username"], detail=detail)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        gone = [_deleted(user) for user in queryset]
        super().delete_queryset(request, queryset)
        for detail in gone:
            record_audit(request=request, action=Action.USER_DELETE, target=detail["username"], detail=detail)


def _username(user: Any) -> str:
    return str(user.get_username())


def _deleted(user: Any) -> dict[str, Any]:
    # Read before the delete: the user's keys go with it (on_delete=CASCADE).
    return {**account_summary(user=user), "keys_deleted": sorted(user.api_keys.values_list("prefix", flat=True))}


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)


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
        now = timezone.now()
        revoked = 0
        # One by one, so each entry names a key this request really revoked.
        for row in queryset.filter(revoked_at__isnull=True).select_related("owner"):
            if ApiKey.objects.filter(pk=row.pk, revoked_at__isnull=True).update(revoked_at=now):
                revoked += 1
                detail = {**key_summary(api_key=row), "already_revoked": False}
                record_audit(request=request, action=Action.KEY_REVOKE, target=row.pk, detail=detail)
        self.message_user(request, f"{revoked} key(s) revoked.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # revoke, do not erase: a revoked key still says who held it
        return actions

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        # Only name and expiry are editable here (no additions).
        stored = ApiKey.objects.select_related("owner").filter(pk=obj.pk).first()
        super().save_model(request, obj, form, change)
        before = key_summary(api_key=stored) if stored is not None else None
        detail = {"before": before, "after": key_summary(api_key=obj)}
        record_audit(request=request, action=Action.KEY_UPDATE, target=obj.pk, detail=detail)

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        detail = key_summary(api_key=obj)
        key_id = obj.pk
        super().delete_model(request, obj)
        record_audit(request=request, action=Action.KEY_DELETE, target=key_id, detail=detail)
