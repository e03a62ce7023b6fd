"""What the browser tests share besides fixtures (tests/browser/conftest.py) and the dashboard
benchmark (bench/bench_dashboard.py): how Chromium is launched, the ready marker, screenshots,
and a watch on what a page asked for.

Debian's Chromium (``/usr/bin/chromium``, or ``CHROMIUM_PATH``) driven by Playwright for Python;
never ``playwright install`` (its browser download does not work on these machines).
"""

from __future__ import annotations

import os
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from loop.datagen import generate_dataset
from tests.support.integration import HOW_TO_START, Stack, service_env, skip_or_fail, unreachable

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Headless, and nothing that phones home: the dashboard must work on a network with no internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# `make screenshots` points this at docs/screenshots (the README's pictures); plain test runs keep
# the committed ones untouched.
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or Path(__file__).resolve().parents[2] / "var" / "screenshots")
LOOP_FILES = ("store_status.csv", "menu_hours.csv", "timezones.csv")
API_TOKEN = "browser-Token_0123456789abcdef"
TOKEN_AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# The browser stack's worker pauses each report this long after marking it started, so the page's
# progress is seen before its CSV link (tests/support/delayed_worker.py; production has no pause).
REPORT_PAUSE_S = 2.0


@dataclass(frozen=True)
class PageStackEnv:
    env: dict[str, str]
    db_name: str
    queue: str
    logs: Path


@dataclass
class TokenClient:
    """The API as a browser fixture's own set-up calls it: with API_TOKEN, every answer a success."""

    base_url: str

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.base_url}{path}", headers=TOKEN_AUTH, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def send(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.base_url}{path}", json=body, headers=TOKEN_AUTH, timeout=30)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


def sign_in_to(page: Any, base: str, path: str, username: str, password: str) -> None:
    """Open a page, be sent to the sign-in form, sign in and come back to it."""
    page.goto(f"{base}{path}")
    assert page.url == f"{base}/accounts/login/?next={path}"
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{path}")
    wait_ready(page)


def page_stack_env(tmp_path_factory: pytest.TempPathFactory, name: str, **extra: str) -> PageStackEnv:
    """The environment of one browser fixture's own stack: a database, queue prefix, secret and logs of
    its own, and none of the caller's tokens (each fixture sets those it tests). Skips (fails under CI)
    when Redis or MongoDB do not answer."""
    problem = unreachable()
    if problem:
        skip_or_fail(f"integration servers not reachable ({problem}): {HOW_TO_START}")
    run_id = uuid.uuid4().hex[:10]
    logs = tmp_path_factory.mktemp(f"{name}-logs")
    db_name = queue = f"loop_{name}_{run_id}"
    without_tokens = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "API_READ_TOKEN")}
    env = service_env(without_tokens, db_name=db_name, queue=queue, secret=f"{name}-{run_id}", logs=logs)
    return PageStackEnv({**env, **extra}, db_name, queue, logs)


def chromium_problem() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set CHROMIUM_PATH)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: `make install` (requirements-dev.txt)"
    return None


def launch_args() -> dict[str, Any]:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@dataclass
class Dataset:
    folder: Path  # the three CSVs load_data reads
    archive: Path  # the same files as a Loop .zip (the upload test)


def build_dataset(base: Path, *, stores: int = 40, days: int = 9, seed: int = 2025) -> Dataset:
    folder = base / "loop-export"
    generate_dataset(folder, stores=stores, days=days, seed=seed)
    archive = base / "loop-export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in LOOP_FILES:
            zf.write(folder / name, name)
    return Dataset(folder=folder, archive=archive)


@dataclass
class BrowserStack:
    """The browser tests' servers: the app and its database, and two more web processes on it."""

    stack: Stack  # the main app (gunicorn, DEBUG=0) and its database
    dataset: Dataset
    token_url: str  # the same database behind API_TOKEN
    mongo_down_url: str  # a web process whose MongoDB is a closed port

    @property
    def base_url(self) -> str:
        return self.stack.base_url


def wait_answering(url: str, timeout: float = 60) -> None:
    """Wait until a web process answers /health/ at all (one whose MongoDB is away answers 503)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(f"{url}/health/", timeout=5)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer from {url} within {timeout}s") from None
            time.sleep(0.2)


@dataclass
class PageWatch:
    """What a page did: console errors, every URL it asked for, and the answers >= 400."""

    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def foreign(self, origin: str) -> list[str]:
        """URLs that are not the app's own (the dashboard must load nothing from elsewhere)."""
        return [u for u in self.urls if not (u.startswith(origin + "/") or u.startswith(("data:", "blob:")))]


def watch(page: Any) -> PageWatch:
    seen = PageWatch()
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
    page.on("request", lambda r: seen.urls.append(r.url))
    page.on("response", lambda r: seen.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return seen


def wait_ready(page: Any, timeout_ms: float = 30_000) -> float:
    """Wait for the page's ready marker (set once its data is drawn); ms from navigation start to it."""
    page.wait_for_selector("body[data-ready]", state="attached", timeout=timeout_ms)
    return float(page.evaluate("window.__readyMs"))


def screenshot(page: Any, name: str) -> Path:
    """Save the viewport as <SCREENSHOTS>/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
