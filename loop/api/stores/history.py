"""One store's daily figures: GET /stores/<id>/history/ (uptime, downtime, unobserved time, outages per local date)."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import READ_ERRORS, STORE_ID_PARAM, StrictSerializer, store_id_param
from loop.api.stores.catalog import UNKNOWN_STORE
from loop.services import history

# --- serializers ------------------------------------------------------------------------------------


class DateRangeQuerySerializer(StrictSerializer):
    """A range of local dates, both ends included (unknown parameters are a 400)."""

    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        help_text=f"First local date, YYYY-MM-DD. Default: {history.DEFAULT_DAYS - 1} days before `to`.",
    )
    to = serializers.DateField(
        required=False,
        input_formats=["%Y-%m-%d"],
        help_text=f"Last local date (included). Default: the newest date kept. At most {history.MAX_DAYS} dates.",
    )
    days = serializers.IntegerField(
        required=False,
        help_text=(
            f"Instead of `from`: this many dates ending at `to` (1-{history.MAX_DAYS}; "
            f"default {history.DEFAULT_DAYS}). `days=90` alone: the 90 dates up to the newest kept date."
        ),
    )


class HistoryDaySerializer(serializers.Serializer):
    date_local = serializers.CharField(help_text="YYYY-MM-DD in the store's zone.")
    uptime_hours = serializers.FloatField()
    downtime_hours = serializers.FloatField()
    unobserved_hours = serializers.FloatField(help_text="Business time with no counted poll within 60 minutes.")
    uptime_pct = serializers.FloatField(allow_null=True, help_text="100 x up / (up + down); null when both are 0.")
    outages = serializers.IntegerField(help_text="Runs of down business time that date (cut at its midnights).")
    longest_outage_minutes = serializers.FloatField()


class StoreHistorySerializer(serializers.Serializer):
    """A ``loop.services.history.StoreHistory``: hours and minutes rounded to 2 decimals."""

    store_id = serializers.CharField()
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.CharField(help_text="First local date asked for.")
    to = serializers.CharField(help_text="Last local date asked for (included).")
    days = HistoryDaySerializer(
        many=True, help_text="One entry per kept date in the range, oldest first (none before the store's first poll)."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "store_id": instance.store_id,
            "from": instance.first.isoformat(),
            "to": instance.last.isoformat(),
            "days": [
                {
                    "date_local": d.date_local,
                    "uptime_hours": hours(d.uptime_s),
                    "downtime_hours": hours(d.downtime_s),
                    "unobserved_hours": hours(d.unobserved_s),
                    "uptime_pct": d.uptime_pct,
                    "outages": d.outages,
                    "longest_outage_minutes": round(d.longest_outage_s / 60, 2),
                }
                for d in instance.days
            ],
        }


def hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


# --- views ------------------------------------------------------------------------------------------


class StoreHistoryView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_store_history",
        summary="One store's daily figures over a range of local dates (at most 400)",
        description=(
            "Each date D's figures are the store's timeline over [D 00:00, D+1 00:00) in its zone (holiday hours "
            "included): business-time uptime, downtime, unobserved time, outages and the longest one. Kept up to "
            "date as polls, hours, holiday hours and zones change (docs/history.md)."
        ),
        parameters=[STORE_ID_PARAM, DateRangeQuerySerializer],
        responses={200: StoreHistorySerializer, 404: UNKNOWN_STORE, **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        store_id = store_id_param(store_id)
        query = DateRangeQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        result = history.get_store_history(
            store_id=store_id, first=params.get("from"), last=params.get("to"), count=params.get("days")
        )
        return Response(StoreHistorySerializer(result).data)
