"""GET /alerts/, GET /alerts/<id>/, POST /alerts/<id>/ack/ and GET /alerts/stores/: what is down now, who is
on it, and each store's state as the dashboard shows it.

The rules (when an alert opens and resolves) are ``loop.alert_rules``'; the views only check input,
call ``loop.services.alerts`` and answer through the serializers here.
"""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.alert_rules import FEED_STATES
from loop.api.common import (
    READ_ERRORS,
    WRITE_ERRORS,
    ErrorSerializer,
    StrictSerializer,
    UtcTimestampField,
    page_field,
    page_size_field,
)
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.ids import ID_SHAPE, is_id
from loop.services import alerts
from loop.store_ids import STORE_ID_HELP, is_store_id
from loop.timeline import iso_times
from loop.timeutil import ts_to_us

ALERT_ID_PARAM = OpenApiParameter("alert_id", str, OpenApiParameter.PATH, description=f"The alert's id ({ID_SHAPE}).")
UNKNOWN_ALERT = OpenApiResponse(ErrorSerializer, description="No such alert.")


def alert_id_param(value: object) -> str:
    if not is_id(value):
        raise ValidationError({"alert_id": f"must be {ID_SHAPE}"})
    return str(value)


class AlertListQuerySerializer(StrictSerializer):
    """GET /alerts/ query (unknown parameters are a 400)."""

    state = serializers.ChoiceField(
        required=False, default="open", choices=list(alerts.STATES), help_text="open (default), resolved or all."
    )
    store_id = serializers.CharField(required=False, help_text="Only this store's alerts.")
    region = serializers.CharField(required=False, help_text="Only stores of this region (the store directory).")
    brand = serializers.CharField(required=False, help_text="Only stores of this brand (the store directory).")
    order = serializers.ChoiceField(
        required=False,
        default="newest",
        choices=list(alerts.ORDERS),
        help_text="newest (default: newest opened first) or longest (longest down first; state=open only).",
    )
    resolved_within_hours = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=24 * 7,
        help_text="state=resolved only: alerts resolved at most this many hours before evaluated_at.",
    )
    page = page_field()
    page_size = page_size_field("Alerts")

    def validate_store_id(self, value: str) -> str:
        return _checked_store_id(value)


def _checked_store_id(value: str) -> str:
    if not is_store_id(value):
        raise serializers.ValidationError(f"must be {STORE_ID_HELP}")
    return value


class AlertSerializer(serializers.Serializer):
    """A ``loop.services.alerts.AlertView``."""

    alert_id = serializers.CharField()
    store_id = serializers.CharField()
    started_at = UtcTimestampField(help_text="When the outage began (its start inside the business interval).")
    started_at_local = serializers.SerializerMethodField(
        help_text="started_at in the store's zone (ISO 8601 with its offset then); null without a zone."
    )
    opened_at = UtcTimestampField(help_text="The evaluation (data clock) that found the store down for D minutes.")
    resolved_at = UtcTimestampField(allow_null=True, help_text="The evaluation that found it up or closed.")
    resolution = serializers.CharField(allow_null=True, help_text='"up" or "closed"; null while open.')
    ended_at = UtcTimestampField(allow_null=True, help_text="The end of the store's latest outage when resolved.")
    acknowledged_by = serializers.CharField(allow_null=True)
    acknowledged_at = UtcTimestampField(allow_null=True)
    down_minutes = serializers.FloatField(help_text="Business minutes down: so far (open) or in all (resolved).")
    muted = serializers.BooleanField(help_text="Opened inside a maintenance window: nothing was sent.")
    zone = serializers.CharField(help_text="The store's time zone (rule 3).")
    name = serializers.CharField(allow_null=True, help_text="The store's name from the directory (stores.csv).")
    brand = serializers.CharField(allow_null=True)
    region = serializers.CharField(allow_null=True)

    def get_started_at_local(self, view: alerts.AlertView) -> str | None:
        if not view.zone:
            return None
        return iso_times([ts_to_us(view.started_at)], view.zone)[1][0]


class AlertListSerializer(serializers.Serializer):
    """A ``loop.services.alerts.AlertList``: a page of alerts, the newest evaluation and the open counts."""

    count = serializers.IntegerField(source="page.count", help_text="Alerts matching the filter, over all pages.")
    page = serializers.IntegerField(source="page.page")
    page_size = serializers.IntegerField(source="page.page_size")
    results = AlertSerializer(many=True, source="page.results", help_text="Newest first (by opened_at).")
    evaluated_at = UtcTimestampField(allow_null=True, help_text="The t (newest poll) of the newest evaluation.")
    open = serializers.IntegerField(source="open_count", help_text="Open alerts (all stores).")
    open_unacknowledged = serializers.IntegerField(help_text="Open alerts nobody acknowledged.")


