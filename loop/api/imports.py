"""Imports: POST /imports/ (multipart upload of the Loop CSVs or a .zip, loaded in the background),
GET /imports/ and GET /imports/<id>/."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from loop.api.common import (
    READ_ERRORS,
    WRITE_ERRORS,
    ErrorSerializer,
    StrictSerializer,
    UtcTimestampField,
    body_errors,
    import_id_param,
    page_field,
    page_size_field,
    refuse_chunked,
)
from loop.api.uploads import ImportUploadParser, StoredUpload
from loop.audit.actions import Action
from loop.audit.services import record_audit
from loop.services import imports
from loop.services.imports import IMPORT_ID_HELP, SUMMARY_PROBLEMS
from loop.storage import ImportPhase, ImportStatus

# --- serializers ------------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.BINARY)
class UploadField(serializers.FileField):
    """A file part of a multipart form: ``format: binary`` in the schema (Postman shows a file picker)."""


class ImportUploadSerializer(serializers.Serializer):
    """The multipart form of POST /imports/ (schema only: ``loop.api.uploads`` reads and checks the parts)."""

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
    stores = UploadField(
        required=False, help_text="stores.csv, the store directory (store_id,name,brand,region); optional."
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
    stores_rows_read = serializers.IntegerField(default=0)
    stores_profiles_loaded = serializers.IntegerField(default=0, help_text="Stores named by stores.csv's valid rows.")
    rejected = serializers.IntegerField()
    seconds = serializers.FloatField()
    problems = ImportProblemSerializer(many=True, help_text=f"The first {SUMMARY_PROBLEMS} rejected rows.")


class ImportSerializer(serializers.Serializer):
    """A ``loop.services.imports.ImportView``."""

    import_id = serializers.CharField(help_text=IMPORT_ID_HELP)
    status = serializers.ChoiceField(choices=[s.value for s in ImportStatus])
    phase = serializers.ChoiceField(
        choices=[p.value for p in ImportPhase],
        help_text=(
            "queued, unpacking (copying, checking a zip), loading, done; `worker lost`: its worker stopped "
            "heartbeating for JOB_LOST_SECONDS, so it is queued again. A Failed import keeps its phase."
        ),
    )
    created_at = UtcTimestampField(allow_null=True)
    finished_at = UtcTimestampField(allow_null=True, help_text="When it became Complete or Failed.")
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
    """A ``loop.services.paging.Page`` of ``loop.services.imports.ImportView``."""

    count = serializers.IntegerField(help_text="Imports matching the filter, over all pages.")
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = ImportSerializer(many=True, help_text="Newest first (by created_at).")


# --- views ------------------------------------------------------------------------------------------


class ImportListView(APIView):
    """POST: upload files to load; GET: the imports, newest first."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ, "POST": Capability.INGEST}

    parser_classes = [ImportUploadParser]

    @extend_schema(
        operation_id="start_import",
        summary="Upload the Loop CSVs (or a Loop .zip) and load them in the background, as load_data does",
        description=(
            "multipart/form-data: either one file field `archive` (a Loop .zip; the CSVs may sit in any folder "
            "inside) or any of `store_status`, `business_hours`, `timezones`, `special_hours`, `stores` "
            "(at least one). The body is streamed "
            "into MongoDB (GridFS) as it arrives, then a worker loads it with the same reader and loader as "
            "`load_data` (idempotent: loading the same files again inserts nothing new). 202 with the import to "
            "poll at `url`. A zip that is not a zip, holds no usable file, or expands past "
            "IMPORT_MAX_EXPANDED_BYTES / IMPORT_MAX_COMPRESSION_RATIO makes the import Failed with the reason."
        ),
        request={"multipart/form-data": ImportUploadSerializer},
        responses={
            202: ImportStartedSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The database still has the old poll layout."),
            **body_errors(
                too_large="Body larger than IMPORT_MAX_UPLOAD_BYTES (512 MiB).",
                media="Body is not multipart/form-data.",
            ),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        refuse_chunked(request)
        # Parsing (loop.api.uploads.ImportUploadParser) streams each file into GridFS; no body: no files.
        uploads: list[StoredUpload] = [item for _, values in request.FILES.lists() for item in values]
        started = imports.start_import(files=[upload.as_import_file() for upload in uploads])
        files = [{"field": upload.field, "name": upload.name, "bytes": upload.bytes} for upload in uploads]
        record_audit(request=request, action=Action.IMPORT_CREATE, target=started.import_id, detail={"files": files})
        body = ImportStartedSerializer(started).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": started.url})

    @extend_schema(
        operation_id="list_imports",
        summary="The imports, newest first, paged (the dashboard's upload history)",
        parameters=[ImportListQuerySerializer],
        responses={200: ImportPageSerializer, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ImportListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = imports.list_imports(status=params.get("status"), page=params["page"], page_size=params["page_size"])
        return Response(ImportPageSerializer(page).data)


class ImportDetailView(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    @extend_schema(
        operation_id="get_import",
        summary="Poll an import: Running (rows so far), Complete (load_data's summary) or Failed (the reason)",
        responses={
            200: ImportSerializer,
            404: OpenApiResponse(ErrorSerializer, description="Unknown import id."),
            **READ_ERRORS,
        },
    )
    def get(self, request: Request, import_id: str) -> Response:
        view = imports.get_import(import_id=import_id_param(import_id))
        return Response(ImportSerializer(view).data)
