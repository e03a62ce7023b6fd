"""What the structured logs cost per request and per task (issue 21), measured in process, without noise
from the rest of the stack: ``python bench/bench_logs.py`` (no servers needed).

First gunicorn's own access line (what every request cost before: ``accesslog = "-"``, now replaced).
Then, for each format (text, json), it writes, through the handler of the settings' ``LOGGING`` pointed at a
file, what one request adds (the access line: ``loop.request_ids.log_access`` on a real Django request
and answer, with a request id bound) and what one task adds in the worker (its request id into the
message headers and the ``task ... sent`` line; ``task_prerun``'s binding and ``started`` line;
``task_postrun``'s ``finished`` line), ``--lines`` times each, best of ``--rounds``; then prints
microseconds per request and per task. Divide by a request's or a task's own time (docs/benchmarks.md,
"Logs") for the share.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
os.environ.setdefault("MONGO_URL", "mongomock://")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")


def configure(log_format: str, path: Path) -> None:
    from loop.logs import logging_config

    config = logging_config(log_format, "INFO")
    config["handlers"]["console"] = {
        "class": "logging.FileHandler",
        "filename": str(path),
        "formatter": config["handlers"]["console"]["formatter"],
    }
    logging.config.dictConfig(config)


def per_request(lines: int) -> float:
    """Seconds per access line (log_access on a real request and answer, a request id bound)."""
    from django.test import RequestFactory
    from rest_framework.response import Response

    from loop import logs
    from loop.request_ids import log_access

    request = RequestFactory().get("/get_report/AbCdEfGhIjKlMnOpQrStUvWxYz012345/")
    request.resolver_match = None
    response = Response({"status": "Complete", "report_id": "AbCdEfGhIjKlMnOpQrStUvWxYz012345"}, status=200)
    logs.start_request(request_id="0123456789abcdef0123456789abcdef")
    began = time.perf_counter()
    for _ in range(lines):
        log_access(request, response, 12.3)
    spent = time.perf_counter() - began
    logs.end_request()
    return spent / lines


class FakeTask:
    name = "loop.tasks.generate_report_task"

    class request:  # noqa: N801 (Celery's attribute name)
        loop_request_id = "0123456789abcdef0123456789abcdef"

    @staticmethod
    def run(report_id: str, failure: str | None = None, token: str | None = None) -> None:
        return None


def per_task(tasks: int) -> float:
    """Seconds per task: publish (header and sent line), prerun (binding, started line), postrun (finished line)."""
    from loop import logs, task_logs

    task: Any = FakeTask()
    began = time.perf_counter()
    with logs.bound(request_id="0123456789abcdef0123456789abcdef"):
        for n in range(tasks):
            task_logs.carry_request_id(sender=task.name, headers={"id": f"t{n}"})
    for n in range(tasks):
        task_logs.bind_task(task_id=f"t{n}", task=task, args=["AbCdEfGhIjKlMnOpQrStUvWxYz012345"], kwargs={})
        task_logs.unbind_task(task_id=f"t{n}", task=task, state="SUCCESS")
    return (time.perf_counter() - began) / tasks


def per_gunicorn_access_line(lines: int, path: Path) -> float:
    """Seconds per access line of gunicorn's own (what main wrote per request before: accesslog "-")."""
    import datetime as dt
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    cfg = Config()
    cfg.set("accesslog", str(path))
    logging.getLogger("gunicorn.access").handlers.clear()  # the settings' LOGGING gave it the console's
    log = Logger(cfg)
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/get_report/AbCdEfGhIjKlMnOpQrStUvWxYz012345/",
        "PATH_INFO": "/get_report/AbCdEfGhIjKlMnOpQrStUvWxYz012345/",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "python-requests/2.34.2",
    }
    resp = SimpleNamespace(status="200 OK", sent=1234, headers=[("Content-Type", "application/json")])
    req = SimpleNamespace(headers=[("HOST", "127.0.0.1"), ("USER-AGENT", "python-requests/2.34.2")])
    took = dt.timedelta(milliseconds=12)
    began = time.perf_counter()
    for _ in range(lines):
        log.access(resp, req, environ, took)
    spent = time.perf_counter() - began
    for handler in log.access_log.handlers[:]:
        handler.close()
        log.access_log.removeHandler(handler)
    return spent / lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import django

    django.setup()
    with tempfile.TemporaryDirectory() as folder:
        gunicorn_s = min(
            per_gunicorn_access_line(args.lines, Path(folder) / "gunicorn.log") for _ in range(args.rounds)
        )
        print(f"before (gunicorn's own access line, text): {gunicorn_s * 1e6:.1f} us per request", flush=True)
        for log_format in ("text", "json"):
            path = Path(folder) / f"{log_format}.log"
            configure(log_format, path)
            request_s = min(per_request(args.lines) for _ in range(args.rounds))
            task_s = min(per_task(args.lines // 4) for _ in range(args.rounds))
            sample = path.read_text().splitlines()[0]
            print(
                f"{log_format}: {request_s * 1e6:.1f} us per request (access line), "
                f"{task_s * 1e6:.1f} us per task (sent, started, finished); a line: {len(sample)} bytes",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
