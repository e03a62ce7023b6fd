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
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

# What to wrap: the function loop.services.reports.run_report calls right after marking a report started.
PATCH_ATTRIBUTE = "generate_report"
DELAY_ENV = "TEST_REPORT_DELAY_SECONDS"

logger = logging.getLogger(__name__)


def delay_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The pause from TEST_REPORT_DELAY_SECONDS (unset or empty = 0); a bad value stops the launcher."""
    text = environ.get(DELAY_ENV, "").strip() or "0"
    seconds = float(text)
    if seconds < 0:
        raise ValueError(f"{DELAY_ENV} must be >= 0, got {text!r}")
    return seconds


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
    from loop.services import reports

    setattr(reports, PATCH_ATTRIBUTE, delayed(getattr(reports, PATCH_ATTRIBUTE), seconds))
    return f"{reports.__name__}.{PATCH_ATTRIBUTE}"


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
