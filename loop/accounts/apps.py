from django.apps import AppConfig, apps
from django.core import checks


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loop.accounts"
    label = "accounts"
    verbose_name = "Accounts: roles and API keys"

    def ready(self) -> None:
        from loop.accounts.signin import connect_sign_in_audit
        from loop.checks import open_access_check

        # Sign-ins, sign-outs, failed sign-ins and axes' lockouts in the audit log (docs/audit.md).
        connect_sign_in_audit()
        if apps.is_installed("django.contrib.admin"):
            # After every admin module is loaded (the admin's own ready, first in INSTALLED_APPS): axes' included.
            from loop.accounts.admin import audit_axes_admin

            audit_axes_admin()

        # A deployment check (`manage.py check --deploy`, as Django's own security warnings), not loop_settings:
        # a warning, never a refused start.
        checks.register(open_access_check, checks.Tags.security, deploy=True)
