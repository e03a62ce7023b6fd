"""The dashboard's pages as Django serves them (the browser tests in tests/browser/ drive them for real).

The pages are shells: no data, no secret, scripts only from this app.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

PAGES = [
    "/",
    "/dashboard/stores/",
    "/dashboard/stores/store-1/",
    "/dashboard/reports/",
    "/dashboard/audit/",
    "/dashboard/schedules/",
    "/dashboard/me/",
]
TOKEN = "secret-Token_for_the_page_test_123"


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_html_shells_with_a_strict_policy(client: Client, settings, path: str) -> None:
    settings.API_TOKEN = TOKEN
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert TOKEN not in html  # no secret is ever written into a page
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    # Every script and stylesheet comes from this app's static files: nothing from another host.
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith(("/", "#")) or s == "data:," for s in sources), sources
    assert all(s.startswith("/static/dashboard/") for s in re.findall(r'<script[^>]* src="([^"]+)"', html))
    assert "<script>" not in html  # no inline script (the policy would refuse it anyway)


def test_the_store_page_carries_its_id_escaped(client: Client) -> None:
    response = client.get("/dashboard/stores/%3Cb%3Ex%22y/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-store-id="&lt;b&gt;x&quot;y"' in html
    assert "<b>x" not in html


def test_a_store_id_the_api_would_refuse_is_a_json_404(client: Client) -> None:
    response = client.get("/dashboard/stores/%20padded%20/")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found: /dashboard/stores/ padded /"}


def test_pages_take_no_writes(client: Client) -> None:
    response = Client(enforce_csrf_checks=False).post("/dashboard/reports/")
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/static/dashboard/api.js", b"window.Loop"),
        ("/static/dashboard/dashboard.css", b":focus-visible"),
        ("/static/dashboard/vendor/chart.umd.min.js", b"Chart.js v4.6.1"),
    ],
)
def test_static_files_are_served_by_the_app(client: Client, path: str, fragment: bytes) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert fragment in b"".join(response.streaming_content)


def test_the_old_dashboard_root_redirects_home(client: Client) -> None:
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_audit_page_is_in_the_nav_and_offers_the_action_names(client: Client) -> None:
    html = client.get("/dashboard/audit/").content.decode()
    assert '<a href="/dashboard/audit/" aria-current="page">Audit log</a>' in html
    assert '<option value="hours.update">' in html and '<option value="polls.ingest">' in html
    assert '<script src="/static/dashboard/audit.js"></script>' in html
    assert '<a href="/dashboard/audit/">Audit log</a>' in client.get("/").content.decode()


def test_the_schedules_page_is_in_the_nav_and_the_charts_are_the_apps_own_svg(client: Client) -> None:
    html = client.get("/dashboard/schedules/").content.decode()
    assert '<a href="/dashboard/schedules/" aria-current="page">Schedules</a>' in html
    assert '<script src="/static/dashboard/schedules.js"></script>' in html
    assert 'id="schedule-form" class="edit-form" data-needs="operate" hidden' in html  # shown to operators only
    for path, chart in (("/", "fleet-chart"), ("/dashboard/stores/store-1/", "history-chart")):
        page = client.get(path).content.decode()
        assert f'id="{chart}" class="svg-chart" data-days="90"' in page, path
        assert '<script src="/static/dashboard/charts.js"></script>' in page, path
