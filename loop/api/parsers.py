"""Size-limited parsers: JSON for every endpoint (``DEFAULT_PARSER_CLASSES``), CSV and JSON for ingestion.

It lives apart from ``loop.api.errors`` on purpose: DRF imports the parser
classes while ``rest_framework.views`` is being imported, so this module must
not import that one (directly or through ``loop.api.errors``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.utils.datastructures import MultiValueDict
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser, DataAndFiles, JSONParser


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class ClientAborted(APIException):
    """The client went away while sending the body (a connection reset mid-body): its fault, not ours.

    Django raises ``UnreadablePostError`` for any socket error reading the body (gunicorn's
    ``ConnectionResetError``, a socket timeout); ``loop.api.errors`` turns it into this 400, logged once
    as "client aborted ..." without a traceback. Nobody reads the answer; it keeps the log honest.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The client aborted the request while sending its body."
    default_code = "client_aborted"


class LimitedJSONParser(JSONParser):
    """JSON parser that refuses bodies above ``settings.API_MAX_BODY_BYTES``.

    DRF reads the request stream directly, so Django's upload limit does not
    apply; reading at most limit + 1 bytes keeps a huge body out of memory.
    """

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        return _parse_json(_read_limited(stream, settings.API_MAX_BODY_BYTES), parser_context)


class CsvBody(bytes):
    """A ``text/csv`` body, handed to the view as it came (the CSV reader decodes it)."""


def ingest_limit_exceeded(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request body is larger than {limit} bytes (INGEST_MAX_BODY_BYTES).")


def _read_ingest_body(stream: IO[bytes], parser_context: Mapping[str, Any] | None) -> bytes:
    """The body under ``settings.INGEST_MAX_BODY_BYTES``; a larger Content-Length is refused unread."""
    limit = settings.INGEST_MAX_BODY_BYTES
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
    if str(declared).isdigit() and int(declared) > limit:
        raise ingest_limit_exceeded(limit)
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise ingest_limit_exceeded(limit)
    return raw


class IngestCSVParser(BaseParser):
    """``text/csv`` for POST /store_status/, under its own limit.

    Not a JSONParser or FormParser subclass on purpose: DRF reads those through
    ``request.body``, where Django's 64 KiB DATA_UPLOAD_MAX_MEMORY_SIZE applies;
    these parsers read the request stream themselves.
    """

    media_type = "text/csv"

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> DataAndFiles[CsvBody, MultiValueDict[str, Any]]:
        # DRF takes any parsed value as data; DataAndFiles says so in the parser's declared type.
        return DataAndFiles(CsvBody(_read_ingest_body(stream, parser_context)), MultiValueDict())


class IngestJSONParser(BaseParser):
    """``application/json`` for POST /store_status/, under INGEST_MAX_BODY_BYTES (see IngestCSVParser)."""

    media_type = "application/json"

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        return _parse_json(_read_ingest_body(stream, parser_context), parser_context)


def _read_limited(stream: IO[bytes], limit: int) -> bytes:
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")  # as errors.body_too_large
    return raw


def _parse_json(raw: bytes, parser_context: Mapping[str, Any] | None) -> Any:
    try:
        text = raw.decode((parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET)
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, LookupError) as exc:
        raise ParseError(f"Malformed JSON body: {exc}") from None
    except RecursionError:  # "[[[[..." deeper than the interpreter's stack
        raise ParseError("Malformed JSON body: nested too deeply.") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
