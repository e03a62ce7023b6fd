"""A Celery worker whose reports pause before they are computed, for the fault tests.

    TEST_REPORT_DELAY_SECONDS=4 python -m tests.support.delayed_worker --loglevel=INFO --concurrency=1 ...

The fault tests need a report that is known to be in progress: marked started (its
attempt counted) but not yet reading the polls, for long enough to kill the worker,
stop MongoDB or append data. Production code has no hook for that; this launcher
wraps the report computation (the function ``run_report`` calls right after marking
the report started) so it sleeps first, then starts the ordinary worker in this same
process. The prefork pool forks from here, so every pool process (also one that
replaces a killed one) inherits the wrapper. The arguments are those of
``celery -A myproject worker``.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

# What to wrap: (module, attribute) of the function run_report calls right after marking a
# report started. This is where it lives once the refactor of loop/ has landed; until then
# the legacy target below is used. Switching is this one line (then drop the legacy one).
PATCH_TARGET = ("loop.services.reports", "generate_report")
LEGACY_PATCH_TARGET = ("loop.tasks", "generate_report")  # before the refactor
DELAY_ENV = "TEST_REPORT_DELAY_SECONDS"

logger = logging.getLogger(__name__)


def delay_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The pause from TEST_REPORT_DELAY_SECONDS (unset or empty = 0); a bad value stops the launcher."""
    text = environ.get(DELAY_ENV, "").strip() or "0"
    seconds = float(text)
    if seconds < 0:
        raise ValueError(f"{DELAY_ENV} must be >= 0, got {text!r}")
    return seconds


def _target_is_missing(exc: ModuleNotFoundError, module_name: str) -> bool:
    """True if the import failed because the target module (or a parent package) does not exist."""
    return exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + "."))


def resolve_target() -> tuple[ModuleType, str]:
    """The module and attribute to wrap: PATCH_TARGET if it exists, else LEGACY_PATCH_TARGET."""
    for module_name, attribute in (PATCH_TARGET, LEGACY_PATCH_TARGET):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not _target_is_missing(exc, module_name):
                raise  # the target exists but is broken: say so, do not quietly fall back
            continue
        if callable(getattr(module, attribute, None)):
            return module, attribute
    raise LookupError(f"neither {PATCH_TARGET} nor {LEGACY_PATCH_TARGET} exists: update PATCH_TARGET")


def delayed(
    compute: Callable[..., Any], seconds: float, sleep: Callable[[float], None] = time.sleep
) -> Callable[..., Any]:
    """``compute``, but sleeping ``seconds`` first (and saying so in the worker log).

    ``sleep`` is a parameter so a unit test can record the pause without patching time.sleep process-wide.
    """

    @functools.wraps(compute)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logger.warning("test delay: sleeping %s s before computing report", seconds)
        sleep(seconds)
        return compute(*args, **kwargs)

    return wrapper


def install(seconds: float) -> str:
    """Wrap the target with the pause; returns its dotted name."""
    module, attribute = resolve_target()
    setattr(module, attribute, delayed(getattr(module, attribute), seconds))
    return f"{module.__name__}.{attribute}"


def main(worker_args: list[str]) -> None:
    """Set up Django, wrap the report computation, then run ``celery worker`` in this process."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    import django

    django.setup()
    seconds = delay_seconds()
    if seconds > 0:
        target = install(seconds)
        print(f"delayed_worker: {target} sleeps {seconds} s before each report", file=sys.stderr, flush=True)

    from myproject.celery import app

    app.worker_main(["worker", *worker_args])


if __name__ == "__main__":
    main(sys.argv[1:])
