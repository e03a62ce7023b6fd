"""Structured logs on the real stack (issue 21): gunicorn and a Celery worker started with LOG_FORMAT=json
write one JSON object a line, and the X-Request-ID a client sends on POST /trigger_report/ is in the web's
access line of that request and in the worker's lines of that report (started, computed, finished).

A task a request sends that is no report (the alert evaluation after POST /store_status/) carries its id too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.csv_files import write_dataset
from tests.support.integration import Stack, private_app
from tests.support.polling import http_report, wait_for_report, wait_until
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

POLLS = [
    "s1,active,2024-10-07 15:00:00 UTC",
    "s1,inactive,2024-10-07 16:00:00 UTC",
    "s2,active,2024-10-07 16:00:00 UTC",
]
NEW_ID = re.compile(r"[0-9a-f]{32}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log file as a JSON object; a line that is not one fails the test, naming it."""
    lines = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            parsed = json.loads(line)
        except ValueError:
            pytest.fail(f"{path.name}:{number} is not JSON: {line[:300]!r}")
        assert isinstance(parsed, dict), f"{path.name}:{number}: {line[:300]!r}"
        assert {"time", "level", "logger", "event"} <= parsed.keys(), f"{path.name}:{number}: {line[:300]!r}"
        lines.append(parsed)
    return lines


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[tuple[str, dict[str, str]]]:
    with private_app(stack, "logs", LOG_FORMAT="json") as app:
        yield app


def test_a_request_id_follows_a_report_from_the_web_log_into_the_worker_log(
    app: tuple[str, dict[str, str]], stack: Stack, tmp_path: Path
) -> None:
    base, env = app
    loaded = run_manage(env, "load_data", str(write_dataset(tmp_path, POLLS)))
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    request_id = f"abc-{uuid.uuid4().hex[:12]}"

    answer = requests.post(
        f"{base}/trigger_report/", json={"force": True}, headers={"X-Request-ID": request_id}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["X-Request-ID"] == request_id
    report_id = answer.json()["report_id"]
    body = wait_for_report(http_report(base, report_id), timeout=120, label=f"report {report_id}")
    assert body["status"] == "Complete", body

    web_log, worker_log = stack.logs / "web-logs.log", stack.logs / "worker-logs.log"

    def finished_line_written() -> bool:
        return any(
            line.get("report_id") == report_id and line["event"].startswith("task ") and "finished" in line["event"]
            for line in json_lines(worker_log)
        )

    wait_until(finished_line_written, 30, "the worker's finished line", details=lambda: worker_log.read_text()[-3000:])

    # The web: the access line of that request, with what it did.
    access = [line for line in json_lines(web_log) if line["logger"] == "loop.access"]
    mine = [line for line in access if line.get("request_id") == request_id]
    assert len(mine) == 1, access[-5:]
    line = mine[0]
    assert (line["method"], line["path"], line["status"], line["report_id"]) == (
        "POST",
        "/trigger_report/",
        202,
        report_id,
    )
    assert line["level"] == "INFO" and isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    # Every other request got an id of its own (the health checks, the report polls).
    assert all(NEW_ID.fullmatch(other["request_id"]) for other in access if other is not line)

    # The worker: every line about that report carries the request id, from start to finish.
    about_report = [line for line in json_lines(worker_log) if line.get("report_id") == report_id]
    events = [line["event"] for line in about_report]
    assert all(line["request_id"] == request_id for line in about_report), about_report
    assert all(line["task"] == "loop.tasks.generate_report_task" and line.get("task_id") for line in about_report)
    assert events[0] == "task loop.tasks.generate_report_task started", events
    assert any(event.startswith(f"report {report_id} complete: ") for event in events), events
    assert "task loop.tasks.generate_report_task finished: SUCCESS" in events, events
    finished = next(line for line in about_report if line["event"].endswith("finished: SUCCESS"))
    assert finished["state"] == "SUCCESS" and finished["duration_ms"] > 0
    assert len({line["task_id"] for line in about_report}) == 1

    # A poll written over HTTP asks for an alert evaluation: those tasks run under the writer's request id too.
    ingest_id = f"ingest-{uuid.uuid4().hex[:12]}"
    written = requests.post(
        f"{base}/store_status/",
        data="store_id,status,timestamp_utc\ns2,inactive,2024-10-07 17:00:00 UTC\n",
        headers={"Content-Type": "text/csv", "X-Request-ID": ingest_id},
        timeout=30,
    )
    assert written.status_code == 201, written.text

    def evaluation_lines() -> list[dict[str, Any]]:
        return [line for line in json_lines(worker_log) if line.get("request_id") == ingest_id]

    wait_until(
        lambda: any(line["event"].startswith("alerts evaluated at ") for line in evaluation_lines()),
        60,
        "the evaluation after the write",
        details=lambda: worker_log.read_text()[-3000:],
    )
    # The write asks for its alert evaluation and (maybe still running) the update of the daily figures.
    tasks = {line["task"] for line in evaluation_lines()}
    assert "loop.tasks.evaluate_alerts_task" in tasks
    assert tasks <= {"loop.tasks.evaluate_alerts_task", "loop.tasks.update_history_task"}
