"""The Celery application (`celery -A myproject worker`).

Configuration comes from Django settings (the CELERY_* names), which read the
environment; tasks are discovered in the installed apps (loop.tasks). A worker consumes the
queues of the kinds in WORKER_QUEUES (settings.py: reports, imports, notifications, maintenance),
every kind when it is empty.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_init, worker_process_init

from loop import worker_metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

app = Celery("myproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
worker_metrics.connect()  # tasks counted, each worker's /metrics and heartbeat, beat's sends (loop/worker_metrics.py)


@worker_init.connect
def refuse_a_bad_configuration(**kwargs: Any) -> None:
    """Celery runs Django's checks but ignores their errors: a worker must not start on bad settings."""
    import django
    from django.apps import apps

    if not apps.ready:  # Celery's Django fixup, connected first, has normally set Django up already
        django.setup()
    from loop.checks import exit_on_settings_errors

    exit_on_settings_errors()


@worker_process_init.connect
def trace_this_process(**kwargs: Any) -> None:
    """Each pool process (after the fork) sends its spans when OTEL_EXPORTER_OTLP_ENDPOINT is set (loop/tracing.py)."""
    from loop import tracing

    if tracing.setup("loop-worker"):
        import logging

        logging.getLogger("loop.tracing").info("tracing on: spans to %s", tracing.traces_url(tracing.endpoint()))


@celeryd_after_setup.connect
def consume_the_configured_kinds(sender: str, instance: Any, **kwargs: Any) -> None:
    """WORKER_QUEUES=reports (or reports,imports): this worker consumes only those kinds' queues.

    Applied after Celery's own -Q, before the consumer starts. The kinds were checked with the settings
    (loop.E014), so every one has a queue. Empty: Celery's default, every queue of CELERY_TASK_QUEUES.
    """
    from django.conf import settings

    if settings.WORKER_QUEUES:
        instance.app.amqp.queues.select([settings.CELERY_QUEUE_NAMES[kind] for kind in settings.WORKER_QUEUES])


# The structured logs' signal handlers (request id in the task headers, task fields bound in the worker,
# logging set up from the settings' LOGGING): connected wherever this app sends or runs tasks; after the
# receivers above, so the worker's start-up line names the queues it consumes.
import loop.task_logs  # noqa: E402, F401
