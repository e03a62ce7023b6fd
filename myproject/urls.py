"""Root URLs: the dashboard pages and their sign-in (loop.dashboard), the Django admin (/admin/: users, groups =
roles, API keys), the API (loop.api.urls), its OpenAPI schema and Swagger UI; anything else is a JSON 404.

Every API view declares who may call it (``required_capabilities``, loop.api.access; the table is
docs/access.md); the admin has its own sign-in (staff users; an admin role is staff).
"""

from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.urls import include, path, re_path

from loop import dashboard
from loop.accounts.admin import audited_password_change
from loop.api.docs import SchemaView, SwaggerUiView
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
    re_path(r"^dashboard/schedules/?$", dashboard.schedules, name="dashboard-schedules"),
    re_path(r"^dashboard/audit/?$", dashboard.audit_log, name="dashboard-audit"),
    re_path(r"^dashboard/me/?$", dashboard.me, name="dashboard-me"),
    # Django's sign-in for the dashboard (docs/signin.md): the form, and sign-out by POST with its CSRF token.
    path("accounts/login/", dashboard.SignInView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    # The admin's own-password page, as Django's but audited (user.password); before the admin's URLs.
    path("admin/password_change/", admin.site.admin_view(audited_password_change, cacheable=True)),
    path("admin/", admin.site.urls),
    path("", include("loop.api.urls")),
    # Trailing slash optional, like the API routes (no HTML redirect page).
    re_path(r"^api/schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SwaggerUiView.as_view(url_name="schema"), name="swagger-ui"),
    # Any other path is a JSON 404, even with DEBUG on.
    re_path(r"^", not_found_view),
]

# Errors outside the API views are JSON too (used when DEBUG is off).
handler400 = "loop.api.errors.bad_request_view"
handler403 = "loop.api.errors.permission_denied_view"
handler404 = "loop.api.errors.not_found_view"
handler500 = "loop.api.errors.server_error_view"
