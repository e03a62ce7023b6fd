"""Alert channels: POST/GET /channels/, GET/PATCH/DELETE /channels/<id>/, POST /channels/<id>/test/."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiResponse, extend_schema
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
from loop.api.deliveries import DeliverySerializer
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.events import SUBSCRIBABLE_EVENTS
from loop.services import channels, deliveries
from loop.services.channels import CHANNEL_ID_HELP, NAME_MAX, ChannelKind

UNKNOWN_CHANNEL = OpenApiResponse(ErrorSerializer, description="Unknown channel id.")

# --- serializers ------------------------------------------------------------------------------------


def _events_field(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=list(SUBSCRIBABLE_EVENTS)),
        help_text="Event types the channel gets (default: all). alert.grouped also reaches channels subscribed to "
        "alert.opened or alert.resolved, with only those lists.",
        **kwargs,
    )


class ChannelCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=NAME_MAX)
    kind = serializers.ChoiceField(choices=[k.value for k in ChannelKind])
    url = serializers.CharField(
        required=False, allow_null=True, max_length=2000, help_text="webhook and slack: http(s) URL."
    )
    email = serializers.CharField(required=False, allow_null=True, max_length=254, help_text="email: the address.")
    events = _events_field(required=False)


class ChannelUpdateSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=NAME_MAX)
    url = serializers.CharField(required=False, allow_null=True, max_length=2000)
    email = serializers.CharField(required=False, allow_null=True, max_length=254)
    events = _events_field(required=False)
    enabled = serializers.BooleanField(required=False, help_text="true clears disabled_reason.")


class ChannelSerializer(serializers.Serializer):
    """A ``loop.services.channels.ChannelView`` (never the secret)."""

    channel_id = serializers.CharField(help_text=CHANNEL_ID_HELP)
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=[k.value for k in ChannelKind])
    url = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="Why it was disabled (its URL answered 410 Gone, or a user)."
    )
    created_at = UtcTimestampField()
    updated_at = UtcTimestampField()


class CreatedChannelSerializer(ChannelSerializer):
    secret = serializers.CharField(
        allow_null=True,
        help_text="webhook only: the whsec_ signing secret. Shown in this answer only; keep it.",
    )


class ChannelListQuerySerializer(StrictSerializer):
    page = page_field()
    page_size = page_size_field("Channels")


class ChannelPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ChannelSerializer(many=True, help_text="Newest first.")


# --- views ------------------------------------------------------------------------------------------


class ChannelListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "POST": Capability.ADMIN}

    @extend_schema(
        operation_id="create_channel",
        summary="Add an alert channel (webhook, Slack or e-mail)",
        description=(
            "webhook: Standard Webhooks (signed POST; the secret is answered here only). slack: an incoming-webhook "
            "URL. email: an address. URLs must be http(s) and may not resolve to a private, loopback, link-local, "
            "reserved or multicast address unless the server sets WEBHOOK_ALLOW_PRIVATE=1."
        ),
        request=ChannelCreateSerializer,
        responses={201: CreatedChannelSerializer, **JSON_WRITE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = ChannelCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        created = channels.create_channel(**body.validated_data)
        # What ChannelSerializer shows (never the secret).
        detail = ChannelSerializer(created).data
        record_audit(request=request, action=Action.CHANNEL_CREATE, target=created.channel_id, detail=detail)
        return Response(CreatedChannelSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="list_channels",
        summary="The alert channels, newest first, paged",
        parameters=[ChannelListQuerySerializer],
        responses={200: ChannelPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ChannelListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = channels.list_channels(page=query.validated_data["page"], page_size=query.validated_data["page_size"])
        return Response(ChannelPageSerializer(page).data)


class ChannelDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {
        "GET": Capability.READ,
        "PATCH": Capability.ADMIN,
        "DELETE": Capability.ADMIN,
    }

    @extend_schema(
        operation_id="get_channel",
        summary="One alert channel",
        responses={200: ChannelSerializer, 404: UNKNOWN_CHANNEL, **READ_ERRORS},
    )
    def get(self, request: Request, channel_id: str) -> Response:
        return Response(ChannelSerializer(channels.get_channel(channel_id=channel_id)).data)

    @extend_schema(
        operation_id="update_channel",
        summary="Change a channel's name, url, email, events or enabled",
        request=ChannelUpdateSerializer,
        responses={200: ChannelSerializer, 404: UNKNOWN_CHANNEL, **JSON_WRITE_ERRORS},
    )
    def patch(self, request: Request, channel_id: str) -> Response:
        body = ChannelUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updated = channels.update_channel(channel_id=channel_id, changes=body.validated_data)
        changes = dict(body.validated_data)
        record_audit(request=request, action=Action.CHANNEL_UPDATE, target=channel_id, detail={"changes": changes})
        return Response(ChannelSerializer(updated).data)

    @extend_schema(
        operation_id="delete_channel",
        summary="Remove a channel (its pending deliveries then fail)",
        responses={204: None, 404: UNKNOWN_CHANNEL, **JSON_WRITE_ERRORS},
    )
    def delete(self, request: Request, channel_id: str) -> Response:
        channels.delete_channel(channel_id=channel_id)
        record_audit(request=request, action=Action.CHANNEL_DELETE, target=channel_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTestView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"POST": Capability.ADMIN}

    @extend_schema(
        operation_id="test_channel",
        summary="Send a channel.test event to this channel only",
        request=None,
        responses={202: DeliverySerializer, 404: UNKNOWN_CHANNEL, **JSON_WRITE_ERRORS},
    )
    def post(self, request: Request, channel_id: str) -> Response:
        delivery = deliveries.test_channel(channel_id=channel_id)
        detail = {"delivery_id": delivery.delivery_id}
        record_audit(request=request, action=Action.CHANNEL_TEST, target=channel_id, detail=detail)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
