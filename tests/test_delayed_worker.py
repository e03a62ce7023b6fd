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

from loop import storage
from loop.services import reports
from tests.support import delayed_worker
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_NOW, load_example

ROOT = Path(__file__).resolve().parent.parent


def test_the_pause_comes_after_marking_started_and_before_computing(
    mdb: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    load_example(mdb, tmp_path)
    report_id = "D" * 32
    storage.create_report(mdb, report_id, EXAMPLE_NOW)
    events: list[Any] = []
    real = reports.generate_report

    def computing(*args: Any, **kwargs: Any) -> Any:
        events.append("compute")
        return real(*args, **kwargs)

    def pause(seconds: float) -> None:
        events.append(("sleep", seconds, storage.get_report(mdb, report_id)["attempts"]))

    monkeypatch.setattr(reports, delayed_worker.PATCH_ATTRIBUTE, delayed_worker.delayed(computing, 3, sleep=pause))
    assert reports.run_report(report_id=report_id) == "complete"
    assert events == [("sleep", 3, 1), "compute"]  # one pause, once the attempt is counted
    assert storage.read_report_csv(mdb, storage.get_report(mdb, report_id)) == EXAMPLE_CSV
    assert "test delay: sleeping 3 s before computing report" in caplog.text


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
