"""Request and response shapes of the store endpoints (GET /stores/, /stores/<id>/, holiday hours, timeline).

Input serializers turn a query or body into typed values and nothing more; the
rules (what a valid date, clock or range is) live in the services.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from rest_framework import serializers

from loop.rules import DEFAULT_MAX_GAP_MINUTES, MIN_GAP_MINUTES, POLL_STATUSES
from loop.rules import MAX_GAP_MINUTES as MAX_GAP_MINUTES_ALLOWED
from loop.serializers import HoursItemSerializer, StrictSerializer, page_field, page_size_field
from loop.services.stores import SEARCH_MAX_LENGTH
from loop.timeline import iso_times
from loop.timeutil import NOW_HELP, parse_now, ts_to_us


def utc_text(value: pd.Timestamp | None) -> str | None:
    """ISO 8601 in UTC with ``Z`` (microseconds kept when there are any)."""
    if value is None:
        return None
    return iso_times([ts_to_us(pd.Timestamp(value))], "UTC")[0][0]


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
    page = page_field()
    page_size = page_size_field("Stores")


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
    max_gap_minutes = serializers.IntegerField(
        required=False,
        default=DEFAULT_MAX_GAP_MINUTES,
        min_value=MIN_GAP_MINUTES,
        max_value=MAX_GAP_MINUTES_ALLOWED,
        help_text="Business time farther than this from its nearest counted poll is unobserved.",
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
    locals()["from"] = serializers.CharField(help_text="Start of the range (UTC, Z).")
    to = serializers.CharField(help_text="End of the range (UTC, Z).")
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
            "from": utc_text(instance.start),
            "to": utc_text(instance.end),
            "max_gap_minutes": timeline.max_gap_minutes,
            "summary": {
                "uptime_hours": _hours(timeline.uptime_s),
                "downtime_hours": _hours(timeline.downtime_s),
                "unobserved_hours": _hours(timeline.unobserved_s),
                "uptime_pct": _pct(timeline.uptime_s, timeline.downtime_s),
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
                    "uptime_pct": _pct(d.uptime_s, d.downtime_s),
                }
                for d in timeline.days
            ],
        }


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def _pct(up_s: float, down_s: float) -> float | None:
    total = up_s + down_s
    return None if total <= 0 else round(100.0 * up_s / total, 2)
