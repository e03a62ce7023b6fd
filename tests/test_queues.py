"""Queues per kind of work (settings.WORKER_KINDS): every task is routed to a kind that some documented worker
consumes, a worker consumes exactly the kinds of WORKER_QUEUES, CELERY_QUEUE names a set of queues of its own,
and in the embedded mode an alert delivery does not wait behind reports.

The end-to-end proof with real workers, Redis and a webhook receiver: tests/integration/test_queues_http.py.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from django.conf import settings
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import embedded_worker, queue, tasks
from loop.events import Event
from loop.services import deliveries
from myproject.celery import app as celery_app
from myproject.celery import consume_the_configured_kinds
from tests.support.processes import environment_without_config
from tests.support.receiver import receiver

ROOT = Path(__file__).resolve().parent.parent
LOOP_TASKS = sorted(name for name in celery_app.tasks if name.startswith(f"{tasks.__name__}."))  # what a worker runs
TASK_NAMES = sorted(value for name, value in vars(queue).items() if name.endswith("_TASK") and isinstance(value, str))
NOTIFICATIONS = {
    queue.EVALUATE_ALERTS_TASK,
    queue.ALERT_REMINDERS_TASK,
    queue.SEND_DELIVERY_TASK,
    queue.SEND_DUE_DELIVERIES_TASK,
}


def routed_queue(task_name: str) -> str:
    """The queue Celery sends ``task_name`` to, through the app's own router (what send_task does)."""
    return celery_app.amqp.router.route({}, task_name)["queue"].name


def kind_of(queue_name: str) -> str:
    return {name: kind for kind, name in settings.CELERY_QUEUE_NAMES.items()}[queue_name]


def explicitly_routed(task_name: str) -> bool:
    """A route names the task (or a glob matches it): it does not reach its queue only as the default."""
    return any(
        pattern == task_name
        or ("*" in pattern and re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), task_name))
        for pattern in settings.CELERY_TASK_ROUTES
    )


def compose_worker_kinds() -> dict[str, set[str]]:
    """{compose service: the kinds it consumes} for every service that runs a Celery worker."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = {name: svc for name, svc in services.items() if "worker" in svc.get("command", [])}
    return {name: set(svc["environment"]["WORKER_QUEUES"].split(",")) for name, svc in workers.items()}


def make_worker_groups() -> list[set[str]]:
    """The kinds of each worker `make worker` starts when WORKER_QUEUES is empty (scripts/worker.sh)."""
    script = (ROOT / "scripts" / "worker.sh").read_text()
    found = re.search(r'^DEFAULT_GROUPS="([^"]+)"$', script, re.M)
    assert found, "scripts/worker.sh no longer sets DEFAULT_GROUPS"
    return [set(group.split(",")) for group in found.group(1).split()]


def test_the_names_read_from_loop_queue_are_the_tasks_of_loop_tasks() -> None:
    # Otherwise the tests below would prove nothing about a task added to loop/tasks.py.
    assert set(TASK_NAMES) <= set(LOOP_TASKS)
    assert len(TASK_NAMES) >= 11


@pytest.mark.parametrize("task_name", sorted({*TASK_NAMES, *LOOP_TASKS}))
def test_every_task_has_a_route_to_a_kind_a_documented_worker_consumes(task_name: str) -> None:
    assert explicitly_routed(task_name), f"{task_name} has no route in CELERY_TASK_ROUTES (myproject/settings.py)"
    kind = kind_of(routed_queue(task_name))
    compose = compose_worker_kinds()
    assert any(kind in kinds for kinds in compose.values()), (task_name, kind, compose)
    assert any(kind in group for group in make_worker_groups()), (task_name, kind)


def test_each_kind_gets_its_tasks_and_deliveries_share_a_queue_with_no_report_or_import() -> None:
    kinds = {name: kind_of(routed_queue(name)) for name in TASK_NAMES}
    assert kinds[queue.REPORT_TASK] == "reports"
    assert kinds[queue.IMPORT_TASK] == "imports"
    assert {name for name, kind in kinds.items() if kind == "notifications"} == NOTIFICATIONS
    assert kinds[queue.COMPACT_POLLS_TASK] == "maintenance"
    assert kinds[queue.RECOVER_LOST_JOBS_TASK] == "maintenance"
    # Tasks of the report's shards and joins (any report_* name) go with the reports, without an edit here.
    assert kind_of(routed_queue("loop.tasks.report_shard_task")) == "reports"
    assert kind_of(routed_queue("loop.tasks.report_join_task")) == "reports"
    # A task nobody routed lands on maintenance, which a worker always consumes, never on notifications.
    assert settings.CELERY_TASK_DEFAULT_QUEUE == settings.CELERY_QUEUE_NAMES["maintenance"]
    assert kind_of(routed_queue("loop.tasks.some_future_task")) == "maintenance"


def test_compose_runs_one_worker_per_kind_and_every_kind_once() -> None:
    compose = compose_worker_kinds()
    assert compose == {f"worker-{kind}": {kind} for kind in settings.WORKER_KINDS}


def test_make_worker_runs_every_kind_with_notifications_apart_from_reports_and_imports() -> None:
    groups = make_worker_groups()
    assert sorted(kind for group in groups for kind in group) == sorted(settings.WORKER_KINDS)
    notifications = next(group for group in groups if "notifications" in group)
    assert notifications == {"notifications"}


def selected(worker_queues: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The queues a worker started with WORKER_QUEUES consumes (the app's queue table, a copy)."""
    monkeypatch.setattr(settings, "WORKER_QUEUES", worker_queues)
    queues = celery_app.amqp.Queues(settings.CELERY_TASK_QUEUES)
    instance = SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=queues)))
    consume_the_configured_kinds(sender="test@host", instance=instance)
    return set(queues.consume_from)


