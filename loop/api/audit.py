"""The audit log: GET /audit/ (admins; newest first, filtered, paged by cursor)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import READ_ERRORS, StrictSerializer, UtcTimestampField
from loop.audit import selectors
from loop.audit.models import ACTION_MAX_LENGTH, ACTOR_MAX_LENGTH
from loop.timeutil import NOW_HELP, parse_now

# --- serializers ------------------------------------------------------------------------------------


def _instant(value: str) -> dt.datetime:
    try:
        return parse_now(value).to_pydatetime()
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class AuditQuerySerializer(StrictSerializer):
    """GET /audit/ query (unknown parameters are a 400)."""

    actor = serializers.CharField(
        required=False,
        max_length=ACTOR_MAX_LENGTH,
        help_text="Exactly this actor: a username, key:<prefix>, token:API_TOKEN, token:API_READ_TOKEN or anonymous.",
    )
    action = serializers.CharField(
        required=False,
        max_length=ACTION_MAX_LENGTH,
        help_text="Exactly this action (e.g. hours.update), or every action of a family when it ends in '.' (hours.).",
    )
    since = serializers.CharField(required=False, max_length=64, help_text=f"Entries at or after: {NOW_HELP}.")
    until = serializers.CharField(required=False, max_length=64, help_text="Entries before this instant.")
    limit = serializers.IntegerField(
        required=False,
        default=selectors.AUDIT_LIMIT_DEFAULT,
        min_value=1,
        max_value=selectors.AUDIT_LIMIT_MAX,
        help_text="Entries per page.",
    )
    cursor = serializers.IntegerField(
        required=False, min_value=1, help_text="The next_cursor of the previous page (omit for the newest entries)."
    )

    def validate_since(self, value: str) -> dt.datetime:
        return _instant(value)

    def validate_until(self, value: str) -> dt.datetime:
        return _instant(value)


class AuditEntrySerializer(serializers.Serializer):
    """A ``loop.audit.models.AuditEntry``."""

    id = serializers.IntegerField()
    at = UtcTimestampField(help_text="Server time of the write.")
    actor = serializers.CharField(help_text="Who: a username, key:<prefix>, token:API_TOKEN, manage.py or anonymous.")
    actor_kind = serializers.CharField(help_text="user, key, token, command or anonymous.")
    action = serializers.CharField(help_text="What, e.g. hours.update (docs/audit.md lists them).")
    target = serializers.CharField(help_text="What it was done to (a store id, report id, ...); may be empty.")
    detail = serializers.JSONField(
        help_text="before/after of hours, zones, holidays and profiles; counts of an ingestion batch; ..."
    )
    address = serializers.CharField(help_text="The client's address.")
    request_id = serializers.CharField(help_text="The request's X-Request-ID.")


class AuditPageSerializer(serializers.Serializer):
    """A ``loop.audit.selectors.AuditPage``."""

    limit = serializers.IntegerField()
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as cursor for the next (older) page; null on the last page."
    )
    results = AuditEntrySerializer(many=True, help_text="Newest first.")


# --- views ------------------------------------------------------------------------------------------


class AuditListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.ADMIN}

    @extend_schema(
        operation_id="list_audit_entries",
        summary="The audit log, newest first: every write with who, what, when, from where and its request id",
        parameters=[AuditQuerySerializer],
        responses={200: AuditPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params: dict[str, Any] = query.validated_data
        page = selectors.list_audit_entries(
            actor=params.get("actor"),
            action=params.get("action"),
            since=params.get("since"),
            until=params.get("until"),
            limit=params["limit"],
            cursor=params.get("cursor"),
        )
        return Response(AuditPageSerializer(page).data)
