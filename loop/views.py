"""The HTTP API: thin views over loop.storage (data) and loop.tasks (workers)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop import storage, tasks
from loop.access import TriggerRateThrottle
from loop.api_errors import Conflict, LengthRequired, ServiceUnavailable
from loop.serializers import (
    REPORT_ID_HELP,
    ErrorSerializer,
    HealthSerializer,
    ReportStatusSerializer,
    TriggerReportRequestSerializer,
    TriggerReportResponseSerializer,
    is_report_id,
)

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request."),
    401: OpenApiResponse(ErrorSerializer, description="Missing or wrong API token (only when API_TOKEN is set)."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown report id."),
    503: OpenApiResponse(ErrorSerializer, description="MongoDB or the broker is unavailable."),
}


def _checked_report_id(value: object) -> str:
    # Only a plain string of the exact shape ever reaches a MongoDB query.
    if not is_report_id(value):
        raise ValidationError({"report_id": f"must be {REPORT_ID_HELP}"})
    return str(value)


def _load_report(report_id: str) -> dict[str, Any]:
    db = storage.get_db()
    doc = storage.get_report(db, report_id)
    if doc is None:
        raise NotFound(f"No report with id {report_id}.")
    return storage.fail_if_stale(db, doc, settings.REPORT_STALE_SECONDS)


def _report_body(doc: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": doc["status"],
        "now": storage.report_now(doc).isoformat(),
        "created_at": storage.iso(doc.get("created_at")),
    }
    if doc["status"] == storage.COMPLETE:
        body["csv_data"] = storage.read_report_csv(storage.get_db(), doc)
        body["rows"] = doc.get("rows")
        body["finished_at"] = storage.iso(doc.get("finished_at"))
    elif doc["status"] == storage.FAILED:
        body["error"] = doc.get("error") or "unknown error"
        body["finished_at"] = storage.iso(doc.get("finished_at"))
    return body


def _options_body(data: Any) -> Any:
    """The trigger body: no body, ``null`` or ``{}`` mean "no options"; anything else is validated."""
    if data is None or (isinstance(data, Mapping) and not data):
        return {}
    return data


class TriggerReportView(APIView):
    throttle_classes = [TriggerRateThrottle]

    @extend_schema(
        operation_id="trigger_report",
        summary="Start a report over all stores",
        request=TriggerReportRequestSerializer,
        responses={
            202: TriggerReportResponseSerializer,
            409: OpenApiResponse(ErrorSerializer, description="No polls are loaded yet."),
            411: OpenApiResponse(ErrorSerializer, description="Chunked body without Content-Length."),
            413: OpenApiResponse(ErrorSerializer, description="Body too large (API_MAX_BODY_BYTES)."),
            415: OpenApiResponse(ErrorSerializer, description="Body is not JSON."),
            429: OpenApiResponse(
                ErrorSerializer, description="Too many reports triggered (TRIGGER_RATE_LIMIT); see Retry-After."
            ),
            **{k: v for k, v in ERRORS.items() if k != 404},
        },
    )
    def post(self, request: Request) -> Response:
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get(
            "CONTENT_LENGTH"
        ):
            # Django reads a WSGI body by its Content-Length only: a chunked body
            # would be taken as empty, and the options in it silently dropped.
            raise LengthRequired()
        serializer = TriggerReportRequestSerializer(data=_options_body(request.data))
        serializer.is_valid(raise_exception=True)
        db = storage.get_db()
        newest = storage.newest_poll_time(db)
        if newest is None:
            raise Conflict("No polls are loaded yet: run `python manage.py load_data` first.")
        now = serializer.validated_data.get("now", newest)
        if now > newest:
            raise ValidationError({"now": f"{now.isoformat()} lies after the newest poll ({newest.isoformat()})"})
        report_id = secrets.token_urlsafe(24)
        storage.create_report(db, report_id, now)
        try:
            tasks.enqueue_report(report_id)
        except Exception as exc:
            # Nothing will ever run it: fail it now rather than leave it Running.
            storage.fail_report(db, report_id, "could not queue the report: the task broker is unavailable")
            raise ServiceUnavailable("The task broker is unavailable; the report was not started.") from exc
        return Response(
            {"report_id": report_id},
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/get_report/{report_id}/"},
        )


class GetReportView(APIView):
    @extend_schema(
        operation_id="get_report",
        summary="Poll a report: Running, Complete (with the CSV) or Failed",
        responses={200: ReportStatusSerializer, **ERRORS},
    )
    def get(self, request: Request, report_id: str) -> Response:
        return Response(_report_body(_load_report(_checked_report_id(report_id))))


class GetReportQueryView(APIView):
    @extend_schema(
        operation_id="get_report_by_query",
        summary="Poll a report (query-string form: ?report_id=...)",
        parameters=[
            OpenApiParameter("report_id", str, OpenApiParameter.QUERY, required=True, description=REPORT_ID_HELP)
        ],
        responses={200: ReportStatusSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        unexpected = sorted(key for key in params if key != "report_id")
        if unexpected:
            raise ValidationError({"query": f"unexpected parameter(s): {', '.join(unexpected)}"})
        values = params.getlist("report_id")
        if len(values) != 1:
            raise ValidationError({"report_id": "give exactly one report_id query parameter"})
        return Response(_report_body(_load_report(_checked_report_id(values[0]))))


class ReportCsvView(APIView):
    @extend_schema(
        operation_id="get_report_csv",
        summary="Download a finished report as CSV",
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The report CSV."),
            409: OpenApiResponse(ErrorSerializer, description="The report is Running or Failed."),
            **ERRORS,
        },
    )
    def get(self, request: Request, report_id: str) -> HttpResponse:
        report_id = _checked_report_id(report_id)
        doc = _load_report(report_id)
        if doc["status"] != storage.COMPLETE:
            detail = "is still Running" if doc["status"] == storage.RUNNING else f"failed: {doc.get('error')}"
            raise Conflict(f"Report {report_id} {detail}.")
        response = HttpResponse(storage.read_report_csv(storage.get_db(), doc), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="report-{report_id}.csv"'
        return response


class HealthView(APIView):
    # Open to load balancers and compose health checks even when API_TOKEN is set.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        summary="Whether MongoDB and the task broker answer",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request: Request) -> Response:
        mongo = storage.server_health()
        broker = tasks.broker_health()
        healthy = mongo == "ok" and broker in ("ok", "embedded")
        return Response(
            {"status": "ok" if healthy else "unavailable", "mongo": mongo, "broker": broker},
            status=200 if healthy else 503,
        )
