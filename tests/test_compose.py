"""The deployment files agree with the app: compose passes every setting ops may set to each app
service, every long-running service has a health check, one worker service per kind of work (scalable:
no fixed name or port), one beat runs the periodic tasks (no worker runs -B), nginx is the only door
to web with the repository's config and body limits matching the app's, everything runs gunicorn
through gunicorn.conf.py, the image installs only the runtime requirements, and scripts keep LF endings.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Read by settings.py but not for a deployment: the in-process worker of `make run`, and collectstatic.
NOT_FOR_COMPOSE = {"EMBEDDED_WORKER_THREADS", "STATIC_ROOT"}
WORKERS = ("worker-reports", "worker-imports", "worker-notifications", "worker-maintenance")
APP_SERVICES = ("migrate", "loader", "web", *WORKERS, "beat")
# `docker compose --profile monitoring up` adds these (tests/test_monitoring_profile.py).
MONITORING = ("prometheus", "alertmanager", "grafana")
# Set per worker service (the kinds it consumes), not shared through x-app-env.
PER_SERVICE = {"WORKER_QUEUES"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_read_from_the_environment() -> set[str]:
    source = (ROOT / "myproject" / "settings.py").read_text()
    return set(re.findall(r'(?:env_\w+|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"', source))


def test_every_setting_ops_may_set_reaches_every_app_service(compose: dict[str, Any]) -> None:
    wanted = settings_read_from_the_environment() - NOT_FOR_COMPOSE - PER_SERVICE
    # The reading above must see the settings this test is about, or it proves nothing.
    assert {"API_READ_TOKEN", "REPORT_RETENTION_DAYS", "LOG_LEVEL", "MONGO_TIMEOUT_MS", "PUBLIC_BASE_URL"} <= wanted
    for name in APP_SERVICES:
        environment = dict(compose["services"][name]["environment"])
        assert sorted(wanted - set(environment)) == [], name
        if name in WORKERS:
            assert environment.pop("WORKER_QUEUES") == name.removeprefix("worker-"), name
        assert environment == compose["x-app-env"], f"{name} does not share the x-app-env anchor"


def test_an_empty_value_stands_for_the_settings_default_except_the_rate_limit_and_proxies(
    compose: dict[str, Any],
) -> None:
    # settings.py reads an empty TRIGGER_RATE_LIMIT as "off": compose keeps its default explicitly.
    environment = compose["x-app-env"]
    assert environment["TRIGGER_RATE_LIMIT"] == "${TRIGGER_RATE_LIMIT:-60/minute}"
    assert environment["REPORT_RETENTION_DAYS"] == "${REPORT_RETENTION_DAYS:-}"
    # nginx is the one proxy in front of web: the app believes the X-Forwarded-For entry it appends.
    assert environment["NUM_PROXIES"] == "${NUM_PROXIES:-1}"


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    long_running = [name for name, svc in compose["services"].items() if svc.get("restart") != "no"]
    assert set(long_running) == {"mongo", "redis", "postgres", "web", *WORKERS, "beat", "nginx", *MONITORING}
    for name in long_running:
        assert compose["services"][name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in WORKERS:
        # each worker pings its own node, <kind>@<container hostname>: the -n of its command
        worker = compose["services"][name]
        check = " ".join(worker["healthcheck"]["test"])
        assert "inspect ping -d $${WORKER_QUEUES}@$$HOSTNAME" in check, name
        command = worker["command"]
        assert command[command.index("-n") + 1] == f"{worker['environment']['WORKER_QUEUES']}@%h", name


def test_one_worker_service_per_kind_each_scalable(compose: dict[str, Any]) -> None:
    services = compose["services"]
    workers = {name: svc for name, svc in services.items() if "worker" in svc.get("command", [])}
    assert sorted(workers) == sorted(WORKERS)
    for name, worker in workers.items():
        # `docker compose up --scale worker-reports=3`: no fixed container name, no published port
        assert "container_name" not in worker and "ports" not in worker, name
        assert worker["command"][:4] == ["celery", "-A", "myproject", "worker"], name
        assert "-Q" not in worker["command"], name  # the kinds come from WORKER_QUEUES (queue names differ)
        assert "deploy" not in worker, name
    assert re.fullmatch(r"\$\{WORKER_NOTIFICATIONS_CONCURRENCY:-\d+\}", workers["worker-notifications"]["command"][-1])


def test_accounts_live_in_the_postgres_service_migrated_once_before_the_app_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+", postgres["image"])  # pinned to a major version, like mongo:7 and redis:7
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"] and "postgres-data" in compose["volumes"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "ports" not in postgres  # only the app's containers reach it
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-loop}"
    assert compose["x-app-env"]["DATABASE_URL"] == (
        "${DATABASE_URL:-postgres://loop:${POSTGRES_PASSWORD:-loop}@postgres:5432/loop}"
    )
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"] and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("loader", "web", *WORKERS, "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    for name in ("web", *WORKERS, "beat"):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    # one service migrates: never a worker, beat or the loader
    for name in ("loader", *WORKERS, "beat"):
        assert "migrate" not in " ".join(services[name]["command"]), name


def test_one_beat_runs_the_hourly_tasks_and_no_worker_runs_beat(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in WORKERS:
        assert "-B" not in services[name]["command"] and "beat" not in services[name]["command"], name
    beat = services["beat"]
    # --quiet: no plain-text banner among beat's JSON log lines (LOG_FORMAT=json).
    assert beat["command"][:5] == ["celery", "-A", "myproject", "--quiet", "beat"]
    schedule = beat["command"][beat["command"].index("-s") + 1]
    mounts = [volume.split(":")[1] for volume in beat["volumes"]]
    assert any(schedule.startswith(mount + "/") for mount in mounts), (schedule, mounts)
    assert beat["deploy"]["replicas"] == 1
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^worker: install\n\t.*scripts/worker.sh \$\(WORKER_QUEUES\)$", makefile, re.M)
    worker_line = next(
        line for line in (ROOT / "scripts" / "worker.sh").read_text().splitlines() if "-A myproject worker" in line
    )
    assert " -B" not in worker_line and "--beat" not in worker_line
    assert re.search(r"^beat: install\n.*\n\t\$\(VENV\)/bin/celery -A myproject beat ", makefile, re.M)


def test_nginx_is_the_only_door_to_web_with_the_repository_config(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:1.")
    assert nginx["volumes"] == ["./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert (ROOT / "deploy" / "nginx" / "nginx.conf").is_file()
    # every documented URL (http://localhost:8000/...) now reaches nginx; web publishes nothing
    assert nginx["ports"] == ["8000:8000"]
    published = [name for name, svc in services.items() if svc.get("ports") and not svc.get("profiles")]
    assert published == ["nginx"]
    # the monitoring profile's Prometheus, Alertmanager and Grafana: on the host's loopback only
    for name in MONITORING:
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    assert nginx["depends_on"] == {"web": {"condition": "service_healthy"}}
    check = nginx["healthcheck"]["test"]
    assert check[0] == "CMD" and check[-1] == "http://127.0.0.1:8000/_front/health"
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    assert "listen 8000 default_server;" in conf and "server web:8000;" in conf
    assert "location = /_front/health {" in conf


def _settings_default(name: str) -> int:
    """The default of an ``env_int`` size setting, read from settings.py's source (not this process's env)."""
    source = (ROOT / "myproject" / "settings.py").read_text()
    expression = re.search(rf'env_int\("{name}", ([0-9* ]+)\)', source)
    assert expression, name
    return eval(expression.group(1), {"__builtins__": {}})  # digits and * only


def _megabytes(directive: str, block: str) -> int:
    found = re.findall(rf"^\s*{directive} (\d+)m;", block, re.M)
    assert len(found) == 1, (directive, found)
    return int(found[0]) * 1024 * 1024


def test_the_front_body_limits_are_the_apps_defaults() -> None:
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    imports_block = re.search(r"location /imports \{(.*?)\}", conf, re.S)
    assert imports_block
    outside_imports = conf.replace(imports_block.group(0), "")
    assert _megabytes("client_max_body_size", outside_imports) == _settings_default("INGEST_MAX_BODY_BYTES")
    assert _megabytes("client_max_body_size", imports_block.group(1)) == _settings_default("IMPORT_MAX_UPLOAD_BYTES")
    # the app's other JSON bodies are far smaller and it refuses them itself
    assert _settings_default("API_MAX_BODY_BYTES") < _settings_default("INGEST_MAX_BODY_BYTES")
    for setting in ("proxy_request_buffering on;", "client_body_timeout", "client_header_timeout"):
        assert setting in conf


def test_gunicorn_runs_from_gunicorn_conf_py_everywhere(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py"]' in dockerfile
    assert "command" not in compose["services"]["web"]  # the image's CMD
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        r"^web: install migrate\n\tWEB_BIND=\$\(WEB_BIND\) \$\(VENV\)/bin/gunicorn -c gunicorn.conf.py$", makefile, re.M
    )
    # no gunicorn started around the config (its app is named in gunicorn.conf.py only)
    assert "myproject.wsgi" not in dockerfile + makefile + (ROOT / "docker-compose.yml").read_text()


def test_the_image_gets_the_runtime_requirements_and_make_install_the_dev_ones() -> None:
    runtime = (ROOT / "requirements.txt").read_text()
    dev = (ROOT / "requirements-dev.txt").read_text()
    for tool in ("pytest", "pytest-django", "mongomock", "hypothesis", "ruff", "playwright"):
        assert not re.search(rf"^{tool}==", runtime, re.M), tool
        assert re.search(rf"^{tool}==", dev, re.M), tool
    assert re.search(r"^drf-spectacular-sidecar==", runtime, re.M)
    assert [line for line in dev.splitlines() if line and not line.startswith("#")][0] == "-r requirements.txt"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile and "requirements-dev" not in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "$(STAMP): requirements.txt requirements-dev.txt" in makefile
    assert "pip install --disable-pip-version-check -q -r requirements-dev.txt" in makefile


@pytest.mark.parametrize(
    "path",
    [
        "scripts/docker-entrypoint.sh",
        "scripts/services.sh",
        "scripts/worker.sh",
        ".ci/run",
        "manage.py",
        "Makefile",
        "deploy/nginx/nginx.conf",
    ],
)
def test_scripts_keep_lf_endings_on_every_checkout(path: str) -> None:
    out = subprocess.run(
        ["git", "check-attr", "eol", "--", path], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"{path}: eol: lf"
