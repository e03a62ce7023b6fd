"""The Celery application (`celery -A myproject worker`).

Configuration comes from Django settings (the CELERY_* names), which read the
environment; tasks are discovered in the installed apps (loop.tasks).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

app = Celery("myproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
