"""How gunicorn serves the API: the one configuration of `make web`, the image's CMD and compose's web.

Safe without a front: requests run in threads (a slow client holds one thread, not a worker; the
worker's main loop keeps accepting), the request line and headers are bounded, and gunicorn's own
refusals are JSON (myproject/gunicorn_workers.py). A deployment should still put a buffering proxy
in front (docker-compose.yml's nginx, deploy/nginx/nginx.conf): gunicorn has no header or body read
timeout for HTTP/1, so enough clients that stall mid-request hold every thread (docs/operations.md).
Command-line flags override these values (the tests pass --bind, --workers and --timeout).
"""

import os

from loop.logs import logging_config
from myproject import gunicorn_metrics

wsgi_app = "myproject.wsgi:application"
bind = [os.environ.get("WEB_BIND") or "0.0.0.0:8000"]

# Processes x threads = requests served at once. WEB_CONCURRENCY is gunicorn's own variable name.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
worker_class = "myproject.gunicorn_workers.JsonErrorThreadWorker"  # gthread, with JSON error answers
threads = int(os.environ.get("WEB_THREADS") or 8)

# A threaded worker's main loop reports to the master about once a second whatever its threads do
# (gunicorn/workers/gthread.py ThreadWorker.run: notify(), then a poll of at most 1 s), so `timeout`
# only restarts a worker whose main loop is stuck; a long upload or report in a thread never trips
# it. (Under the old sync workers it was the longest a request could take: --timeout 300.)
timeout = 30
graceful_timeout = 30
# Seconds an idle kept-alive connection waits for its next request; it waits in the poller, not in a thread.
keepalive = 5

# Request line and each header up to 8190 bytes (gunicorn's maximum; nginx's large_client_header_buffers
# are 8k, so behind nginx these never bite first), at most 100 headers. Beyond: 414 / 431 / 400 as JSON.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Logs (docs/operations.md#logs): the app writes one access line per request itself (logger loop.access:
# request id, route, status, duration, actor), so gunicorn writes none; its own lines (start-up, workers,
# errors) go through the app's formatter, one JSON object a line under LOG_FORMAT=json. Its level stays
# --log-level's (info).
accesslog = None
logger_class = "myproject.gunicorn_workers.AppAccessLogger"
logconfig_dict = logging_config(
    (os.environ.get("LOG_FORMAT") or "text").strip().lower(),
    (os.environ.get("LOG_LEVEL") or "INFO").strip(),
    (os.environ.get("LOG_ACCESS") or "1").strip().lower() not in {"0", "false", "no", "off"},
)

# GET /metrics adds up every worker's counts: one multi-process directory, emptied when the master starts,
# before any worker forks; a worker that exits is marked dead (myproject/gunicorn_metrics.py).
on_starting = gunicorn_metrics.on_starting
child_exit = gunicorn_metrics.child_exit
