"""The store catalog: GET /stores/ (paged, searchable) and GET /stores/<id>/ (one store's detail)."""

from __future__ import annotations

from typing import ClassVar

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
    StrictSerializer,
    UtcTimestampField,
    page_field,
    page_size_field,
    store_id_param,
)
from loop.api.stores.attributes import HoursItemSerializer, SpecialHoursItemSerializer
from loop.rules import POLL_STATUSES
from loop.services import stores
from loop.services.stores import SEARCH_MAX_LENGTH
from loop.sources.validate import MAX_PROFILE_TEXT_LENGTH

UNKNOWN_STORE = OpenApiResponse(
    ErrorSerializer, description="Nothing is known of the store (no polls, hours, zone or profile)."
)

# --- serializers ------------------------------------------------------------------------------------


class StoreListQuerySerializer(StrictSerializer):
    """GET /stores/ query: paging, an optional search and directory filters (unknown parameters are a 400)."""

    search = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=SEARCH_MAX_LENGTH,
        trim_whitespace=False,
        help_text="Only stores whose id contains this text (case-insensitive, taken literally).",
    )
    region = serializers.CharField(
        required=False,
        max_length=MAX_PROFILE_TEXT_LENGTH,
        trim_whitespace=False,
        help_text="Only stores whose profile has exactly this region (case-sensitive).",
    )
    brand = serializers.CharField(
        required=False,
        max_length=MAX_PROFILE_TEXT_LENGTH,
        trim_whitespace=False,
        help_text="Only stores whose profile has exactly this brand (case-sensitive).",
    )
    page = page_field()
    page_size = page_size_field("Stores")


class StoreSummarySerializer(serializers.Serializer):
    """A ``loop.services.stores.StoreSummary``."""

    store_id = serializers.CharField()
    name = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    brand = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    region = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    timezone = serializers.CharField(help_text="The zone the report uses (America/Chicago when none is stored).")
    last_poll_utc = UtcTimestampField(
        allow_null=True, help_text="The newest stored poll (null only for a catalog not yet filled in)."
    )
    last_status = serializers.ChoiceField(
        choices=list(POLL_STATUSES), allow_null=True, help_text="Status of the newest poll (inactive wins on a tie)."
    )


class StorePageSerializer(serializers.Serializer):
    """A ``loop.services.paging.Page`` of ``loop.services.stores.StoreSummary``."""

    count = serializers.IntegerField(help_text="Stores matching the search and filters, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = StoreSummarySerializer(many=True, help_text="Sorted by store_id as text.")


class StoreDetailSerializer(serializers.Serializer):
    """A ``loop.services.stores.StoreDetail``."""

    store_id = serializers.CharField()
    name = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    brand = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    region = serializers.CharField(allow_null=True, help_text="From the store directory; null when unknown.")
    timezone = serializers.CharField(help_text="The zone the report uses (America/Chicago when none is stored).")
    business_hours = HoursItemSerializer(many=True, help_text="[] = open 24x7.")
    special_hours = SpecialHoursItemSerializer(many=True, help_text="Holiday hours by date.")
    first_poll_utc = UtcTimestampField(allow_null=True, help_text="Oldest stored poll; null without polls.")
    last_poll_utc = UtcTimestampField(allow_null=True, help_text="Newest stored poll; null without polls.")
    last_status = serializers.ChoiceField(
        choices=list(POLL_STATUSES), allow_null=True, help_text="Status of the newest poll; null without polls."
    )


# --- views ------------------------------------------------------------------------------------------


class StoreListView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="list_stores",
        summary=(
            "The stores with polls, sorted by id, paged, searchable and filtered by region/brand; "
            "name, zone, last poll and its status"
        ),
        parameters=[StoreListQuerySerializer],
        responses={200: StorePageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = StoreListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = stores.list_stores(
            search=params["search"],
            region=params.get("region"),
            brand=params.get("brand"),
            page=params["page"],
            page_size=params["page_size"],
        )
        return Response(StorePageSerializer(page).data)


class StoreDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_store",
        summary="One store: name, brand, region, zone, weekly and holiday hours, first and last poll, latest status",
        parameters=[STORE_ID_PARAM],
        responses={200: StoreDetailSerializer, 404: UNKNOWN_STORE, **READ_ERRORS},
    )
    def get(self, request: Request, store_id: str) -> Response:
        detail = stores.get_store(store_id=store_id_param(store_id))
        return Response(StoreDetailSerializer(detail).data)
