"""Request validation and response shapes of the API; the OpenAPI schema is generated from the same classes.

Input serializers turn a body into typed values and nothing more; output
serializers are the one definition of each answer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loop.rules import DEFAULT_MAX_GAP_MINUTES, MIN_GAP_MINUTES
from loop.rules import MAX_GAP_MINUTES as MAX_GAP_MINUTES_ALLOWED
from loop.services.imports import IMPORT_ID_HELP, SUMMARY_PROBLEMS
from loop.services.paging import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from loop.services.reports import REPORT_ID_HELP
from loop.storage import ImportPhase, ImportStatus, ReportFormat, ReportPhase, ReportStatus
from loop.timeutil import NOW_HELP, parse_now

FORMAT_HELP = (
    "loop: the 7 Loop columns. extended: those, then uptime_pct_last_hour/day/week, unobserved_last_hour "
    "(minutes), unobserved_last_day/week (hours), outages_last_week, longest_outage_last_week (minutes)."
)
GAP_HELP = (
    "Extended reports only: business time farther than this from its nearest counted poll is unobserved "
    f"({MIN_GAP_MINUTES}-{MAX_GAP_MINUTES_ALLOWED})."
)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo must not be silently ignored)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(f"unexpected field(s): {', '.join(map(str, unknown))}")
        return attrs


def page_field() -> serializers.IntegerField:
    """The ``page`` query parameter of the paged lists (reports, imports, stores)."""
    return serializers.IntegerField(required=False, default=1, min_value=1, help_text="1-based page number.")


def page_size_field(items: str) -> serializers.IntegerField:
    """The ``page_size`` query parameter: the paging limits of ``services.reports``."""
    return serializers.IntegerField(
        required=False, default=PAGE_SIZE_DEFAULT, min_value=1, max_value=PAGE_SIZE_MAX, help_text=f"{items} per page."
    )


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
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "true: always start a new report. Default: a Running or Complete report of the same `now` with no "
            "data written since it was triggered is answered instead (200, reused: true)."
        ),
    )
    format = serializers.ChoiceField(
        required=False, default=ReportFormat.LOOP.value, choices=[f.value for f in ReportFormat], help_text=FORMAT_HELP
    )
    max_gap_minutes = serializers.IntegerField(
        required=False,
        default=DEFAULT_MAX_GAP_MINUTES,
        min_value=MIN_GAP_MINUTES,
        max_value=MAX_GAP_MINUTES_ALLOWED,
        help_text=f"{GAP_HELP} Default {DEFAULT_MAX_GAP_MINUTES}; ignored by the loop format.",
    )

    def validate_format(self, value: str) -> ReportFormat:
        return ReportFormat(value)

    def validate_now(self, value: str) -> pd.Timestamp:
        try:
            return parse_now(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class TriggerReportResponseSerializer(serializers.Serializer):
    """A ``loop.services.reports.TriggerResult``."""

    report_id = serializers.CharField(help_text=REPORT_ID_HELP)
    reused = serializers.BooleanField(
        help_text="true (with 200): an existing report of the same now and data answers; false (202): a new one."
    )


class ReportStatusSerializer(serializers.Serializer):
    """A ``loop.services.reports.ReportView``; fields that do not apply to the status are left out."""

    OPTIONAL = ("csv_data", "error", "finished_at", "rows", "max_gap_minutes")

    status = serializers.ChoiceField(choices=[s.value for s in ReportStatus])
    format = serializers.ChoiceField(choices=[f.value for f in ReportFormat], help_text=FORMAT_HELP)
    max_gap_minutes = serializers.IntegerField(required=False, help_text=GAP_HELP)
    csv_data = serializers.CharField(required=False, help_text="The report CSV (Complete only).")
    error = serializers.CharField(required=False, help_text="Why the report failed (Failed only).")
    now = InstantField(help_text="The instant the report is computed at.")
    created_at = InstantField(allow_null=True)
    finished_at = InstantField(required=False, help_text="When it became Complete or Failed.")
    rows = serializers.IntegerField(required=False, help_text="Stores in the report (Complete only).")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["status"] = str(data["status"])
        data["format"] = str(data["format"])
        return {key: value for key, value in data.items() if key not in self.OPTIONAL or value is not None}


class ReportListQuerySerializer(StrictSerializer):
    """GET /reports/ query: paging and an optional status filter (unknown parameters are a 400)."""

    page = page_field()
    page_size = page_size_field("Reports")
    status = serializers.ChoiceField(
        required=False, choices=[s.value for s in ReportStatus], help_text="Only reports with this status."
    )

    def validate_status(self, value: str) -> ReportStatus:
        return ReportStatus(value)


class ReportSummarySerializer(serializers.Serializer):
    """A ``loop.services.reports.ReportSummary``: fields that do not apply to the status are left out."""

    OPTIONAL = ("finished_at", "rows", "phase", "progress", "max_gap_minutes")

    report_id = serializers.CharField(help_text=REPORT_ID_HELP)
    status = serializers.ChoiceField(choices=[s.value for s in ReportStatus])
    format = serializers.ChoiceField(choices=[f.value for f in ReportFormat], help_text=FORMAT_HELP)
    max_gap_minutes = serializers.IntegerField(required=False, help_text=GAP_HELP)
    now = InstantField(help_text="The instant the report is computed at.")
    created_at = InstantField(allow_null=True)
    finished_at = InstantField(required=False, help_text="When it became Complete or Failed.")
    rows = serializers.IntegerField(required=False, help_text="Stores in the report (Complete only).")
    phase = serializers.ChoiceField(
        required=False, choices=[p.value for p in ReportPhase], help_text="What the worker is doing (Running only)."
    )
    progress = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="Rough percent done (Running only)."
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["status"] = str(data["status"])
        data["format"] = str(data["format"])
        return {key: value for key, value in data.items() if key not in self.OPTIONAL or value is not None}


class ReportPageSerializer(serializers.Serializer):
    """A ``loop.services.reports.ReportPage``."""

    count = serializers.IntegerField(help_text="Reports matching the filter, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ReportSummarySerializer(many=True, help_text="Newest first (by created_at).")


class OverviewSerializer(serializers.Serializer):
    """A ``loop.services.overview.DataOverview``: the dashboard home's freshness figures."""

    newest_poll_utc = InstantField(allow_null=True, help_text="The newest stored poll (null before any load).")
    oldest_poll_utc = InstantField(allow_null=True, help_text="The oldest stored poll.")
    stores = serializers.IntegerField(help_text="Stores with at least one stored poll.")
    polls_last_hour = serializers.IntegerField(
        help_text="Polls in the hour ending at the newest poll, (newest - 1 h, newest] (not the wall clock)."
    )
    inactive_polls_last_hour = serializers.IntegerField(help_text="Of those, polls that said inactive.")
    stores_polled_last_hour = serializers.IntegerField(help_text="Distinct stores with a poll in that hour.")
    latest_report = ReportSummarySerializer(allow_null=True, help_text="The newest report (any status), or null.")
    latest_complete_report = ReportSummarySerializer(allow_null=True, help_text="The newest Complete report, or null.")


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    mongo = serializers.CharField()
    broker = serializers.CharField()


