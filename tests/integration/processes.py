"""Starting and stopping local server processes: shared by the integration tests and the benchmarks."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_for_health(base_url: str, web: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until gunicorn answers /health/ with 200; fail with its log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base_url}/health/", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            # A busy machine can make the first answers slow: keep waiting until the deadline.
            pass
        if time.monotonic() > deadline or web.poll() is not None:
            raise RuntimeError(f"gunicorn did not come up:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)
