"""Root URLs: the API (loop.urls), its OpenAPI schema and Swagger UI, and Django admin."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from loop.api_errors import not_found_view

urlpatterns = [
    path("", include("loop.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    # Any other path is a JSON 404, even with DEBUG on (admin/ and api/ keep
    # Django's add-a-slash redirect).
    re_path(r"^(?!admin|api/).*$", not_found_view),
]

# Errors outside the API views are JSON too (used when DEBUG is off).
handler400 = "loop.api_errors.bad_request_view"
handler403 = "loop.api_errors.permission_denied_view"
handler404 = "loop.api_errors.not_found_view"
handler500 = "loop.api_errors.server_error_view"
