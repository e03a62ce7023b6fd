"""GET /metrics over the real stack: two gunicorn processes and two Celery workers, known traffic, counts that add up.

A stack of its own (database and queues of its own): gunicorn with 2 processes counting into WEB_METRICS_DIR,
a reports+imports worker and a notifications+maintenance worker, each serving its /metrics on a port of its
own. The test scrapes everything, sends known traffic (requests spread over both web processes, a batch of
polls with bad rows, a report), scrapes again and checks each difference: per web process (its own file
of the directory) and in the sum GET /metrics answers, per worker and over both. Then every metric the
monitoring profile's rules and dashboard name must be among what these scrapes hold. Last, a web process is
killed and replaced by gunicorn: the sum does not go back.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from pymongo import MongoClient

from tests.support.integration import MONGO_URL, delete_queues, service_env
from tests.support.monitoring import Samples, declared_names, metric_names_in_profile, parse, value
from tests.support.polling import wait_until
from tests.support.processes import Web, Worker, free_port, start_celery_worker, start_gunicorn

pytestmark = pytest.mark.integration

HEALTH = ("loop_http_requests_total", {"route": "/health/", "method": "GET", "status": "200"})


@dataclass
class MetricsStack:
    web: Web
    workers: list[Worker]
    worker_urls: list[str]
    web_dir: Path
    texts: list[str] = field(default_factory=list)  # every answer scraped, in order

    def scrape_web(self) -> Samples:
        response = requests.get(f"{self.web.url}/metrics", timeout=30)
        assert response.status_code == 200, response.text[:300]
        assert response.headers["Content-Type"].startswith("text/plain")
        self.texts.append(response.text)
        return parse(response.text)

    def scrape_workers(self) -> list[Samples]:
        texts = [requests.get(url, timeout=30).text for url in self.worker_urls]
        self.texts.extend(texts)
        return [parse(text) for text in texts]


@pytest.fixture(scope="module")
def metrics_stack(servers: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsStack]:
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp("metrics-stack")
    name = f"loop_it_metrics_{run_id}"
    env = service_env(os.environ, db_name=name, queue=name, secret=f"metrics-{run_id}", logs=logs)
    env["WEB_METRICS_DIR"] = str(logs / "web-metrics")
    env["WORKER_HEARTBEAT_SECONDS"] = "2"
    env["METRICS_CACHE_SECONDS"] = "0"  # every scrape reads again: the test compares scrapes seconds apart
    ports = [free_port(), free_port()]
    workers = [
        start_celery_worker(
            env,
            f"jobs-{run_id}",
            1,
            logs / "jobs.log",
            {"WORKER_QUEUES": "reports,imports", "WORKER_METRICS_PORT": str(ports[0])},
        ),
        start_celery_worker(
            env,
            f"rest-{run_id}",
            1,
            logs / "rest.log",
            {"WORKER_QUEUES": "notifications,maintenance", "WORKER_METRICS_PORT": str(ports[1])},
        ),
    ]
    web = start_gunicorn(env, 2, logs / "web.log")
    try:
        web.wait_healthy()
        for worker in workers:
            worker.wait_ready()
        yield MetricsStack(web, workers, [f"http://127.0.0.1:{port}/metrics" for port in ports], logs / "web-metrics")
    finally:
        web.stop()
        for worker in workers:
            worker.stop()
        with MongoClient(MONGO_URL) as mongo:
            mongo.drop_database(name)
        delete_queues(name)


def per_process(directory: Path, name: str, labels: dict[str, str]) -> dict[str, float]:
    """The value of one sample in each web process's own file (counter_<pid>.db)."""
    found = {}
    for path in sorted(directory.glob("counter_*.db")):
        samples: Samples = {}
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in metric.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        found[path.stem.removeprefix("counter_")] = value(samples, name, labels)
    return found


def total(scrapes: list[Samples], name: str, labels: dict[str, str] | None = None) -> float:
    return sum(value(samples, name, labels or {}) for samples in scrapes)


def settled(stack: MetricsStack) -> bool:
    """Every task a worker started has ended (started = succeeded + failed + retried, per worker)."""
    for samples in stack.scrape_workers():
        started = total([samples], "loop_celery_tasks_total", {"event": "started"})
        outcomes = ("succeeded", "failed", "retried")
        ended = sum(total([samples], "loop_celery_tasks_total", {"event": e}) for e in outcomes)
        if started != ended:
            return False
    return True


POLLS = (
    "store_id,status,timestamp_utc\n"
    "metrics-1,active,2024-10-14 10:00:00 UTC\n"
    "metrics-2,inactive,2024-10-14 10:05:00 UTC\n"
    "metrics-3,active,2024-10-14 10:10:00 UTC\n"
    "metrics-4,sleeping,2024-10-14 10:15:00 UTC\n"
    ",active,2024-10-14 10:20:00 UTC\n"
)


