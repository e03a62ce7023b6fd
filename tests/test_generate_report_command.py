"""The offline ``generate_report`` command, end to end on the sample data and on broken inputs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from loop.report_engine import REPORT_COLUMNS
from tests.support.processes import run_generate_report
from tests.support.report_reference import Case, reference

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"


def sample_rows(name: str) -> list[dict[str, str]]:
    with open(SAMPLE / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_sample_report_matches_an_independent_reference() -> None:
    done = run_generate_report("--csv-dir", str(SAMPLE), "--output", "-")
    assert done.returncode == 0, done.stderr
    report = pd.read_csv(io.StringIO(done.stdout), dtype={"store_id": str})
    assert list(report.columns) == REPORT_COLUMNS
    assert done.stdout.splitlines()[0] == ",".join(REPORT_COLUMNS)
    assert "stores" in done.stderr and "polls counted" in done.stderr

    # Rebuild the inputs with the csv module (not the project's reader) for the reference.
    polls = [
        (r["store_id"], r["status"], int(pd.Timestamp(r["timestamp_utc"].removesuffix(" UTC"), tz="UTC").timestamp()))
        for r in sample_rows("store_status.csv")
    ]
    hours = []
    for r in sample_rows("menu_hours.csv"):

        def secs(text: str) -> int:
            h, m, s = (int(x) for x in text.split(":"))
            return h * 3600 + m * 60 + s

        hours.append((r["store_id"], int(r["dayOfWeek"]), secs(r["start_time_local"]), secs(r["end_time_local"])))
    zones = [(r["store_id"], r["timezone_str"]) for r in sample_rows("timezones.csv")]
    expected = reference(Case(polls=polls, hours=hours, zones=zones, now=None))

    assert list(report["store_id"]) == sorted({p[0] for p in polls})
    for row in report.itertuples(index=False):
        ref = expected.rows[row.store_id]
        for column in REPORT_COLUMNS[1:]:
            # The reference works in whole seconds; the sample has microseconds.
            assert getattr(row, column) == pytest.approx(ref[column], abs=0.03), (row.store_id, column)


def test_explicit_now_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    done = run_generate_report("--csv-dir", str(SAMPLE), "--now", "2024-10-05T00:00:00Z", "--output", str(out))
    assert done.returncode == 0, done.stderr
    report = pd.read_csv(out, dtype={"store_id": str})
    cutoff = pd.Timestamp("2024-10-05", tz="UTC")
    early = {
        r["store_id"]
        for r in sample_rows("store_status.csv")
        if pd.Timestamp(r["timestamp_utc"].removesuffix(" UTC"), tz="UTC") <= cutoff
    }
    assert set(report["store_id"]) == early
    assert "now=2024-10-05T00:00:00+00:00" in done.stderr


def write_inputs(folder: Path, status: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "store_status.csv").write_text(status)
    (folder / "menu_hours.csv").write_text("store_id,dayOfWeek,start_time_local,end_time_local\n")
    (folder / "timezones.csv").write_text("store_id,timezone_str\n")
    return folder


BAD_STATUS = (
    "store_id,status,timestamp_utc\n"
    "s1,active,2024-10-03 23:00:00 UTC\n"
    "s1,active,yesterday\n"
    "s2,inactive,2024-10-03 23:30:00 UTC\n"
)


def test_bad_rows_are_reported_and_good_rows_still_count(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path / "in", BAD_STATUS)
    done = run_generate_report("--csv-dir", str(folder), "--output", "-")
    assert done.returncode == 0, done.stderr
    assert "store_status.csv:3" in done.stderr and "yesterday" in done.stderr
    report = pd.read_csv(io.StringIO(done.stdout), dtype={"store_id": str})
    # 24x7 stores: s1 active until the midpoint... it is alone, so active all week.
    assert report.to_dict("list") == {
        "store_id": ["s1", "s2"],
        "uptime_last_hour": [60.0, 0.0],
        "uptime_last_day": [24.0, 0.0],
        "uptime_last_week": [168.0, 0.0],
        "downtime_last_hour": [0.0, 60.0],
        "downtime_last_day": [0.0, 24.0],
        "downtime_last_week": [0.0, 168.0],
    }


def test_strict_turns_skipped_rows_into_exit_1_and_writes_nothing(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path / "in", BAD_STATUS)
    out = tmp_path / "report.csv"
    done = run_generate_report("--csv-dir", str(folder), "--output", str(out), "--strict")
    assert done.returncode == 1
    assert "--strict" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("status", "message"),
    [("", "empty"), ("store_id,timestamp_utc\ns1,2024-10-03 23:00:00 UTC\n", "'status'")],
)
def test_unusable_file_exits_2_without_output(tmp_path: Path, status: str, message: str) -> None:
    folder = write_inputs(tmp_path / "in", status)
    out = tmp_path / "report.csv"
    done = run_generate_report("--csv-dir", str(folder), "--output", str(out))
    assert done.returncode == 2
    assert message in done.stderr and "store_status.csv" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_missing_folder_and_bad_now_exit_2(tmp_path: Path) -> None:
    done = run_generate_report("--csv-dir", str(tmp_path / "missing"), "--output", "-")
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = run_generate_report("--csv-dir", str(SAMPLE), "--now", "not-a-time", "--output", "-")
    assert done.returncode == 2 and "not-a-time" in done.stderr
