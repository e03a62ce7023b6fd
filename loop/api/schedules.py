"""Report schedules: POST/GET /schedules/, GET/PATCH/DELETE /schedules/<id>/, POST /schedules/<id>/run/, and
the signed download link of a delivered report, GET /reports/<id>/download/ (public: the signature is the key)."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import (
    JSON_WRITE_ERRORS,
    READ_ERRORS,
    ErrorSerializer,
    StrictSerializer,
    UtcTimestampField,
    page_field,
    page_size_field,
)
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.cron import CRON_HELP
from loop.services import report_links, schedules
from loop.services.schedules import CHANNELS_MAX, FILTER_MAX, NAME_MAX, SCHEDULE_ID_HELP
from loop.storage import ReportFormat

NO_CREDENTIALS: Any = [{}]
UNKNOWN_SCHEDULE = OpenApiResponse(ErrorSerializer, description="Unknown schedule id.")
FORMATS = [f.value for f in ReportFormat]

# --- serializers ------------------------------------------------------------------------------------


def _channels_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=CHANNELS_MAX,
        help_text="Ids of the alert channels (webhook, slack, email) that get each report.",
        **kwargs,
    )


def _filter_field(what: str, **kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        allow_null=True,
        max_length=FILTER_MAX,
        help_text=f"Only the stores of this {what} (the store directory, exact match); null: all stores.",
        **kwargs,
    )


class ScheduleCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=NAME_MAX)
    cron = serializers.CharField(max_length=200, help_text=f"When it runs: {CRON_HELP}.")
    timezone = serializers.CharField(max_length=64, help_text="The IANA zone the cron reads in, e.g. America/New_York.")
    format = serializers.ChoiceField(choices=FORMATS, required=False, default=ReportFormat.LOOP.value)
    channels = _channels_field()
    region = _filter_field("region", required=False, default=None)
    brand = _filter_field("brand", required=False, default=None)
    skip_empty = serializers.BooleanField(
        required=False, default=False, help_text="Send nothing when the (filtered) report has no store."
    )
    enabled = serializers.BooleanField(required=False, default=True, help_text="false: created paused.")


class ScheduleUpdateSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=NAME_MAX)
    cron = serializers.CharField(required=False, max_length=200)
    timezone = serializers.CharField(required=False, max_length=64)
    format = serializers.ChoiceField(choices=FORMATS, required=False)
    channels = _channels_field(required=False)
    region = _filter_field("region", required=False)
    brand = _filter_field("brand", required=False)
    skip_empty = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False, help_text="false pauses it; true resumes it from now on.")


class RunSerializer(serializers.Serializer):
    """A ``loop.services.schedules.RunView``."""

    run_id = serializers.CharField(help_text="<schedule id>:<slot in us> (cron) or <schedule id>:manual:<minute>.")
    schedule_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=["cron", "manual"])
    slot = UtcTimestampField(help_text="The instant it is the report of.")
    state = serializers.ChoiceField(choices=["claimed", "running", "delivered", "skipped"])
    outcome = serializers.CharField(allow_null=True, help_text="completed or failed, once delivered.")
    report_id = serializers.CharField(allow_null=True)
    now = UtcTimestampField(allow_null=True, help_text="The report's now: the newest poll at or before the slot.")
    data_note = serializers.CharField(allow_null=True, help_text="Said when the data ends over an hour before.")
    delivery_ids = serializers.ListField(child=serializers.CharField(), help_text="In GET /deliveries/.")
    claimed_at = UtcTimestampField()
    finished_at = UtcTimestampField(allow_null=True)


class ScheduleSerializer(serializers.Serializer):
    """A ``loop.services.schedules.ScheduleView``."""

    schedule_id = serializers.CharField(help_text=SCHEDULE_ID_HELP)
    name = serializers.CharField()
    cron = serializers.CharField()
    timezone = serializers.CharField()
    format = serializers.ChoiceField(choices=FORMATS)
    channels = serializers.ListField(child=serializers.CharField())
    region = serializers.CharField(allow_null=True)
    brand = serializers.CharField(allow_null=True)
    skip_empty = serializers.BooleanField()
    enabled = serializers.BooleanField()
    created_at = UtcTimestampField()
    updated_at = UtcTimestampField()
    next_run_at = UtcTimestampField(allow_null=True, help_text="The next slot (null while paused).")
    last_run = RunSerializer(allow_null=True, help_text="The run of the newest slot due, if it ran.")


class ScheduleListQuerySerializer(StrictSerializer):
    page = page_field()
    page_size = page_size_field("Schedules")


class SchedulePageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ScheduleSerializer(many=True, help_text="Oldest first.")


# --- views ------------------------------------------------------------------------------------------


class ScheduleListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {
        "GET": Capability.READ,
        "POST": Capability.OPERATE,
    }

    @extend_schema(
        operation_id="create_schedule",
        summary="Schedule a report: a cron in a zone, a format, filters and the channels that get it",
        description=(
            "Each slot of the cron (read in `timezone`) makes one report whose `now` is the newest poll at or "
            "before the slot, and sends `report.completed` (or `report.failed`) to each channel: the row count, "
            "the ten worst stores and a signed download link (docs/schedules.md)."
        ),
        request=ScheduleCreateSerializer,
        responses={201: ScheduleSerializer, 409: OpenApiResponse(ErrorSerializer), **JSON_WRITE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = ScheduleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = schedules.create_schedule(**body.validated_data)
        data = ScheduleSerializer(created).data
        record_audit(request=request, action=Action.SCHEDULE_CREATE, target=created.schedule_id, detail=data)
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="list_schedules",
        summary="The report schedules, oldest first, paged",
        parameters=[ScheduleListQuerySerializer],
        responses={200: SchedulePageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ScheduleListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = schedules.list_schedules(page=query.validated_data["page"], page_size=query.validated_data["page_size"])
        return Response(SchedulePageSerializer(page).data)


class ScheduleDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {
        "GET": Capability.READ,
        "PATCH": Capability.OPERATE,
        "DELETE": Capability.OPERATE,
    }

    @extend_schema(
        operation_id="get_schedule",
        summary="One report schedule, with its next slot and its last run",
        responses={200: ScheduleSerializer, 404: UNKNOWN_SCHEDULE, **READ_ERRORS},
    )
    def get(self, request: Request, schedule_id: str) -> Response:
        return Response(ScheduleSerializer(schedules.get_schedule(schedule_id=schedule_id)).data)

    @extend_schema(
        operation_id="update_schedule",
        summary="Change a schedule; enabled false pauses it, true resumes it (missed slots are not run)",
        request=ScheduleUpdateSerializer,
        responses={200: ScheduleSerializer, 404: UNKNOWN_SCHEDULE, **JSON_WRITE_ERRORS},
    )
    def patch(self, request: Request, schedule_id: str) -> Response:
        body = ScheduleUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updated = schedules.update_schedule(schedule_id=schedule_id, changes=body.validated_data)
        detail = {"changes": dict(body.validated_data)}
        record_audit(request=request, action=Action.SCHEDULE_UPDATE, target=schedule_id, detail=detail)
        return Response(ScheduleSerializer(updated).data)

    @extend_schema(
        operation_id="delete_schedule",
        summary="Remove a schedule (a run already started still delivers)",
        responses={204: None, 404: UNKNOWN_SCHEDULE, **JSON_WRITE_ERRORS},
    )
    def delete(self, request: Request, schedule_id: str) -> Response:
        schedules.delete_schedule(schedule_id=schedule_id)
        record_audit(request=request, action=Action.SCHEDULE_DELETE, target=schedule_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"POST": Capability.OPERATE}

    @extend_schema(
        operation_id="run_schedule",
        summary="Run a schedule once now (also a paused one); again within the same minute: that minute's run",
        request=None,
        responses={202: RunSerializer, 200: RunSerializer, 404: UNKNOWN_SCHEDULE, **JSON_WRITE_ERRORS},
    )
    def post(self, request: Request, schedule_id: str) -> Response:
        run, created = schedules.run_now(schedule_id=schedule_id)
        data = RunSerializer(run).data
        if created:
            detail = {"run_id": run.run_id, "report_id": run.report_id}
            record_audit(request=request, action=Action.SCHEDULE_RUN, target=schedule_id, detail=detail)
        return Response(data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class ReportDownloadView(APIView):
    # The link's signature is its credential: no token is read, and it opens only this report's CSV until expiry.
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": None}
    authentication_classes: list[type] = []

    @extend_schema(
        operation_id="download_report",
        summary="A delivered report's CSV through its signed link (no token; expires)",
        description=(
            "The link comes in a scheduled report's delivery (`data.download_url`). Any changed character: 404; "
            "a valid link past `expires`: 410."
        ),
        auth=NO_CREDENTIALS,
        parameters=[
            OpenApiParameter("expires", OpenApiTypes.INT, description="Unix seconds."),
            OpenApiParameter("sig", OpenApiTypes.STR, description="HMAC-SHA256 (hex)."),
            OpenApiParameter("region", OpenApiTypes.STR, required=False),
            OpenApiParameter("brand", OpenApiTypes.STR, required=False),
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The report CSV."),
            404: OpenApiResponse(ErrorSerializer, description="No such link (changed), or the report is gone."),
            410: OpenApiResponse(ErrorSerializer, description="The link has expired."),
        },
    )
    def get(self, request: Request, report_id: str) -> HttpResponse:
        params = request.query_params
        text = report_links.checked_download(
            report_id=report_id,
            expires=params.get("expires"),
            sig=params.get("sig"),
            region=params.get("region"),
            brand=params.get("brand"),
            now=time.time(),
        )
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="report-{report_id}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response
