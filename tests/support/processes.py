"""Starting and stopping the processes the integration tests, the fault tests and the benchmarks run.

All process handling lives here so the test modules keep only fixtures and tests:
free ports, stopping, the app under gunicorn (``start_gunicorn``), nginx in front of it
(``start_front``), real Celery workers (``start_celery_worker``) and beats (``start_celery_beat``),
``manage.py`` commands, and the fault tests' private ``redis-server`` and MongoDB-wire server
(``private_redis`` / ``private_mongo``).
Nothing here imports pytest or Django, so bench/ can use it as well.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests
from pymongo import MongoClient

from tests.support.delayed_worker import DELAY_ENV
from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]  # the repository: manage.py, myproject/, loop/
BIN = Path(sys.executable).parent  # the virtualenv's bin/: celery, gunicorn
# The settings a configuration test sets itself: a child process starts from the environment without them.
CONFIG_VARS = (
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ALLOWED_HOSTS",
    "MONGO_URL",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_QUEUE",
    "WORKER_QUEUES",
    "TRIGGER_RATE_LIMIT",
    "API_TOKEN",
    "API_READ_TOKEN",
    "AUTH_REQUIRED",
    "KEY_HASH_SECRET",
    "API_MAX_BODY_BYTES",
    "INGEST_MAX_BODY_BYTES",
    "IMPORT_MAX_UPLOAD_BYTES",
    "IMPORT_MAX_EXPANDED_BYTES",
    "IMPORT_MAX_COMPRESSION_RATIO",
    "REPORT_STALE_SECONDS",
    "JOB_HEARTBEAT_SECONDS",
    "JOB_LOST_SECONDS",
    "JOB_LOST_RETRIES",
    "WEBHOOK_ALLOW_PRIVATE",
    "DELIVERY_MAX_AGE_HOURS",
    "DELIVERY_RETRY_BASE_SECONDS",
    "DELIVERY_RETRY_MAX_SECONDS",
    "DELIVERY_TIMEOUT_SECONDS",
    "EMAIL_BACKEND",
    "EMAIL_PORT",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "LOG_FORMAT",
)


def environment_without_config() -> dict[str, str]:
    """This process's environment less ``CONFIG_VARS``."""
    return {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}


FERRETDB_CANDIDATES = [os.environ.get("FERRETDB_BIN", ""), shutil.which("ferretdb") or "", "/root/go/bin/ferretdb"]


class MissingServer(RuntimeError):
    """A server binary the caller asked for is not installed (the caller decides: skip or fail)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_for_health(base_url: str, web: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until gunicorn answers /health/ with 200; fail with its log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base_url}/health/", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            # A busy machine can make the first answers slow: keep waiting until the deadline.
            pass
        if time.monotonic() > deadline or web.poll() is not None:
            raise RuntimeError(f"gunicorn did not come up:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)


def run_manage(env: Mapping[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python manage.py ...`` in a fresh process with ``env`` (its settings come from there)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_generate_report(*args: str) -> subprocess.CompletedProcess[str]:
    """The offline command as ops would run it: a fresh process with this environment, real exit code."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "myproject.settings"}
    return run_manage(env, "generate_report", *args, timeout=120)


# --- the app under gunicorn ------------------------------------------------------------------


