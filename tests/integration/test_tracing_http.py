"""Tracing (loop/tracing.py) on real servers: one trace from a trigger's request through the report task and its
shards, with the MongoDB commands of each, and the spans reaching an OTLP/HTTP receiver.

- In memory (tests/support/tracing_probe.py, a process of its own: instrumentation is global): Django's test
  client, the real Redis and FerretDB, a Celery worker in a thread.
- Over the wire: gunicorn (gunicorn.conf.py) and a Celery worker (prefork) started with
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a small HTTP server of this test, which accepts
  ``POST /v1/traces`` and decodes the protobuf body with opentelemetry-proto.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.integration import Stack, delete_queues
from tests.support.polling import wait_until
from tests.support.processes import ROOT, run_manage, start_celery_worker, start_gunicorn
from tests.support.receiver import Received, Receiver, receiver

pytestmark = pytest.mark.integration

REPORT_TASKS = {
    "run/loop.tasks.generate_report_task",
    "run/loop.tasks.report_shard_task",
    "run/loop.tasks.report_join_task",
}


def the_trigger_s_trace(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans of the trace whose root is the POST /trigger_report/ server span."""
    roots = [s for s in spans if s["kind"] == "SERVER" and "trigger_report" in s["name"] and not s["parent_id"]]
    assert len(roots) == 1, [s["name"] for s in spans if s["kind"] == "SERVER"]
    return [s for s in spans if s["trace_id"] == roots[0]["trace_id"]]


def check_one_trace(trace: list[dict[str, Any]]) -> None:
    by_id = {s["span_id"]: s for s in trace}
    runs = [s for s in trace if s["kind"] == "CONSUMER" and s["name"] in REPORT_TASKS]
    names = sorted(s["name"] for s in runs)
    # The report task, its two shards and the join, all in the request's trace.
    assert names.count("run/loop.tasks.report_shard_task") == 2, names
    assert {"run/loop.tasks.generate_report_task", "run/loop.tasks.report_join_task"} <= set(names), names
    # Each run hangs, through the message's headers, under the span of the process that sent it ...
    for run in runs:
        parent = by_id.get(run["parent_id"])
        assert parent is not None and parent["kind"] == "PRODUCER", run
        assert parent["name"] == run["name"].replace("run/", "apply_async/"), (parent["name"], run["name"])
    # ... and the report task's own reads are MongoDB client spans inside it.
    mongo = [s for s in trace if s["kind"] == "CLIENT" and s["attributes"].get("db.system") == "mongodb"]
    report_task = next(s for s in runs if s["name"] == "run/loop.tasks.generate_report_task")
    assert any(s["parent_id"] == report_task["span_id"] for s in mongo), "no MongoDB span under the report task"


def test_in_memory_a_trigger_s_trace_holds_the_request_the_report_its_shards_and_mongodb(
    stack: Stack, tmp_path: Path
) -> None:
    run_id = uuid.uuid4().hex[:10]
    env = {
        **stack.env,
        "MONGO_DB": f"loop_it_tracing_{run_id}",
        "CELERY_QUEUE": f"loop_it_tracing_{run_id}",
        "DEBUG": "1",
        "ALLOWED_HOSTS": "testserver",
        "REPORT_SHARDS": "2",
        "AUTH_REQUIRED": "0",
        "TRIGGER_RATE_LIMIT": "0",
    }
    out = tmp_path / "spans.jsonl"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.support.tracing_probe", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        stack.mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])
    spans = [json.loads(line) for line in out.read_text().splitlines() if line]
    check_one_trace(the_trigger_s_trace(spans))


def spans_received(received: list[Received]) -> list[dict[str, Any]]:
    """Every span of every OTLP/HTTP ``POST /v1/traces`` (protobuf) the receiver recorded, decoded."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    found = []
    for post in received:
        if post.path != "/v1/traces" or post.headers.get("content-type") != "application/x-protobuf":
            continue
        request = ExportTraceServiceRequest()
        request.ParseFromString(post.body)
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        {
                            "name": span.name,
                            "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex() or None,
                            "service": service,
                            "attributes": {a.key: a.value.string_value for a in span.attributes},
                        }
                    )
    return found


@pytest.fixture
def otlp() -> Iterator[Receiver]:
    """An OTLP/HTTP receiver: answers 200 and records every POST (``spans_received`` decodes them)."""
    with receiver([200]) as found:
        yield found


def test_gunicorn_and_the_worker_send_one_trace_per_trigger_to_an_otlp_receiver(
    stack: Stack, otlp: Receiver, tmp_path: Path
) -> None:
    run_id = uuid.uuid4().hex[:10]
    env = {
        **stack.env,
        "MONGO_DB": f"loop_it_otlp_{run_id}",
        "CELERY_QUEUE": f"loop_it_otlp_{run_id}",
        "REPORT_SHARDS": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url.removesuffix("/hook"),
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms between batches (5000 by default)
    }
    loaded = run_manage(env, "load_data", str(ROOT / "data"))
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    worker = start_celery_worker(env, None, 1, stack.logs / f"worker-otlp-{run_id}.log")
    web = start_gunicorn(env, 2, stack.logs / f"web-otlp-{run_id}.log")
    try:
        web.wait_healthy()
        worker.wait_ready()
        answer = requests.post(f"{web.url}/trigger_report/", json={"force": True}, timeout=30)
        assert answer.status_code == 202, answer.text
        report_id = answer.json()["report_id"]
        wait_until(
            lambda: requests.get(f"{web.url}/get_report/{report_id}/", timeout=30).json()["status"] == "Complete",
            120,
            "the report to complete",
            interval=0.3,
        )

        def joined() -> bool:
            return any(s["name"] == "run/loop.tasks.report_join_task" for s in spans_received(list(otlp.received)))

        wait_until(joined, 30, "the join task's span at the receiver")
        time.sleep(1)  # the join's last MongoDB spans, in the batch after
    finally:
        web.stop()
        worker.shutdown()
        stack.mongo.drop_database(env["MONGO_DB"])
        delete_queues(env["CELERY_QUEUE"])
    trace = the_trigger_s_trace(spans_received(list(otlp.received)))
    check_one_trace(trace)
    assert {s["service"] for s in trace} == {"loop-web", "loop-worker"}
    assert "tracing on: spans to" in web.log.read_text()