class PollItemSerializer(serializers.Serializer):
    """One poll of a JSON batch (schema only: the CSV reader's row check validates the values)."""

    store_id = serializers.CharField(help_text="Up to 128 characters.")
    status = serializers.ChoiceField(choices=["active", "inactive"])
    timestamp_utc = serializers.CharField(help_text="Loop's `YYYY-MM-DD HH:MM:SS[.f] UTC` or ISO-8601.")


class IngestQuerySerializer(StrictSerializer):
    strict = serializers.BooleanField(
        required=False, default=False, help_text="1: any bad row refuses the batch (400) and nothing is stored."
    )


class IngestResultSerializer(serializers.Serializer):
    read = serializers.IntegerField(help_text="Rows in the batch (valid and rejected).")
    inserted = serializers.IntegerField(help_text="Polls new to the database.")
    duplicates = serializers.IntegerField(help_text="Valid rows already stored, or repeated in the batch.")
    rejected = serializers.IntegerField(help_text="Rows skipped as invalid.")
    problems = serializers.ListField(
        child=serializers.CharField(),
        help_text=(
            "The first rejected rows as 'line N: reason' (CSV, the header is line 1) or 'item N: reason' "
            "(JSON, 0-based index)."
        ),
    )


class HoursItemSerializer(serializers.Serializer):
    """One weekly interval (schema; the CSV reader's row check validates the values)."""

    dayOfWeek = serializers.IntegerField(min_value=0, max_value=6, help_text="0 = Monday ... 6 = Sunday.")  # noqa: N815
    start_time_local = serializers.CharField(help_text="HH:MM[:SS], the store's local time.")
    end_time_local = serializers.CharField(help_text="HH:MM[:SS]; before the start: the interval runs past midnight.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {
            "dayOfWeek": instance.day_of_week,
            "start_time_local": instance.start_time_local,
            "end_time_local": instance.end_time_local,
        }


class TimezoneRequestSerializer(StrictSerializer):
    timezone_str = serializers.CharField(max_length=64, help_text="An IANA zone name, e.g. America/New_York.")


class TimezoneSerializer(serializers.Serializer):
    store_id = serializers.CharField()
    timezone_str = serializers.CharField()
    is_default = serializers.BooleanField(help_text="True: no zone is stored and the report uses America/Chicago.")


