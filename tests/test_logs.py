"""Structured logs (loop/logs.py, loop/request_ids.py, loop/task_logs.py, the embedded pool): the two formats,
the bound fields, the access line, and the request id's way into tasks. The real gunicorn and Celery worker
are in tests/integration/test_logs_http.py.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import runpy
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from loop import logs
from loop.embedded_worker import wait_embedded_idle

ROOT = Path(__file__).resolve().parent.parent


def record(msg: str = "hello %s", *args: Any, level: int = logging.INFO, name: str = "loop.x", **extra: Any):
    rec = logging.LogRecord(name, level, __file__, 1, msg, args or ("world",), None)
    rec.__dict__.update(extra)
    return rec


def test_the_json_format_is_one_object_a_line_with_level_logger_event_and_time() -> None:
    line = logs.JsonFormatter().format(record())
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == {
        "time": parsed["time"],
        "level": "INFO",
        "logger": "loop.x",
        "event": "hello world",
    }
    assert parsed["time"].endswith("Z") and len(parsed["time"]) == len("2024-10-07T15:00:00.123Z")


def test_json_lines_carry_bound_fields_and_a_call_s_extra_wins() -> None:
    formatter = logs.JsonFormatter()
    with logs.bound(request_id="abc", report_id="r1"):
        parsed = json.loads(formatter.format(record(report_id="r2", rows=60)))
    assert (parsed["request_id"], parsed["report_id"], parsed["rows"]) == ("abc", "r2", 60)
    assert "request_id" not in json.loads(formatter.format(record()))  # unbound after the block


def test_a_traceback_stays_on_the_json_line_and_odd_text_is_escaped() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        rec = logging.LogRecord(
            "loop.x", logging.ERROR, __file__, 1, "failed: %s", ("ünïcode \x00\r\n",), sys.exc_info()
        )
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line and "\r" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and parsed["event"] == "failed: ünïcode \x00\r\n"
    assert "Traceback (most recent call last)" in parsed["exc_info"] and "ValueError: boom" in parsed["exc_info"]


def test_json_leaves_out_django_s_request_object_and_serialises_anything_else() -> None:
    parsed = json.loads(logs.JsonFormatter().format(record(request=object(), when=Path("/x"))))
    assert "request" not in parsed and parsed["when"] == "/x"


def test_the_text_format_is_unchanged_without_fields_and_names_them_in_order_with() -> None:
    formatter = logs.TextFormatter()
    assert formatter.format(record()).endswith(" INFO loop.x: hello world")
    with logs.bound(report_id="r1", request_id="abc", task="t"):
        line = formatter.format(record(store_id="s9"))
    assert line.endswith(" INFO loop.x: hello world [request_id=abc task=t report_id=r1 store_id=s9]")


@pytest.mark.parametrize("log_format", ["text", "json", "anything"])
def test_logging_config_is_a_working_dict_config(log_format: str) -> None:
    config = logs.logging_config(log_format, "INFO")
    assert config["handlers"]["console"]["formatter"] == ("json" if log_format == "json" else "text")
    saved = (logging.getLogger().handlers[:], logging.getLogger().level)
    try:
        logging.config.dictConfig(config)
        handler = logging.getLogger().handlers[0]
        expected = logs.JsonFormatter if log_format == "json" else logs.TextFormatter
        assert isinstance(handler.formatter, expected)
        assert logging.getLogger("gunicorn.error").propagate is False
    finally:
        logging.getLogger().handlers[:] = saved[0]
        logging.getLogger().setLevel(saved[1])


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"method": "GET", "status": 200, "duration_ms": 3.2, "report_id": "r9", "request_id": "given"},
        {"request": object(), "when": __import__("datetime").date(2026, 12, 5), "ratio": float("inf")},
        {"store_id": "s\u00e9\n1", "_private": 1},
    ],
)
def test_the_one_pass_json_line_is_python_json_logger_s(extra: dict[str, Any]) -> None:
    from pythonjsonlogger.json import JsonFormatter as Base

    formatter = logs.JsonFormatter()
    with logs.bound(request_id="abc", task="t", report_id="r1"):
        one = record("a %s line", "plain", **extra)
        fast = formatter.format(one)
        full = Base.format(formatter, one)
    assert fast == full


def test_log_access_off_quiets_only_the_per_request_and_per_task_lines() -> None:
    names = ("loop.access", "loop.task_logs", "loop.services.reports")
    saved = (logging.getLogger().handlers[:], logging.getLogger().level)
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        logging.config.dictConfig(logs.logging_config("json", "INFO", access=False))
        assert not logging.getLogger("loop.access").isEnabledFor(logging.INFO)
        assert not logging.getLogger("loop.task_logs").isEnabledFor(logging.INFO)
        assert logging.getLogger("loop.access").isEnabledFor(logging.WARNING)
        assert logging.getLogger("loop.services.reports").isEnabledFor(logging.INFO)
        logging.config.dictConfig(logs.logging_config("json", "INFO"))
        assert logging.getLogger("loop.access").isEnabledFor(logging.INFO)
    finally:
        logging.getLogger().handlers[:] = saved[0]
        logging.getLogger().setLevel(saved[1])
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_bindings_are_per_thread_and_carried_to_a_pool_thread_only_when_asked() -> None:
    seen: dict[str, Any] = {}
    with logs.bound(request_id="abc"), ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: seen.update(plain=dict(logs.bound_fields()))).result()
        job = logs.carried(lambda: dict(logs.bound_fields()), report_id="r1")
        seen["carried"] = pool.submit(job).result()
        seen["after"] = pool.submit(lambda: dict(logs.bound_fields())).result()
        seen["here"] = dict(logs.bound_fields())
    assert seen == {
        "plain": {},
        "carried": {"request_id": "abc", "report_id": "r1"},
        "after": {},  # the pool thread's own context was not touched
        "here": {"request_id": "abc"},
    }
    assert dict(logs.bound_fields()) == {}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every line logged meanwhile, in the JSON format (formatted in the thread that logs, as in production)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines_of(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_trigger_s_access_line_and_its_embedded_job_carry_the_client_s_request_id(
    loaded: Any, mdb: Database, json_log: io.StringIO
) -> None:
    answer = loaded.post("/trigger_report/", {"force": True}, format="json", HTTP_X_REQUEST_ID="abc-1")
    assert answer.status_code == 202 and answer["X-Request-ID"] == "abc-1"
    report_id = answer.json()["report_id"]
    assert wait_embedded_idle(60)
    lines = lines_of(json_log)

    access = [line for line in lines if line["logger"] == "loop.access"]
    assert len(access) == 1
    assert {k: access[0][k] for k in ("method", "path", "status", "report_id", "request_id")} == {
        "method": "POST",
        "path": "/trigger_report/",
        "status": 202,
        "report_id": report_id,
        "request_id": "abc-1",
    }
    assert access[0]["duration_ms"] >= 0 and "trigger_report" in access[0]["route"]

    job = [line for line in lines if line.get("task") == "loop.tasks.generate_report_task"]
    assert [line["event"] for line in job][0] == "task loop.tasks.generate_report_task started"
    assert job[-1]["event"] == "task loop.tasks.generate_report_task finished: SUCCESS"
    assert any(line["event"].startswith(f"report {report_id} complete") for line in job)
    assert all(line["request_id"] == "abc-1" and line["report_id"] == report_id for line in job)
    # Nothing stays bound in this thread once the answer is closed.
    assert dict(logs.bound_fields()) == {}


def test_the_access_line_names_the_route_s_ids_the_actor_and_django_s_own_line_the_request_id(
    api: Any, json_log: io.StringIO, tokens: None
) -> None:
    from tests.support.api import FULL

    answer = api.get("/stores/s%0A1/", HTTP_AUTHORIZATION=f"Bearer {FULL}")
    assert answer.status_code == 400  # not a store id
    request_id = answer["X-Request-ID"]
    lines = [line for line in lines_of(json_log) if line.get("request_id") == request_id]
    access = next(line for line in lines if line["logger"] == "loop.access")
    assert access["path"] == "/stores/s%0A1/"  # as sent: no line break in the text format either
    assert "store_id" not in access  # "s\n1" is not written out
    assert access["actor"] == "token:API_TOKEN" and access["status"] == 400
    assert any(line["logger"] == "django.request" for line in lines)  # logged after the middleware returned

    answer = api.get("/stores/s1/", HTTP_AUTHORIZATION=f"Bearer {FULL}")
    access = [line for line in lines_of(json_log) if line["logger"] == "loop.access"][-1]
    assert access["store_id"] == "s1" and access["request_id"] == answer["X-Request-ID"]


def test_an_anonymous_request_has_no_actor(api: Any, json_log: io.StringIO) -> None:
    api.get("/health/")
    access = [line for line in lines_of(json_log) if line["logger"] == "loop.access"][-1]
    assert "actor" not in access and access["path"] == "/health/"


# --- Celery's signals (loop.task_logs) ------------------------------------------------------------------


def test_a_task_sent_during_a_request_carries_its_id_and_one_sent_without_gets_a_new_one(
    json_log: io.StringIO,
) -> None:
    from loop import task_logs

    headers: dict[str, Any] = {"id": "t-1"}
    with logs.bound(request_id="abc"):
        task_logs.carry_request_id(sender="loop.tasks.generate_report_task", headers=headers)
    assert headers[task_logs.HEADER] == "abc"

    beat_headers: dict[str, Any] = {"id": "t-2"}
    task_logs.carry_request_id(sender="loop.tasks.recover_lost_jobs_task", headers=beat_headers)
    other: dict[str, Any] = {"id": "t-3"}
    task_logs.carry_request_id(sender="loop.tasks.recover_lost_jobs_task", headers=other)
    assert len(beat_headers[task_logs.HEADER]) == 32 and beat_headers[task_logs.HEADER] != other[task_logs.HEADER]

    sent = [line for line in lines_of(json_log) if line["logger"] == "loop.task_logs"]
    assert [(line["sent_task_id"], line["request_id"]) for line in sent] == [
        ("t-1", "abc"),
        ("t-2", beat_headers[task_logs.HEADER]),
        ("t-3", other[task_logs.HEADER]),
    ]


@pytest.mark.parametrize(
    ("task_name", "args", "kwargs", "fields"),
    [
        ("generate_report_task", ["r1"], {"failure": None, "token": "tok"}, {"report_id": "r1"}),
        ("import_task", ["i1"], {}, {"import_id": "i1"}),
        ("send_delivery_task", [], {"delivery_id": "d1"}, {"delivery_id": "d1"}),
        ("evaluate_alerts_task", [], {}, {}),
    ],
)
def test_a_running_task_binds_its_request_id_name_id_and_job(
    task_name: str, args: list[str], kwargs: dict[str, Any], fields: dict[str, str], json_log: io.StringIO
) -> None:
    from loop import task_logs, tasks

    task = getattr(tasks, task_name)
    task.push_request(**{task_logs.HEADER: "abc"})
    try:
        task_logs.bind_task(task_id="tid-1", task=task, args=args, kwargs=kwargs)
        inside = dict(logs.bound_fields())
        logging.getLogger("loop.services.reports").info("working")
        task_logs.unbind_task(task_id="tid-1", task=task, state="SUCCESS")
    finally:
        task.pop_request()
    assert inside == {"request_id": "abc", "task": task.name, "task_id": "tid-1", **fields}
    assert dict(logs.bound_fields()) == {}
    events = [(line["event"], line.get("state"), line["request_id"]) for line in lines_of(json_log)]
    assert events == [
        (f"task {task.name} started", None, "abc"),
        ("working", None, "abc"),
        (f"task {task.name} finished: SUCCESS", "SUCCESS", "abc"),
    ]


def test_a_task_without_a_sane_request_id_header_runs_under_a_new_one() -> None:
    from loop import task_logs, tasks

    task = tasks.remove_old_reports_task
    task.push_request(**{task_logs.HEADER: "bad id\nwith a line break"})
    try:
        task_logs.bind_task(task_id="tid-2", task=task, args=[], kwargs={})
        request_id = logs.bound_fields()["request_id"]
        task_logs.unbind_task(task_id="tid-2", task=task, state="SUCCESS")
    finally:
        task.pop_request()
    assert len(request_id) == 32 and "\n" not in request_id


def test_celery_logs_through_the_settings_logging_at_its_own_level(settings: Any) -> None:
    from loop import task_logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    settings.LOGGING = logs.logging_config("json", "INFO")
    try:
        task_logs.configure_logging(loglevel=logging.WARNING)
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter) and root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


# --- gunicorn --------------------------------------------------------------------------------------------


def test_gunicorn_writes_its_own_lines_in_the_chosen_format_and_no_access_line(monkeypatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["accesslog"] is None
    assert conf["logger_class"] == "myproject.gunicorn_workers.AppAccessLogger"
    assert conf["logconfig_dict"]["handlers"]["console"]["formatter"] == "json"
    monkeypatch.delenv("LOG_FORMAT")
    assert (
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logconfig_dict"]["handlers"]["console"]["formatter"] == "text"
    )

    from gunicorn.config import Config

    from myproject.gunicorn_workers import AppAccessLogger

    calls: list[Any] = []
    monkeypatch.setattr("gunicorn.glogging.Logger.access", lambda self, *args: calls.append(args))
    cfg = Config()
    AppAccessLogger(cfg).access(None, None, {}, None)
    assert calls == []
    cfg.set("accesslog", "-")
    AppAccessLogger(cfg).access(None, None, {}, None)
    assert len(calls) == 1


def test_threads_do_not_share_bindings() -> None:
    barrier = threading.Barrier(2)
    seen: list[Any] = []

    def serve(request_id: str) -> None:
        logs.start_request(request_id=request_id)
        barrier.wait()
        seen.append((request_id, logs.bound_fields()["request_id"]))
        logs.end_request()

    threads = [threading.Thread(target=serve, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == [("a", "a"), ("b", "b")]
