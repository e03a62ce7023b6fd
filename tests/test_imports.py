"""Every project module imports cleanly as the first thing a process imports.

Django runs its system checks in no fixed order, so a command may import any
module referenced from settings (the CSRF failure view, DRF's parser) before
``rest_framework.views``. A cycle between them broke every management command
in CI while passing locally; each module is imported first in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in ("loop", "myproject")
    for path in (ROOT / package).rglob("*.py")
    if "migrations" not in path.parts and path.name != "__init__.py"
)


def run_first(code: str) -> subprocess.CompletedProcess[str]:
    setup = "import os, django\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'myproject.settings')\ndjango.setup()\n"
    return subprocess.run([sys.executable, "-c", setup + code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_module_list_is_not_empty() -> None:
    assert {"loop.api.errors", "loop.api.parsers", "loop.api.reports", "myproject.urls"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_first_in_a_fresh_process(module: str) -> None:
    proc = run_first(f"import {module}")
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "dotted",
    ["settings.CSRF_FAILURE_VIEW", "settings.REST_FRAMEWORK['EXCEPTION_HANDLER']"]
    + [f"settings.REST_FRAMEWORK['{key}'][0]" for key in ("DEFAULT_PARSER_CLASSES", "DEFAULT_AUTHENTICATION_CLASSES")],
)
def test_callables_named_in_settings_import_first(dotted: str) -> None:
    proc = run_first(
        "from django.conf import settings\nfrom django.utils.module_loading import import_string\n"
        f"import_string({dotted})\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