# --- imports (POST /imports/, GET /imports/...) -------------------------------------------------


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file part of a multipart form: ``format: binary`` in the schema (Postman shows a file picker)."""


class ImportUploadSerializer(serializers.Serializer):
    """The multipart form of POST /imports/ (schema only: ``loop.uploads`` reads and checks the parts)."""

    archive = UploadField(
        required=False, help_text="A Loop .zip holding the CSVs (any folder inside); alone, without the CSV fields."
    )
    store_status = UploadField(required=False, help_text="store_status.csv (store_id,status,timestamp_utc).")
    business_hours = UploadField(
        required=False,
        help_text="menu_hours.csv / business_hours.csv (store_id,dayOfWeek,start_time_local,end_time_local).",
    )
    timezones = UploadField(required=False, help_text="timezones.csv (store_id,timezone_str).")
    special_hours = UploadField(
        required=False,
        help_text="special_hours.csv, holiday hours (store_id,date_local,start_time_local,end_time_local); optional.",
    )


class ImportStartedSerializer(serializers.Serializer):
    """A ``loop.services.imports.ImportStarted``."""

    import_id = serializers.CharField(help_text=IMPORT_ID_HELP)
    status = serializers.ChoiceField(choices=[s.value for s in ImportStatus])
    url = serializers.CharField(help_text="Poll it here: GET /imports/<import_id>/.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["status"] = str(data["status"])
        return data


class ImportFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The file name the client sent.")
    bytes = serializers.IntegerField()


class ImportProgressSerializer(serializers.Serializer):
    rows = serializers.IntegerField(help_text="Rows read so far of the file being loaded (all of them once Complete).")
    file = serializers.CharField(allow_null=True, help_text="The file being read (null before loading and once done).")


class ImportProblemSerializer(serializers.Serializer):
    file = serializers.CharField()
    line = serializers.IntegerField(help_text="Line in the file (the header is line 1).")
    reason = serializers.CharField()


class ImportSummaryDataSerializer(serializers.Serializer):
    """What ``load_data`` prints (``lines``), the same figures as fields, and the first rejected rows."""

    lines = serializers.ListField(child=serializers.CharField(), help_text="load_data's summary, line by line.")
    status_rows_read = serializers.IntegerField()
    polls_inserted = serializers.IntegerField()
    polls_duplicates = serializers.IntegerField()
    polls_made_inactive = serializers.IntegerField()
    hours_rows_read = serializers.IntegerField()
    hours_rows_loaded = serializers.IntegerField()
    hours_stores = serializers.IntegerField()
    zones_rows_read = serializers.IntegerField()
    zones_rows_loaded = serializers.IntegerField()
    zones_stores = serializers.IntegerField()
    special_rows_read = serializers.IntegerField(default=0)
    special_rows_loaded = serializers.IntegerField(default=0)
    special_stores = serializers.IntegerField(default=0)
    rejected = serializers.IntegerField()
    seconds = serializers.FloatField()
    problems = ImportProblemSerializer(many=True, help_text=f"The first {SUMMARY_PROBLEMS} rejected rows.")


class ImportSerializer(serializers.Serializer):
    """A ``loop.services.imports.ImportView``."""

    import_id = serializers.CharField(help_text=IMPORT_ID_HELP)
    status = serializers.ChoiceField(choices=[s.value for s in ImportStatus])
    phase = serializers.ChoiceField(
        choices=[p.value for p in ImportPhase],
        help_text="queued, unpacking (copying, checking a zip), loading, done; a Failed import keeps its phase.",
    )
    created_at = InstantField(allow_null=True)
    finished_at = InstantField(allow_null=True, help_text="When it became Complete or Failed.")
    files = ImportFileSerializer(many=True)
    progress = ImportProgressSerializer()
    summary = ImportSummaryDataSerializer(allow_null=True, help_text="Complete only.")
    error = serializers.CharField(allow_null=True, help_text="Why it failed (Failed only).")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["status"] = str(data["status"])
        return data


class ImportListQuerySerializer(StrictSerializer):
    """GET /imports/ query: paging and an optional status filter (unknown parameters are a 400)."""

    page = page_field()
    page_size = page_size_field("Imports")
    status = serializers.ChoiceField(
        required=False, choices=[s.value for s in ImportStatus], help_text="Only imports with this status."
    )

    def validate_status(self, value: str) -> ImportStatus:
        return ImportStatus(value)


class ImportPageSerializer(serializers.Serializer):
    """A ``loop.services.imports.ImportPage``."""

    count = serializers.IntegerField(help_text="Imports matching the filter, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ImportSerializer(many=True, help_text="Newest first (by created_at).")
