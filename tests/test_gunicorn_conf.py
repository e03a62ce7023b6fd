"""gunicorn.conf.py and its worker: threaded workers sized from the environment, bounded requests, and
gunicorn's own error pages rewritten as JSON (checked on the bytes gunicorn itself writes, so an
upgrade that changes them fails here; tests/integration/test_front.py checks them over a socket).
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest
from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from myproject.gunicorn_workers import JsonErrorThreadWorker, json_error_response

ROOT = Path(__file__).resolve().parent.parent


class RecordingSocket:
    """What ``gunicorn.util.write_error`` needs of a socket; keeps what it sends."""

    def __init__(self) -> None:
        self.sent = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.sent += data


def gunicorn_error_page(status: int, reason: str, message: str) -> bytes:
    sock = RecordingSocket()
    util.write_error(sock, status, reason, message)
    assert b"text/html" in sock.sent  # what gunicorn sends on its own
    return sock.sent


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return status_line, headers, body


@pytest.mark.parametrize(
    ("status", "reason", "message", "error"),
    [
        (414, "URI Too Long", "Request Line is too large (20016 > 8190)", "URI Too Long: Request Line is too large"),
        (431, "Request Header Fields Too Large", "Error parsing headers: 'limit request headers fields size'", None),
        (400, "Bad Request", "Invalid Request Line 'GARBAGE <script>'", "Bad Request: Invalid Request Line 'GARBAGE <"),
    ],
)
def test_gunicorns_error_pages_become_json_with_the_same_status(
    status: int, reason: str, message: str, error: str | None
) -> None:
    status_line, headers, body = split(json_error_response(gunicorn_error_page(status, reason, message)))
    assert status_line == f"HTTP/1.1 {status} {reason}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    answer = json.loads(body)
    assert answer["error"] == f"{reason}: {message}"  # unescaped: the HTML page had &#x27; and &lt;
    if error:
        assert answer["error"].startswith(error)


def test_a_long_message_is_cut_and_other_bytes_pass_unchanged() -> None:
    page = gunicorn_error_page(400, "Bad Request", "Invalid Request Line '" + "x" * 20_000 + "'")
    _, _, body = split(json_error_response(page))
    assert len(json.loads(body)["error"]) == 300
    assert json_error_response(b"not an HTTP response") == b"not an HTTP response"


def load_conf(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "WEB_BIND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_workers_are_threaded_and_sized_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    default = load_conf(monkeypatch)
    assert (default["workers"], default["threads"], default["bind"]) == (2, 8, ["0.0.0.0:8000"])
    sized = load_conf(monkeypatch, WEB_CONCURRENCY="3", WEB_THREADS="16", WEB_BIND="127.0.0.1:9000")
    assert (sized["workers"], sized["threads"], sized["bind"]) == (3, 16, ["127.0.0.1:9000"])
    worker = util.load_class(default["worker_class"])
    assert worker is JsonErrorThreadWorker and issubclass(worker, ThreadWorker)
    assert default["wsgi_app"] == "myproject.wsgi:application"


def test_requests_are_bounded_and_the_timeout_is_not_an_upload_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load_conf(monkeypatch)
    assert conf["limit_request_line"] == 8190 and conf["limit_request_field_size"] == 8190
    assert conf["limit_request_fields"] == 100
    # a threaded worker's timeout is about its main loop; 300 s was the sync workers' upload allowance
    assert conf["timeout"] <= 60 and 1 <= conf["keepalive"] <= 15
