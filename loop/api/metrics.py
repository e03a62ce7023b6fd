"""GET /metrics: the service's metrics in Prometheus' text format (docs/operations.md#metrics).

Two parts in one answer:

- What the processes counted (``loop.metrics``: HTTP, ingestion, evaluations, deliveries, reports, imports):
  under gunicorn every worker process writes its values into the master's multi-process directory
  (``PROMETHEUS_MULTIPROC_DIR``, set by gunicorn.conf.py) and any of them answers the sum of all,
  dead workers' counts included, so a counter never jumps back between scrapes. A lone process
  (``make run``) answers its own.
- What is read at scrape time (``ScrapeCollector``): queue lengths and workers up from Redis, the data
  clock, open alerts and stores down by region from MongoDB. Only ``_id`` reads (FerretDB scans a
  collection for anything else), kept ``METRICS_CACHE_SECONDS`` per process and read again in the
  background (``cached_figures``).

Celery workers and beat serve their own counts (tasks) on ports of their own: ``loop.worker_metrics``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from rest_framework.request import Request
from rest_framework.views import APIView

from loop import storage
from loop.accounts.capabilities import Capability
from loop.api.common import NO_TOKEN
from loop.backends import uses_redis_broker
from loop.metrics import worker_key_pattern

logger = logging.getLogger(__name__)

# Redis keeps a message without a priority under the queue's name, others under name + "\x06\x16" + step.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Figures:
    """What one scrape reads (kept METRICS_CACHE_SECONDS): None where its source did not answer."""

    read_at: float = 0.0
    mongo_up: bool = False
    redis_up: bool | None = None  # None: no Redis broker (embedded mode)
    queues: dict[str, int] = field(default_factory=dict)  # kind -> messages waiting
    workers: dict[str, int] = field(default_factory=dict)  # kind -> workers heartbeating
    newest_poll_s: float | None = None  # data clock
    written_at_s: float | None = None  # wall clock of the newest poll write
    stores: int | None = None
    open_alerts: int = 0
    unacknowledged: int = 0
    muted: int = 0
    down_by_region: dict[str, int] = field(default_factory=dict)
    open_by_region: dict[str, int] = field(default_factory=dict)
    evaluated_s: float | None = None  # the data clock of the newest evaluation


def _read_redis(figures: Figures) -> None:
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        with client.pipeline(transaction=False) as pipe:
            names = settings.CELERY_QUEUE_NAMES
            for name in names.values():
                for suffix in PRIORITY_SUFFIXES:
                    pipe.llen(name + suffix)
            lengths = pipe.execute()
        per = len(PRIORITY_SUFFIXES)
        figures.queues = {kind: sum(lengths[i * per : (i + 1) * per]) for i, kind in enumerate(names)}
        keys = list(client.scan_iter(match=worker_key_pattern(settings.CELERY_QUEUE), count=500))
        kinds = Tally[str]()
        for value in client.mget(keys) if keys else []:
            text = value.decode() if isinstance(value, bytes) else str(value or "")
            for kind in text.split(","):
                if kind:
                    kinds[kind] += 1
        figures.workers = {kind: kinds.get(kind, 0) for kind in settings.WORKER_KINDS}
        figures.redis_up = True
    finally:
        client.close()


def _read_mongo(figures: Figures) -> None:
    db = storage.get_db()
    stamp = storage.poll_stamp(db)
    figures.newest_poll_s = None if stamp.newest is None else stamp.newest.timestamp()
    figures.written_at_s = stamp.written_at
    figures.stores = storage.store_count(db)
    alerts = storage.read_open_alerts(db)
    figures.open_alerts = len(alerts.store_id)
    figures.muted = int(alerts.muted.sum())
    figures.unacknowledged = int(sum(1 for who in alerts.ack_by.tolist() if not who))
    by_region = alerts.state.get("open_by_region", [])
    figures.open_by_region = {str(item["region"]): int(item["stores"]) for item in by_region}
    figures.evaluated_s = None if alerts.evaluated_us is None else alerts.evaluated_us / 1e6
    down = [str(s) for s, muted in zip(alerts.store_id.tolist(), alerts.muted.tolist(), strict=True) if not muted]
    if down:
        from loop.services.directory import region_counts

        figures.down_by_region = dict(region_counts(down))
    figures.mongo_up = True


def read_figures() -> Figures:
    figures = Figures(read_at=time.time())
    if uses_redis_broker():
        try:
            _read_redis(figures)
        except Exception as exc:
            figures.redis_up = False
            logger.warning("metrics: Redis did not answer: %s", type(exc).__name__)
    try:
        _read_mongo(figures)
    except Exception as exc:
        logger.warning("metrics: MongoDB did not answer: %s", type(exc).__name__)
    return figures


_cache: list[Figures] = []
_cache_lock = threading.Lock()
_refreshing = threading.Event()


def _refresh() -> None:
    try:
        figures = read_figures()
        with _cache_lock:
            _cache[:] = [figures]
    finally:
        _refreshing.clear()


def cached_figures() -> Figures:
    """The figures of this process, kept METRICS_CACHE_SECONDS.

    Older ones are still answered while a thread reads them again, so a scrape never waits for MongoDB or
    Redis (each ``_id`` read can take tens of milliseconds on a busy FerretDB) except the process's first;
    the ages (data lag, time since the last write) are worked out at every scrape all the same.
    ``METRICS_CACHE_SECONDS=0``: every scrape reads, and waits.
    """
    keep = settings.METRICS_CACHE_SECONDS
    with _cache_lock:
        current = _cache[0] if _cache else None
        stale = current is not None and keep > 0 and time.time() - current.read_at >= keep
        refresh = stale and not _refreshing.is_set()
        if refresh:
            _refreshing.set()
    if current is None or keep <= 0:
        figures = read_figures()
        with _cache_lock:
            _cache[:] = [figures]
        return figures
    if refresh:
        threading.Thread(target=_refresh, name="metrics-refresh", daemon=True).start()
    return current


def _gauge(name: str, documentation: str, value: float | None, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    if value is not None:
        family.add_metric(list(labels.values()), value)
    return family


class ScrapeCollector(Collector):
    """The gauges computed at scrape time (names listed in docs/operations.md#metrics)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = cached_figures()
        now = time.time()
        sources = GaugeMetricFamily(
            "loop_metrics_source_up",
            "Whether a source of the scrape-time figures answered (1) or not (0).",
            labels=["source"],
        )
        sources.add_metric(["mongo"], 1.0 if f.mongo_up else 0.0)
        if f.redis_up is not None:
            sources.add_metric(["redis"], 1.0 if f.redis_up else 0.0)
        yield sources
        queues = GaugeMetricFamily(
            "loop_queue_length", "Messages waiting in each queue (Redis LLEN), by kind of work.", labels=["queue"]
        )
        workers = GaugeMetricFamily(
            "loop_workers_up", "Celery workers heartbeating in Redis, by kind of work they consume.", labels=["kind"]
        )
        if f.redis_up:
            for kind, length in f.queues.items():
                queues.add_metric([kind], float(length))
            for kind, count in f.workers.items():
                workers.add_metric([kind], float(count))
        yield queues
        yield workers
        yield _gauge(
            "loop_newest_poll_timestamp_seconds", "The newest stored poll (the data clock), Unix time.", f.newest_poll_s
        )
        yield _gauge(
            "loop_last_poll_write_timestamp_seconds",
            "When polls were last written (the wall clock), Unix time.",
            f.written_at_s,
        )
        yield _gauge(
            "loop_data_lag_seconds",
            "Wall clock now minus the newest stored poll (how far the data clock is behind).",
            None if f.newest_poll_s is None else now - f.newest_poll_s,
        )
        yield _gauge(
            "loop_seconds_since_last_poll_write",
            "Seconds since polls were last written (wall clock).",
            None if f.written_at_s is None else now - f.written_at_s,
        )
        yield _gauge(
            "loop_stores", "Stores with at least one stored poll.", None if f.stores is None else float(f.stores)
        )
        if f.mongo_up:
            yield _gauge(
                "loop_alerts_open", "Open alerts (stores down now, muted ones included).", float(f.open_alerts)
            )
            yield _gauge("loop_alerts_open_unacknowledged", "Open alerts nobody acknowledged.", float(f.unacknowledged))
            yield _gauge("loop_alerts_open_muted", "Open alerts inside a maintenance window.", float(f.muted))
            down = GaugeMetricFamily(
                "loop_stores_down",
                "Stores down now (open alerts outside maintenance windows), by region of the store directory.",
                labels=["region"],
            )
            for region, count in sorted(f.down_by_region.items()):
                down.add_metric([region], float(count))
            yield down
            opened = GaugeMetricFamily(
                "loop_stores_open",
                "Stores in business hours at the newest evaluation (of those it looked at: polled in the last "
                "two hours, or with an open alert), by region of the store directory.",
                labels=["region"],
            )
            for region, count in sorted(f.open_by_region.items()):
                opened.add_metric([region], float(count))
            yield opened
            yield _gauge(
                "loop_alert_evaluation_data_timestamp_seconds",
                "The data clock of the newest alert evaluation, Unix time.",
                f.evaluated_s,
            )


SCRAPE_REGISTRY = CollectorRegistry(auto_describe=False)
SCRAPE_REGISTRY.register(ScrapeCollector())


def exposition() -> bytes:
    """Every metric of this deployment's web processes, as Prometheus text."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    return counted + generate_latest(SCRAPE_REGISTRY)


@lru_cache(maxsize=1)
def _open_networks(
    text: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in text)


def open_to(request: Any) -> bool:
    """True when the scrape's socket address is in METRICS_OPEN_NETWORKS (never a forwarded address)."""
    networks = _open_networks(tuple(settings.METRICS_OPEN_NETWORKS))
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in networks)


class MetricsView(APIView):
    # A read key (or a session, a token); none from METRICS_OPEN_NETWORKS (loop.checks checks the list).
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": Capability.READ}

    def check_permissions(self, request: Request) -> None:
        if not open_to(request):
            super().check_permissions(request)

    @extend_schema(
        operation_id="metrics",
        summary="The service's metrics in the Prometheus text format (docs/operations.md#metrics)",
        responses={(200, "text/plain"): OpenApiTypes.STR, 401: NO_TOKEN},
    )
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(exposition(), content_type=CONTENT_TYPE)
