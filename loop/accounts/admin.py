"""The Django admin (/admin/): users and groups come with django.contrib.auth; API keys are listed and revoked here.

Keys are created by POST /keys/ or ``manage.py create_key`` (the full key is shown once, which the admin's
forms cannot do); the digest never appears. Every change to a user, a group or a key made here goes to the
audit log (``loop.audit``) under the signed-in admin's name: Django's own user and group admins are
re-registered with the hooks. The three role groups (viewer, operator, admin) keep their names: a user's role
is the name of their group, so renaming or deleting one would change everyone's access in it at once.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy

from loop.accounts.capabilities import Role
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
            setattr(user, _BEFORE, _admin_summary(user))
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
            detail = {"before": getattr(obj, _BEFORE, None), "after": _admin_summary(obj)}
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


def _admin_summary(user: Any) -> dict[str, Any]:
    # The admin's user page also edits the user's own permissions (what a staff member may do in /admin/).
    permissions = user.user_permissions.values_list("content_type__app_label", "codename")
    return {**account_summary(user=user), "permissions": sorted(f"{app}.{codename}" for app, codename in permissions)}


def audited_password_change(request: HttpRequest, extra_context: Any = None) -> HttpResponse:
    """/admin/password_change/ (a staff member's own password: Django's view), recorded as ``user.password``.

    Routed in myproject/urls.py before the admin's own URLs; ``admin.site.admin_view`` there asks for a
    signed-in staff member as the admin does."""
    response = admin.site.password_change(request, extra_context)
    # The view redirects only when the form was valid, that is once the password has changed.
    if request.method == "POST" and response.status_code == 302:
        detail = {"password": "set"}
        record_audit(request=request, action=Action.USER_PASSWORD, target=_username(request.user), detail=detail)
    return response


def _deleted(user: Any) -> dict[str, Any]:
    # Read before the delete: the user's keys go with it (on_delete=CASCADE).
    return {**account_summary(user=user), "keys_deleted": sorted(user.api_keys.values_list("prefix", flat=True))}


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)


# --- groups ------------------------------------------------------------------------------------------------

ROLE_GROUPS = frozenset(role.value for role in Role)
ROLE_GROUP_KEPT = (
    "The role groups viewer, operator and admin cannot be renamed or deleted: a user's role is the name of "
    "their group, so everyone in it would lose or change their access (docs/access.md)."
)


def group_summary(group: Group) -> dict[str, Any]:
    """What the audit log records of a group: its name and its permissions (``app_label.codename``, sorted)."""
    if group.pk is None:
        return {"name": group.name, "permissions": []}
    permissions = group.permissions.values_list("content_type__app_label", "codename")
    return {"name": group.name, "permissions": sorted(f"{app}.{codename}" for app, codename in permissions)}


class GroupForm(forms.ModelForm):
    """Django's group form, refusing a new name for a role group."""

    class Meta:
        model = Group
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored_name = self.instance.name if self.instance.pk is not None else None

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        if self._stored_name in ROLE_GROUPS and name != self._stored_name:
            raise ValidationError(ROLE_GROUP_KEPT, code="role_group")
        return name


class AuditedGroupAdmin(GroupAdmin):
    """Django's group admin; additions, changes and deletions are recorded; the role groups keep their names."""

    form = GroupForm
    actions = ["delete_selected"]

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        group = super().get_object(request, object_id, from_field)
        if group is not None:
            setattr(group, _BEFORE, group_summary(group))
        return group

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.name in ROLE_GROUPS:
            return False  # the change page shows no Delete link
        return super().has_delete_permission(request, obj)

    # log_addition and log_change run after the group and its permissions are saved (save_model, save_related).
    def log_addition(self, request: HttpRequest, obj: Group, message: Any) -> Any:
        logged = super().log_addition(request, obj, message)
        record_audit(request=request, action=Action.GROUP_CREATE, target=obj.name, detail=group_summary(obj))
        return logged

    def log_change(self, request: HttpRequest, obj: Group, message: Any) -> Any:
        logged = super().log_change(request, obj, message)
        detail = {"before": getattr(obj, _BEFORE, None), "after": group_summary(obj)}
        record_audit(request=request, action=Action.GROUP_UPDATE, target=obj.name, detail=detail)
        return logged

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        # A clear refusal rather than the 403 that has_delete_permission alone would give.
        group = self.get_object(request, unquote(object_id))
        if group is not None and group.name in ROLE_GROUPS:
            self.message_user(request, ROLE_GROUP_KEPT, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:auth_group_change", args=(group.pk,)))
        return super().delete_view(request, object_id, extra_context)

    @admin.action(permissions=["delete"], description=gettext_lazy("Delete selected %(verbose_name_plural)s"))
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Group]) -> Any:
        # Django's bulk delete, unless a role group is among the selected: then nothing is deleted.
        kept = sorted(queryset.filter(name__in=ROLE_GROUPS).values_list("name", flat=True))
        if kept:
            self.message_user(request, f"{ROLE_GROUP_KEPT} Nothing was deleted ({', '.join(kept)}).", messages.ERROR)
            return None
        return django_delete_selected(self, request, queryset)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        detail = _group_deleted(obj)
        super().delete_model(request, obj)
        record_audit(request=request, action=Action.GROUP_DELETE, target=detail["name"], detail=detail)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        gone = [_group_deleted(group) for group in queryset]
        super().delete_queryset(request, queryset)
        for detail in gone:
            record_audit(request=request, action=Action.GROUP_DELETE, target=detail["name"], detail=detail)


def _group_deleted(group: Group) -> dict[str, Any]:
    # Read before the delete: the members lose the group (and its permissions) with it.
    members = group.user_set.values_list(get_user_model().USERNAME_FIELD, flat=True)
    return {**group_summary(group), "members": sorted(str(name) for name in members)}


if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)


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


# --- axes' failed sign-ins ----------------------------------------------------------------------------------


def audit_axes_admin() -> None:
    """Deleting one of axes' access attempts in /admin/ unlocks its username or address: recorded as
    ``session.unlock``. axes registers its admin after this module (it comes later in INSTALLED_APPS), so
    ``AccountsConfig.ready`` calls this once every admin module is loaded, and it re-registers axes' own."""
    from axes.admin import AccessAttemptAdmin
    from axes.models import AccessAttempt

    if not admin.site.is_registered(AccessAttempt):  # AXES_ENABLE_ADMIN off
        return

    class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
        def delete_model(self, request: HttpRequest, obj: Any) -> None:
            detail = _attempt_summary(obj)
            super().delete_model(request, obj)
            record_audit(request=request, action=Action.SESSION_UNLOCK, target=_attempt_target(detail), detail=detail)

        def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
            gone = [_attempt_summary(attempt) for attempt in queryset]
            super().delete_queryset(request, queryset)
            for detail in gone:
                record_audit(
                    request=request, action=Action.SESSION_UNLOCK, target=_attempt_target(detail), detail=detail
                )

    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AuditedAccessAttemptAdmin)


def _attempt_summary(attempt: Any) -> dict[str, Any]:
    return {
        "username": attempt.username,
        "ip_address": attempt.ip_address,
        "failures": attempt.failures_since_start,
    }


def _attempt_target(detail: dict[str, Any]) -> str:
    return str(detail["username"] or detail["ip_address"] or "")
