"""Celery's side of the structured logs (``loop.logs``), through Celery's signals only (no task body changes).

- Publishing (web, worker, beat): the request id bound where a task is sent travels in the message's
  headers (``loop_request_id``). A task sent with none bound (by beat, or a ``manage.py`` command) gets a
  new id of its own, so every task run has one. The sender logs ``task ... sent`` with that id and the
  task's id.
- Running (worker): from ``task_prerun`` to ``task_postrun`` the task's lines carry ``request_id``,
  ``task``, ``task_id`` and its job: each argument whose name ends in ``_id`` (``report_id``,
  ``import_id``, ``delivery_id``, ...). A task it sends in turn carries the same request id. One line
  when it starts and one when it finishes (``state``, ``duration_ms``).
- Logging set-up (worker, beat): Celery configures no handler of its own (``setup_logging`` is
  answered): the processes log through the settings' ``LOGGING`` (``LOG_FORMAT``), at the ``-l`` level
  they were started with; under ``LOG_FORMAT=json`` the worker's start-up banner (plain text on
  stdout) is left out, replaced by one JSON line.

Connected by ``myproject/celery.py``, so every process that talks to the broker has them.
"""

from __future__ import annotations

import inspect
import logging
import logging.config
import os
import sys
import time
from contextvars import Token
from functools import lru_cache
from typing import Any

from celery.signals import before_task_publish, celeryd_after_setup, setup_logging, task_postrun, task_prerun

from loop import logs
from loop.request_ids import new_request_id, sane_request_id

logger = logging.getLogger(__name__)

HEADER = "loop_request_id"  # a message header of its own; Celery hands it to the task as task.request.<HEADER>

# task id -> (the token of its bound fields, when it started); prerun and postrun run in the same thread.
_running: dict[str, tuple[Token[Any], float]] = {}


@before_task_publish.connect
def carry_request_id(sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    """The bound request id (or a new one) into the message's headers, and one line saying which task was sent
    under it (``sent_task``, ``sent_task_id``): the link from a request's (or beat's) lines to the worker's."""
    if headers is None:
        return
    request_id = headers.get(HEADER) or logs.bound_fields().get("request_id") or new_request_id()
    headers[HEADER] = request_id
    logger.info(
        "task %s sent",
        sender,
        extra={"request_id": request_id, "sent_task": sender, "sent_task_id": headers.get("id")},
    )


@lru_cache(maxsize=256)
def _parameter_names(task_name: str, run: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(run).parameters)
    except (TypeError, ValueError):
        return ()


def job_fields(task: Any, args: Any, kwargs: Any) -> dict[str, str]:
    """The task's ``*_id`` arguments, by their parameter names (``report_id=...``)."""
    names = _parameter_names(task.name, task.run)
    given: dict[str, Any] = dict(zip(names, args or (), strict=False))
    given.update(kwargs or {})
    return {name: str(value) for name, value in given.items() if name.endswith("_id") and value is not None}


@task_prerun.connect
def bind_task(task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    if task is None or task_id is None:
        return
    # The sender's id from the message; run in-process (eagerly), the id bound here; else a new one.
    sent_with = sane_request_id(str(getattr(task.request, HEADER, None) or ""))
    request_id = sent_with or logs.bound_fields().get("request_id") or new_request_id()
    token = logs.bind(request_id=request_id, task=task.name, task_id=task_id, **job_fields(task, args, kwargs))
    _running[task_id] = (token, time.perf_counter())
    logger.info("task %s started", task.name)


@task_postrun.connect
def unbind_task(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _running.pop(task_id or "", None)
    if started is None:
        return
    token, began = started
    duration_ms = round((time.perf_counter() - began) * 1000.0, 1)
    name = getattr(task, "name", "?")
    logger.info("task %s finished: %s", name, state, extra={"state": state, "duration_ms": duration_ms})
    logs.unbind(token)


@setup_logging.connect
def configure_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """The settings' LOGGING instead of Celery's own handlers; the root at the worker's (or beat's) ``-l``."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@celeryd_after_setup.connect
def quiet_banner_under_json(sender: str | None = None, instance: Any = None, **_: Any) -> None:
    from django.conf import settings

    if settings.LOG_FORMAT != logs.JSON or instance is None:
        return
    instance.quiet = True  # read right after this signal: the banner is plain text on stdout
    _say_in_json()
    queues = sorted(getattr(instance.app.amqp.queues, "consume_from", None) or {})
    logger.info(
        "worker %s starting", sender, extra={"concurrency": getattr(instance, "concurrency", None), "queues": queues}
    )


def _say_in_json() -> None:
    """Celery's shutdown notices ("worker: Warm shutdown (MainProcess)") are written by its signal handlers
    with ``celery.apps.worker.safe_say``, as plain text and not through logging (no lock may be taken in a
    signal handler). Under JSON they become JSON lines, written the same lock-free way (one ``os.write``)."""
    from celery.apps import worker

    original = getattr(worker, "safe_say", None)
    if original is None or getattr(original, "_loop_json", False):
        return
    write = getattr(worker, "_original_os_write", os.write)
    formatter = logs.JsonFormatter()

    def say(msg: str, f: Any = sys.__stderr__) -> None:
        record = logging.makeLogRecord({"name": "celery.apps.worker", "msg": msg.strip()})
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        try:
            write(f.fileno(), (formatter.format(record) + "\n").encode())
        except (OSError, AttributeError, ValueError):
            pass  # as Celery's: losing the notice must not abort the shutdown

    say._loop_json = True  # type: ignore[attr-defined]
    setattr(worker, "safe_say", say)  # noqa: B010 (celery-types does not declare it)
