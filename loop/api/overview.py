"""The dashboard home's figures (GET /overview/) and the service's health (GET /health/)."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import NO_TOKEN, UNAVAILABLE, UtcTimestampField
from loop.api.reports import ReportSummarySerializer
from loop.health import service_health
from loop.services import overview

# --- serializers ------------------------------------------------------------------------------------


class OverviewSerializer(serializers.Serializer):
    """A ``loop.services.overview.DataOverview``: the dashboard home's freshness figures."""

    newest_poll_utc = UtcTimestampField(allow_null=True, help_text="The newest stored poll (null before any load).")
    oldest_poll_utc = UtcTimestampField(allow_null=True, help_text="The oldest stored poll.")
    stores = serializers.IntegerField(help_text="Stores with at least one stored poll.")
    polls_last_hour = serializers.IntegerField(
        help_text="Polls in the hour ending at the newest poll, (newest - 1 h, newest] (not the wall clock)."
    )
    inactive_polls_last_hour = serializers.IntegerField(help_text="Of those, polls that said inactive.")
    stores_polled_last_hour = serializers.IntegerField(help_text="Distinct stores with a poll in that hour.")
    latest_report = ReportSummarySerializer(allow_null=True, help_text="The newest report (any status), or null.")
    latest_complete_report = ReportSummarySerializer(allow_null=True, help_text="The newest Complete report, or null.")
    data_lag_seconds = serializers.FloatField(
        allow_null=True, help_text="The server's wall clock minus the newest stored poll, in seconds (null: no poll)."
    )
    data_lag_text = serializers.CharField(
        help_text='That lag in words: "data ends 3 h ago" (minutes under an hour, hours under 48 h, then days).'
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    mongo = serializers.CharField()
    broker = serializers.CharField()
    accounts = serializers.CharField(help_text='Django\'s own database (users, keys, sessions): "ok" or "error: ...".')


# --- views ------------------------------------------------------------------------------------------


# OpenAPI's "no credentials needed" security requirement (drf-spectacular's stub types it as a list of names).
NO_CREDENTIALS: Any = [{}]


class HealthView(APIView):
    # Open to load balancers and compose health checks even when AUTH_REQUIRED is on; no credentials are read.
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": None}
    authentication_classes: list[type] = []

    @extend_schema(
        operation_id="health",
        summary="Whether MongoDB, the task broker and the accounts database answer",
        auth=NO_CREDENTIALS,
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request: Request) -> Response:
        health = service_health()
        return Response(HealthSerializer(health).data, status=200 if health["status"] == "ok" else 503)


class OverviewView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="overview",
        summary="Data freshness and the latest reports (the dashboard's home)",
        description=(
            "The newest and oldest stored poll, how many stores have polls, the polls of the hour ending at the "
            "newest poll, and the newest report and newest Complete report (summaries, no CSV)."
        ),
        responses={200: OverviewSerializer, 401: NO_TOKEN, 503: UNAVAILABLE},
    )
    def get(self, request: Request) -> Response:
        return Response(OverviewSerializer(overview.data_overview()).data)
