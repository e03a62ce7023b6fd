"""A loopback HTTP receiver for the alert delivery tests: answers POSTs from a script and records them."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``answers``: (status, extra headers) for the 1st, 2nd, ... POST; the last one repeats."""

    answers: list[tuple[int, dict[str, str]]]
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer_for(self, number: int) -> tuple[int, dict[str, str]]:
        return self.answers[min(number, len(self.answers) - 1)]


@contextmanager
def receiver(answers: Sequence[tuple[int, dict[str, str]] | int]) -> Iterator[Receiver]:
    script = [item if isinstance(item, tuple) else (item, {}) for item in answers]
    state = Receiver(script)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                number = len(state.received)
                state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            code, headers = state.answer_for(number)
            self.send_response(code)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
