"""One store's timeline: GET /stores/<id>/timeline/ (segments, outages, open intervals, daily totals)."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import (
    READ_ERRORS,
    STORE_ID_PARAM,
    ErrorSerializer,
    GapMinutesField,
    StrictSerializer,
    UtcTimestampField,
    store_id_param,
)
from loop.api.stores.catalog import UNKNOWN_STORE
from loop.rules import DEFAULT_MAX_GAP_MINUTES, GAP_RANGE_TEXT, uptime_pct_or_none
from loop.services import timeline
from loop.timeline import iso_times
from loop.timeutil import NOW_HELP, parse_now

# --- serializers ------------------------------------------------------------------------------------


class TimelineQuerySerializer(StrictSerializer):
    """GET /stores/<id>/timeline/ query: the range and the observed-gap limit (unknown parameters are a 400)."""

    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.CharField(
        required=False,
        max_length=64,
        help_text=f"Start of the range, {NOW_HELP}. Default: a week before `to`.",
    )
    to = serializers.CharField(
        required=False,
        max_length=64,
        help_text=f"End of the range, {NOW_HELP}. Default: the newest stored poll. At most 31 days after `from`.",
    )
    max_gap_minutes = GapMinutesField(
        help_text=(
            "Business time farther than this from its nearest counted poll is unobserved "
            f"({GAP_RANGE_TEXT} minutes; default {DEFAULT_MAX_GAP_MINUTES})."
        )
    )

    def _instant(self, value: str) -> pd.Timestamp:
        try:
            return parse_now(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_to(self, value: str) -> pd.Timestamp:
        return self._instant(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "from" in attrs:
            try:
                attrs["from"] = self._instant(attrs["from"])
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"from": exc.detail}) from None
        return attrs


class TimelineSummarySerializer(serializers.Serializer):
    uptime_hours = serializers.FloatField()
    downtime_hours = serializers.FloatField()
    unobserved_hours = serializers.FloatField(help_text="Business time with no counted poll within max_gap_minutes.")
    uptime_pct = serializers.FloatField(allow_null=True, help_text="100 x up / (up + down); null when both are 0.")
    outages = serializers.IntegerField(help_text="Runs of down business time.")
    longest_outage_minutes = serializers.FloatField()


class TimelineSpanSerializer(serializers.Serializer):
    start_utc = serializers.CharField(help_text="ISO 8601, UTC, with Z.")
    end_utc = serializers.CharField(help_text="ISO 8601, UTC, with Z (exclusive).")
    start_local = serializers.CharField(help_text="ISO 8601 in the store's zone, with its offset.")
    end_local = serializers.CharField()


class TimelineSegmentSerializer(TimelineSpanSerializer):
    status = serializers.ChoiceField(choices=["up", "down"])
    observed = serializers.BooleanField(
        help_text="Within max_gap_minutes of the counted poll it takes its status from."
    )


class TimelineOutageSerializer(TimelineSpanSerializer):
    minutes = serializers.FloatField()


class TimelineDaySerializer(serializers.Serializer):
    date_local = serializers.CharField(help_text="YYYY-MM-DD in the store's zone.")
    uptime_hours = serializers.FloatField()
    downtime_hours = serializers.FloatField()
    unobserved_hours = serializers.FloatField()
    uptime_pct = serializers.FloatField(allow_null=True)


class StoreTimelineSerializer(serializers.Serializer):
    """A ``loop.services.timeline.StoreTimeline``: hours and minutes rounded to 2 decimals."""

    store_id = serializers.CharField()
    timezone = serializers.CharField(help_text="The zone the times were read in (America/Chicago by default).")
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = UtcTimestampField(help_text="Start of the range.")
    to = UtcTimestampField(help_text="End of the range.")
    max_gap_minutes = serializers.IntegerField()
    summary = TimelineSummarySerializer()
    segments = TimelineSegmentSerializer(many=True, help_text="Business time in order; closed time is left out.")
    outages = TimelineOutageSerializer(many=True)
    open_intervals = TimelineSpanSerializer(many=True, help_text="The store's business intervals in the range.")
    days = TimelineDaySerializer(many=True, help_text="Totals per local date touching the range.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        timeline = instance.timeline
        zone = timeline.zone
        spans = [*timeline.segments, *timeline.outages, *timeline.open_intervals]
        # Every instant converted at once (loop.timeline.iso_times), then handed out in order.
        utc, local = iso_times([t for s in spans for t in (s.start_us, s.end_us)], zone)
        texts = iter(zip(utc[0::2], utc[1::2], local[0::2], local[1::2], strict=True))

        def span() -> dict[str, Any]:
            start_utc, end_utc, start_local, end_local = next(texts)
            return {"start_utc": start_utc, "end_utc": end_utc, "start_local": start_local, "end_local": end_local}

        return {
            "store_id": instance.store_id,
            "timezone": zone,
            "from": self.fields["from"].to_representation(instance.start),
            "to": self.fields["to"].to_representation(instance.end),
            "max_gap_minutes": timeline.max_gap_minutes,
            "summary": {
                "uptime_hours": _hours(timeline.uptime_s),
                "downtime_hours": _hours(timeline.downtime_s),
                "unobserved_hours": _hours(timeline.unobserved_s),
                "uptime_pct": uptime_pct_or_none(timeline.uptime_s, timeline.downtime_s),
                "outages": timeline.outage_count,
                "longest_outage_minutes": round(timeline.longest_outage_minutes, 2),
            },
            # In the order of ``spans``: segments, outages, then open intervals.
            "segments": [{**span(), "status": s.status, "observed": s.observed} for s in timeline.segments],
            "outages": [{**span(), "minutes": round(o.seconds / 60, 2)} for o in timeline.outages],
            "open_intervals": [span() for _ in timeline.open_intervals],
            "days": [
                {
                    "date_local": d.date_local,
                    "uptime_hours": _hours(d.uptime_s),
                    "downtime_hours": _hours(d.downtime_s),
                    "unobserved_hours": _hours(d.unobserved_s),
                    "uptime_pct": uptime_pct_or_none(d.uptime_s, d.downtime_s),
                }
                for d in timeline.days
            ],
        }


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


# --- views ------------------------------------------------------------------------------------------


class StoreTimelineView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_store_timeline",
        summary="One store's up/down/unobserved segments, outages and daily totals over a range (at most 31 days)",
        description=(
            "Default range: the report week ending at the newest stored poll; over that week uptime and downtime "
            "equal the report's `*_last_week` columns for the store. Only polls with from <= t <= to count."
        ),
        parameters=[STORE_ID_PARAM, TimelineQuerySerializer],
        responses={
            200: StoreTimelineSerializer,
            404: UNKNOWN_STORE,
            409: OpenApiResponse(ErrorSerializer, description="No polls are stored and `to` was not given."),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request, store_id: str) -> Response:
        store_id = store_id_param(store_id)
        query = TimelineQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        result = timeline.get_store_timeline(
            store_id=store_id,
            start=params.get("from"),
            end=params.get("to"),
            max_gap_minutes=params["max_gap_minutes"],
        )
        return Response(StoreTimelineSerializer(result).data)
