"""The Celery application (`celery -A myproject worker`).

Configuration comes from Django settings (the CELERY_* names), which read the
environment; tasks are discovered in the installed apps (loop.tasks).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

app = Celery("myproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def refuse_a_bad_configuration(**kwargs: Any) -> None:
    """Celery runs Django's checks but ignores their errors: a worker must not start on bad settings."""
    import django
    from django.apps import apps

    if not apps.ready:  # Celery's Django fixup, connected first, has normally set Django up already
        django.setup()
    from loop.checks import exit_on_settings_errors

    exit_on_settings_errors()
