"""Reports: POST /trigger_report/, GET /get_report/<id>/ (+ query form, + CSV), GET /reports/,
DELETE /reports/<id>/ and GET /reports/<id>/stores/ (the rows as JSON with each window's uptime %)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.access import TriggerRateThrottle
from loop.api.common import (
    BAD_REQUEST,
    NO_TOKEN,
    READ_ERRORS,
    UNAVAILABLE,
    WRITE_ERRORS,
    ErrorSerializer,
    GapMinutesField,
    StrictSerializer,
    UtcTimestampField,
    body_errors,
    page_field,
    page_size_field,
    refuse_chunked,
    report_id_param,
)
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.rules import DEFAULT_MAX_GAP_MINUTES, GAP_RANGE_TEXT
from loop.services import reports
from loop.storage import ReportFormat, ReportPhase, ReportStatus
from loop.timeutil import NOW_HELP, iso, parse_now

FORMAT_HELP = (
    "loop: the 7 Loop columns. extended: those, then uptime_pct_last_hour/day/week, unobserved_last_hour "
    "(minutes), unobserved_last_day/week (hours), outages_last_week, longest_outage_last_week (minutes)."
)
GAP_HELP = (
    "Extended reports only: business time farther than this from its nearest counted poll is unobserved "
    f"({GAP_RANGE_TEXT} minutes)."
)

PHASE_HELP = (
    "What the worker is doing (Running only): queued, reading, computing, storing; a report in shards "
    "(REPORT_SHARDS): `shards` (its shards are queued or running: see `shards_done` of `shards`), then "
    "`joining`; `worker lost`: its worker stopped heartbeating for JOB_LOST_SECONDS, so the report is "
    "queued again."
)

UNKNOWN_REPORT = OpenApiResponse(ErrorSerializer, description="Unknown report id.")
# A read of one report: bad id, missing token, unknown report, servers away.
REPORT_ERRORS = {400: BAD_REQUEST, 401: NO_TOKEN, 404: UNKNOWN_REPORT, 503: UNAVAILABLE}
NOT_COMPLETE = OpenApiResponse(ErrorSerializer, description="The report is Running or Failed.")


# --- serializers ------------------------------------------------------------------------------------


class TriggerReportRequestSerializer(StrictSerializer):
    now = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            f"Optional instant to report at: {NOW_HELP}. Default: the newest poll in the database at "
            "trigger time. Must not lie after the newest poll."
        ),
    )
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "true: always start a new report. Default: a Running or Complete report of the same `now` with no "
            "data written since it was triggered is answered instead (200, reused: true)."
        ),
    )
    format = serializers.ChoiceField(
        required=False, default=ReportFormat.LOOP.value, choices=[f.value for f in ReportFormat], help_text=FORMAT_HELP
    )
    max_gap_minutes = GapMinutesField(
        help_text=f"{GAP_HELP} Default {DEFAULT_MAX_GAP_MINUTES}; ignored by the loop format."
    )

    def validate_format(self, value: str) -> ReportFormat:
        return ReportFormat(value)

    def validate_now(self, value: str) -> pd.Timestamp:
        try:
            return parse_now(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TriggerReportResponseSerializer(serializers.Serializer):
    """A ``loop.services.reports.TriggerResult``."""

    report_id = serializers.CharField(help_text=reports.REPORT_ID_HELP)
    reused = serializers.BooleanField(
        help_text="true (with 200): an existing report of the same now and data answers; false (202): a new one."
    )


class _ReportFieldsSerializer(serializers.Serializer):
    """The fields a report's answer and its list item share; those that do not apply to the status are left out."""

    OPTIONAL: tuple[str, ...] = ("finished_at", "rows", "max_gap_minutes", "phase", "progress")

    status = serializers.ChoiceField(choices=[s.value for s in ReportStatus])
    format = serializers.ChoiceField(choices=[f.value for f in ReportFormat], help_text=FORMAT_HELP)
    max_gap_minutes = serializers.IntegerField(required=False, help_text=GAP_HELP)
    now = UtcTimestampField(help_text="The instant the report is computed at.")
    created_at = UtcTimestampField(allow_null=True)
    finished_at = UtcTimestampField(required=False, help_text="When it became Complete or Failed.")
    rows = serializers.IntegerField(required=False, help_text="Stores in the report (Complete only).")
    phase = serializers.ChoiceField(required=False, choices=[p.value for p in ReportPhase], help_text=PHASE_HELP)
    progress = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="Rough percent done (Running only)."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["status"] = str(data["status"])
        data["format"] = str(data["format"])
        return {key: value for key, value in data.items() if key not in self.OPTIONAL or value is not None}


