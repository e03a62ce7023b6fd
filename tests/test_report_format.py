"""The report format (loop | extended) through the API, the worker and the offline command.

Expected CSVs are the worked example's figures computed by hand (tests/support/worked_example.py):
Chicago store "mon", open Monday 09:00-12:00, polls 10:14 active and 11:15 inactive on 2024-10-07;
"old" polled only before the week (open 24x7). now = 13:00 CDT (18:00Z).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from loop.report_engine import EXTENDED_COLUMNS, REPORT_COLUMNS
from tests.support.api import assert_json_error, trigger, wait_done
from tests.support.csv_files import write_dataset
from tests.support.processes import run_generate_report
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_HOURS, EXAMPLE_NOW, EXAMPLE_POLLS, EXAMPLE_ZONES

# mon: up 104.5 min, down 75.5 min (week and day); the last hour (12:00-13:00) is closed, so its
# uptime % is empty. uptime % = 100 x 104.5 / 180 = 58.06. G = 60: the 10:14 poll observes from
# 09:14, so 09:00-09:14 (14 min = 0.23 h) is unobserved; one outage 10:44:30-12:00 = 75.5 min.
# old: no counted poll, open 24x7: all business time unobserved (60 min, 24 h, 168 h), no % at all.
EXTENDED_HEADER = ",".join(REPORT_COLUMNS + EXTENDED_COLUMNS)
EXTENDED_CSV = (
    f"{EXTENDED_HEADER}\n"
    "mon,0.00,1.74,1.74,0.00,1.26,1.26,,58.06,58.06,0.00,0.23,0.23,1,75.50\n"
    "old,0.00,0.00,0.00,0.00,0.00,0.00,,,,60.00,24.00,168.00,0,0.00\n"
)
# With G = 10 min: the 10:14 poll observes 10:04-10:24 of [09:00, 10:44:30): 84.5 min unobserved;
# the 11:15 poll observes 11:05-11:25 of [10:44:30, 12:00): 55.5 min; 140 min = 2.33 h.
EXTENDED_CSV_G10 = (
    f"{EXTENDED_HEADER}\n"
    "mon,0.00,1.74,1.74,0.00,1.26,1.26,,58.06,58.06,0.00,2.33,2.33,1,75.50\n"
    "old,0.00,0.00,0.00,0.00,0.00,0.00,,,,60.00,24.00,168.00,0,0.00\n"
)
NOW = EXAMPLE_NOW.isoformat()


def test_extended_trigger_computes_the_extended_columns(loaded: APIClient) -> None:
    response = trigger(loaded, {"now": NOW, "format": "extended"})
    assert response.status_code == 202
    done = wait_done(loaded, response.json()["report_id"])
    assert done["status"] == "Complete"
    assert done["csv_data"] == EXTENDED_CSV
    assert done["format"] == "extended" and done["max_gap_minutes"] == 60


def test_the_gap_is_a_trigger_option(loaded: APIClient) -> None:
    response = trigger(loaded, {"now": NOW, "format": "extended", "max_gap_minutes": 10})
    done = wait_done(loaded, response.json()["report_id"])
    assert done["csv_data"] == EXTENDED_CSV_G10 and done["max_gap_minutes"] == 10


def test_the_default_stays_the_loop_report(loaded: APIClient) -> None:
    done = wait_done(loaded, trigger(loaded, {"now": NOW}).json()["report_id"])
    assert done["csv_data"] == EXAMPLE_CSV
    assert done["format"] == "loop" and "max_gap_minutes" not in done


def test_reuse_never_crosses_formats_or_gaps(loaded: APIClient) -> None:
    loop_id = trigger(loaded, {"now": NOW}).json()["report_id"]
    first = trigger(loaded, {"now": NOW, "format": "extended"})
    assert first.status_code == 202 and first.json()["report_id"] != loop_id
    extended_id = first.json()["report_id"]
    again = trigger(loaded, {"now": NOW, "format": "extended", "max_gap_minutes": 60})
    assert again.status_code == 200 and again.json() == {"report_id": extended_id, "reused": True}
    other_gap = trigger(loaded, {"now": NOW, "format": "extended", "max_gap_minutes": 30})
    assert other_gap.status_code == 202 and other_gap.json()["report_id"] not in (loop_id, extended_id)
    loop_again = trigger(loaded, {"now": NOW, "format": "loop", "max_gap_minutes": 30})  # gap ignored by loop
    assert loop_again.status_code == 200 and loop_again.json()["report_id"] == loop_id
    for report_id in (loop_id, extended_id, other_gap.json()["report_id"]):
        wait_done(loaded, report_id)
    listed = {item["report_id"]: item for item in loaded.get("/reports/").json()["results"]}
    assert listed[loop_id]["format"] == "loop" and "max_gap_minutes" not in listed[loop_id]
    assert listed[extended_id]["format"] == "extended" and listed[extended_id]["max_gap_minutes"] == 60


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"format": "csv"}, "format"),
        ({"format": ["extended"]}, "format"),
        ({"format": "extended", "max_gap_minutes": 0}, "max_gap_minutes"),
        ({"format": "extended", "max_gap_minutes": 1441}, "max_gap_minutes"),
        ({"format": "extended", "max_gap_minutes": "soon"}, "max_gap_minutes"),
        ({"format": "extended", "max_gap_minutes": 10**30}, "max_gap_minutes"),
    ],
)
def test_bad_format_options_are_400(loaded: APIClient, body: dict[str, object], fragment: str) -> None:
    error = assert_json_error(trigger(loaded, body), 400)["error"]
    assert fragment in error


def test_offline_command_formats(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "data", EXAMPLE_POLLS, EXAMPLE_HOURS, EXAMPLE_ZONES)
    common = ("--csv-dir", str(folder), "--now", NOW, "--output", "-")
    extended = run_generate_report(*common, "--format", "extended")
    assert extended.returncode == 0, extended.stderr
    assert extended.stdout == EXTENDED_CSV
    narrow = run_generate_report(*common, "--format", "extended", "--max-gap-minutes", "10")
    assert narrow.stdout == EXTENDED_CSV_G10
    assert run_generate_report(*common).stdout == EXAMPLE_CSV
    bad = run_generate_report(*common, "--format", "extended", "--max-gap-minutes", "0")
    assert bad.returncode == 2 and "--max-gap-minutes" in bad.stderr
    assert run_generate_report(*common, "--format", "wide").returncode != 0