@dataclass
class Web:
    """The app under gunicorn on a loopback port."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_healthy(self, timeout: float = 60) -> None:
        wait_for_health(self.url, self.proc, self.log, timeout)

    def stop(self) -> None:
        stop_process(self.proc)


GUNICORN_CONF = ROOT / "gunicorn.conf.py"

# Databases this process has migrated (DATABASE_URL, or the SQLite file's path), and one migrated SQLite
# file that new SQLite paths are copied from (a copy takes milliseconds, `migrate` over a second).
_migrated: set[str] = set()
_sqlite_template: list[Path] = []


def migrate_accounts_database(env: Mapping[str, str]) -> None:
    """Give the database ``env`` selects Django's tables (users, keys, sessions), as ``make web`` and
    compose's ``migrate`` service do before the app serves: ``manage.py migrate`` once per database.

    A SQLite file that does not exist yet (each run's own ``SQLITE_PATH``) is a copy of one migrated here.
    """
    url = env.get("DATABASE_URL", "").strip()
    target = url or str(Path(env.get("SQLITE_PATH", "").strip() or ROOT / "db.sqlite3"))
    if target in _migrated:
        return
    if not url and not Path(target).exists():
        if not _sqlite_template:
            folder = Path(tempfile.mkdtemp(prefix="loop-accounts-"))
            atexit.register(shutil.rmtree, folder, True)
            _run_migrate({**env, "SQLITE_PATH": str(folder / "db.sqlite3")})
            _sqlite_template.append(folder / "db.sqlite3")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_sqlite_template[0], target)
    else:
        _run_migrate(env)
    _migrated.add(target)


def _run_migrate(env: Mapping[str, str]) -> None:
    done = run_manage(env, "migrate", "--noinput", timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py migrate failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def start_gunicorn(env: Mapping[str, str], workers: int, log: Path, *, timeout: int = 120, migrate: bool = True) -> Web:
    """Start the app as deployed (gunicorn.conf.py) on a free port; returns at once (call ``wait_healthy``).

    Not waiting here lets a caller start several apps and wait for them together. ``timeout`` is
    gunicorn's worker timeout (how long a worker's main loop may stay silent, not a request's limit).
    The accounts database is migrated first (``migrate=False``: left as it is, e.g. unreachable on purpose).
    """
    if migrate:
        migrate_accounts_database(env)
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                str(GUNICORN_CONF),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                str(timeout),
            ],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Web(proc, f"http://127.0.0.1:{port}", log)


# --- nginx in front of the app (deploy/nginx/nginx.conf) -------------------------------------

NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"


def nginx_binary() -> str | None:
    """Debian's nginx (``apt-get install nginx-light``), or None."""
    # /usr/sbin is not on every user's PATH
    if found := shutil.which("nginx"):
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise ValueError(f"{NGINX_CONF} no longer has exactly one {old!r}: update tests/support/processes.py")
    return text.replace(old, new)


def front_config(app_url: str, port: int, base: Path) -> str:
    """deploy/nginx/nginx.conf as it is, but in front of ``app_url``, on loopback ``port``, its files under ``base``."""
    text = NGINX_CONF.read_text()
    text = _replace_once(text, "server web:8000;", f"server {app_url.removeprefix('http://')};")
    text = _replace_once(text, "listen 8000 default_server;", f"listen 127.0.0.1:{port} default_server;")
    if "/var/log/nginx/" not in text:
        raise ValueError(f"{NGINX_CONF} no longer logs under /var/log/nginx/: update tests/support/processes.py")
    text = text.replace("/var/log/nginx/", f"{base}/")
    temp_paths = "".join(
        f"    {kind}_temp_path {base}/{kind}-temp;\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return _replace_once(text, "http {\n", "http {\n" + temp_paths)


@dataclass
class Front:
    """nginx with the repository's configuration in front of a test app."""

    proc: subprocess.Popen[bytes]
    url: str
    base: Path

    def wait_ready(self, timeout: float = 20) -> None:
        def answers() -> bool:
            try:
                return requests.get(f"{self.url}/_front/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, timeout, "nginx ready", alive=self.proc, details=self.log)

    def log(self) -> str:
        path = self.base / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


def start_front(binary: str, app_url: str, base: Path) -> Front:
    """Start nginx (in the foreground, as this user) on a free port in front of ``app_url``; returns at once."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = base / "nginx.conf"
    conf.write_text(front_config(app_url, port, base))
    # As root, nginx's workers would run as "nobody", who cannot enter pytest's private temp folders.
    globals_ = f"daemon off; pid {base}/nginx.pid;" + (" user root;" if os.geteuid() == 0 else "")
    with open(base / "stdout.log", "wb") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(base), "-c", str(conf), "-e", str(base / "error.log"), "-g", globals_],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Front(proc, f"http://127.0.0.1:{port}", base)


# --- Celery workers --------------------------------------------------------------------------


@dataclass
class Worker:
    """A ``celery worker`` in its own process group, so signals reach exactly it and its pool."""

    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: "ready." in self.text(),
            timeout,
            "worker ready",
            alive=self.proc,
            details=lambda: self.text()[-3000:],
        )

    def wait_log(self, needle: str, timeout: float = 60) -> None:
        wait_until(
            lambda: needle in self.text(), timeout, f"{needle!r} in the worker log", details=lambda: self.text()[-3000:]
        )

    def owns(self, pid: int) -> bool:
        """True if pid is this worker's main process or one of its pool processes."""
        try:
            return os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def kill_all(self) -> None:
        """SIGKILL the whole worker (main process and pool), as an OOM killer or a lost host would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """End the worker at once (a warm shutdown takes seconds; the test is over)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def shutdown(self, timeout: float = 15) -> None:
        """Warm shutdown (SIGTERM, running tasks finish), then SIGKILL whatever is left of the group."""
        stop_process(self.proc, timeout)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_celery_worker(
    env: Mapping[str, str],
    name: str | None,
    concurrency: int,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    report_delay_s: float = 0,
    pool: str | None = None,
) -> Worker:
    """Start a Celery worker (node ``name@host`` when a name is given); returns at once.

    With ``report_delay_s`` > 0 it is started through tests/support/delayed_worker.py, so
    every report pauses that long after it is marked started and before it is computed;
    otherwise it is the plain ``celery -A myproject worker``. ``pool="solo"`` runs tasks in
    the main process (the benchmark reads its peak memory). Gossip, mingle and heartbeats
    are off: they only slow start-up and shutdown here.
    """
    worker_args = [
        "--loglevel=INFO",
        *([f"--pool={pool}"] if pool else []),
        f"--concurrency={concurrency}",
        *(["-n", f"{name}@%h"] if name else []),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    full_env = {**env, **(extra_env or {})}
    if report_delay_s > 0:
        argv = [sys.executable, "-m", "tests.support.delayed_worker", *worker_args]
        full_env[DELAY_ENV] = str(report_delay_s)
    else:
        argv = [str(BIN / "celery"), "-A", "myproject", "worker", *worker_args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches this worker only
        )
    return Worker(proc, log)


def start_celery_beat(env: Mapping[str, str], log: Path, schedule_file: Path) -> Worker:
    """Start ``celery -A myproject beat`` (its own state file, its own process group); returns at once."""
    argv = [str(BIN / "celery"), "-A", "myproject", "beat", "--loglevel=INFO", "-s", str(schedule_file)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Worker(proc, log)


# --- private servers (the fault tests stop and restart them) ---------------------------------


@dataclass
class Server:
    """A server process started, stopped and restarted on a fixed port."""

    name: str
    argv: list[str]
    port: int
    log: Path
    ready: Callable[[], bool]
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL: the server is gone at once (a graceful stop may keep serving open connections)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None


def redis_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    return ready


def mongo_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with MongoClient[dict[str, Any]](
                "127.0.0.1", port, serverSelectionTimeoutMS=300, connectTimeoutMS=300
            ) as client:
                return client.admin.command("ping").get("ok") == 1
        except Exception:
            return False

    return ready


def private_redis(base: Path) -> Server:
    """A throw-away ``redis-server`` (no persistence) on a free port; not started yet."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingServer("redis-server")
    port = free_port()
    argv = [
        str(binary),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(base),
    ]
    return Server("redis", argv, port, base / "redis.log", redis_ready(port))


def private_mongo(base: Path) -> Server:
    """A throw-away MongoDB-wire server on a free port with its data under ``base``; not started yet."""
    port = free_port()
    data, state = base / "mongo-data", base / "mongo-state"
    data.mkdir()
    state.mkdir()
    # The same preference as scripts/services.sh: a real mongod when one is on the PATH, else FerretDB.
    mongod = shutil.which("mongod")
    ferretdb = next((c for c in FERRETDB_CANDIDATES if c and os.access(c, os.X_OK)), None)
    if mongod is not None:
        argv = [mongod, "--bind_ip", "127.0.0.1", "--port", str(port), "--dbpath", str(data)]
    elif ferretdb is not None:
        argv = [
            ferretdb,
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{port}",
            "--telemetry=disable",
            "--debug-addr=-",
            f"--state-dir={state}",
            "--log-level=warn",
        ]
    else:
        raise MissingServer("FerretDB (/root/go/bin/ferretdb) or mongod")
    return Server("mongo", argv, port, base / "mongo.log", mongo_ready(port))
