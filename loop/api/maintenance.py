"""Maintenance windows (mutes) of alerts: POST/GET /maintenance/, GET/DELETE /maintenance/<id>/."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import (
    READ_ERRORS,
    WRITE_ERRORS,
    ErrorSerializer,
    StrictSerializer,
    UtcTimestampField,
    body_errors,
    page_field,
    page_size_field,
)
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.maintenance import CLOCK_HELP, MAX_NOTE_LENGTH
from loop.services import maintenance
from loop.services.maintenance import WINDOW_ID_HELP
from loop.store_ids import STORE_ID_HELP
from loop.timeutil import NOW_HELP, parse_now

WINDOW_ID_PARAM = OpenApiParameter("window_id", str, OpenApiParameter.PATH, description=WINDOW_ID_HELP)
UNKNOWN_WINDOW = OpenApiResponse(ErrorSerializer, description="Unknown window id.")

# --- serializers ------------------------------------------------------------------------------------


class WindowRequestSerializer(StrictSerializer):
    """POST /maintenance/: which stores (exactly one of store_ids, all) and when (one-off or weekly)."""

    store_ids = serializers.ListField(
        required=False,
        child=serializers.CharField(trim_whitespace=False, allow_blank=True),
        help_text=f"The stores it mutes (not empty; each {STORE_ID_HELP}). Or `all`.",
    )
    all = serializers.BooleanField(required=False, help_text="true: every store. Or `store_ids`.")
    start = serializers.CharField(
        required=False, max_length=64, help_text=f"One-off: the first muted instant, {NOW_HELP}."
    )
    end = serializers.CharField(
        required=False, max_length=64, help_text="One-off: the first instant no longer muted (after start)."
    )
    weekday = serializers.IntegerField(
        required=False, help_text="Weekly: the local day it starts on, 0-6 (0 = Monday, as business hours)."
    )
    local_start = serializers.CharField(
        required=False, max_length=16, help_text=f"Weekly: {CLOCK_HELP}, in each store's own zone."
    )
    local_end = serializers.CharField(
        required=False,
        max_length=16,
        help_text=f"Weekly: {CLOCK_HELP}; before local_start = past midnight into the next day, equal = 24 h.",
    )
    note = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=MAX_NOTE_LENGTH, help_text="Why (free text)."
    )


class WindowSerializer(serializers.Serializer):
    """A ``loop.services.maintenance.WindowView``."""

    window_id = serializers.CharField(help_text=WINDOW_ID_HELP)
    kind = serializers.ChoiceField(choices=["one_off", "weekly"])
    all = serializers.BooleanField(help_text="true: it mutes every store (store_ids is null).")
    store_ids = serializers.ListField(child=serializers.CharField(), allow_null=True)
    start = UtcTimestampField(allow_null=True, help_text="One-off only (start included).")
    end = UtcTimestampField(allow_null=True, help_text="One-off only (end excluded).")
    weekday = serializers.IntegerField(allow_null=True, help_text="Weekly only: 0 = Monday.")
    local_start = serializers.CharField(allow_null=True, help_text="Weekly only: HH:MM:SS local.")
    local_end = serializers.CharField(allow_null=True, help_text="Weekly only: HH:MM:SS local.")
    note = serializers.CharField(allow_blank=True)
    created_at = UtcTimestampField(allow_null=True)


class WindowListQuerySerializer(StrictSerializer):
    """GET /maintenance/ query: paging and an optional instant (unknown parameters are a 400)."""

    page = page_field()
    page_size = page_size_field("Windows")
    active_at = serializers.CharField(
        required=False,
        max_length=64,
        help_text=f"Only windows that mute at least one store then: {NOW_HELP}.",
    )

    def validate_active_at(self, value: str) -> Any:
        try:
            return parse_now(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class WindowPageSerializer(serializers.Serializer):
    """A ``loop.services.paging.Page`` of ``loop.services.maintenance.WindowView``."""

    count = serializers.IntegerField(help_text="Windows matching the filter, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = WindowSerializer(many=True, help_text="Newest first (by created_at).")


# --- views ------------------------------------------------------------------------------------------


class WindowListView(APIView):
    """POST: create a window; GET: the windows, newest first."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "POST": Capability.OPERATE}

    @extend_schema(
        operation_id="create_maintenance_window",
        summary="Mute alerts of some stores (or all) once, or every week in each store's local time",
        description=(
            "Exactly one of `store_ids` (a non-empty list) or `all: true`; then either one-off `start` and `end` "
            "(UTC instants, end after start, start included, end excluded) or weekly `weekday`, `local_start`, "
            "`local_end` in each store's own zone (end before start runs past midnight, equal = 24 h; daylight "
            "saving as the report's rule 5). An optional `note`."
        ),
        request=WindowRequestSerializer,
        responses={
            201: WindowSerializer,
            **body_errors(too_large="Body too large (API_MAX_BODY_BYTES).", media="Body is not JSON."),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        body = WindowRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        view = maintenance.create_window(
            store_ids=data.get("store_ids"),
            all_stores=data.get("all"),
            start=data.get("start"),
            end=data.get("end"),
            weekday=data.get("weekday"),
            local_start=data.get("local_start"),
            local_end=data.get("local_end"),
            note=data["note"],
        )
        url = f"/maintenance/{view.window_id}/"
        created = WindowSerializer(view).data
        record_audit(request=request, action=Action.MAINTENANCE_CREATE, target=view.window_id, detail=created)
        return Response(created, status=status.HTTP_201_CREATED, headers={"Location": url})

    @extend_schema(
        operation_id="list_maintenance_windows",
        summary="The maintenance windows, newest first, paged",
        parameters=[WindowListQuerySerializer],
        responses={200: WindowPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = WindowListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = maintenance.list_windows(
            page=params["page"], page_size=params["page_size"], active_at=params.get("active_at")
        )
        return Response(WindowPageSerializer(page).data)


class WindowDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {
        "GET": Capability.READ,
        "DELETE": Capability.OPERATE,
    }

    @extend_schema(
        operation_id="get_maintenance_window",
        summary="One maintenance window",
        parameters=[WINDOW_ID_PARAM],
        responses={200: WindowSerializer, 404: UNKNOWN_WINDOW, **READ_ERRORS},
    )
    def get(self, request: Request, window_id: str) -> Response:
        return Response(WindowSerializer(maintenance.get_window(window_id=window_id)).data)

    @extend_schema(
        operation_id="delete_maintenance_window",
        summary="Delete a maintenance window (its stores are no longer muted by it)",
        parameters=[WINDOW_ID_PARAM],
        responses={204: OpenApiResponse(description="Deleted."), 404: UNKNOWN_WINDOW, **WRITE_ERRORS},
    )
    def delete(self, request: Request, window_id: str) -> Response:
        maintenance.delete_window(window_id=window_id)
        record_audit(request=request, action=Action.MAINTENANCE_DELETE, target=window_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
