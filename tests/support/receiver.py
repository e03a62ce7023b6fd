"""A loopback HTTP receiver for the alert delivery tests: answers POSTs from a script and records them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float = 0.0  # time.perf_counter() at the request's first byte (the alert benchmark's stamp)


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
        arrived = 0.0

        def handle_one_request(self) -> None:
            # Block on the first byte (peek does not consume it), so the stamp is its arrival, not the
            # end of the headers.
            first = self.rfile.peek(1)  # type: ignore[attr-defined]
            self.arrived = time.perf_counter() if first else 0.0
            super().handle_one_request()

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                number = len(state.received)
                state.received.append(Received(self.path, headers, body, self.arrived))
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
