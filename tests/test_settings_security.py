"""Start-up refusals (SECRET_KEY, bad settings) and no debug pages with DEBUG off.

Settings are read once per process, so the start-up cases import the web and worker entry
points in subprocesses with a chosen environment (each rule's own check is in
tests/test_settings_checks.py); the debug-page cases use the test client in-process.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path

import myproject.urls as project_urls
from loop import storage
from tests.support.api import VALID_ID, assert_json_error
from tests.support.processes import environment_without_config

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHOW = "import myproject.settings as s; print(s.DEBUG, len(s.SECRET_KEY), s.SECRET_KEY[:6])"


def run_python(env: dict[str, str], code: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    clean = environment_without_config()
    clean.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", **env)
    return subprocess.run(
        [*prefix, "python", "-c", code],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


START_WEB = "import myproject.wsgi; print('started')"
START_ASGI = "import myproject.asgi; print('started')"
# What `celery -A myproject worker` does before it consumes: find the app, then send worker_init.
START_WORKER = (
    "from celery.app.utils import find_app; from celery.signals import worker_init\n"
    "app = find_app('myproject')\n"
    "worker_init.send(sender=None)\n"
    "print('started')\n"
)


@pytest.mark.parametrize("start", [START_WEB, START_ASGI, START_WORKER], ids=["wsgi", "asgi", "celery"])
def test_debug_off_without_a_key_refuses_to_start_without_a_traceback(start: str) -> None:
    # Gunicorn and Celery run no system checks: the entry points run the settings' checks themselves.
    proc = run_python({"DEBUG": "0"}, start)
    assert proc.returncode == 3, proc.stderr
    assert "started" not in proc.stdout
    assert "Refusing to start: the configuration has errors." in proc.stderr
    assert "(loop.E002) SECRET_KEY must be set when DEBUG is off HINT: export SECRET_KEY=" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_each_error_is_one_line_at_start_up() -> None:
    proc = run_python(
        {"DEBUG": "0", "SECRET_KEY": "k" * 50, "API_READ_TOKEN": "r", "IMPORT_MAX_UPLOAD_BYTES": "0"}, START_WEB
    )
    assert proc.returncode == 3
    assert proc.stderr.splitlines()[1:] == [
        "(loop.E004) IMPORT_MAX_UPLOAD_BYTES must be at least 1, got 0 HINT: Set IMPORT_MAX_UPLOAD_BYTES to a "
        "number of at least 1, or unset it for the default.",
        "(loop.E005) API_READ_TOKEN needs API_TOKEN too (the full-access token for writes) HINT: Set API_TOKEN "
        "as well, or unset API_READ_TOKEN.",
    ]


def test_a_good_configuration_starts_the_web_and_the_worker() -> None:
    for start in (START_WEB, START_WORKER):
        proc = run_python({"DEBUG": "0", "SECRET_KEY": "k" * 50, "CELERY_BROKER_URL": "memory://"}, start)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "started"


def test_debug_off_with_a_key_starts_and_debug_on_gets_a_dev_key() -> None:
    prod = run_python({"DEBUG": "0", "SECRET_KEY": "k" * 50}, SHOW)
    assert prod.returncode == 0, prod.stderr
    assert prod.stdout.split() == ["False", "50", "kkkkkk"]
    dev = run_python({}, SHOW)  # a developer's checkout: DEBUG defaults on
    assert dev.returncode == 0, dev.stderr
    assert dev.stdout.split()[0] == "True"


def test_entrypoint_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    # What compose runs: DEBUG=0 and no SECRET_KEY -> the entrypoint makes one.
    key_file = tmp_path / "secrets" / "secret_key"
    env = {"DEBUG": "0", "SECRET_KEY_FILE": str(key_file)}
    entrypoint = ("sh", str(ROOT / "scripts" / "docker-entrypoint.sh"))
    code = "import myproject.settings as s; print(s.SECRET_KEY)"
    first = run_python(env, code, *entrypoint)
    assert first.returncode == 0, first.stderr
    key = key_file.read_text().strip()
    assert len(key) >= 50 and first.stdout.strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = run_python(env, code, *entrypoint)
    assert second.stdout.strip() == key
    explicit = run_python({**env, "SECRET_KEY": "given-" + "x" * 40}, code, *entrypoint)
    assert explicit.stdout.strip() == "given-" + "x" * 40


def test_compose_runs_every_app_service_with_debug_off() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app_services = [name for name, svc in compose["services"].items() if svc.get("build")]
    workers = [f"worker-{kind}" for kind in ("imports", "maintenance", "notifications", "reports")]
    assert sorted(app_services) == ["beat", "loader", "migrate", "web", *workers]
    for name in app_services:
        assert compose["services"][name]["environment"]["DEBUG"] == "0", name


# --- no debug pages -----------------------------------------------------------------------


def _boom(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("SECRET-DETAIL that must not leak")


def _form(request: HttpRequest) -> JsonResponse:  # not csrf_exempt: a POST without a token fails
    return JsonResponse({"ok": True})


# This module doubles as a URLconf: the project's routes plus a plain Django view
# that fails (outside DRF) and one that needs a CSRF token.
urlpatterns = [path("boom/", _boom), path("form/", _form), *project_urls.urlpatterns]
handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


@pytest.fixture
def debug_off(settings) -> Client:
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    return Client(raise_request_exception=False)


def test_unknown_url_with_debug_off_is_json(debug_off: Client) -> None:
    assert_json_error(debug_off.get("/nothing/here/"), 404)


def test_a_crash_outside_the_api_with_debug_off_is_json_without_details(debug_off: Client) -> None:
    body = assert_json_error(debug_off.get("/boom/"), 500)
    assert body == {"error": "Internal server error."}


@pytest.mark.parametrize("debug", [False, True])
def test_a_crash_inside_an_api_view_is_json_without_details(
    api: Any, settings, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    settings.DEBUG = debug  # even a developer's DEBUG=1 does not show a trace for API views

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("SECRET-DETAIL that must not leak")

    monkeypatch.setattr(storage, "get_report", broken)
    response = Client(raise_request_exception=False).get(f"/get_report/{VALID_ID}/")
    assert assert_json_error(response, 500) == {"error": "Internal server error."}


def test_a_host_not_allowed_with_debug_off_is_json(debug_off: Client) -> None:
    body = assert_json_error(debug_off.get("/health/", HTTP_HOST="evil.example"), 400)
    assert body == {"error": "Bad request."}


def test_a_csrf_failure_is_json(settings) -> None:
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    assert "CSRF" in assert_json_error(client.post("/form/", {"a": "1"}), 403)["error"]
