"""Request validation and response shapes of the API (also the OpenAPI schema)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd
from rest_framework import serializers

# secrets.token_urlsafe(24): 24 random bytes (192 bits) as 32 URL-safe characters.
REPORT_ID_RE = re.compile(r"[A-Za-z0-9_-]{32}")
REPORT_ID_HELP = "32 characters of A-Z, a-z, 0-9, '_' and '-' (as returned by POST /trigger_report/)."


def is_report_id(value: object) -> bool:
    """True only for a plain string of the exact shape we hand out."""
    return isinstance(value, str) and REPORT_ID_RE.fullmatch(value) is not None


# Storage and engine count in nanoseconds (years 1677-2262); a margin keeps
# now - 7 days and now + a week inside that range.
NOW_MIN = pd.Timestamp("1678-01-01", tz="UTC")
NOW_MAX = pd.Timestamp("2262-01-01", tz="UTC")


def parse_instant(text: str) -> pd.Timestamp:
    """An ISO-8601 instant (``Z``/offset, or none = UTC; Loop's `` UTC`` suffix too) as UTC."""
    cleaned = text.strip()
    if cleaned.upper().endswith(" UTC"):
        cleaned = cleaned[:-4].strip()
    value = dt.datetime.fromisoformat(cleaned)  # ValueError when not ISO-8601
    stamp = pd.Timestamp(value)  # OutOfBoundsDatetime (a ValueError) outside 1677-2262
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class TriggerReportRequestSerializer(serializers.Serializer):
    now = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            "Optional ISO-8601 instant to report at, e.g. 2024-10-03T23:33:20.412748Z "
            "(no offset means UTC). Default: the newest poll in the database at trigger time. "
            "Must not lie after the newest poll."
        ),
    )

    def validate_now(self, value: str) -> pd.Timestamp:
        try:
            stamp = parse_instant(value)
        except (ValueError, OverflowError):
            raise serializers.ValidationError("not an ISO-8601 timestamp (e.g. 2024-10-03T23:33:20Z)") from None
        if not NOW_MIN <= stamp <= NOW_MAX:
            raise serializers.ValidationError(
                f"outside the supported range ({NOW_MIN.isoformat()} to {NOW_MAX.isoformat()})"
            )
        return stamp

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(f"unexpected field(s): {', '.join(map(str, unknown))}")
        return attrs


class TriggerReportResponseSerializer(serializers.Serializer):
    report_id = serializers.CharField(help_text=REPORT_ID_HELP)


class ReportStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["Running", "Complete", "Failed"])
    csv_data = serializers.CharField(required=False, help_text="The report CSV (Complete only).")
    error = serializers.CharField(required=False, help_text="Why the report failed (Failed only).")
    now = serializers.DateTimeField(required=False, help_text="The instant the report is computed at.")
    created_at = serializers.DateTimeField(required=False)
    finished_at = serializers.DateTimeField(required=False, allow_null=True)
    rows = serializers.IntegerField(required=False, help_text="Stores in the report (Complete only).")


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    mongo = serializers.CharField()
    broker = serializers.CharField()
