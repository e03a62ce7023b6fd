"""One permission (loop.api.access.CapabilityAccess) decides access by method for every view, from the
capability each view declares; the static tokens (API_TOKEN: everything, API_READ_TOKEN: the read scope)
keep working as before. Users, keys and the whole route table: test_access_matrix.py, test_api_keys.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability
from tests.support.api import FULL, READ, VALID_ID, assert_json_error

READ_HEADER = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
FULL_HEADER = {"HTTP_AUTHORIZATION": f"Bearer {FULL}"}

# Every request that changes data (the body does not matter: access is decided first).
WRITES = [
    ("POST", "/store_status/"),
    ("POST", "/imports/"),
    ("PUT", "/stores/s1/business_hours/"),
    ("PUT", "/stores/s1/special_hours/"),
    ("PUT", "/stores/s1/timezone/"),
    ("DELETE", f"/reports/{VALID_ID}/"),
]
READS = [
    "/reports/",
    f"/get_report/{VALID_ID}/",
    f"/get_report/?report_id={VALID_ID}",
    f"/get_report/{VALID_ID}/csv/",
    f"/reports/{VALID_ID}/stores/",
    "/imports/",
    f"/imports/{VALID_ID}/",
    "/stores/",
    "/stores/s1/",
    "/stores/s1/business_hours/",
    "/stores/s1/special_hours/",
    "/stores/s1/timezone/",
    "/stores/s1/timeline/",
    "/overview/",
]


@pytest.mark.parametrize(("method", "url"), WRITES)
def test_writes_need_the_full_token(api: APIClient, tokens: None, method: str, url: str) -> None:
    response = api.generic(method, url, b"[]", content_type="application/json", **READ_HEADER)
    assert "may only read" in assert_json_error(response, 403)["error"]
    response = api.generic(method, url, b"[]", content_type="application/json")
    assert "Missing API token" in assert_json_error(response, 401)["error"]
    response = api.generic(method, url, b"[]", content_type="application/json", **FULL_HEADER)
    assert response.status_code not in (401, 403), response.content


@pytest.mark.parametrize("url", READS)
def test_reads_take_either_token_and_not_none(api: APIClient, tokens: None, url: str) -> None:
    for header in (READ_HEADER, FULL_HEADER):
        for method in ("GET", "HEAD", "OPTIONS"):
            response = api.generic(method, url, **header)
            assert response.status_code not in (401, 403), (method, response.status_code, response.content)
    assert_json_error(api.get(url), 401)


def test_the_read_token_may_trigger_a_report_declared_on_the_view(api: APIClient, tokens: None) -> None:
    # No polls are loaded: the trigger itself answers (409), access let it through.
    response = api.post("/trigger_report/", {}, format="json", **READ_HEADER)
    assert "No polls" in assert_json_error(response, 409)["error"]
    assert_json_error(api.post("/trigger_report/", {}, format="json"), 401)


def test_a_method_the_view_lacks_is_405_for_the_read_token_too(api: APIClient, tokens: None) -> None:
    assert_json_error(api.put("/stores/s1/", [], format="json", **READ_HEADER), 405)
    assert_json_error(api.post("/overview/", {}, format="json", **READ_HEADER), 405)
    assert_json_error(api.get(f"/reports/{VALID_ID}/", **READ_HEADER), 405)


def test_health_and_the_docs_are_open_to_all(api: APIClient, tokens: None) -> None:
    assert api.get("/health/").status_code in (200, 503)
    assert api.get("/api/schema/", HTTP_ACCEPT="application/json").status_code == 200
    assert api.get("/api/docs/").status_code == 200


class Undeclared(APIView):
    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class HalfDeclared(APIView):
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    def get(self, request: Request) -> Response:
        return Response({"ok": True})

    def post(self, request: Request) -> Response:
        return Response({"ok": True})


@pytest.mark.parametrize(("view", "method"), [(Undeclared, "get"), (HalfDeclared, "post")])
def test_an_undeclared_view_or_method_is_refused_even_to_the_full_token(tokens: None, view: Any, method: str) -> None:
    request = getattr(APIRequestFactory(), method)("/x/", HTTP_AUTHORIZATION=f"Bearer {FULL}")
    response = view.as_view()(request)
    assert response.status_code == 403
    assert "declares no access rule" in response.data["error"]
    allowed = HalfDeclared.as_view()(APIRequestFactory().get("/x/", HTTP_AUTHORIZATION=f"Bearer {FULL}"))
    assert allowed.status_code == 200