class ReportStatusSerializer(_ReportFieldsSerializer):
    """A ``loop.services.reports.ReportView``: the shared fields, the CSV once Complete, the reason once Failed."""

    OPTIONAL = (*_ReportFieldsSerializer.OPTIONAL, "csv_data", "error", "shards", "shards_done")

    csv_data = serializers.CharField(required=False, help_text="The report CSV (Complete only).")
    error = serializers.CharField(required=False, help_text="Why the report failed (Failed only).")
    shards = serializers.IntegerField(
        required=False, min_value=2, help_text="A report computed in shards (Running only): how many shards."
    )
    shards_done = serializers.IntegerField(
        required=False, min_value=0, help_text="How many of its shards are done (Running sharded reports only)."
    )


class ReportListQuerySerializer(StrictSerializer):
    """GET /reports/ query: paging and an optional status filter (unknown parameters are a 400)."""

    page = page_field()
    page_size = page_size_field("Reports")
    status = serializers.ChoiceField(
        required=False, choices=[s.value for s in ReportStatus], help_text="Only reports with this status."
    )

    def validate_status(self, value: str) -> ReportStatus:
        return ReportStatus(value)


class ReportSummarySerializer(_ReportFieldsSerializer):
    """A ``loop.services.reports.ReportSummary``: the shared fields and the report's id (no CSV)."""

    report_id = serializers.CharField(help_text=reports.REPORT_ID_HELP)


