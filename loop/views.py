"""The HTTP API: each view validates its input, calls one service and answers through an output serializer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.access import TriggerRateThrottle
from loop.api_errors import LengthRequired
from loop.health import service_health
from loop.serializers import (
    ErrorSerializer,
    HealthSerializer,
    ReportStatusSerializer,
    TriggerReportRequestSerializer,
    TriggerReportResponseSerializer,
)
from loop.services import reports

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request."),
    401: OpenApiResponse(ErrorSerializer, description="Missing or wrong API token (only when API_TOKEN is set)."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown report id."),
    503: OpenApiResponse(ErrorSerializer, description="MongoDB or the broker is unavailable."),
}


def _options_body(data: Any) -> Any:
    """The trigger body: no body, ``null`` or ``{}`` mean "no options"; anything else is validated."""
    if data is None or (isinstance(data, Mapping) and not data):
        return {}
    return data


def _report_id_param(value: object) -> str:
    # Only a plain string of the exact shape ever reaches a MongoDB query.
    if not reports.is_report_id(value):
        raise ValidationError({"report_id": f"must be {reports.REPORT_ID_HELP}"})
    return str(value)


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
        doc = reports.trigger_report(now=serializer.validated_data.get("now"))
        body = TriggerReportResponseSerializer(doc).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": f"/get_report/{doc['report_id']}/"})


class GetReportView(APIView):
    @extend_schema(
        operation_id="get_report",
        summary="Poll a report: Running, Complete (with the CSV) or Failed",
        responses={200: ReportStatusSerializer, **ERRORS},
    )
    def get(self, request: Request, report_id: str) -> Response:
        view = reports.report_view(report_id=_report_id_param(report_id))
        return Response(ReportStatusSerializer(view).data)


class GetReportQueryView(APIView):
    @extend_schema(
        operation_id="get_report_by_query",
        summary="Poll a report (query-string form: ?report_id=...)",
        parameters=[
            OpenApiParameter(
                "report_id", str, OpenApiParameter.QUERY, required=True, description=reports.REPORT_ID_HELP
            )
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
        view = reports.report_view(report_id=_report_id_param(values[0]))
        return Response(ReportStatusSerializer(view).data)


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
        report_id = _report_id_param(report_id)
        response = HttpResponse(reports.report_csv(report_id=report_id), content_type="text/csv; charset=utf-8")
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
        health = service_health()
        return Response(HealthSerializer(health).data, status=200 if health["status"] == "ok" else 503)
