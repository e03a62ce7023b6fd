"""JSON errors for every failure the API can meet.

Clients are scripts: every error is a JSON body ``{"error": "<what was wrong>"}``
with a 4xx/5xx status, never an HTML page or a stack trace.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse, UnreadablePostError
from django.views.decorators.csrf import csrf_exempt
from pymongo.errors import PyMongoError
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler

from loop import errors
from loop.api.parsers import ClientAborted, PayloadTooLarge

logger = logging.getLogger(__name__)

# Django's own database (users, keys, sessions) cannot be reached or opened: what a request that needs
# an identity answers (503), from a DRF view or from anywhere else (server_error_view).
ACCOUNTS_DATABASE_ERRORS = (OperationalError, InterfaceError)
ACCOUNTS_DATABASE_DOWN = "The accounts database is unavailable; try again later."


class LengthRequired(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Send the body with a Content-Length header (chunked bodies are not read)."
    default_code = "length_required"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class Gone(APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "No longer available."
    default_code = "gone"


class ServiceUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A backing service is unavailable; try again later."
    default_code = "service_unavailable"


def as_api_exception(exc: errors.ServiceError) -> APIException:
    """The HTTP answer to a service's refusal (the one place that maps them)."""
    if isinstance(exc, errors.InvalidInput):
        return ValidationError({exc.field: exc.message})
    if isinstance(exc, errors.NotFound):
        return NotFound(str(exc))
    if isinstance(exc, errors.Conflict):
        return Conflict(str(exc))
    if isinstance(exc, errors.Forbidden):
        return PermissionDenied(str(exc))
    if isinstance(exc, errors.Unavailable):
        return ServiceUnavailable(str(exc))
    if isinstance(exc, errors.Gone):
        return Gone(str(exc))
    return ValidationError(str(exc))


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    """DRF error details ({"field": ["msg"]}, lists, strings) as "field: msg" lines."""
    if isinstance(detail, Mapping):
        lines: list[str] = []
        for key, value in detail.items():
            label = "" if key in ("non_field_errors", "detail") else f"{prefix}{key}"
            lines.extend(_flatten(value, f"{label}: " if label else prefix))
        return lines
    if isinstance(detail, list | tuple):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def error_message(detail: Any) -> str:
    return "; ".join(_flatten(detail)) or "Bad request."


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, with every body reshaped to {"error": ...}; nothing leaks a trace."""
    request = context.get("request")
    if request is not None:
        # Errors are JSON even where the view negotiated another renderer (the
        # schema's YAML): DRF's finalize_response takes the request's choice.
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    if isinstance(exc, errors.ServiceError):
        exc = as_api_exception(exc)
    elif isinstance(exc, RequestDataTooBig):
        # DRF reads JSON bodies through request.body, where Django refuses anything over
        # DATA_UPLOAD_MAX_MEMORY_SIZE before our parser sees it: the same 413 either way.
        exc = body_too_large()
    elif isinstance(exc, UnreadablePostError):
        # A socket error while reading the body (gunicorn's ConnectionResetError): the client went away.
        exc = ClientAborted(f"The client aborted the request while sending its body ({exc}).")
    response = exception_handler(exc, context)
    if isinstance(exc, ClientAborted) and response is not None:
        _log_client_abort(request, exc, response)
    if response is not None:
        body: dict[str, Any] = {"error": error_message(response.data)}
        if isinstance(exc, ValidationError) and isinstance(response.data, Mapping):
            body["fields"] = response.data
        response.data = body
        return response
    if isinstance(exc, PyMongoError):
        logger.error("MongoDB error in %s: %s", context.get("view"), exc)
        return Response({"error": "The database is unavailable; try again later."}, status=503)
    if isinstance(exc, ACCOUNTS_DATABASE_ERRORS):
        logger.error("accounts database error in %s: %s", context.get("view"), exc)
        return Response({"error": ACCOUNTS_DATABASE_DOWN}, status=503)
    logger.exception("unhandled error in %s", context.get("view"))
    return Response({"error": "Internal server error."}, status=500)


def _log_client_abort(request: Any, exc: ClientAborted, response: Response) -> None:
    """One WARNING line, no traceback: a client abort is not a server error."""
    method = getattr(request, "method", "?")
    path = getattr(request, "path", "?")
    logger.warning("client aborted %s %s: %s", method, path, exc.detail)
    # Django's request logger would add a "Bad Request" line for the same event (it checks this flag).
    response._has_been_logged = True  # type: ignore[attr-defined]


# Django-level handlers (URLs that match no view, errors outside DRF views).
@csrf_exempt  # any method on an unknown URL is a 404, not a CSRF 403
def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"error": f"Not found: {request.path}"}, status=404)


def csrf_failure_view(request: HttpRequest, reason: str = "") -> JsonResponse:
    return JsonResponse({"error": f"Forbidden (CSRF check failed: {reason or 'no reason given'})."}, status=403)


def body_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than {settings.API_MAX_BODY_BYTES} bytes.")


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse({"error": str(body_too_large().detail)}, status=413)
    return JsonResponse({"error": "Bad request."}, status=400)


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"error": "Forbidden."}, status=403)


def server_error_view(request: HttpRequest) -> JsonResponse:
    # Django calls this while handling the exception (outside DRF: a middleware's session, a plain view).
    if isinstance(sys.exc_info()[1], ACCOUNTS_DATABASE_ERRORS):
        return JsonResponse({"error": ACCOUNTS_DATABASE_DOWN}, status=503)
    return JsonResponse({"error": "Internal server error."}, status=500)