class ReportPageSerializer(serializers.Serializer):
    """A ``loop.services.paging.Page`` of ``loop.services.reports.ReportSummary``."""

    count = serializers.IntegerField(help_text="Reports matching the filter, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ReportSummarySerializer(many=True, help_text="Newest first (by created_at).")


class ReportRowSerializer(serializers.Serializer):
    """One store of a report: the Loop columns and each window's uptime % (schema of ``ReportRowsSerializer``)."""

    store_id = serializers.CharField(help_text="The store's id (without the CSV's spreadsheet-safety apostrophe).")
    uptime_last_hour = serializers.FloatField(help_text="Minutes.")
    uptime_last_day = serializers.FloatField(help_text="Hours.")
    uptime_last_week = serializers.FloatField(help_text="Hours.")
    downtime_last_hour = serializers.FloatField(help_text="Minutes.")
    downtime_last_day = serializers.FloatField(help_text="Hours.")
    downtime_last_week = serializers.FloatField(help_text="Hours.")
    uptime_pct_last_hour = serializers.FloatField(
        allow_null=True, help_text="100 x up / (up + down), 2 decimals; null without business time in the window."
    )
    uptime_pct_last_day = serializers.FloatField(allow_null=True)
    uptime_pct_last_week = serializers.FloatField(allow_null=True)
    name = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    brand = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    region = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")


class ReportRowsSerializer(serializers.Serializer):
    """A ``loop.services.reports.ReportRows``."""

    report_id = serializers.CharField(help_text=reports.REPORT_ID_HELP)
    now = UtcTimestampField(help_text="The instant the report is computed at.")
    count = serializers.IntegerField(help_text="Stores in the report.")
    results = ReportRowSerializer(many=True, help_text="In the CSV's order (by store id).")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # The rows are plain JSON values already: a field-by-field pass over thousands of rows would
        # cost more than reading the report.
        return {
            "report_id": instance.report_id,
            "now": self.fields["now"].to_representation(instance.now),
            "count": len(instance.rows),
            "results": instance.rows,
        }


def _options_body(data: Any) -> Any:
    """The trigger body: no body, ``null`` or ``{}`` mean "no options"; anything else is validated."""
    if data is None or (isinstance(data, Mapping) and not data):
        return {}
    return data


# --- views ------------------------------------------------------------------------------------------


class TriggerReportView(APIView):
    # A report changes no data: whoever may read may trigger one (viewers, the read scope).
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"POST": Capability.READ}
    throttle_classes = [TriggerRateThrottle]

    @extend_schema(
        operation_id="trigger_report",
        summary="Start a report over all stores",
        description=(
            "202: a new report was started. 200 (`reused: true`): a Running or Complete report of the same `now` "
            "with no polls, hours or zones written since it was triggered answers instead; `force: true` always "
            "starts a new one. `format`: `loop` (default, the 7 Loop columns) or `extended` (8 more columns); "
            "a report is reused only by a trigger of the same format (and `max_gap_minutes` for extended)."
        ),
        request=TriggerReportRequestSerializer,
        responses={
            202: TriggerReportResponseSerializer,
            200: TriggerReportResponseSerializer,
            409: OpenApiResponse(ErrorSerializer, description="No polls are loaded yet."),
            **body_errors(too_large="Body too large (API_MAX_BODY_BYTES).", media="Body is not JSON."),
            429: OpenApiResponse(
                ErrorSerializer, description="Too many reports triggered (TRIGGER_RATE_LIMIT); see Retry-After."
            ),
            **READ_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        refuse_chunked(request)
        serializer = TriggerReportRequestSerializer(data=_options_body(request.data))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = reports.trigger_report(
            now=data.get("now"),
            force=data["force"],
            report_format=data["format"],
            max_gap_minutes=data["max_gap_minutes"],
        )
        options = {"now": iso(data.get("now")), "force": data["force"], "format": data["format"]}
        record_audit(
            request=request,
            action=Action.REPORT_TRIGGER,
            target=result.report_id,
            detail={**options, "max_gap_minutes": data["max_gap_minutes"], "reused": result.reused},
        )
        answer = status.HTTP_200_OK if result.reused else status.HTTP_202_ACCEPTED
        body = TriggerReportResponseSerializer(result).data
        return Response(body, status=answer, headers={"Location": f"/get_report/{result.report_id}/"})


class GetReportView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_report",
        summary="Poll a report: Running, Complete (with the CSV) or Failed",
        responses={200: ReportStatusSerializer, **REPORT_ERRORS},
    )
    def get(self, request: Request, report_id: str) -> Response:
        view = reports.report_view(report_id=report_id_param(report_id))
        return Response(ReportStatusSerializer(view).data)


class GetReportQueryView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_report_by_query",
        summary="Poll a report (query-string form: ?report_id=...)",
        parameters=[
            OpenApiParameter(
                "report_id", str, OpenApiParameter.QUERY, required=True, description=reports.REPORT_ID_HELP
            )
        ],
        responses={200: ReportStatusSerializer, **REPORT_ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        unexpected = sorted(key for key in params if key != "report_id")
        if unexpected:
            raise ValidationError({"query": f"unexpected parameter(s): {', '.join(unexpected)}"})
        values = params.getlist("report_id")
        if len(values) != 1:
            raise ValidationError({"report_id": "give exactly one report_id query parameter"})
        view = reports.report_view(report_id=report_id_param(values[0]))
        return Response(ReportStatusSerializer(view).data)


class ReportCsvView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_report_csv",
        summary="Download a finished report as CSV",
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The report CSV."),
            409: NOT_COMPLETE,
            **REPORT_ERRORS,
        },
    )
    def get(self, request: Request, report_id: str) -> HttpResponse:
        report_id = report_id_param(report_id)
        response = HttpResponse(reports.report_csv(report_id=report_id), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="report-{report_id}.csv"'
        return response


class ReportStoresView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_report_stores",
        summary="A finished report's stores as JSON: the Loop columns and each window's uptime %",
        description=(
            "The rows of the report's CSV (any format: only the 7 Loop columns are read), with "
            "`uptime_pct_last_hour/day/week` = 100 x up / (up + down), null when the window has no business "
            "time. All stores in one answer (the dashboard's worst-stores page sorts and searches them)."
        ),
        responses={200: ReportRowsSerializer, 409: NOT_COMPLETE, **REPORT_ERRORS},
    )
    def get(self, request: Request, report_id: str) -> Response:
        rows = reports.report_rows(report_id=report_id_param(report_id))
        return Response(ReportRowsSerializer(rows).data)


class ReportListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="list_reports",
        summary="The reports, newest first, paged; Running ones show phase and progress",
        parameters=[ReportListQuerySerializer],
        responses={200: ReportPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ReportListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = reports.list_reports(status=params.get("status"), page=params["page"], page_size=params["page_size"])
        return Response(ReportPageSerializer(page).data)


class ReportDetailView(APIView):
    """DELETE only (other methods answer 405)."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"DELETE": Capability.ADMIN}

    @extend_schema(
        operation_id="delete_report",
        summary="Delete a finished report and its CSV",
        responses={
            204: OpenApiResponse(description="Deleted."),
            404: UNKNOWN_REPORT,
            409: OpenApiResponse(ErrorSerializer, description="The report is still Running."),
            **WRITE_ERRORS,
        },
    )
    def delete(self, request: Request, report_id: str) -> Response:
        report_id = report_id_param(report_id)
        reports.delete_report(report_id=report_id)
        record_audit(request=request, action=Action.REPORT_DELETE, target=report_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
