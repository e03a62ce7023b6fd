"""Who am I and API keys: GET /me/, POST/GET /keys/, DELETE /keys/<key_id>/ (docs/access.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts import selectors, services
from loop.accounts.capabilities import Capability, Principal, Scope
from loop.api.common import NO_TOKEN, READ_ERRORS, UNAVAILABLE, WRITE_ERRORS, ErrorSerializer, StrictSerializer
from loop.api.common import UtcTimestampField as Instant
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.ids import is_id

KEY_ID_PARAM = OpenApiParameter("key_id", str, OpenApiParameter.PATH, description="The key's id (`key_id`).")
UNKNOWN_KEY = OpenApiResponse(ErrorSerializer, description="No such key among the caller's (admins: anyone's).")

# --- serializers ------------------------------------------------------------------------------------


class MeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="What the audit log records: a username, key:<prefix> or token:<NAME>.")
    kind = serializers.ChoiceField(choices=["user", "key", "token", "open"])
    role = serializers.CharField(allow_null=True, help_text="A signed-in user's role (null: none, or not a user).")
    scope = serializers.CharField(allow_null=True, help_text="A key's scope (null for anything else).")
    capabilities = serializers.ListField(child=serializers.CharField(), help_text="What the caller may do now.")


class KeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, help_text="What the key is for, e.g. 'poller eu-1'.")
    scope = serializers.ChoiceField(choices=[scope.value for scope in Scope])
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When it stops working (UTC ISO 8601); none: never."
    )
    owner = serializers.CharField(
        required=False, max_length=150, help_text="Admins only: the username of the key's owner (a service account)."
    )


class KeySerializer(serializers.Serializer):
    """A stored key as listed: its prefix, never the key or its digest."""

    key_id = serializers.CharField(source="id")
    prefix = serializers.CharField(help_text="The visible start of the key; its kind: lpr_/lpi_/lpo_/lpa_.")
    name = serializers.CharField()
    scope = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    created_at = Instant()
    expires_at = Instant(allow_null=True)
    revoked_at = Instant(allow_null=True)
    last_used_at = Instant(allow_null=True, help_text="Updated at most every KEY_LAST_USED_INTERVAL s.")


class CreatedKeySerializer(serializers.Serializer):
    """A ``loop.accounts.services.CreatedKey``: this once the key itself, with what the list shows of it."""

    key = serializers.CharField(help_text="The full key: shown this once, never stored. Keep it secret.")
    key_id = serializers.CharField(source="api_key.id")
    prefix = serializers.CharField(source="api_key.prefix")
    name = serializers.CharField(source="api_key.name")
    scope = serializers.CharField(source="api_key.scope")
    owner = serializers.CharField(source="api_key.owner.username")
    created_at = Instant(source="api_key.created_at")
    expires_at = Instant(source="api_key.expires_at", allow_null=True)


class KeyListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = KeySerializer(many=True, help_text="Newest first.")


# --- views ------------------------------------------------------------------------------------------


def _principal(request: Request) -> Principal:
    assert isinstance(request.auth, Principal)  # CapabilityAccess let only a principal through
    return request.auth


class MeView(APIView):
    # Any identified caller, with any capability (an ingest key may ask who it is); no credentials: 401.
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": None}
    requires_identity = True

    @extend_schema(
        operation_id="me",
        summary="Who the caller is and what it may do",
        responses={200: MeSerializer, 401: NO_TOKEN, 503: UNAVAILABLE},
    )
    def get(self, request: Request) -> Response:
        principal = _principal(request)
        role = selectors.role_of(user=request.user) if principal.kind == "user" else None
        scope = None
        if principal.key_id is not None:
            scope = selectors.key_scope(key_id=principal.key_id)
        body: dict[str, Any] = {
            "name": principal.name,
            "kind": principal.kind,
            "role": role.value if role is not None else None,
            "scope": scope.value if scope is not None else None,
            "capabilities": [c.value for c in Capability if principal.can(c)],  # the enum's order: read first
        }
        return Response(MeSerializer(body).data)


class KeyListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "POST": Capability.READ}

    @extend_schema(
        operation_id="create_key",
        summary="Create an API key (the full key is answered this once)",
        description=(
            "The scope may not exceed the owner's role nor the caller's own capabilities (an operator cannot "
            "create an admin key: 403). `owner` (admins only) names another user, e.g. a service account; a "
            "static token (no user of its own) must name one."
        ),
        request=KeyCreateSerializer,
        responses={201: CreatedKeySerializer, **WRITE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = KeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        created = services.create_key(
            caller=_principal(request),
            name=data["name"],
            scope=Scope(data["scope"]),
            expires_at=data.get("expires_at"),
            owner_username=data.get("owner"),
            now=timezone.now(),
        )
        row = created.api_key
        # The key itself never reaches the log: what the list shows of it.
        detail = selectors.key_summary(api_key=row)
        record_audit(request=request, action=Action.KEY_CREATE, target=row.id, detail=detail)
        return Response(
            CreatedKeySerializer(created).data,
            status=status.HTTP_201_CREATED,
            headers={"Cache-Control": "no-store"},  # the one copy of the key must not sit in a cache
        )

    @extend_schema(
        operation_id="list_keys",
        summary="The caller's API keys (admins: everyone's), prefix only",
        responses={200: KeyListSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        keys = list(selectors.visible_keys(caller=_principal(request)))
        return Response(KeyListSerializer({"count": len(keys), "results": keys}).data)


class KeyDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"DELETE": Capability.READ}

    @extend_schema(
        operation_id="revoke_key",
        summary="Revoke an API key (refused from the next request on)",
        parameters=[KEY_ID_PARAM],
        responses={204: OpenApiResponse(description="Revoked (or already revoked)."), 404: UNKNOWN_KEY, **WRITE_ERRORS},
    )
    def delete(self, request: Request, key_id: str) -> Response:
        if not is_id(key_id):
            raise NotFound(f"No API key {key_id[:40]}.")
        revoked = services.revoke_key(caller=_principal(request), key_id=key_id, now=timezone.now())
        detail = {**selectors.key_summary(api_key=revoked.api_key), "already_revoked": revoked.already}
        record_audit(request=request, action=Action.KEY_REVOKE, target=key_id, detail=detail)
        return Response(status=status.HTTP_204_NO_CONTENT)
