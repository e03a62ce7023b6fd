"""Helpers for tests that drive the API in-process (DRF APIClient / Django test client).

Shared by test_api, test_api_abuse and test_settings_security, so none of them imports another.
"""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tests.support.polling import wait_for_report

# The two tokens of the API tests (the ``tokens`` fixture of tests/conftest.py sets them).
FULL = "full-Token_1234567890"
READ = "read-Token_0987654321"
VALID_ID = "Abcdefghijklmnopqrstuvwxyz012_-9"  # 32 characters of the allowed alphabet
assert len(VALID_ID) == 32


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    """The response is a JSON error with ``status`` (never a trace or an HTML page); its body."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    text = response.content.decode()
    assert "Traceback" not in text and "<html" not in text.lower()
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


def trigger(api: APIClient, body: Any = None, **kwargs: Any) -> Any:
    """POST /trigger_report/: no body at all when ``body`` is None, else ``body`` as JSON."""
    if body is None:
        return api.post("/trigger_report/", **kwargs)
    return api.post("/trigger_report/", body, format="json", **kwargs)


def wait_done(api: APIClient, report_id: str, timeout: float = 30) -> dict[str, Any]:
    """Poll the report in-process until it is no longer Running; its final body."""

    def fetch() -> tuple[int, dict[str, Any]]:
        response = api.get(f"/get_report/{report_id}/")
        return response.status_code, response.json()

    # The embedded worker finishes in milliseconds: poll often, so the tests stay fast.
    return wait_for_report(fetch, timeout=timeout, interval=0.02, label=f"report {report_id}")
