"""Errors the service layer raises (``loop.api.errors`` maps each to its HTTP status), and how a job reads one.

Services know nothing of HTTP: they say what went wrong, and the API (or a
management command) decides how to tell the user.
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, PyMongoError


class ServiceError(Exception):
    """A use case refused the request; the message is safe to show to the user."""


class InvalidInput(ServiceError):
    """A value the caller gave breaks a rule (HTTP 400); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFound(ServiceError):
    """The named thing does not exist (HTTP 404)."""


class Forbidden(ServiceError):
    """The caller is known but may not do this (HTTP 403), e.g. a key wider than its owner's role."""


class Conflict(ServiceError):
    """The request is valid but the current state does not allow it (HTTP 409)."""


class Gone(ServiceError):
    """The named thing existed but is no longer offered, e.g. an expired download link (HTTP 410)."""


class Unavailable(ServiceError):
    """A backing service (MongoDB, the broker) cannot be reached (HTTP 503)."""


# Server errors the driver itself labels as safe to retry (e.g. a primary stepping down).
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "ResumableChangeStreamError")


def is_transient(exc: BaseException) -> bool:
    """True for MongoDB errors that a later attempt can get past (the server is away)."""
    if isinstance(exc, ConnectionFailure):
        return True
    return isinstance(exc, PyMongoError) and any(exc.has_error_label(label) for label in TRANSIENT_LABELS)


def short_error(exc: BaseException) -> str:
    """A one-line message for a job's document (no stack trace reaches the API)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
