"""The fault tests' delayed-worker launcher (tests/support/delayed_worker.py), checked quickly in-process.

The fault tests rely on its pause coming after a report is marked started (attempt
counted) and before the report is computed; a wrong patch target would only show
there as a slow, confusing failure, so it is pinned down here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo.database import Database

from loop import storage, tasks
from tests.support import delayed_worker
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_NOW, load_example

ROOT = Path(__file__).resolve().parent.parent


def run_one_report(report_id: str) -> str:
    """Compute one report as a worker does: loop.services.reports after the loop/ refactor, loop.tasks before.

    The same two-way lookup as delayed_worker's targets; drop the fallback once the refactor has landed.
    """
    try:
        from loop.services.reports import compute_report
    except ModuleNotFoundError:
        return tasks.run_report(report_id)
    return compute_report(report_id=report_id)


def test_the_pause_comes_after_marking_started_and_before_computing(
    mdb: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    load_example(mdb, tmp_path)
    report_id = "D" * 32
    storage.create_report(mdb, report_id, EXAMPLE_NOW)
    events: list[Any] = []
    module, attribute = delayed_worker.resolve_target()
    real = getattr(module, attribute)

    def computing(*args: Any, **kwargs: Any) -> Any:
        events.append("compute")
        return real(*args, **kwargs)

    def pause(seconds: float) -> None:
        events.append(("sleep", seconds, storage.get_report(mdb, report_id)["attempts"]))

    monkeypatch.setattr(module, attribute, delayed_worker.delayed(computing, 3, sleep=pause))
    assert run_one_report(report_id) == "complete"
    assert events == [("sleep", 3, 1), "compute"]  # one pause, once the attempt is counted
    assert storage.read_report_csv(mdb, storage.get_report(mdb, report_id)) == EXAMPLE_CSV
    assert "test delay: sleeping 3 s before computing report" in caplog.text


def test_the_target_falls_back_to_the_legacy_one_and_fails_loudly_when_both_are_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = delayed_worker.resolve_target()
    assert (found[0].__name__, found[1]) in (delayed_worker.PATCH_TARGET, delayed_worker.LEGACY_PATCH_TARGET)
    # Stand-in targets, so this holds before and after the loop/ refactor alike.
    monkeypatch.setattr(delayed_worker, "LEGACY_PATCH_TARGET", ("json", "dumps"))
    for missing in (("loop.no_such_module", "generate_report"), ("json", "no_such_function")):
        monkeypatch.setattr(delayed_worker, "PATCH_TARGET", missing)
        module, attribute = delayed_worker.resolve_target()
        assert (module.__name__, attribute) == ("json", "dumps")
    monkeypatch.setattr(delayed_worker, "LEGACY_PATCH_TARGET", ("json", "no_such_function"))
    with pytest.raises(LookupError, match="update PATCH_TARGET"):
        delayed_worker.resolve_target()


@pytest.mark.parametrize(("text", "seconds"), [(None, 0.0), ("", 0.0), ("4", 4.0), ("0.5", 0.5)])
def test_delay_seconds_from_the_environment(text: str | None, seconds: float) -> None:
    environ = {} if text is None else {delayed_worker.DELAY_ENV: text}
    assert delayed_worker.delay_seconds(environ) == seconds


@pytest.mark.parametrize("text", ["-1", "soon"])
def test_a_bad_delay_stops_the_launcher(text: str) -> None:
    with pytest.raises(ValueError):
        delayed_worker.delay_seconds({delayed_worker.DELAY_ENV: text})


def test_the_launcher_starts_the_celery_worker_command() -> None:
    # --help: the whole start-up path (Django, the patch, celery's worker command) without a broker.
    env = {**os.environ, delayed_worker.DELAY_ENV: "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.delayed_worker", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sleeps 2.0 s before each report" in proc.stderr
    assert "Start worker instance" in proc.stdout
