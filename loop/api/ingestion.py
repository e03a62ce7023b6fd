"""Ingestion: POST /store_status/, a batch of live polls (CSV with the Loop header, or a JSON list)."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import WRITE_ERRORS, ErrorSerializer, StrictSerializer, body_errors, refuse_chunked
from loop.api.parsers import CsvBody, IngestCSVParser, IngestJSONParser
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.services import ingest

# --- serializers ------------------------------------------------------------------------------------


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


# --- views ------------------------------------------------------------------------------------------


class StoreStatusView(APIView):
    """POST /store_status/: a batch of polls, read and stored as ``load_data`` reads and stores a status file."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"POST": Capability.INGEST}

    parser_classes = [IngestCSVParser, IngestJSONParser]

    @extend_schema(
        operation_id="ingest_polls",
        summary="Store a batch of polls (CSV with the Loop header, or a JSON list)",
        description=(
            "The same reader and row checks as `load_data`: good rows are stored, bad rows are counted and the "
            "first ones listed ('line N' of the CSV, header = line 1; 'item N' of the JSON list, 0-based). "
            "Idempotent: polls already stored count as duplicates. 201 when something new was stored, 200 when not."
        ),
        parameters=[
            OpenApiParameter(
                "strict", bool, OpenApiParameter.QUERY, description="1: any bad row is a 400 and nothing is stored."
            )
        ],
        request={"text/csv": OpenApiTypes.STR, "application/json": PollItemSerializer(many=True)},
        responses={
            201: IngestResultSerializer,
            200: IngestResultSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The database still has the old poll layout."),
            **body_errors(
                too_large="Body larger than INGEST_MAX_BODY_BYTES (8 MiB).",
                media="Body is neither text/csv nor application/json.",
            ),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        query = IngestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        refuse_chunked(request)
        body = request.data
        strict = query.validated_data["strict"]
        if isinstance(body, CsvBody):
            result = ingest.ingest_polls(csv_body=bytes(body), strict=strict)
        elif isinstance(body, list):
            result = ingest.ingest_polls(items=body, strict=strict)
        elif request.META.get("CONTENT_LENGTH", "") in ("", "0"):
            raise ValidationError(
                {"body": "empty: send CSV with the header store_id,status,timestamp_utc or a JSON list"}
            )
        else:
            raise ValidationError(
                {"body": "a JSON batch must be a list of objects with store_id, status, timestamp_utc"}
            )
        # The batch counted, not each row.
        counts = {"read": result.read, "inserted": result.inserted, "duplicates": result.duplicates}
        record_audit(request=request, action=Action.POLLS_INGEST, detail={**counts, "rejected": result.rejected})
        answer = status.HTTP_201_CREATED if result.inserted else status.HTTP_200_OK
        return Response(IngestResultSerializer(result).data, status=answer)
