"""Request and response shapes of the store endpoints (GET /stores/, /stores/<id>/, holiday hours, timeline).

Input serializers turn a query or body into typed values and nothing more; the
rules (what a valid date, clock or range is) live in the services.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from rest_framework import serializers

from loop.rules import POLL_STATUSES
from loop.serializers import HoursItemSerializer, StrictSerializer
from loop.services.reports import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from loop.services.stores import SEARCH_MAX_LENGTH


def utc_text(value: pd.Timestamp | None) -> str | None:
    """ISO 8601 in UTC with ``Z`` (microseconds kept when there are any)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value).tz_convert("UTC")
    return stamp.tz_localize(None).isoformat() + "Z"


class UtcInstantField(serializers.DateTimeField):
    """An instant as ISO 8601 in UTC with ``Z``; null when unknown."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value: pd.Timestamp | None) -> str | None:
        return utc_text(value)


class StoreListQuerySerializer(StrictSerializer):
    """GET /stores/ query: paging and an optional search (unknown parameters are a 400)."""

    search = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=SEARCH_MAX_LENGTH,
        trim_whitespace=False,
        help_text="Only stores whose id contains this text (case-insensitive, taken literally).",
    )
    page = serializers.IntegerField(required=False, default=1, min_value=1, help_text="1-based page number.")
    page_size = serializers.IntegerField(
        required=False, default=PAGE_SIZE_DEFAULT, min_value=1, max_value=PAGE_SIZE_MAX, help_text="Stores per page."
    )


class StoreSummarySerializer(serializers.Serializer):
    """A ``loop.services.stores.StoreSummary``."""

    store_id = serializers.CharField()
    timezone = serializers.CharField(help_text="The zone the report uses (America/Chicago when none is stored).")
    last_poll_utc = UtcInstantField(help_text="The newest stored poll (null only for a catalog not yet filled in).")
    last_status = serializers.ChoiceField(
        choices=list(POLL_STATUSES), allow_null=True, help_text="Status of the newest poll (inactive wins on a tie)."
    )


class StorePageSerializer(serializers.Serializer):
    """A ``loop.services.stores.StorePage``."""

    count = serializers.IntegerField(help_text="Stores matching the search, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = StoreSummarySerializer(many=True, help_text="Sorted by store_id as text.")


class SpecialHoursItemSerializer(serializers.Serializer):
    """One holiday-hours interval (schema; the CSV reader's row check validates the values)."""

    date_local = serializers.CharField(help_text="YYYY-MM-DD, the store's local date the interval starts on.")
    start_time_local = serializers.CharField(
        allow_null=True, help_text="HH:MM[:SS] local; null (with end_time_local null): closed all day."
    )
    end_time_local = serializers.CharField(
        allow_null=True, help_text="HH:MM[:SS]; before the start: the interval runs past midnight."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "date_local": instance.date_local,
            "start_time_local": instance.start_time_local,
            "end_time_local": instance.end_time_local,
        }


class StoreDetailSerializer(serializers.Serializer):
    """A ``loop.services.stores.StoreDetail``."""

    store_id = serializers.CharField()
    timezone = serializers.CharField(help_text="The zone the report uses (America/Chicago when none is stored).")
    business_hours = HoursItemSerializer(many=True, help_text="[] = open 24x7.")
    special_hours = SpecialHoursItemSerializer(many=True, help_text="Holiday hours by date.")
    first_poll_utc = UtcInstantField(help_text="Oldest stored poll; null without polls.")
    last_poll_utc = UtcInstantField(help_text="Newest stored poll; null without polls.")
    last_status = serializers.ChoiceField(
        choices=list(POLL_STATUSES), allow_null=True, help_text="Status of the newest poll; null without polls."
    )
