from typing import Any

from django.apps import AppConfig, apps
from django.core import checks


def _changed(**kwargs: Any) -> None:
    from loop.accounts.cache import accounts_changed

    accounts_changed()


def _empty_the_cache_on_changes() -> None:
    """Saves and deletes of users, groups, keys and group membership empty every process's accounts cache
    (``loop.accounts.cache``; sessions: ``loop.accounts.sessions``; bulk updates of keys:
    ``ApiKeyQuerySet.update``). Nothing in the project bulk-updates users or groups."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models import signals

    from loop.accounts.models import ApiKey

    user_model: Any = get_user_model()
    for model in (user_model, Group, ApiKey):
        signals.post_save.connect(_changed, sender=model, dispatch_uid=f"accounts-cache-save-{model.__name__}")
        signals.post_delete.connect(_changed, sender=model, dispatch_uid=f"accounts-cache-delete-{model.__name__}")
    for through in (user_model.groups.through, Group.permissions.through, user_model.user_permissions.through):
        signals.m2m_changed.connect(_changed, sender=through, dispatch_uid=f"accounts-cache-m2m-{through.__name__}")


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loop.accounts"
    label = "accounts"
    verbose_name = "Accounts: roles and API keys"

    def ready(self) -> None:
        from loop.accounts.signin import connect_sign_in_audit
        from loop.checks import open_access_check

        _empty_the_cache_on_changes()
        # Sign-ins, sign-outs, failed sign-ins and axes' lockouts in the audit log (docs/audit.md).
        connect_sign_in_audit()
        if apps.is_installed("django.contrib.admin"):
            # After every admin module is loaded (the admin's own ready, first in INSTALLED_APPS): axes' included.
            from loop.accounts.admin import audit_axes_admin

            audit_axes_admin()

        # A deployment check (`manage.py check --deploy`, as Django's own security warnings), not loop_settings:
        # a warning, never a refused start.
        checks.register(open_access_check, checks.Tags.security, deploy=True)
