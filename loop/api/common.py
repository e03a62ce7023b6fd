"""What every resource module of the API shares: error answers of the schema, path-parameter checks,
the paging fields, strict input serializers, the one UTC timestamp field, and the chunked-body refusal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from loop.api.errors import LengthRequired
from loop.ids import is_id
from loop.rules import DEFAULT_MAX_GAP_MINUTES, MAX_GAP_MINUTES, MIN_GAP_MINUTES, gap_problem
from loop.services.imports import IMPORT_ID_HELP
from loop.services.paging import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from loop.services.reports import REPORT_ID_HELP
from loop.store_ids import STORE_ID_HELP, is_store_id
from loop.timeline import iso_times
from loop.timeutil import ts_to_us

# --- error answers (schema) -----------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


BAD_REQUEST = OpenApiResponse(ErrorSerializer, description="Invalid request.")
NO_TOKEN = OpenApiResponse(
    ErrorSerializer, description="Missing, wrong, expired or revoked credentials (only when AUTH_REQUIRED is on)."
)
UNAVAILABLE = OpenApiResponse(ErrorSerializer, description="MongoDB or the broker is unavailable.")
READ_TOKEN_REFUSED = OpenApiResponse(
    ErrorSerializer, description="The caller's role or key scope does not allow this (docs/access.md)."
)

# A read: bad query, missing token, servers away.
READ_ERRORS = {400: BAD_REQUEST, 401: NO_TOKEN, 503: UNAVAILABLE}
WRITE_ERRORS = {400: BAD_REQUEST, 401: NO_TOKEN, 403: READ_TOKEN_REFUSED, 503: UNAVAILABLE}
# A PUT with a JSON body (the store attributes): the body's own errors, then a writer's.
JSON_WRITE_ERRORS = {
    413: OpenApiResponse(ErrorSerializer, description="Body too large (API_MAX_BODY_BYTES)."),
    415: OpenApiResponse(ErrorSerializer, description="Body is not JSON."),
    **WRITE_ERRORS,
}


def body_errors(*, too_large: str, media: str) -> dict[int, OpenApiResponse]:
    """The answers of an endpoint that reads a body: chunked without length, too large, wrong type."""
    return {
        411: OpenApiResponse(ErrorSerializer, description="Chunked body without Content-Length."),
        413: OpenApiResponse(ErrorSerializer, description=too_large),
        415: OpenApiResponse(ErrorSerializer, description=media),
    }


def refuse_chunked(request: Request) -> None:
    """411 for a chunked body without Content-Length."""
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get("CONTENT_LENGTH"):
        # Django reads a WSGI body by its Content-Length only: a chunked body would be taken as empty.
        raise LengthRequired()


# --- path parameters: only a plain string of the exact shape ever reaches storage ------------------

STORE_ID_PARAM = OpenApiParameter("store_id", str, OpenApiParameter.PATH, description=STORE_ID_HELP)


def store_id_param(value: object) -> str:
    if not is_store_id(value):
        raise ValidationError({"store_id": f"must be {STORE_ID_HELP}"})
    return str(value)


def report_id_param(value: object) -> str:
    if not is_id(value):
        raise ValidationError({"report_id": f"must be {REPORT_ID_HELP}"})
    return str(value)


def import_id_param(value: object) -> str:
    if not is_id(value):
        raise ValidationError({"import_id": f"must be {IMPORT_ID_HELP}"})
    return str(value)


# --- fields -----------------------------------------------------------------------------------------


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently ignored)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(f"unexpected field(s): {', '.join(map(str, unknown))}")
        return attrs


def page_field() -> serializers.IntegerField:
    """The ``page`` query parameter of the paged lists (reports, imports, stores)."""
    return serializers.IntegerField(required=False, default=1, min_value=1, help_text="1-based page number.")


def page_size_field(items: str) -> serializers.IntegerField:
    """The ``page_size`` query parameter: the paging limits of ``services.reports``."""
    return serializers.IntegerField(
        required=False, default=PAGE_SIZE_DEFAULT, min_value=1, max_value=PAGE_SIZE_MAX, help_text=f"{items} per page."
    )


@extend_schema_field({"type": "integer", "minimum": MIN_GAP_MINUTES, "maximum": MAX_GAP_MINUTES})
class GapMinutesField(serializers.IntegerField):
    """``max_gap_minutes`` (G) of a request: a whole number, its range checked by ``loop.rules.gap_problem``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, default=DEFAULT_MAX_GAP_MINUTES, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        problem = gap_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class UtcTimestampField(serializers.DateTimeField):
    """Every UTC instant of every answer: ISO 8601 ending in ``Z``, microseconds only when there are any,
    as ``loop.timeline.iso_times`` writes every instant of a timeline."""

    def to_representation(self, value: dt.datetime) -> str:
        # DRF answers null itself for a None value, so only instants come here.
        return iso_times([ts_to_us(pd.Timestamp(value))], "UTC")[0][0]