class StoreStatesQuerySerializer(StrictSerializer):
    """GET /alerts/stores/ query."""

    store_id = serializers.CharField(required=False, help_text="Only this store (no row when it has no poll).")

    def validate_store_id(self, value: str) -> str:
        return _checked_store_id(value)


class StoreAlertStateSerializer(serializers.Serializer):
    """A ``loop.services.alerts.StoreAlertState``."""

    store_id = serializers.CharField()
    state = serializers.ChoiceField(
        choices=list(FEED_STATES),
        help_text="no_data: latest poll more than G before newest_poll_utc (wins over an open alert); "
        "down: an open alert; ok: neither.",
    )
    last_poll_utc = UtcTimestampField(source="last_poll", help_text="The store's latest poll (any status).")
    last_poll_age_minutes = serializers.FloatField(help_text="newest_poll_utc - last_poll_utc, in minutes.")
    alert_id = serializers.CharField(allow_null=True, help_text="Its open alert, if any.")
    down_since = UtcTimestampField(allow_null=True, help_text="The open alert's started_at.")


class StoreAlertStatesSerializer(serializers.Serializer):
    """A ``loop.services.alerts.StoreAlertStates``."""

    newest_poll_utc = UtcTimestampField(source="newest_poll", allow_null=True, help_text="The data clock.")
    evaluated_at = UtcTimestampField(allow_null=True, help_text="The t of the newest alert evaluation.")
    max_gap_minutes = serializers.IntegerField(help_text="G: older latest polls are no data.")
    count = serializers.SerializerMethodField()
    results = StoreAlertStateSerializer(many=True, help_text="Every store with a poll, by store id.")

    def get_count(self, states: alerts.StoreAlertStates) -> int:
        return len(states.results)


class AckSerializer(StrictSerializer):
    """POST /alerts/<id>/ack/ body (optional)."""

    by = serializers.CharField(required=False, default="api", max_length=100, help_text="Who acknowledges.")
    note = serializers.CharField(required=False, default="", allow_blank=True, max_length=1000)


class AlertListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="list_alerts",
        summary="Alerts, newest first: open (default), resolved or all; with the newest evaluation and open counts",
        parameters=[AlertListQuerySerializer],
        responses={200: AlertListSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = AlertListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        found = alerts.list_alerts(
            state=params["state"],
            store_id=params.get("store_id"),
            region=params.get("region"),
            brand=params.get("brand"),
            page=params["page"],
            page_size=params["page_size"],
            order=params["order"],
            resolved_within_hours=params.get("resolved_within_hours"),
        )
        return Response(AlertListSerializer(found).data)


class AlertDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_alert",
        summary="One alert",
        parameters=[ALERT_ID_PARAM],
        responses={200: AlertSerializer, 404: UNKNOWN_ALERT, **READ_ERRORS},
    )
    def get(self, request: Request, alert_id: str) -> Response:
        return Response(AlertSerializer(alerts.get_alert(alert_id=alert_id_param(alert_id))).data)


class AlertAckView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"POST": Capability.OPERATE}

    @extend_schema(
        operation_id="ack_alert",
        summary="Acknowledge an open alert: no reminders until it resolves (a second ack changes nothing)",
        parameters=[ALERT_ID_PARAM],
        request=AckSerializer,
        responses={
            200: AlertSerializer,
            404: UNKNOWN_ALERT,
            409: OpenApiResponse(ErrorSerializer, description="The alert is resolved already."),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request, alert_id: str) -> Response:
        alert_id = alert_id_param(alert_id)
        body = AckSerializer(data=request.data if request.data else {})
        body.is_valid(raise_exception=True)
        by, note = body.validated_data["by"], body.validated_data["note"]
        view = alerts.acknowledge_alert(alert_id=alert_id, by=by, note=note)
        detail = {"store_id": view.store_id, "by": by, "note": note}
        record_audit(request=request, action=Action.ALERT_ACK, target=alert_id, detail=detail)
        return Response(AlertSerializer(view).data)


class StoreAlertStatesView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="store_alert_states",
        summary="Every store's dashboard state (no data / down / ok), latest poll and its age, open alert",
        parameters=[StoreStatesQuerySerializer],
        responses={200: StoreAlertStatesSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = StoreStatesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = alerts.store_alert_states(store_id=query.validated_data.get("store_id"))
        return Response(StoreAlertStatesSerializer(found).data)
