"""The ops dashboard: HTML pages served by the app, filled in the browser from the JSON API.

The pages hold no data and no secret: their scripts (loop/static/dashboard/) call the API with
fetch, sending the token the user typed (kept in sessionStorage) when the server sets API_TOKEN.
So the pages themselves need no token, and without the right one no data is ever shown.
Scripts, styles and the charting library come from this app only (Content-Security-Policy
``'self'``): the dashboard works on a network with no internet.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_safe

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
    ("audit", "/dashboard/audit/", "Audit log"),
)


def _page(request: HttpRequest, template: str, *, page: str, title: str, **context: Any) -> HttpResponse:
    response = TemplateResponse(
        request,
        f"dashboard/{template}",
        {"page": page, "title": title, "nav": NAV, **context},
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Cache-Control"] = "no-cache"
    return response


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return _page(request, "home.html", page="home", title="Store monitoring")


@require_safe
def worst_stores(request: HttpRequest) -> HttpResponse:
    return _page(request, "stores.html", page="stores", title="Worst stores")


@require_safe
def store(request: HttpRequest, store_id: str) -> HttpResponse:
    # The id goes into the page only as an escaped attribute; the script asks the API about it.
    if not is_store_id(store_id):
        return not_found_view(request)
    return _page(request, "store.html", page="store", title=f"Store {store_id}", store_id=store_id)


@require_safe
def reports(request: HttpRequest) -> HttpResponse:
    return _page(request, "reports.html", page="reports", title="Reports and imports")


@require_safe
def down_now(request: HttpRequest) -> HttpResponse:
    return _page(request, "alerts.html", page="alerts", title="Down now")


@require_safe
def alerting(request: HttpRequest) -> HttpResponse:
    return _page(request, "alerting.html", page="alerting", title="Channels and maintenance")


@require_safe
def audit_log(request: HttpRequest) -> HttpResponse:
    # The action names feed the filter's suggestions; the entries come from GET /audit/ (admins only).
    return _page(request, "audit.html", page="audit", title="Audit log", actions=[a.value for a in Action])


@require_safe
def dashboard_root(request: HttpRequest) -> HttpResponse:
    return redirect("/")
