"""The HTTP API: each view validates its input, calls one service and answers through an output serializer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from loop.access import RequireApiToken, RequireWriteToken, TriggerRateThrottle
from loop.api_errors import LengthRequired
from loop.health import service_health
from loop.ids import is_id
from loop.parsers import CsvBody, IngestCSVParser, IngestJSONParser
from loop.serializers import (
    ErrorSerializer,
    HealthSerializer,
    HoursItemSerializer,
    ImportListQuerySerializer,
    ImportPageSerializer,
    ImportSerializer,
    ImportStartedSerializer,
    ImportUploadSerializer,
    IngestQuerySerializer,
    IngestResultSerializer,
    OverviewSerializer,
    PollItemSerializer,
    ReportListQuerySerializer,
    ReportPageSerializer,
    ReportStatusSerializer,
    TimezoneRequestSerializer,
    TimezoneSerializer,
    TriggerReportRequestSerializer,
    TriggerReportResponseSerializer,
)
from loop.services import imports, ingest, overview, reports, stores
from loop.uploads import ImportUploadParser, StoredUpload

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid request."),
    401: OpenApiResponse(ErrorSerializer, description="Missing or wrong API token (only when API_TOKEN is set)."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown report id."),
    503: OpenApiResponse(ErrorSerializer, description="MongoDB or the broker is unavailable."),
}


def body_errors(*, too_large: str, media: str) -> dict[int, OpenApiResponse]:
    """The answers of an endpoint that reads a body: chunked without length, too large, wrong type."""
    return {
        411: OpenApiResponse(ErrorSerializer, description="Chunked body without Content-Length."),
        413: OpenApiResponse(ErrorSerializer, description=too_large),
        415: OpenApiResponse(ErrorSerializer, description=media),
    }


# A read that takes no report id: bad query, missing token, servers away.
READ_ERRORS = {code: ERRORS[code] for code in (400, 401, 503)}
WRITE_ERRORS = {
    400: ERRORS[400],
    401: ERRORS[401],
    403: OpenApiResponse(ErrorSerializer, description="The read-only API_READ_TOKEN may not change data."),
    503: ERRORS[503],
}
# A PUT with a JSON body (the store attributes): the body's own errors, then a writer's.
JSON_WRITE_ERRORS = {
    413: OpenApiResponse(ErrorSerializer, description="Body too large (API_MAX_BODY_BYTES)."),
    415: OpenApiResponse(ErrorSerializer, description="Body is not JSON."),
    **WRITE_ERRORS,
}
STORE_ID_PARAM = OpenApiParameter("store_id", str, OpenApiParameter.PATH, description=stores.STORE_ID_HELP)


def _refuse_chunked(request: Request) -> None:
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get("CONTENT_LENGTH"):
        # Django reads a WSGI body by its Content-Length only: a chunked body would be taken as empty.
        raise LengthRequired()


def _store_id_param(value: object) -> str:
    # Only a plain string of a store id's shape ever reaches storage.
    if not stores.is_store_id(value):
        raise ValidationError({"store_id": f"must be {stores.STORE_ID_HELP}"})
    return str(value)


def _options_body(data: Any) -> Any:
    """The trigger body: no body, ``null`` or ``{}`` mean "no options"; anything else is validated."""
    if data is None or (isinstance(data, Mapping) and not data):
        return {}
    return data


def _report_id_param(value: object) -> str:
    # Only a plain string of the exact shape ever reaches a MongoDB query.
    if not is_id(value):
        raise ValidationError({"report_id": f"must be {reports.REPORT_ID_HELP}"})
    return str(value)


class TriggerReportView(APIView):
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
            **{k: v for k, v in ERRORS.items() if k != 404},
        },
    )
    def post(self, request: Request) -> Response:
        _refuse_chunked(request)
        serializer = TriggerReportRequestSerializer(data=_options_body(request.data))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = reports.trigger_report(
            now=data.get("now"),
            force=data["force"],
            report_format=data["format"],
            max_gap_minutes=data["max_gap_minutes"],
        )
        answer = status.HTTP_200_OK if result.reused else status.HTTP_202_ACCEPTED
        body = TriggerReportResponseSerializer(result).data
        return Response(body, status=answer, headers={"Location": f"/get_report/{result.report_id}/"})


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


class ReportListView(APIView):
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
    """DELETE only; deleting needs a token allowed to write (other methods answer 405)."""

    def get_permissions(self) -> list[Any]:
        return [RequireApiToken(), RequireWriteToken()] if self.request.method == "DELETE" else [RequireApiToken()]

    @extend_schema(
        operation_id="delete_report",
        summary="Delete a finished report and its CSV",
        responses={
            204: OpenApiResponse(description="Deleted."),
            404: ERRORS[404],
            409: OpenApiResponse(ErrorSerializer, description="The report is still Running."),
            **WRITE_ERRORS,
        },
    )
    def delete(self, request: Request, report_id: str) -> Response:
        reports.delete_report(report_id=_report_id_param(report_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


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


class OverviewView(APIView):
    @extend_schema(
        operation_id="overview",
        summary="Data freshness and the latest reports (the dashboard's home)",
        description=(
            "The newest and oldest stored poll, how many stores have polls, the polls of the hour ending at the "
            "newest poll, and the newest report and newest Complete report (summaries, no CSV)."
        ),
        responses={200: OverviewSerializer, 401: ERRORS[401], 503: ERRORS[503]},
    )
    def get(self, request: Request) -> Response:
        return Response(OverviewSerializer(overview.data_overview()).data)


class StoreStatusView(APIView):
    """POST /store_status/: a batch of polls, read and stored as ``load_data`` reads and stores a status file."""

    parser_classes = [IngestCSVParser, IngestJSONParser]
    permission_classes = [RequireApiToken, RequireWriteToken]

    @extend_schema(
        operation_id="ingest_polls",
        summary="Store a batch of polls (CSV with the Loop header, or a JSON list)",
        description=(
            "The same reader and row checks as `load_data`: good rows are stored, bad rows are counted and the "
            "first ones listed ('line N' of the CSV, header = line 1; 'item N' of the JSON list, 0-based). "
            "Idempotent: polls already stored count as duplicates. 201 when something new was stored, 200 when not."
        ),
        parameters=[
            OpenApiParameter(
                "strict", bool, OpenApiParameter.QUERY, description="1: any bad row is a 400 and nothing is stored."
            )
        ],
        request={"text/csv": OpenApiTypes.STR, "application/json": PollItemSerializer(many=True)},
        responses={
            201: IngestResultSerializer,
            200: IngestResultSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The database still has the old poll layout."),
            **body_errors(
                too_large="Body larger than INGEST_MAX_BODY_BYTES (8 MiB).",
                media="Body is neither text/csv nor application/json.",
            ),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        query = IngestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        _refuse_chunked(request)
        body = request.data
        strict = query.validated_data["strict"]
        if isinstance(body, CsvBody):
            result = ingest.ingest_polls(csv_body=bytes(body), strict=strict)
        elif isinstance(body, list):
            result = ingest.ingest_polls(items=body, strict=strict)
        elif request.META.get("CONTENT_LENGTH", "") in ("", "0"):
            raise ValidationError(
                {"body": "empty: send CSV with the header store_id,status,timestamp_utc or a JSON list"}
            )
        else:
            raise ValidationError(
                {"body": "a JSON batch must be a list of objects with store_id, status, timestamp_utc"}
            )
        answer = status.HTTP_201_CREATED if result.inserted else status.HTTP_200_OK
        return Response(IngestResultSerializer(result).data, status=answer)


def replace_rows(
    request: Request,
    store_id: str,
    *,
    replace: Callable[..., list[Any]],
    rows: type[Serializer],
    shape: str,
) -> Response:
    """A store attribute's PUT of rows (weekly or holiday hours): a JSON list the service checks and stores."""
    store_id = _store_id_param(store_id)
    _refuse_chunked(request)
    if not isinstance(request.data, list):
        raise ValidationError({"body": f"send a JSON list of {shape}"})
    return Response(rows(replace(store_id=store_id, items=request.data), many=True).data)


