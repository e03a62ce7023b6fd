"""Swagger UI at /api/docs/, served entirely by this app.

Its files come from drf-spectacular-sidecar (static, served by WhiteNoise) and its start-up script
from this view (``?script``), not inline: so the page carries a Content-Security-Policy of
``'self'`` like the dashboard, and works on a network with no internet.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

from loop.accounts.capabilities import Capability
from loop.api.access import CapabilityAccess


def swagger_ui_content_security_policy() -> str:
    """'self' for everything; Swagger UI styles elements inline and draws icons from data: URIs.

    "Try it out" calls the schema's server (PUBLIC_BASE_URL), which may be another origin than the
    one the page was opened on (localhost vs 127.0.0.1).
    """
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self' {settings.PUBLIC_BASE_URL}; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema (/api/schema/): public, like the docs (no credentials read: SERVE_AUTHENTICATION)."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": None}
    permission_classes = [CapabilityAccess]


class SwaggerUiView(SpectacularSwaggerSplitView):
    """drf-spectacular's split Swagger UI view (no inline script) with the app's strict policy; public."""

    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": None}
    permission_classes = [CapabilityAccess]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = swagger_ui_content_security_policy()
        return response
