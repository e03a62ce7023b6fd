"""What the commands next to ``make run`` tell a newcomer: which MongoDB a command uses when MONGO_URL is
unset (the demo's store is in its own memory), and that the sample data's rejected zone rows are meant.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pymongo.database import Database

ROOT = Path(__file__).resolve().parent.parent
NOTE = (
    "MONGO_URL is not set: using mongodb://127.0.0.1:9/?directConnection=true (the `make run` demo keeps "
    "its data in memory and cannot be reached from here)"
)


@pytest.fixture
def unset_mongo_url(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """MONGO_URL absent from the environment; the default it would stand for is a closed port here."""
    monkeypatch.delenv("MONGO_URL", raising=False)
    settings.MONGO_URL = "mongodb://127.0.0.1:9/?directConnection=true"
    settings.MONGO_TIMEOUT_MS = 200


def test_a_mongodb_command_says_which_server_it_uses_when_mongo_url_is_unset(
    unset_mongo_url: None, tmp_path: Path
) -> None:
    err = io.StringIO()
    with pytest.raises(CommandError):  # the folder does not exist: the command stops before any write
        call_command("load_data", str(tmp_path / "missing"), stderr=err, stdout=io.StringIO())
    assert err.getvalue().splitlines()[0] == NOTE


def test_no_note_when_mongo_url_is_set(unset_mongo_url: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URL", "mongodb://127.0.0.1:9/?directConnection=true")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("load_data", str(tmp_path / "missing"), stderr=err, stdout=io.StringIO())
    assert "MONGO_URL" not in err.getvalue()


def test_the_offline_report_uses_no_mongodb_and_says_nothing_about_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URL"}
    proc = subprocess.run(
        [sys.executable, "manage.py", "generate_report", "--csv-dir", "data", "--output", str(tmp_path / "r.csv")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "MONGO_URL" not in proc.stderr


def run_demo(data: Path | None) -> tuple[str, list[tuple[Any, ...]]]:
    """serve_demo's output up to the point where it would start serving, and the commands it called."""
    calls: list[tuple[Any, ...]] = []
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("loop.management.commands.serve_demo.call_command", lambda *a, **kw: calls.append(a))
        call_command("serve_demo", "--port", "8123", *(["--data", str(data)] if data else []), stdout=out)
    return out.getvalue(), calls


def test_the_demo_says_the_sample_datas_rejected_rows_are_deliberate(mdb: Database) -> None:
    output, calls = run_demo(None)
    assert "timezones.csv: 57 rows read, 55 loaded for 55 stores, 2 rejected" in output
    assert "timezones.csv:4: " in output and "'Mars/Olympus_Mons'" in output
    assert "timezones.csv:15: " in output and "'America/Chicgo'" in output
    assert "the rejected rows are on purpose: data/timezones.csv carries two bad zones" in output
    assert ("runserver", "0.0.0.0:8123") in calls
    assert "MONGO_URL" not in output


def test_other_data_with_bad_rows_gets_no_such_note(mdb: Database, tmp_path: Path) -> None:
    copy = tmp_path / "mine"
    shutil.copytree(ROOT / "data", copy)
    output, _ = run_demo(copy)
    assert "2 rejected" in output
    assert "on purpose" not in output
