from django.apps import AppConfig
from django.core import checks


class LoopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "loop"
    verbose_name = "Loop store monitoring"

    def ready(self) -> None:
        from loop.checks import SETTINGS_TAG, settings_check

        checks.register(settings_check, SETTINGS_TAG)
