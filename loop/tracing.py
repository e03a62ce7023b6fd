"""Tracing (OpenTelemetry), off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` names an OTLP/HTTP receiver.

On, each process sends its spans to ``<endpoint>/v1/traces`` (OTLP over HTTP, protobuf; a batch every
``OTEL_BSP_SCHEDULE_DELAY`` ms, 5000 by default) and instruments:

- Django: one server span per request (``GET /get_report/<report_id>/``), named by its route;
- Celery: a ``apply_async/<task>`` span where a task is sent, whose context travels in the message's
  headers (``traceparent``), and a ``run/<task>`` span where it runs, child of the sender's: a trigger's trace
  holds the request, the report task and the shard tasks the report task sends;
- PyMongo: one client span per command (``find``, ``insert``, ``aggregate`` ...), inside the request's or the
  task's span.

Called once per process that serves or runs: ``myproject/wsgi.py`` (each gunicorn worker, before the
middleware is built) and ``worker_process_init`` (each Celery pool process, after the fork: an exporter's
thread does not survive one; ``myproject/celery.py``). Off (the default), nothing is imported or
instrumented and a request or a task costs nothing more. docs/operations.md#tracing.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

_done: list[str] = []
_lock = threading.Lock()


def endpoint() -> str:
    from django.conf import settings

    return str(settings.OTEL_EXPORTER_OTLP_ENDPOINT)


def is_otlp_url(value: str) -> bool:
    """An http(s) URL with a host and no query or fragment (loop.E018 refuses anything else)."""
    parsed = urlsplit(value)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname) and not parsed.query and not parsed.fragment


def enabled() -> bool:
    """On when the endpoint is set and usable; a bad value leaves it off (the settings check refuses the start)."""
    return is_otlp_url(endpoint())


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a base endpoint (as the OTel variable of the same name means it)."""
    return endpoint.rstrip("/") + "/v1/traces"


def setup(service: str, exporter: Any = None) -> bool:
    """Instrument this process (``service``: ``loop-web``, ``loop-worker``) if tracing is on; True if it is.

    ``exporter`` replaces the OTLP one (the tests' in-memory exporter; spans then go out at once). Once per
    process: a second call does nothing.
    """
    if exporter is None and not enabled():
        return False
    with _lock:
        if _done:
            return True
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        processor: SpanProcessor
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint())))
        else:
            processor = SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        DjangoInstrumentor().instrument(tracer_provider=provider)
        CeleryInstrumentor().instrument(tracer_provider=provider)
        PymongoInstrumentor().instrument(tracer_provider=provider)
        _done.append(service)
        return True
