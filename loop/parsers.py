"""A size-limited JSON parser, DRF's only parser here (``DEFAULT_PARSER_CLASSES``).

It lives apart from ``loop.api_errors`` on purpose: DRF imports the parser
classes while ``rest_framework.views`` is being imported, so this module must
not import that one (directly or through ``loop.api_errors``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class LimitedJSONParser(JSONParser):
    """JSON parser that refuses bodies above ``settings.API_MAX_BODY_BYTES``.

    DRF reads the request stream directly, so Django's upload limit does not
    apply; reading at most limit + 1 bytes keeps a huge body out of memory.
    """

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")  # as api_errors.body_too_large
        try:
            text = raw.decode((parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET)
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"Malformed JSON body: {exc}") from None
        except RecursionError:  # "[[[[..." deeper than the interpreter's stack
            raise ParseError("Malformed JSON body: nested too deeply.") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