class StoreAttributeView(APIView):
    """Reading a store attribute needs any token; replacing it (PUT) needs one allowed to write."""

    def get_permissions(self) -> list[Any]:
        return [RequireApiToken(), RequireWriteToken()] if self.request.method == "PUT" else [RequireApiToken()]


class BusinessHoursView(StoreAttributeView):
    """One store's weekly hours; an empty list means open 24x7 (the report's rule for a store without rows)."""

    @extend_schema(
        operation_id="get_business_hours",
        summary="Read a store's weekly hours ([] = open 24x7, also for a store never seen)",
        parameters=[STORE_ID_PARAM],
        responses={200: HoursItemSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        rows = stores.get_business_hours(store_id=_store_id_param(store_id))
        return Response(HoursItemSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="set_business_hours",
        summary="Replace a store's weekly hours ([] removes them: open 24x7)",
        parameters=[STORE_ID_PARAM],
        request=HoursItemSerializer(many=True),
        responses={200: HoursItemSerializer(many=True), **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        return replace_rows(
            request,
            store_id,
            replace=stores.set_business_hours,
            rows=HoursItemSerializer,
            shape="{dayOfWeek, start_time_local, end_time_local}",
        )


class TimezoneView(StoreAttributeView):
    """One store's time zone; without one the report uses America/Chicago (``is_default``)."""

    @extend_schema(
        operation_id="get_timezone",
        summary="Read a store's time zone (the default one when none is stored)",
        parameters=[STORE_ID_PARAM],
        responses={200: TimezoneSerializer, **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        zone = stores.get_timezone(store_id=_store_id_param(store_id))
        return Response(TimezoneSerializer(zone).data)

    @extend_schema(
        operation_id="set_timezone",
        summary="Set a store's time zone (an IANA name)",
        parameters=[STORE_ID_PARAM],
        request=TimezoneRequestSerializer,
        responses={200: TimezoneSerializer, **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        store_id = _store_id_param(store_id)
        _refuse_chunked(request)
        serializer = TimezoneRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        zone = stores.set_timezone(store_id=store_id, timezone_str=serializer.validated_data["timezone_str"])
        return Response(TimezoneSerializer(zone).data)


def _import_id_param(value: object) -> str:
    # Only a plain string of the exact shape ever reaches a MongoDB query.
    if not is_id(value):
        raise ValidationError({"import_id": f"must be {imports.IMPORT_ID_HELP}"})
    return str(value)


class ImportListView(APIView):
    """POST: upload files to load (needs a token allowed to write); GET: the imports, newest first."""

    parser_classes = [ImportUploadParser]

    def get_permissions(self) -> list[Any]:
        return [RequireApiToken(), RequireWriteToken()] if self.request.method == "POST" else [RequireApiToken()]

    @extend_schema(
        operation_id="start_import",
        summary="Upload the Loop CSVs (or a Loop .zip) and load them in the background, as load_data does",
        description=(
            "multipart/form-data: either one file field `archive` (a Loop .zip; the CSVs may sit in any folder "
            "inside) or any of `store_status`, `business_hours`, `timezones`, `special_hours` (at least one). "
            "The body is streamed "
            "into MongoDB (GridFS) as it arrives, then a worker loads it with the same reader and loader as "
            "`load_data` (idempotent: loading the same files again inserts nothing new). 202 with the import to "
            "poll at `url`. A zip that is not a zip, holds no usable file, or expands past "
            "IMPORT_MAX_EXPANDED_BYTES / IMPORT_MAX_COMPRESSION_RATIO makes the import Failed with the reason."
        ),
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            202: ImportStartedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The database still has the old poll layout."),
            **body_errors(
                too_large="Body larger than IMPORT_MAX_UPLOAD_BYTES (512 MiB).",
                media="Body is not multipart/form-data.",
            ),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        _refuse_chunked(request)
        # Parsing (loop.uploads.ImportUploadParser) streams each file into GridFS; no body: no files.
        uploads: list[StoredUpload] = [item for _, values in request.FILES.lists() for item in values]
        started = imports.start_import(files=[upload.as_import_file() for upload in uploads])
        body = ImportStartedSerializer(started).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": started.url})

    @extend_schema(
        operation_id="list_imports",
        summary="The imports, newest first, paged (the dashboard's upload history)",
        parameters=[ImportListQuerySerializer],
        responses={200: ImportPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ImportListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = imports.list_imports(status=params.get("status"), page=params["page"], page_size=params["page_size"])
        return Response(ImportPageSerializer(page).data)


class ImportDetailView(APIView):
    @extend_schema(
        operation_id="get_import",
        summary="Poll an import: Running (rows so far), Complete (load_data's summary) or Failed (the reason)",
        responses={
            200: ImportSerializer,
            404: OpenApiResponse(ErrorSerializer, description="Unknown import id."),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request, import_id: str) -> Response:
        view = imports.get_import(import_id=_import_id_param(import_id))
        return Response(ImportSerializer(view).data)
