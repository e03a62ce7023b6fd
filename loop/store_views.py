"""The store endpoints: the store list, one store's detail, its holiday hours (and its timeline).

Same style as ``loop.views``: validate the input, call one service, answer
through an output serializer; errors are raised by the services and shaped
by ``loop.api_errors``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.serializers import ErrorSerializer
from loop.services import stores, timeline
from loop.store_serializers import (
    SpecialHoursItemSerializer,
    StoreDetailSerializer,
    StoreListQuerySerializer,
    StorePageSerializer,
    StoreTimelineSerializer,
    TimelineQuerySerializer,
)
from loop.views import JSON_WRITE_ERRORS, READ_ERRORS, STORE_ID_PARAM, StoreAttributeView, _store_id_param, replace_rows

UNKNOWN_STORE = OpenApiResponse(ErrorSerializer, description="Nothing is known of the store (no polls, hours or zone).")


class StoreListView(APIView):
    @extend_schema(
        operation_id="list_stores",
        summary="The stores with polls, sorted by id, paged and searchable; zone, last poll and its status",
        parameters=[StoreListQuerySerializer],
        responses={200: StorePageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = StoreListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = stores.list_stores(search=params["search"], page=params["page"], page_size=params["page_size"])
        return Response(StorePageSerializer(page).data)


class StoreDetailView(APIView):
    @extend_schema(
        operation_id="get_store",
        summary="One store: zone, weekly and holiday hours, first and last poll, latest status",
        parameters=[STORE_ID_PARAM],
        responses={200: StoreDetailSerializer, 404: UNKNOWN_STORE, **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        detail = stores.get_store(store_id=_store_id_param(store_id))
        return Response(StoreDetailSerializer(detail).data)


class SpecialHoursView(StoreAttributeView):
    """One store's holiday hours: for a local date listed here, the store's intervals that start on it come
    only from these rows."""

    @extend_schema(
        operation_id="get_special_hours",
        summary="Read a store's holiday hours ([] = none, also for a store never seen)",
        parameters=[STORE_ID_PARAM],
        responses={200: SpecialHoursItemSerializer(many=True), **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        rows = stores.get_special_hours(store_id=_store_id_param(store_id))
        return Response(SpecialHoursItemSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="set_special_hours",
        summary="Replace a store's holiday hours ([] removes them; both times null = closed all day)",
        parameters=[STORE_ID_PARAM],
        request=SpecialHoursItemSerializer(many=True),
        responses={200: SpecialHoursItemSerializer(many=True), **JSON_WRITE_ERRORS},
    )
    def put(self, request: Request, store_id: str) -> Response:
        return replace_rows(
            request,
            store_id,
            replace=stores.set_special_hours,
            rows=SpecialHoursItemSerializer,
            shape="{date_local, start_time_local, end_time_local}",
        )


class StoreTimelineView(APIView):
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
        store_id = _store_id_param(store_id)
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
