"""The gunicorn worker of gunicorn.conf.py: gunicorn's threaded worker, with its own error answers in JSON.

Gunicorn answers what it refuses before Django sees a request (a malformed request line, a URL over
``limit_request_line``, too many or too large headers: 400, 414, 431, ...) with an HTML page written
by ``gunicorn.util.write_error``. Its one caller, ``Worker.handle_error``, writes to the client socket
it is given; handing it a socket that rewrites that page as ``{"error": "..."}`` keeps gunicorn's own
choice of status and message, and every answer of the service JSON, with or without nginx in front.
"""

from __future__ import annotations

import html
import json
import re
import socket
from typing import Any

from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

# "HTTP/1.1 414 URI Too Long", then gunicorn's page: the reason in <h1><p>, the message after it.
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ([^\r\n]*)\r\n")
_PAGE_MESSAGE = re.compile(rb"</h1>(.*)</body>", re.S)
_MAX_MESSAGE_CHARS = 300  # gunicorn quotes the offending request line; a 20 KB URL need not come back


def json_error_response(response: bytes) -> bytes:
    """Gunicorn's HTML error response as a JSON one (same status); anything else unchanged."""
    status = _STATUS_LINE.match(response)
    if status is None:
        return response
    code, reason = status.group(1).decode(), status.group(2).decode("latin-1")
    page = _PAGE_MESSAGE.search(response)
    message = html.unescape(page.group(1).decode("latin-1")).strip() if page else ""
    error = f"{reason}: {message}" if message else reason
    if len(error) > _MAX_MESSAGE_CHARS:
        error = error[: _MAX_MESSAGE_CHARS - 3] + "..."
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _JsonErrorSocket:
    """The client socket as ``handle_error`` sees it: what it sends is rewritten by ``json_error_response``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(json_error_response(bytes(data)))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class JsonErrorThreadWorker(ThreadWorker):
    """``gthread``: requests run in a pool of threads, so a slow client holds one thread, not the worker."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, _JsonErrorSocket(client), addr, exc)


class AppAccessLogger(Logger):
    """gunicorn's logger (its own lines through gunicorn.conf.py's ``logconfig_dict``), without its access line:
    the app writes one per request (``loop.access``: request id, route, actor, duration). Gunicorn would
    write its own as soon as a ``logconfig_dict`` is set; ``--access-logfile`` still turns it on."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.cfg.accesslog:
            super().access(resp, req, environ, request_time)
