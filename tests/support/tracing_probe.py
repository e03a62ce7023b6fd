"""One traced trigger in one process, for tests/integration/test_tracing_http.py (run as ``python -m``).

Tracing is global to a process (the instrumentors patch Django, Celery and PyMongo), so this runs apart
from the test process: ``loop.tracing.setup`` with an in-memory exporter, the sample data loaded into the
database of the environment (real MongoDB/FerretDB), ``POST /trigger_report/`` through Django's test client
(its task published to the real Redis, the trace context in the message's headers), then a Celery worker
in a thread of this process (solo pool) runs the report and its shards. Writes every finished span to the file
named by its argument, one JSON object a line: name, kind, trace and span ids, parent id, service, attributes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
ROOT = Path(__file__).resolve().parents[2]


def main(out: Path) -> int:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from loop import tracing

    exporter = InMemorySpanExporter()
    assert tracing.setup("loop-probe", exporter=exporter)

    import django

    django.setup()
    from celery.contrib.testing.worker import start_worker
    from django.core.management import call_command
    from django.test import Client

    from myproject.celery import app

    call_command("load_data", str(ROOT / "data"), verbosity=0)
    exporter.clear()  # the load's own spans are not the point

    client = Client()
    answer = client.post("/trigger_report/", {"force": True}, content_type="application/json")
    assert answer.status_code == 202, answer.content
    report_id = answer.json()["report_id"]
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        deadline = time.monotonic() + 120
        while client.get(f"/get_report/{report_id}/").json()["status"] == "Running":
            assert time.monotonic() < deadline, "the report did not finish"
            time.sleep(0.2)
    lines = []
    for span in exporter.get_finished_spans():
        context = span.get_span_context()
        assert context is not None
        lines.append(
            json.dumps(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": f"{context.trace_id:032x}",
                    "span_id": f"{context.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                    "service": span.resource.attributes.get("service.name"),
                    "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
                }
            )
        )
    out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
