"""The offline report starts light: no system checks (URL conf, DRF views, drf-spectacular), no Celery.

Each test runs a fresh interpreter, as ``python manage.py generate_report --csv-dir ...``
does, and looks at what it imported. The Celery worker must still find the task.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN_OFFLINE = """\
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "generate_report", "--csv-dir", sys.argv[1], "--output", sys.argv[2]])
print(json.dumps(sorted(sys.modules)))
"""

# Django imports every installed app's package, its apps module and what AppConfig.ready()
# imports (these two register their system checks); nothing else of theirs is needed.
APP_LOADING = {f"{app}{part}" for app in ("rest_framework", "drf_spectacular") for part in ("", ".apps", ".checks")}


def modules_after_offline_run(tmp_path: Path) -> set[str]:
    output = tmp_path / "report.csv"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_OFFLINE, str(ROOT / "data"), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert output.read_text().startswith("store_id,uptime_last_hour,")
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_offline_command_imports_neither_celery_nor_the_url_conf(tmp_path: Path) -> None:
    modules = modules_after_offline_run(tmp_path)
    assert "loop.report_engine" in modules  # the run did compute a report
    assert not {m for m in modules if m.split(".")[0] in ("celery", "kombu")}
    assert not modules & {"myproject.celery", "myproject.urls", "loop.api.reports", "loop.api.common", "loop.tasks"}
    assert {m for m in modules if m.split(".")[0] in ("rest_framework", "drf_spectacular")} <= APP_LOADING


def test_celery_worker_still_finds_the_task() -> None:
    # What `celery -A myproject worker` does: find the app, then import the tasks modules.
    code = (
        "from celery.app.utils import find_app\n"
        "import myproject.celery\n"
        "app = find_app('myproject')\n"
        "assert app is myproject.celery.app\n"
        "app.loader.import_default_modules()\n"
        "task = app.tasks['loop.tasks.generate_report_task']\n"
        "assert task.app is app and task.acks_late and task.reject_on_worker_lost and task.ignore_result\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_skip_checks_is_still_accepted() -> None:
    # Django adds --skip-checks only to commands that run checks; scripts may pass it.
    from loop.management.commands.generate_report import Command

    parser = Command().create_parser("manage.py", "generate_report")
    assert parser.parse_args(["--csv-dir", "d", "--output", "-", "--skip-checks"]).skip_checks is True
