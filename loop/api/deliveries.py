"""Alert deliveries: GET /deliveries/, GET /deliveries/<id>/, POST /deliveries/<id>/retry/."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
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
    page_field,
    page_size_field,
)
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.delivery_rules import DeliveryStatus
from loop.services import deliveries
from loop.services.deliveries import DELIVERY_ID_HELP

UNKNOWN_DELIVERY = OpenApiResponse(ErrorSerializer, description="Unknown delivery id.")


class AttemptSerializer(serializers.Serializer):
    attempt = serializers.IntegerField(help_text="1, 2, ...")
    at = UtcTimestampField()
    status_code = serializers.IntegerField(
        allow_null=True, help_text="The receiver's HTTP status (200 for a mail the backend took); null: no answer."
    )
    error = serializers.CharField(allow_null=True)
    next_retry_at = UtcTimestampField(allow_null=True, help_text="When the next attempt is due; null: none.")


class DeliverySerializer(serializers.Serializer):
    """A ``loop.services.deliveries.DeliveryView``."""

    delivery_id = serializers.CharField(help_text=DELIVERY_ID_HELP)
    channel_id = serializers.CharField()
    event_type = serializers.CharField()
    event = serializers.JSONField(help_text='The event body: {"type", "timestamp", "data"}.')
    webhook_id = serializers.CharField(help_text="The webhook-id header, the same on every attempt.")
    status = serializers.ChoiceField(choices=[s.value for s in DeliveryStatus])
    created_at = UtcTimestampField()
    next_attempt_at = UtcTimestampField(allow_null=True)
    finished_at = UtcTimestampField(allow_null=True)
    attempt_count = serializers.IntegerField()
    last_error = serializers.CharField(allow_null=True)
    attempts = AttemptSerializer(many=True)


class DeliveryListQuerySerializer(StrictSerializer):
    page = page_field()
    page_size = page_size_field("Deliveries")
    channel = serializers.CharField(required=False, help_text="Only this channel's deliveries.")
    schedule = serializers.CharField(
        required=False, help_text="Only the deliveries of this report schedule's runs (GET /schedules/)."
    )
    status = serializers.ChoiceField(required=False, choices=[s.value for s in DeliveryStatus])

    def validate_status(self, value: str) -> DeliveryStatus:
        return DeliveryStatus(value)


class DeliveryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = DeliverySerializer(many=True, help_text="Newest first.")


class DeliveryListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="list_deliveries",
        summary="Alert deliveries, newest first, with every attempt",
        parameters=[DeliveryListQuerySerializer],
        responses={200: DeliveryPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = DeliveryListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = deliveries.list_deliveries(
            channel_id=params.get("channel"),
            status=params.get("status"),
            schedule_id=params.get("schedule"),
            page=params["page"],
            page_size=params["page_size"],
        )
        return Response(DeliveryPageSerializer(page).data)


class DeliveryDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_delivery",
        summary="One alert delivery and its attempts",
        responses={200: DeliverySerializer, 404: UNKNOWN_DELIVERY, **READ_ERRORS},
    )
    def get(self, request: Request, delivery_id: str) -> Response:
        return Response(DeliverySerializer(deliveries.get_delivery(delivery_id=delivery_id)).data)


class DeliveryRetryView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"POST": Capability.OPERATE}

    @extend_schema(
        operation_id="retry_delivery",
        summary="Send a delivery again now (a new attempt, same webhook-id and body)",
        request=None,
        responses={202: DeliverySerializer, 404: UNKNOWN_DELIVERY, **WRITE_ERRORS},
    )
    def post(self, request: Request, delivery_id: str) -> Response:
        delivery = deliveries.retry_delivery(delivery_id=delivery_id)
        detail = {"channel_id": delivery.channel_id, "event_type": delivery.event_type}
        record_audit(request=request, action=Action.DELIVERY_RETRY, target=delivery_id, detail=detail)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
