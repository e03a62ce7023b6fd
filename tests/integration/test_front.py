"""Slow clients, the servers' own refusals and slow uploads, against the app as deployed: gunicorn with
gunicorn.conf.py (two workers, its worker timeout cut to 5 s), alone ("app") and behind nginx with
deploy/nginx/nginx.conf ("front"), on MongoDB and Redis as the other integration tests.

Needs Debian's nginx (``apt-get install -y nginx-light``; .ci/run installs it): skipped locally
without it, failed under CI. Under the old sync workers (two, no front) each of these failed:
two slow clients held both workers, gunicorn answered HTML, a slow body was killed with its worker.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from pymongo import MongoClient

from tests.support.integration import MONGO_URL, service_env, skip_or_fail
from tests.support.processes import free_port, nginx_binary, start_front, start_gunicorn

pytestmark = pytest.mark.integration

WORKER_TIMEOUT_S = 5  # gunicorn's worker timeout in these tests (300 s was the old sync workers' upload limit)
PROBES = 5  # /health/ calls, a second apart, while two slow clients dribble their requests (~7 s in all)
HEALTH_LIMIT_S = 1.5  # /health/ answers in a few ms; a starved server not before the slow clients end


@dataclass
class Served:
    app: str  # gunicorn alone
    front: str  # nginx in front of it
    front_without_app: str  # nginx in front of a port where nothing listens


@pytest.fixture(scope="module")
def served(servers: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    binary = nginx_binary()
    if binary is None:
        skip_or_fail("nginx is not installed: apt-get install -y nginx-light (.ci/run installs it)")
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("front")
    env = service_env(
        os.environ, db_name=f"loop_it_front_{run_id}", queue=f"loop_it_front_{run_id}", secret=run_id, logs=logs
    )
    web = start_gunicorn(env, 2, logs / "web.log", timeout=WORKER_TIMEOUT_S)
    front = start_front(binary, web.url, logs / "nginx")
    front_without_app = start_front(binary, f"http://127.0.0.1:{free_port()}", logs / "nginx-without-app")
    try:
        web.wait_healthy()
        front.wait_ready()
        front_without_app.wait_ready()
        for _ in range(8):  # every worker process has met MongoDB and Redis before anything is timed
            requests.get(f"{front.url}/health/", timeout=10)
        yield Served(web.url, front.url, front_without_app.url)
    finally:
        front_without_app.stop()
        front.stop()
        web.stop()
        with MongoClient[dict](MONGO_URL, serverSelectionTimeoutMS=5000) as mongo:
            mongo.drop_database(env["MONGO_DB"])


def base_url(served: Served, target: str) -> str:
    return {"app": served.app, "front": served.front}[target]


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(url: str, head: bytes, pieces: Sequence[bytes] = (), *, interval: float = 0) -> tuple[int, str, bytes]:
    """Send ``head``, then each of ``pieces`` ``interval`` seconds apart, on one connection: (status, type, body)."""
    with socket.create_connection(address(url), timeout=30) as sock:
        sock.sendall(head)
        for piece in pieces:
            time.sleep(interval)
            sock.sendall(piece)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.getheader("Content-Type", ""), response.read()


def drip(url: str, fast: bytes, slow: bytes, stop: threading.Event) -> None:
    """A slow client: ``fast`` at once, then ``slow`` one byte a second until ``stop`` (20 s at most)."""
    deadline = time.monotonic() + 20
    with socket.create_connection(address(url), timeout=30) as sock:
        try:
            sock.sendall(fast)
            for byte in slow:
                if stop.wait(1) or time.monotonic() > deadline:
                    return
                sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return  # a server may cut a slow client off; what is tested is everyone else's answer


@pytest.mark.parametrize("target", ["app", "front"])
def test_two_slow_clients_do_not_delay_health(served: Served, target: str) -> None:
    url = base_url(served, target)
    slow_headers = (b"", b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 100 + b"\r\n\r\n")
    slow_body = (
        b"POST /store_status/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\n",
        b"store_id,status,timestamp_utc\n" + b"x" * 970,
    )
    stop = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(drip, url, fast, slow, stop) for fast, slow in (slow_headers, slow_body)]
        try:
            time.sleep(2)  # both are being read (a sync worker would be stuck on each by now)
            took = []
            for _ in range(PROBES):
                started = time.monotonic()
                response = requests.get(f"{url}/health/", timeout=30)
                took.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
                time.sleep(1)
        finally:
            stop.set()
        for client in clients:
            client.result()
    assert max(took) < HEALTH_LIMIT_S, took


TOO_LONG_URL = b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
TOO_LONG_HEADER = b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
MALFORMED_LINE = b"GARBAGE\r\n\r\n"
# 9 MiB announced (over INGEST_MAX_BODY_BYTES' 8 MiB and the front's client_max_body_size); never sent
TOO_LARGE_BODY = (
    b"POST /store_status/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nContent-Length: 9437184\r\n\r\n"
)


@pytest.mark.parametrize("target", ["app", "front"])
@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [(TOO_LONG_URL, 414), (TOO_LONG_HEADER, 431), (MALFORMED_LINE, 400), (TOO_LARGE_BODY, 413)],
    ids=["20 KB URL", "20 KB header", "malformed request line", "body over the limit"],
)
def test_what_the_servers_refuse_themselves_is_json(
    served: Served, target: str, request_bytes: bytes, status: int
) -> None:
    got, content_type, body = exchange(base_url(served, target), request_bytes)
    assert (got, content_type) == (status, "application/json"), body[:300]
    assert b"<html" not in body.lower()
    assert requests.models.complexjson.loads(body)["error"]


def test_the_front_answers_json_when_the_app_is_unreachable(served: Served) -> None:
    response = requests.get(f"{served.front_without_app}/health/", timeout=10)
    assert (response.status_code, response.headers["Content-Type"]) == (502, "application/json")
    assert "unreachable" in response.json()["error"]


@pytest.mark.parametrize("target", ["app", "front"])
def test_a_body_arriving_slower_than_the_worker_timeout_completes(served: Served, target: str) -> None:
    """Stands in for an upload longer than five minutes: the body takes ~8 s against a 5 s worker timeout."""
    rows = [f"slow-{target}-{n},active,2024-10-14 1{n}:00:00 UTC\n".encode() for n in range(7)]
    pieces = [b"store_id,status,timestamp_utc\n" + rows[0], *rows[1:]]
    head = (
        f"POST /store_status/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {sum(map(len, pieces))}\r\nConnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    status, content_type, body = exchange(base_url(served, target), head, pieces, interval=1.15)
    assert time.monotonic() - started > WORKER_TIMEOUT_S + 2
    assert (status, content_type) == (201, "application/json"), body[:300]
    answer = requests.models.complexjson.loads(body)
    assert (answer["read"], answer["inserted"], answer["rejected"]) == (7, 7, 0)


@pytest.mark.parametrize(("target", "status"), [("app", 411), ("front", 201)])
def test_the_front_hands_a_chunked_body_over_with_its_length(served: Served, target: str, status: int) -> None:
    """The app refuses a body without Content-Length (it would read it as empty); nginx buffers it and adds one."""
    body = b'[{"store_id": "chunked", "status": "active", "timestamp_utc": "2024-10-14 11:00:00 UTC"}]'
    head = (
        b"POST /store_status/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    got, content_type, answer = exchange(base_url(served, target), head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert (got, content_type) == (status, "application/json"), answer[:300]
