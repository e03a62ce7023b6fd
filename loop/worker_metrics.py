"""Metrics of the Celery processes: tasks in every worker, its own /metrics, its heartbeat; beat's sends.

A worker is a process tree (the main process and its prefork pool), often on a host of its own (a compose
container), so it does not share the web's multi-process directory: each worker gets a fresh directory
of its own when it starts (``use_own_directory``, before ``prometheus_client`` is imported; removed at
exit), its pool processes (forked from it) write there, and its main process serves the sum on
``WORKER_METRICS_PORT`` (``start_exporter``), which Prometheus scrapes per worker. Counts of a pool
process that died stay in the directory, so a worker's counters only go back to 0 when the worker
restarts (Prometheus' rate() takes such resets in its stride).

Every worker also writes a heartbeat key to Redis (``loop.metrics.worker_key``, its kinds as the value,
expiring after three missed beats) so the web's /metrics can say how many workers of each kind are up,
with no exporter at all.

celery beat serves ``loop_beat_sent_total`` on ``BEAT_METRICS_PORT``. ``connect()`` (myproject/celery.py)
connects the signals (and gives a worker its directory); nothing here imports prometheus_client or Django at import
time.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import threading
import time
from typing import Any

from celery import signals

from loop import metrics

logger = logging.getLogger(__name__)

OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}
_state: dict[str, Any] = {"role": None, "hostname": "", "dir": None}
_started: dict[str, float] = {}  # task id -> perf_counter at its start (in the pool process running it)
_stop = threading.Event()


def started_as_worker(argv: list[str]) -> bool:
    """``celery ... worker ...`` (or ``python -m celery ... worker``): this process is about to become a worker."""
    program = os.path.basename(argv[0]) if argv else ""
    return program in ("celery", "__main__.py") and "worker" in argv[1:]


def use_own_directory() -> None:
    """A worker's main process, when ``myproject.celery`` is imported (Celery sets Django up, which imports
    the services and so ``loop.metrics``, before any worker signal): a fresh multi-process directory, or
    WORKER_METRICS_DIR when set (emptied)."""
    path, made = metrics.empty_directory(variable="WORKER_METRICS_DIR", prefix="loop-worker-metrics-")
    if made:
        atexit.register(shutil.rmtree, path, True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    _state["dir"] = path
    if "prometheus_client" in sys.modules:  # imported before us by something: switch its values to files
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    if metrics._made:  # made in memory already: their counts would be lost
        logger.warning("loop.metrics were made before the worker started: some counts are not exported")


def remember_worker(sender: Any = None, **kwargs: Any) -> None:
    """celeryd_init: this process is worker ``sender`` (its node name)."""
    _state["role"] = "worker"
    _state["hostname"] = str(sender or "")


def _known_tasks(app: Any) -> list[str]:
    return sorted(name for name in app.tasks if name.startswith("loop."))


def start_exporter(sender: Any = None, **kwargs: Any) -> None:
    """worker_ready (main process, pool started): serve /metrics on WORKER_METRICS_PORT, start the heartbeat."""
    from django.conf import settings

    from loop.metrics import TASK_EVENTS, TASK_RUNTIME

    app = getattr(sender, "app", None)
    if app is not None:
        for task in _known_tasks(app):  # every series exists (at 0) from the start
            for event in ("started", *OUTCOMES.values()):
                TASK_EVENTS.labels(task, event)
            for outcome in OUTCOMES.values():
                TASK_RUNTIME.labels(task, outcome)
    hostname = _state["hostname"] or str(getattr(sender, "hostname", "") or "")
    if settings.WORKER_METRICS_PORT and _state["dir"]:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=_state["dir"])
        start_http_server(settings.WORKER_METRICS_PORT, addr=settings.METRICS_BIND_ADDRESS, registry=registry)
        logger.info(
            "metrics of worker %s on http://%s:%s/metrics",
            hostname,
            settings.METRICS_BIND_ADDRESS,
            settings.WORKER_METRICS_PORT,
        )
    from loop.backends import uses_redis_broker

    if uses_redis_broker():
        kinds = ",".join(settings.WORKER_QUEUES or settings.WORKER_KINDS)
        threading.Thread(target=_heartbeat, args=(hostname, kinds), name="metrics-heartbeat", daemon=True).start()


def _heartbeat(hostname: str, kinds: str) -> None:
    import redis
    from django.conf import settings

    from loop.metrics import worker_key

    key = worker_key(settings.CELERY_QUEUE, hostname)
    every = max(1, settings.WORKER_HEARTBEAT_SECONDS)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=2, socket_timeout=2)
    while True:
        try:
            if _stop.is_set():
                client.delete(key)
                return
            client.set(key, kinds, ex=3 * every)
        except Exception as exc:  # Redis away: the key expires, the worker reads as down; try again
            logger.warning("worker heartbeat not written: %s", type(exc).__name__)
        _stop.wait(every)


def stop_heartbeat(**kwargs: Any) -> None:
    """worker_shutdown: remove the heartbeat key now (a stopped worker is down at the next scrape)."""
    _stop.set()
    if _state["role"] != "worker":
        return
    try:
        import redis
        from django.conf import settings

        from loop.metrics import worker_key

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=1)
        client.delete(worker_key(settings.CELERY_QUEUE, _state["hostname"]))
        client.close()
    except Exception:  # the key expires anyway
        pass


def _counting() -> bool:
    from django.conf import settings

    return bool(settings.METRICS_ENABLED)


def task_started(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    if not _counting():
        return
    from loop.metrics import TASK_EVENTS

    _started[task_id] = time.perf_counter()
    TASK_EVENTS.labels(getattr(task, "name", "unknown"), "started").inc()


def task_ended(task_id: str = "", task: Any = None, state: str | None = None, **kwargs: Any) -> None:
    began = _started.pop(task_id, None)
    if not _counting():
        return
    from loop.metrics import TASK_EVENTS, TASK_RUNTIME

    outcome = OUTCOMES.get(str(state), str(state or "unknown").lower())
    name = getattr(task, "name", "unknown")
    TASK_EVENTS.labels(name, outcome).inc()
    if began is not None:
        TASK_RUNTIME.labels(name, outcome).observe(time.perf_counter() - began)


def pool_process_ended(**kwargs: Any) -> None:
    """worker_process_shutdown (a pool process): its live gauges go; its counts stay (they were counted)."""
    if _state["dir"]:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), _state["dir"])


def start_beat_exporter(sender: Any = None, **kwargs: Any) -> None:
    """beat_init: count the periodic tasks it sends; serve them on BEAT_METRICS_PORT."""
    from django.conf import settings

    from loop.metrics import BEAT_SENT

    _state["role"] = "beat"
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        BEAT_SENT.labels(entry["task"])
    if settings.BEAT_METRICS_PORT:
        from prometheus_client import start_http_server

        start_http_server(settings.BEAT_METRICS_PORT, addr=settings.METRICS_BIND_ADDRESS)
        logger.info(
            "metrics of beat on http://%s:%s/metrics", settings.METRICS_BIND_ADDRESS, settings.BEAT_METRICS_PORT
        )


def task_sent(sender: Any = None, **kwargs: Any) -> None:
    if _state["role"] == "beat":
        from loop.metrics import BEAT_SENT

        BEAT_SENT.labels(str(sender)).inc()


def connect() -> None:
    """Connect the handlers (myproject/celery.py); in the web and commands none of them fires but the publish one."""
    if started_as_worker(sys.argv) and _state["dir"] is None:
        use_own_directory()
    signals.celeryd_init.connect(remember_worker, weak=False)
    signals.worker_ready.connect(start_exporter, weak=False)
    signals.worker_shutdown.connect(stop_heartbeat, weak=False)
    signals.worker_process_shutdown.connect(pool_process_ended, weak=False)
    signals.task_prerun.connect(task_started, weak=False)
    signals.task_postrun.connect(task_ended, weak=False)
    signals.beat_init.connect(start_beat_exporter, weak=False)
    signals.before_task_publish.connect(task_sent, weak=False)
