"""Structured logs: the fields every log line carries, and the two ways of writing a line (``LOG_FORMAT``).

Every process (web, worker, beat, the embedded pool of ``make run``) logs through the standard
``logging`` module; this module adds what a line is *about*. ``bind``/``bound`` put fields such as the
``request_id`` of the HTTP request being served, or the ``task``, ``task_id`` and ``report_id`` of the
job being run, in a context variable (each thread and each request has its own), and both formatters
below add them to every line logged meanwhile, whoever logs it (Django, Celery, the services). A
field given as ``extra=`` to one log call wins over a bound one of the same name.

- ``LOG_FORMAT=text`` (``make run``, the default): ``time LEVEL logger: message [request_id=... report_id=...]``.
- ``LOG_FORMAT=json`` (compose, the image): one JSON object a line, made by python-json-logger:
  ``time`` (UTC, ms), ``level``, ``logger``, ``event`` (the message), the bound fields, the call's
  ``extra`` fields, and ``exc_info`` (the traceback) when there is one.

No Django here: gunicorn's master process (gunicorn.conf.py) uses ``logging_config`` before any app
is loaded, and the settings use it to build ``LOGGING``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

TEXT = "text"
JSON = "json"
FORMATS = (TEXT, JSON)

# The fields the text format shows after the message, in this order (the JSON format shows every field).
SHOWN_FIELDS = (
    "request_id",
    "task",
    "task_id",
    "report_id",
    "import_id",
    "delivery_id",
    "alert_id",
    "store_id",
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# The fields bound now: never changed in place (``bind`` sets a new mapping), so a copied context
# (``carried``) keeps what was bound when it was copied.
_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("loop_log_fields", default=_EMPTY)

P = ParamSpec("P")
R = TypeVar("R")


def bound_fields() -> Mapping[str, Any]:
    """The fields bound in this context (read-only)."""
    return _fields.get()


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add ``fields`` (None values are left out) to this context's; ``unbind`` the token to take them off."""
    current = _fields.get()
    return _fields.set(MappingProxyType({**current, **{k: v for k, v in fields.items() if v is not None}}))


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Back to the fields bound before ``bind`` gave ``token``; in another context, back to none."""
    try:
        _fields.reset(token)
    except ValueError:  # the token belongs to another context (a signal sent from elsewhere)
        _fields.set(_EMPTY)


def start_request(**fields: Any) -> None:
    """A request begins in this thread: ``fields`` only, whatever an earlier request left bound."""
    _fields.set(MappingProxyType({k: v for k, v in fields.items() if v is not None}))


def end_request() -> None:
    _fields.set(_EMPTY)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """``fields`` bound for the ``with`` block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def carried(fn: Callable[P, R], **fields: Any) -> Callable[P, R]:
    """``fn`` for another thread (a pool or a timer): it runs with the fields bound here now, plus ``fields``.

    Call the result once: it enters a copy of this context, which cannot be entered twice at a time.
    """
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        def call() -> R:
            bind(**fields)
            return fn(*args, **kwargs)

        return context.run(call)

    return run


def _utc_time(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object a line: time, level, logger, event, then the bound and ``extra`` fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Python's warnings (e.g. Celery's SecurityWarning) are printed as plain text unless logging takes them.
        logging.captureWarnings(True)
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "message": "event"},
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return _utc_time(record)

    def format(self, record: logging.LogRecord) -> str:
        """The same line as python-json-logger's ``format`` (which the rare cases still take: a dict message, a
        traceback, a stack), made in one pass: an access line costs ~40% less (docs/benchmarks.md)."""
        if record.exc_info or record.exc_text or record.stack_info or isinstance(record.msg, dict):
            return super().format(record)
        message = record.message = record.getMessage()
        log_data: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "event": message,
        }
        skip = self._skip_fields
        for key, value in record.__dict__.items():
            if key not in skip and key[:1] != "_":
                log_data[key] = value
        for key, value in _fields.get().items():
            log_data.setdefault(key, value)
        log_data.pop("request", None)
        return self.jsonify_log_record(log_data)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        for key, value in _fields.get().items():
            log_data.setdefault(key, value)
        # Django's request loggers pass the request object itself: its repr says nothing the fields do not.
        log_data.pop("request", None)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, then the bound (or ``extra``) fields of ``SHOWN_FIELDS`` in brackets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        fields = _fields.get()
        shown = []
        for key in SHOWN_FIELDS:
            value = record.__dict__.get(key, fields.get(key))
            if value is not None:
                shown.append(f"{key}={value}")
        return f"{line} [{' '.join(shown)}]" if shown else line


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == JSON else TextFormatter()


# The loggers of the lines written per request and per task (``LOG_ACCESS``): the access line, and a task's
# ``sent`` / ``started`` / ``finished`` lines.
ACCESS_LOGGERS = ("loop.access", "loop.task_logs")


def logging_config(log_format: str, level: str, access: bool = True) -> dict[str, Any]:
    """``LOGGING`` for ``log_format`` (anything but ``json`` is text): one handler on stderr, at the root.

    Django's own loggers keep no handler of their own (their lines reach the root, in the chosen format,
    once); ``django.server`` (runserver's line per request) is quiet below ERROR: the app's access line
    (``loop.access``, ``loop.request_ids``) says the same with the request id. ``access=False``
    (``LOG_ACCESS=0``) quiets the lines written per request and per task (``ACCESS_LOGGERS``) below WARNING.
    """
    formatter = JSON if log_format == JSON else TEXT
    quiet = {name: {"level": "NOTSET" if access else "WARNING"} for name in ACCESS_LOGGERS}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {TEXT: {"()": "loop.logs.TextFormatter"}, JSON: {"()": "loop.logs.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": formatter}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "level": "ERROR", "propagate": True},
            # gunicorn's own lines (start, workers, errors) in the same format; its level stays --log-level's.
            "gunicorn.error": {"handlers": ["console"], "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "propagate": False},
            **quiet,
        },
    }
