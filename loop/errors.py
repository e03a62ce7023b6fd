"""Errors the service layer raises; ``loop.api.errors`` maps each to its HTTP status.

Services know nothing of HTTP: they say what went wrong, and the API (or a
management command) decides how to tell the user.
"""

from __future__ import annotations


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


class Conflict(ServiceError):
    """The request is valid but the current state does not allow it (HTTP 409)."""


class Unavailable(ServiceError):
    """A backing service (MongoDB, the broker) cannot be reached (HTTP 503)."""
