"""The fleet's daily figures: GET /trends/ (totals per local date) and GET /trends/movers/ (week against week)."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import READ_ERRORS, StrictSerializer
from loop.api.stores.history import DateRangeQuerySerializer, hours
from loop.services import history

# --- serializers ------------------------------------------------------------------------------------


class TrendQuerySerializer(DateRangeQuerySerializer):
    region = serializers.CharField(required=False, max_length=200, help_text="Only stores of this region (exact).")
    brand = serializers.CharField(required=False, max_length=200, help_text="Only stores of this brand (exact).")


class TrendDaySerializer(serializers.Serializer):
    date_local = serializers.CharField(help_text="YYYY-MM-DD: each store's own local date.")
    uptime_hours = serializers.FloatField()
    downtime_hours = serializers.FloatField()
    unobserved_hours = serializers.FloatField()
    uptime_pct = serializers.FloatField(allow_null=True, help_text="100 x up / (up + down) of the totals.")
    stores_down = serializers.IntegerField(help_text="Stores with any downtime that date.")
    stores_open = serializers.IntegerField(help_text="Stores with any business time that date.")


class TrendSerializer(serializers.Serializer):
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.CharField()
    to = serializers.CharField()
    region = serializers.CharField(allow_null=True)
    brand = serializers.CharField(allow_null=True)
    days = TrendDaySerializer(many=True, help_text="Kept dates in the range, oldest first.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "from": instance.first.isoformat(),
            "to": instance.last.isoformat(),
            "region": instance.region,
            "brand": instance.brand,
            "days": [
                {
                    "date_local": d.date_local,
                    "uptime_hours": hours(d.uptime_s),
                    "downtime_hours": hours(d.downtime_s),
                    "unobserved_hours": hours(d.unobserved_s),
                    "uptime_pct": d.uptime_pct,
                    "stores_down": d.stores_down,
                    "stores_open": d.stores_open,
                }
                for d in instance.days
            ],
        }


class MoversQuerySerializer(StrictSerializer):
    limit = serializers.IntegerField(
        required=False, default=20, min_value=1, max_value=history.MOVERS_LIMIT_MAX, help_text="Stores answered."
    )


class MoverSerializer(serializers.Serializer):
    store_id = serializers.CharField()
    this_week_pct = serializers.FloatField(allow_null=True)
    previous_week_pct = serializers.FloatField(allow_null=True)
    change_pct = serializers.FloatField(allow_null=True, help_text="this_week_pct - previous_week_pct.")


class WeekSerializer(serializers.Serializer):
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = serializers.CharField()
    to = serializers.CharField()


class MoversSerializer(serializers.Serializer):
    this_week = WeekSerializer()
    previous_week = WeekSerializer()
    stores = MoverSerializer(many=True, help_text="Largest fall first; ties by store id.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        def week(span: Any) -> dict[str, str]:
            return {"from": span[0].isoformat(), "to": span[1].isoformat()}

        return {
            "this_week": week(instance.this_week),
            "previous_week": week(instance.previous_week),
            "stores": [
                {
                    "store_id": m.store_id,
                    "this_week_pct": m.this_week_pct,
                    "previous_week_pct": m.previous_week_pct,
                    "change_pct": m.change_pct,
                }
                for m in instance.stores
            ],
        }


# --- views ------------------------------------------------------------------------------------------


class TrendView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_trend",
        summary="The fleet's business-time up, down and unobserved hours per local date (at most 400 dates)",
        parameters=[TrendQuerySerializer],
        responses={200: TrendSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = TrendQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        result = history.get_trend(
            first=params.get("from"),
            last=params.get("to"),
            region=params.get("region"),
            brand=params.get("brand"),
            count=params.get("days"),
        )
        return Response(TrendSerializer(result).data)


class MoversView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_trend_movers",
        summary="The stores whose uptime % of the last 7 kept dates fell most against the 7 before",
        parameters=[MoversQuerySerializer],
        responses={200: MoversSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = MoversQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(MoversSerializer(history.get_movers(limit=query.validated_data["limit"])).data)
