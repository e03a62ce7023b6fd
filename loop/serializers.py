"""Request validation and response shapes of the API; the OpenAPI schema is generated from the same classes.

Input serializers turn a body into typed values and nothing more; output
serializers are the one definition of each answer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from rest_framework import serializers

from loop.services.reports import REPORT_ID_HELP
from loop.storage import ReportStatus
from loop.timeutil import NOW_HELP, parse_now


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently ignored)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(f"unexpected field(s): {', '.join(map(str, unknown))}")
        return attrs


class InstantField(serializers.DateTimeField):
    """An instant rendered as ISO-8601 with its offset (``+00:00``), microseconds kept."""

    def to_representation(self, value: pd.Timestamp | None) -> str | None:
        return None if value is None else pd.Timestamp(value).isoformat()


class TriggerReportRequestSerializer(StrictSerializer):
    now = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            f"Optional instant to report at: {NOW_HELP}. Default: the newest poll in the database at "
            "trigger time. Must not lie after the newest poll."
        ),
    )

    def validate_now(self, value: str) -> pd.Timestamp:
        try:
            return parse_now(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TriggerReportResponseSerializer(serializers.Serializer):
    report_id = serializers.CharField(help_text=REPORT_ID_HELP)


class ReportStatusSerializer(serializers.Serializer):
    """A ``loop.services.reports.ReportView``; fields that do not apply to the status are left out."""

    OPTIONAL = ("csv_data", "error", "finished_at", "rows")

    status = serializers.ChoiceField(choices=[s.value for s in ReportStatus])
    csv_data = serializers.CharField(required=False, help_text="The report CSV (Complete only).")
    error = serializers.CharField(required=False, help_text="Why the report failed (Failed only).")
    now = InstantField(help_text="The instant the report is computed at.")
    created_at = InstantField(allow_null=True)
    finished_at = InstantField(required=False, help_text="When it became Complete or Failed.")
    rows = serializers.IntegerField(required=False, help_text="Stores in the report (Complete only).")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["status"] = str(data["status"])
        return {key: value for key, value in data.items() if key not in self.OPTIONAL or value is not None}


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    mongo = serializers.CharField()
    broker = serializers.CharField()
