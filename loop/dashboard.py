"""The ops dashboard: HTML pages served by the app, filled in the browser from the JSON API.

The pages hold no data and no secret: their scripts (loop/static/dashboard/) call the API with
fetch, with the signed-in session's cookie (and its CSRF token on writes) or, for API-key use, the key
the user typed (kept in sessionStorage). With ``AUTH_REQUIRED`` an anonymous visitor is sent to the
sign-in page (Django's login, rate-limited by django-axes: docs/signin.md) unless the browser said it
uses a key (the ``loop_key`` marker cookie: the shell holds nothing, the API checks the key).
Scripts, styles and the charting library come from this app only (Content-Security-Policy ``'self'``; the
90-day charts are inline SVG drawn by loop/static/dashboard/charts.js): the dashboard works on a network
with no internet.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from loop.accounts.selectors import role_of
from loop.api.errors import not_found_view
from loop.audit.actions import Action
from loop.store_ids import is_store_id

# Everything from this origin; Chart.js sets canvas sizes through element styles.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

NAV = (
    ("alerts", "/dashboard/alerts/", "Down now"),
    ("home", "/", "Home"),
    ("stores", "/dashboard/stores/", "Worst stores"),
    ("reports", "/dashboard/reports/", "Reports and imports"),
    ("alerting", "/dashboard/alerting/", "Channels and maintenance"),
    ("schedules", "/dashboard/schedules/", "Schedules"),
    ("audit", "/dashboard/audit/", "Audit log"),
)

# How many local dates the home page's fleet chart and a store page's daily chart show, ending at the newest
# kept date: the pages ask GET /trends/?days= and GET /stores/<id>/history/?days= (the range's rule is
# loop.services.history.date_range).
CHART_DAYS = 90


# Set by the sign-in page's "use an API key" form (and cleared by "Forget key"): this browser reads with a key
# kept in sessionStorage, so an anonymous visitor is served the page instead of sent to sign in. Only a hint:
# a page holds no data, the API checks the key.
KEY_MODE_COOKIE = "loop_key"


def _strict(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Cache-Control"] = "no-cache"
    return response


def _page(request: HttpRequest, template: str, *, page: str, title: str, **context: Any) -> HttpResponse:
    user = request.user
    if settings.AUTH_REQUIRED and not user.is_authenticated and request.COOKIES.get(KEY_MODE_COOKIE) != "1":
        return redirect_to_login(request.get_full_path())
    role = role_of(user=user)
    response = TemplateResponse(
        request,
        f"dashboard/{template}",
        {
            "page": page,
            "title": title,
            "nav": NAV,
            "role": role.value if role else None,
            "auth_required": settings.AUTH_REQUIRED,
            **context,
        },
    )
    return _strict(response)


@require_safe
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    return _page(request, "home.html", page="home", title="Store monitoring", chart_days=CHART_DAYS)


@require_safe
@ensure_csrf_cookie
def worst_stores(request: HttpRequest) -> HttpResponse:
    return _page(request, "stores.html", page="stores", title="Worst stores")


@require_safe
@ensure_csrf_cookie
def store(request: HttpRequest, store_id: str) -> HttpResponse:
    # The id goes into the page only as an escaped attribute; the script asks the API about it.
    if not is_store_id(store_id):
        return not_found_view(request)
    return _page(
        request, "store.html", page="store", title=f"Store {store_id}", store_id=store_id, chart_days=CHART_DAYS
    )


@require_safe
@ensure_csrf_cookie
def reports(request: HttpRequest) -> HttpResponse:
    return _page(request, "reports.html", page="reports", title="Reports and imports")


@require_safe
@ensure_csrf_cookie
def down_now(request: HttpRequest) -> HttpResponse:
    return _page(request, "alerts.html", page="alerts", title="Down now")


@require_safe
@ensure_csrf_cookie
def alerting(request: HttpRequest) -> HttpResponse:
    return _page(request, "alerting.html", page="alerting", title="Channels and maintenance")


@require_safe
@ensure_csrf_cookie
def schedules(request: HttpRequest) -> HttpResponse:
    return _page(request, "schedules.html", page="schedules", title="Report schedules")


@require_safe
def audit_log(request: HttpRequest) -> HttpResponse:
    # The action names feed the filter's suggestions; the entries come from GET /audit/ (admins only).
    return _page(request, "audit.html", page="audit", title="Audit log", actions=[a.value for a in Action])


@require_safe
@ensure_csrf_cookie
def me(request: HttpRequest) -> HttpResponse:
    return _page(request, "me.html", page="me", title="Who you are")


@require_safe
def dashboard_root(request: HttpRequest) -> HttpResponse:
    return redirect("/")


# --- sign-in ------------------------------------------------------------------------------------------


def _cooloff_text() -> str:
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


class SignInView(LoginView):
    """Django's login (username and password, CSRF) on the dashboard's look. A wrong password and an
    unknown user get the same form error; django-axes answers a locked-out client with ``locked_out``."""

    template_name = "accounts/login.html"
    extra_context = {"title": "Sign in"}

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        return _strict(super().render_to_response(context, **kwargs))


def locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """django-axes' lockout answer (``AXES_LOCKOUT_CALLABLE``): the sign-in page saying to wait, 429.

    The same for every username, known or not, and for a locked username or a locked address alike."""
    context = {
        "title": "Sign in",
        "form": AuthenticationForm(request),
        "locked_out": True,
        "cooloff": _cooloff_text(),
        "next": "",
    }
    # Rendered here: axes swaps it in from its middleware, after responses are rendered.
    return _strict(render(request, "accounts/login.html", context, status=429))