def test_a_worker_consumes_the_kinds_of_worker_queues_or_every_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    names = settings.CELERY_QUEUE_NAMES
    assert selected(("reports",), monkeypatch) == {names["reports"]}
    assert selected(("notifications", "maintenance"), monkeypatch) == {names["notifications"], names["maintenance"]}
    assert selected((), monkeypatch) == set(names.values())


def run_python(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    # environment_without_config drops CELERY_QUEUE and WORKER_QUEUES (a developer's shell may set them)
    clean = {**environment_without_config(), "DJANGO_SETTINGS_MODULE": "myproject.settings", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


ROUTES = """
import django; django.setup()
from django.conf import settings
from myproject.celery import app
print(sorted(settings.CELERY_QUEUE_NAMES.values()))
print(app.amqp.router.route({}, "loop.tasks.send_delivery_task")["queue"].name)
print(settings.WORKER_QUEUES)
"""


def test_celery_queue_names_a_set_of_queues_of_its_own() -> None:
    plain = run_python({}, ROUTES)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [
        "['imports', 'maintenance', 'notifications', 'reports']",
        "notifications",
        "()",
    ]
    isolated = run_python({"CELERY_QUEUE": "it_abc", "WORKER_QUEUES": " reports , imports "}, ROUTES)
    assert isolated.returncode == 0, isolated.stderr
    assert isolated.stdout.splitlines() == [
        "['it_abc.imports', 'it_abc.maintenance', 'it_abc.notifications', 'it_abc.reports']",
        "it_abc.notifications",
        "('reports', 'imports')",
    ]


def check_messages(env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "manage.py", "check", "--tag", "loop_settings"],
        cwd=ROOT,
        env={**environment_without_config(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line.removeprefix("?: ") for line in proc.stderr.splitlines() if line.startswith("?: (loop.")]


def test_e013_e014_a_bad_prefix_or_an_unknown_kind_refuses_the_start() -> None:
    assert check_messages({"CELERY_QUEUE": "it_x-1.a:b", "WORKER_QUEUES": "reports,notifications"}) == []
    assert check_messages({"CELERY_QUEUE": "a,b"}) == [
        "(loop.E013) CELERY_QUEUE may hold only letters, digits and _ . : -, got 'a,b'"
    ]
    assert check_messages({"WORKER_QUEUES": "reports,alerts,celery"}) == [
        "(loop.E014) WORKER_QUEUES names unknown kinds 'alerts', 'celery'; "
        "the kinds are reports, imports, notifications, maintenance"
    ]


# --- the embedded mode (memory://) ----------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
BLOCKED_REPORTS = 8  # more than the job pool's threads (EMBEDDED_WORKER_THREADS, 2): some wait in its queue


def test_an_embedded_delivery_and_evaluation_do_not_wait_behind_reports(
    api: APIClient, mdb: Database, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on 127.0.0.1
    release = threading.Event()
    started: list[str] = []
    evaluated = threading.Event()

    def blocking_report(job_id: str, **kwargs: Any) -> str:
        started.append(job_id)
        release.wait(30)
        return "complete"

    monkeypatch.setitem(embedded_worker.ATTEMPTS, queue.REPORT_TASK, blocking_report)
    monkeypatch.setattr("loop.services.alerts.evaluate_alerts", lambda **kwargs: evaluated.set())
    try:
        for _ in range(BLOCKED_REPORTS):
            queue.enqueue_report(uuid.uuid4().hex)
        with receiver([200]) as hook:
            created = api.post("/channels/", {"name": "q", "kind": "webhook", "url": hook.url}, format="json")
            assert created.status_code == 201, created.content
            began = time.monotonic()
            assert deliveries.publish(events=[Event(type="alert.opened", timestamp=NOW, data={"alert_id": "q1"})]) == 1
            queue.enqueue_alert_evaluation()
            while not hook.received and time.monotonic() - began < 5:
                time.sleep(0.02)
            assert hook.received, "the delivery waited behind the reports"
            assert evaluated.wait(5), "the evaluation waited behind the reports"
            # the reports are all still held: the delivery did not come after them
            assert not release.is_set() and len(started) < BLOCKED_REPORTS
    finally:
        release.set()
        assert embedded_worker.wait_embedded_idle(30)
    assert len(started) == BLOCKED_REPORTS
