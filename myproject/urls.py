"""Root URLs: the dashboard pages and their sign-in (loop.dashboard), the API (loop.api.urls), its OpenAPI schema and
Swagger UI; anything else is a JSON 404.

There is no Django admin: the service has no models to administer, and every
route here is either API (token-protected when API_TOKEN is set) or docs.
"""

from django.contrib.auth.views import LogoutView
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from loop import dashboard
from loop.api.docs import SwaggerUiView
from loop.api.errors import not_found_view

urlpatterns = [
    # The ops dashboard: HTML pages without data (their scripts call the API). `/dashboard/...` never
    # collides with the API's `/stores/...`.
    path("", dashboard.home, name="dashboard-home"),
    re_path(r"^dashboard/?$", dashboard.dashboard_root),
    re_path(r"^dashboard/stores/?$", dashboard.worst_stores, name="dashboard-stores"),
    re_path(r"^dashboard/stores/(?P<store_id>[^/]+)/?$", dashboard.store, name="dashboard-store"),
    re_path(r"^dashboard/reports/?$", dashboard.reports, name="dashboard-reports"),
    re_path(r"^dashboard/alerts/?$", dashboard.down_now, name="dashboard-alerts"),
    re_path(r"^dashboard/alerting/?$", dashboard.alerting, name="dashboard-alerting"),
    re_path(r"^dashboard/audit/?$", dashboard.audit_log, name="dashboard-audit"),
    re_path(r"^dashboard/me/?$", dashboard.me, name="dashboard-me"),
    # Django's sign-in for the dashboard (docs/signin.md): the form, and sign-out by POST with its CSRF token.
    path("accounts/login/", dashboard.SignInView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("", include("loop.api.urls")),
    # Trailing slash optional, like the API routes (no HTML redirect page).
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SwaggerUiView.as_view(url_name="schema"), name="swagger-ui"),
    # Any other path is a JSON 404, even with DEBUG on.
    re_path(r"^", not_found_view),
]

# Errors outside the API views are JSON too (used when DEBUG is off).
handler400 = "loop.api.errors.bad_request_view"
handler403 = "loop.api.errors.permission_denied_view"
handler404 = "loop.api.errors.not_found_view"
handler500 = "loop.api.errors.server_error_view"
