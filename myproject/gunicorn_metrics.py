"""gunicorn's share of the metrics: one multi-process directory for the master's workers (gunicorn.conf.py).

Every worker process writes its counts into a file of ``PROMETHEUS_MULTIPROC_DIR`` and any worker answers
GET /metrics with the sum (loop/api/metrics.py). The master sets the variable before it forks (so every
worker has it before importing ``prometheus_client``), empties the directory when it starts (the counts of
an earlier run would otherwise be added in), and tells prometheus-client when a worker exits
(``child_exit``: its live gauges go; its counts stay, so no counter drops when a worker is replaced).

``WEB_METRICS_DIR`` names the directory (emptied of its ``*.db`` files at start); unset, a fresh temporary
directory is made and removed when the master exits. Nothing here imports Django.
"""

from __future__ import annotations

import atexit
import os
import shutil
from typing import Any

from loop import metrics


def prepare() -> str:
    """Point this process (the master) and its future workers at an empty metrics directory; return it."""
    path, made = metrics.empty_directory(variable="WEB_METRICS_DIR", prefix="loop-web-metrics-")
    if made:
        master = os.getpid()

        def remove() -> None:  # only the master: a worker exiting (it runs atexit too) leaves it to the others
            if os.getpid() == master:
                shutil.rmtree(path, ignore_errors=True)

        atexit.register(remove)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def on_starting(server: Any) -> None:
    """gunicorn's on_starting hook (the master, once, before the first worker forks)."""
    prepare()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook (in the master): a worker is gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
