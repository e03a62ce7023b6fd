"""Multipart uploads of POST /imports/, streamed into GridFS as they arrive (never held in memory).

``GridFSUploadHandler`` (a Django upload handler, installed per request by the view) writes
each file's chunks straight into the ``import_files`` bucket through
``loop.storage.StreamingFileWriter`` and counts the bytes against ``IMPORT_MAX_UPLOAD_BYTES``.
``ImportUploadParser`` runs Django's multipart parser with it and answers every way the body
can be wrong with a JSON 4xx: a ``Content-Length`` over the limit is refused unread (413), a
body that grows past it is cut off (413), an unknown or repeated field is refused before its
bytes are stored (400), a malformed body is a 400, and a body that ends before its
``Content-Length`` (the client closed the connection) or a connection reset mid-body (a client
abort, ``ClientAborted``) is a 400. Whatever the refusal, the chunks already written are removed,
so only a wholly received upload ever becomes an import.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files.uploadhandler import FileUploadHandler
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import BaseParser, DataAndFiles

from loop import storage
from loop.api.parsers import ClientAborted, PayloadTooLarge
from loop.services.imports import ARCHIVE_FIELD, UPLOAD_FIELDS

# Reading the body in 256 KiB pieces: about one GridFS chunk (255 KiB) per read.
UPLOAD_CHUNK_BYTES = 256 * 1024


def upload_fields() -> tuple[str, ...]:
    """Every form field POST /imports/ accepts (the archive, or the files of ``UPLOAD_FIELDS``)."""
    return (ARCHIVE_FIELD, *UPLOAD_FIELDS)


def upload_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Upload is larger than {limit} bytes (IMPORT_MAX_UPLOAD_BYTES).")


@dataclass(frozen=True)
class StoredUpload:
    """One uploaded file, wholly written to the ``import_files`` bucket."""

    field: str
    name: str
    bytes: int
    file_id: Any  # an ObjectId

    def as_import_file(self) -> storage.ImportFile:
        return storage.ImportFile(field=self.field, name=self.name, bytes=self.bytes, file_id=self.file_id)

    # Django closes uploaded files at the end of a request.
    def close(self) -> None:
        return None


class GridFSUploadHandler(FileUploadHandler):
    """Writes each file of the body into GridFS chunk by chunk, under a byte limit over all files."""

    chunk_size = UPLOAD_CHUNK_BYTES

    def __init__(self, request: Any = None, *, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.stored: list[StoredUpload] = []
        self._writer: storage.StreamingFileWriter | None = None
        self._seen: set[str] = set()

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        if field_name not in upload_fields():
            accepted = ", ".join(UPLOAD_FIELDS)
            raise ValidationError(
                {"files": f"unexpected field {field_name!r}: send {ARCHIVE_FIELD!r} or any of {accepted}"}
            )
        if field_name in self._seen:
            raise ValidationError({field_name: "given more than once"})
        self._seen.add(field_name)
        self._writer = storage.StreamingFileWriter(
            storage.get_db(),
            filename=file_name or field_name,
            metadata={"field": field_name},
            # CSVs shrink ~4x and read back that much faster; a zip is compressed already.
            compress=field_name != ARCHIVE_FIELD,
        )
        # Noted before the first chunk: if this process dies mid-upload, the beat task removes the chunks.
        storage.note_upload_started(self._writer.db, self._writer.file_id)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.limit:
            raise upload_too_large(self.limit)
        assert self._writer is not None
        self._writer.write(raw_data)
        return None  # no other handler sees the bytes

    def file_complete(self, file_size: int) -> None:
        """Record the stored file; None, so Django keeps no file object (the parser answers ``stored``)."""
        assert self._writer is not None
        writer, self._writer = self._writer, None
        writer.close()
        self.stored.append(
            StoredUpload(
                field=self.field_name,
                name=self.file_name or self.field_name,
                bytes=writer.length,
                file_id=writer.file_id,
            )
        )

    def discard(self) -> None:
        """Remove every file of this request, finished or not (the request was refused or cut off)."""
        if self._writer is not None:
            storage.delete_uploaded_file(self._writer.db, self._writer.file_id)
            self._writer = None
        if self.stored:
            db = storage.get_db()
            for item in self.stored:
                storage.delete_uploaded_file(db, item.file_id)
        self.stored = []


class _CountingStream:
    """The request body as Django's parser reads it, counting the bytes that actually arrived."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.count = 0

    def read(self, num_bytes: int | None = -1, /) -> bytes:
        return self._counted(self.stream.read(-1 if num_bytes is None else num_bytes))

    def readline(self, limit: int | None = -1, /) -> bytes:
        return self._counted(self.stream.readline(-1 if limit is None else limit))

    def readlines(self) -> list[bytes]:
        return [self._counted(line) for line in self.stream.readlines()]

    def __iter__(self) -> Iterator[bytes]:
        return (self._counted(line) for line in self.stream)

    def _counted(self, data: bytes) -> bytes:
        self.count += len(data)
        return data


class ImportUploadParser(BaseParser):
    """``multipart/form-data`` for POST /imports/: files go to GridFS through ``GridFSUploadHandler``.

    DRF's own MultiPartParser would hand Django's parser the request's default handlers (memory,
    then temporary files); this one uses the view's GridFS handler only, so no file is ever held in
    memory or on the web host's disk, and cleans up after every refusal.
    """

    media_type = "multipart/form-data"

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> DataAndFiles:
        context = parser_context or {}
        request = context["request"]
        limit = settings.IMPORT_MAX_UPLOAD_BYTES
        declared = str(request.META.get("CONTENT_LENGTH", "") or "")
        if declared.isdigit() and int(declared) > limit:
            raise upload_too_large(limit)
        handler = GridFSUploadHandler(request, limit=limit)
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        # No stream: DRF saw no body; Django's parser then answers an empty form (Content-Length 0).
        counted = _CountingStream(stream if stream is not None else io.BytesIO())
        try:
            parser = DjangoMultiPartParser(
                meta, counted, [handler], context.get("encoding") or settings.DEFAULT_CHARSET
            )
            data, _ = parser.parse()
            if declared.isdigit() and counted.count < int(declared):
                raise ParseError(
                    f"The upload was cut off: {counted.count} of {declared} bytes arrived; nothing was stored."
                )
            if handler._writer is not None:  # a file part without its closing boundary
                raise ParseError("The upload ended inside a file; nothing was stored.")
            if data:
                raise ValidationError(
                    {"files": f"unexpected form field(s) {', '.join(sorted(data))}: send the files as file parts"}
                )
        except UnreadablePostError as exc:  # the connection was reset mid-body
            handler.discard()
            raise ClientAborted(
                f"The upload was aborted after {counted.count} of {declared or '?'} bytes "
                f"({type(exc.__cause__ or exc).__name__}: {exc}); nothing was stored."
            ) from None
        except (MultiPartParserError, SuspiciousOperation) as exc:
            # SuspiciousOperation: too many parts, or a form field over DATA_UPLOAD_MAX_MEMORY_SIZE.
            handler.discard()
            raise ParseError(f"Malformed multipart body: {exc}") from None
        except BaseException:
            handler.discard()
            raise
        files: MultiValueDict[str, StoredUpload] = MultiValueDict()
        for item in handler.stored:
            files.appendlist(item.field, item)
        return DataAndFiles(data, files)
