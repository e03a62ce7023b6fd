"""Tracing off (the default, OTEL_EXPORTER_OTLP_ENDPOINT empty): no instrumentation or exporter is imported, no
tracer provider is set, no middleware or MongoDB listener added, so a request or a task costs what it did
without tracing. (redis-py imports ``opentelemetry`` itself when it is installed, for its own observability,
which stays off unless configured.) On: tests/integration/test_tracing_http.py."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.processes import ROOT, environment_without_config

PROBE = """
import json, sys
import myproject.wsgi
from django.conf import settings
from myproject.celery import trace_this_process
from loop import tracing
trace_this_process()
print(json.dumps({
    "enabled": tracing.enabled(),
    "setup": tracing.setup("loop-web"),
    "modules": sorted(
        name for name in sys.modules if name.startswith(("opentelemetry.instrumentation", "opentelemetry.exporter"))
    ),
    "provider": type(sys.modules["opentelemetry.trace"].get_tracer_provider()).__name__
    if "opentelemetry.trace" in sys.modules else None,
    "mongo_listeners": [type(l).__module__ for l in __import__("pymongo").monitoring._LISTENERS.command_listeners],
    "middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
}))
"""


def run_probe(**env: str) -> dict[str, object]:
    clean = environment_without_config()
    clean.update({"MONGO_URL": "mongomock://", "CELERY_BROKER_URL": "memory://", "DEBUG": "1", **env})
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_off_by_default_nothing_is_imported_or_instrumented() -> None:
    result = run_probe()
    assert result["enabled"] is False
    assert result["setup"] is False
    assert result["modules"] == []
    assert result["middleware"] == []
    assert result["provider"] in (None, "ProxyTracerProvider")
    assert result["mongo_listeners"] == []


def test_on_the_web_s_middleware_starts_with_tracing_s() -> None:
    result = run_probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert result["enabled"] is True
    assert result["middleware"] == ["opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"]
    assert "opentelemetry.instrumentation.celery" in result["modules"]  # type: ignore[operator]
    assert result["provider"] == "TracerProvider"
    assert result["mongo_listeners"] == ["opentelemetry.instrumentation.pymongo"]
