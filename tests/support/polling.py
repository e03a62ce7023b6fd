"""Waiting in tests: one generic ``wait_until`` and one ``wait_for_report`` for every way of polling a report.

The in-process API tests (DRF APIClient), the integration stack and the fault tests
(requests over HTTP) all poll ``/get_report/<id>/`` until the report leaves Running;
they differ only in how one poll is made, so each passes a ``fetch`` and nothing else
is written twice.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

ReportFetch = Callable[[], tuple[int, dict[str, Any]]]
"""One poll of a report: the HTTP status and the JSON body."""


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    alive: subprocess.Popen[bytes] | None = None,
    *,
    interval: float = 0.1,
    details: Callable[[], str] | None = None,
) -> None:
    """Call ``check`` until it returns True.

    Raises AssertionError naming ``what`` after ``timeout`` seconds, or as soon as the
    process ``alive`` has exited (waiting longer for a dead process only hides why). The
    message ends with ``details()`` (e.g. a log tail), read at failure time, not before.
    """
    deadline = time.monotonic() + timeout
    while not check():
        exited = alive is not None and alive.poll() is not None
        if exited or time.monotonic() > deadline:
            reason = f"process exited ({alive.returncode})" if exited and alive else f"timed out after {timeout}s"
            message = f"{reason} waiting for {what}"
            if details is not None:
                message += f"\n{details()}"
            raise AssertionError(message)
        time.sleep(interval)


def wait_for_report(
    fetch: ReportFetch,
    *,
    timeout: float,
    interval: float = 0.2,
    label: str = "report",
    describe_failure: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """Poll with ``fetch`` until the report is no longer Running; its final body.

    Every poll must answer 200 (a report that exists is always readable). On timeout
    the AssertionError says ``label`` is still Running and adds ``describe_failure()``
    (e.g. the worker's log), which is usually what explains a stuck report.
    """
    final: list[dict[str, Any]] = []

    def finished() -> bool:
        status, body = fetch()
        assert status == 200, f"{label}: HTTP {status}: {body}"
        if body["status"] == "Running":
            return False
        final.append(body)
        return True

    wait_until(finished, timeout, f"{label} to finish (still Running)", interval=interval, details=describe_failure)
    return final[0]


def http_report(
    base_url: str, report_id: str, *, headers: Mapping[str, str] | None = None, timeout: float = 30
) -> ReportFetch:
    """A ``fetch`` for ``wait_for_report`` that GETs the report over real HTTP (requests)."""

    def fetch() -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{base_url}/get_report/{report_id}/", headers=headers, timeout=timeout)
        try:
            body = response.json()
        except ValueError:  # not JSON (a proxy's or a crashed server's page): keep the text for the message
            body = {"text": response.text[:2000]}
        return response.status_code, body

    return fetch