def test_counts_of_two_web_processes_and_two_workers_add_up(metrics_stack: MetricsStack) -> None:
    stack = metrics_stack
    web_before, workers_before = stack.scrape_web(), stack.scrape_workers()
    files_before = per_process(stack.web_dir, *HEALTH)

    # Requests in parallel until both web processes have answered some (the kernel spreads the accepts).
    sent, health = 0, f"{stack.web.url}/health/"
    with ThreadPoolExecutor(max_workers=12) as pool:
        for _ in range(15):
            statuses = list(pool.map(lambda url: requests.get(url, timeout=30).status_code, [health] * 24))
            assert statuses == [200] * 24
            sent += 24
            served = per_process(stack.web_dir, *HEALTH)
            if sum(1 for pid, n in served.items() if n > files_before.get(pid, 0)) >= 2:
                break
    # A path with an id is counted under its pattern, never the raw path.
    assert requests.get(f"{stack.web.url}/stores/metrics-unknown/", timeout=30).status_code == 404
    posted = requests.post(
        f"{stack.web.url}/store_status/", data=POLLS, headers={"Content-Type": "text/csv"}, timeout=60
    )
    assert posted.status_code == 201, posted.text
    assert (posted.json()["inserted"], posted.json()["rejected"]) == (3, 2)
    report = requests.post(f"{stack.web.url}/trigger_report/", json={"force": True}, timeout=30)
    assert report.status_code == 202, report.text
    report_id = report.json()["report_id"]

    def complete() -> bool:
        return requests.get(f"{stack.web.url}/get_report/{report_id}/", timeout=30).json()["status"] == "Complete"

    wait_until(complete, 120, "the report Complete", details=lambda: stack.workers[0].text()[-3000:])
    wait_until(lambda: settled(stack), 60, "every started task ended")

    workers_after, web_after = stack.scrape_workers(), stack.scrape_web()
    files_after = per_process(stack.web_dir, *HEALTH)

    # The web: each process counted what it answered, and /metrics (from either process) answers the sum.
    grew = {pid: n - files_before.get(pid, 0) for pid, n in files_after.items()}
    assert sum(1 for n in grew.values() if n > 0) >= 2, grew
    assert sum(grew.values()) == sent
    assert value(web_after, *HEALTH) - value(web_before, *HEALTH) == sent
    route = {"route": "/stores/<store_id>/", "method": "GET", "status": "404"}
    requests_total = "loop_http_requests_total"
    assert value(web_after, requests_total, route) - value(web_before, requests_total, route) == 1
    assert not [key for key in web_after if "metrics-unknown" in str(key)]
    histogram = {"route": "/health/", "method": "GET", "status": "200"}
    assert value(web_after, "loop_http_request_duration_seconds_count", histogram) == value(web_after, *HEALTH)
    polls = {"loop_polls_ingested_total": 3, "loop_polls_stored_total": 3, "loop_poll_rows_rejected_total": 2}
    for name, expected in polls.items():
        grown = value(web_after, name, {"source": "api"}) - value(web_before, name, {"source": "api"})
        assert grown == expected, name

    # The workers: the report ran on the jobs worker and was counted once over both; every task started ended.
    def grown(name: str, labels: dict[str, str]) -> float:
        return total(workers_after, name, labels) - total(workers_before, name, labels)

    assert grown("loop_reports_total", {"status": "complete"}) == 1
    assert grown("loop_report_duration_seconds_count", {"status": "complete"}) == 1
    assert grown("loop_report_rows_total", {}) == 3
    report_task = {"task": "loop.tasks.generate_report_task"}
    assert grown("loop_celery_tasks_total", {**report_task, "event": "succeeded"}) >= 1
    assert grown("loop_celery_tasks_total", {**report_task, "event": "started"}) == grown(
        "loop_celery_tasks_total", {**report_task, "event": "succeeded"}
    )
    evaluation = {"task": "loop.tasks.evaluate_alerts_task", "event": "started"}
    assert value(workers_after[1], "loop_celery_tasks_total", evaluation) >= 1  # the notifications worker
    assert value(workers_after[0], "loop_celery_tasks_total", evaluation) == 0

    # Read at scrape time by the web: workers up by kind, queue lengths, the data clock.
    for kind in ("reports", "imports", "notifications", "maintenance"):
        assert value(web_after, "loop_workers_up", {"kind": kind}) == 1, kind
        assert ("loop_queue_length", frozenset({("queue", kind)})) in web_after, kind
    assert value(web_after, "loop_newest_poll_timestamp_seconds", {}) == 1728900600.0  # 2024-10-14 10:10 UTC
    assert value(web_after, "loop_metrics_source_up", {"source": "mongo"}) == 1
    # the three stores polled (no hours: open all week), counted by the evaluation; no directory: unknown
    assert value(web_after, "loop_stores_open", {"region": "unknown"}) == 3

    # Every metric the monitoring profile names is among these scrapes.
    present = {name for text in stack.texts[-3:] for name in declared_names(text)}
    missing = {name for name in metric_names_in_profile() if not ({name, f"{name}_total", f"{name}_bucket"} & present)}
    assert missing == set()


def gunicorn_workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_web_process_replaced_takes_none_of_the_counts_with_it(metrics_stack: MetricsStack) -> None:
    stack = metrics_stack
    for _ in range(10):
        assert requests.get(f"{stack.web.url}/health/", timeout=30).status_code == 200
    before = value(stack.scrape_web(), *HEALTH)
    workers = gunicorn_workers(stack.web.proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # gunicorn's master starts another in its place

    def replaced() -> bool:
        now = gunicorn_workers(stack.web.proc.pid)
        return len(now) == 2 and workers[0] not in now

    wait_until(replaced, 60, "gunicorn replacing its worker")
    stack.web.wait_healthy()
    after = stack.scrape_web()
    # the dead process's counts stay in the directory: the sum never goes back
    assert value(after, *HEALTH) >= before
    assert (stack.web_dir / f"counter_{workers[0]}.db").exists()
