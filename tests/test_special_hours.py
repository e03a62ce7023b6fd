"""Holiday hours as data: the special_hours.csv reader, locating it, storing it, and load_data's line.

Expected rows and seconds are written by hand.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command
from pymongo.database import Database

from loop import storage
from loop.ingest import StrictModeError, load_sources
from loop.sources.locate import CsvSource, locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import read_special_hours
from tests.support.csv_files import write_csv, write_dataset
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_HOURS, EXAMPLE_POLLS, EXAMPLE_ZONES
from tests.support.worked_example import HEADER as REPORT

HEADER = "store_id,date_local,start_time_local,end_time_local"


def source(path: Path) -> CsvSource:
    return CsvSource(str(path), lambda: open(path, "rb"))


def rows(frame: pd.DataFrame) -> list[tuple[str, str, float | None, float | None]]:
    def value(x: float) -> float | None:
        return None if math.isnan(x) else x

    return [(s, d, value(a), value(b)) for s, d, a, b in frame.itertuples(index=False, name=None)]


def test_reader_keeps_good_rows_and_reports_bad_ones_with_line_and_reason(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "special_hours.csv",
        HEADER,
        [
            "s1,2024-12-25,,",  # line 2: closed all day
            "s1,2024-12-24,09:00,13:00",  # 3
            "s2,2024-02-30,09:00,10:00",  # 4: no such day
            "s3,2024-12-25,09:00,",  # 5: one time empty
            "s4,xmas,09:00,10:00",  # 6
            "s5,2024-12-31,22:00,02:00:30",  # 7: overnight
            "s6,2024-12-31,25:00,02:00",  # 8: bad clock
            ",2024-12-31,01:00,02:00",  # 9: blank id
            "s7, 2024-01-01 , 10:00:30 , 11:00 ",  # 10: blanks around values
            "s8,2024-1-01,10:00,11:00",  # 11: not YYYY-MM-DD
            "s9,2024-12-26,,noon",  # 12: one empty, the other bad
            "s10,2024-12-26,10:00,10:00",  # 13: end == start is a valid row (the engine's rule 5 reads it)
        ],
    )
    problems = RowProblems()
    frame = read_special_hours(source(path), problems)
    assert rows(frame) == [
        ("s1", "2024-12-25", None, None),
        ("s1", "2024-12-24", 32400.0, 46800.0),
        ("s5", "2024-12-31", 79200.0, 7230.0),
        ("s7", "2024-01-01", 36030.0, 39600.0),
        ("s10", "2024-12-26", 36000.0, 36000.0),
    ]
    assert [str(t) for t in frame.dtypes] == ["str", "str", "float64", "float64"]
    by_line = {p.line: p.reason for p in problems.examples}
    assert by_line == {
        4: "date_local is not a date YYYY-MM-DD: '2024-02-30'",
        5: "only one of start_time_local and end_time_local is empty (both empty = closed all day)",
        6: "date_local is not a date YYYY-MM-DD: 'xmas'",
        8: "start_time_local is not a clock time HH:MM[:SS]: '25:00'",
        9: "store_id is blank",
        11: "date_local is not a date YYYY-MM-DD: '2024-1-01'",
        12: "only one of start_time_local and end_time_local is empty (both empty = closed all day)",
    }
    assert all(p.file == str(path) for p in problems.examples)
    assert problems.total == 7


def test_a_header_only_file_gives_an_empty_frame(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "special_hours.csv", HEADER, [])
    frame = read_special_hours(source(path), RowProblems())
    assert frame.empty and list(frame.columns) == ["store_id", "date_local", "start_seconds", "end_seconds"]


def test_locate_finds_the_optional_file_in_a_folder_or_a_zip(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "plain", ["s1,active,2024-10-07 15:14:00 UTC"])
    assert locate_sources(folder).special is None
    write_csv(folder / "special_hours.csv", HEADER, ["s1,2024-12-25,,"])
    assert locate_sources(folder).special is not None
    archive = tmp_path / "loop.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("store_status.csv", "menu_hours.csv", "timezones.csv", "special_hours.csv"):
            zf.write(folder / name, f"data/{name}")
    special = locate_sources(archive).special
    assert special is not None
    assert rows(read_special_hours(special, RowProblems())) == [("s1", "2024-12-25", None, None)]


def test_storage_round_trip_closed_days_and_per_store_replacement(mdb: Database) -> None:
    nan = float("nan")
    frame = pd.DataFrame(
        {
            "store_id": ["a", "a", "b"],
            "date_local": ["2024-12-25", "2024-12-24", "2024-12-31"],
            "start_seconds": [nan, 32400.0, 79200.0],
            "end_seconds": [nan, 46800.0, 7200.0],
        }
    )
    assert storage.replace_special_hours(mdb, frame) == 3
    assert sorted(rows(storage.read_special_hours(mdb))) == [
        ("a", "2024-12-24", 32400.0, 46800.0),
        ("a", "2024-12-25", None, None),
        ("b", "2024-12-31", 79200.0, 7200.0),
    ]
    # A later load naming only b replaces b's rows; a keeps its own.
    storage.replace_special_hours(
        mdb,
        pd.DataFrame({"store_id": ["b"], "date_local": ["2025-01-01"], "start_seconds": [nan], "end_seconds": [nan]}),
    )
    assert rows(storage.read_special_hours(mdb, "b")) == [("b", "2025-01-01", None, None)]
    assert len(storage.read_special_hours(mdb, "a")) == 2
    # One store's list emptied (the PUT of []).
    storage.set_store_special_hours(mdb, "a", frame.iloc[0:0])
    assert rows(storage.read_special_hours(mdb)) == [("b", "2025-01-01", None, None)]
    assert str(storage.read_special_hours(mdb)["start_seconds"].dtype) == "float64"


def test_replacing_special_hours_moves_the_data_version(mdb: Database) -> None:
    before = storage.data_state(mdb)[1]
    storage.replace_special_hours(
        mdb,
        pd.DataFrame({"store_id": ["a"], "date_local": ["2024-12-25"], "start_seconds": [0.0], "end_seconds": [60.0]}),
    )
    assert storage.data_state(mdb)[1] == before + 1


def test_load_data_loads_special_hours_and_reports_them(mdb: Database, tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, ["s1,active,2024-10-07 15:14:00 UTC"])
    write_csv(folder / "special_hours.csv", HEADER, ["s1,2024-12-25,,", "s2,2024-12-24,09:00,13:00", "s3,bad,,"])
    stats = load_sources(folder, mdb)
    assert sorted(rows(storage.read_special_hours(mdb))) == [
        ("s1", "2024-12-25", None, None),
        ("s2", "2024-12-24", 32400.0, 46800.0),
    ]
    lines = stats.summary_lines()
    assert f"{folder / 'special_hours.csv'}: 3 rows read, 2 loaded for 2 stores, 1 rejected" in lines
    assert any("special_hours.csv:4: date_local is not a date YYYY-MM-DD: 'bad'" in line for line in lines)


def test_load_data_without_the_file_keeps_stored_special_hours(mdb: Database, tmp_path: Path) -> None:
    storage.replace_special_hours(
        mdb,
        pd.DataFrame({"store_id": ["a"], "date_local": ["2024-12-25"], "start_seconds": [0.0], "end_seconds": [60.0]}),
    )
    stats = load_sources(write_dataset(tmp_path, ["s1,active,2024-10-07 15:14:00 UTC"]), mdb)
    assert len(storage.read_special_hours(mdb)) == 1
    assert not any("special_hours" in line for line in stats.summary_lines())


def test_strict_refuses_a_bad_special_hours_row_and_writes_nothing(mdb: Database, tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, ["s1,active,2024-10-07 15:14:00 UTC"])
    write_csv(folder / "special_hours.csv", HEADER, ["s1,2024-12-25,09:00,"])
    with pytest.raises(StrictModeError) as refused:
        load_sources(folder, mdb, strict=True)
    assert refused.value.problems[str(folder / "special_hours.csv")].total == 1
    assert storage.read_special_hours(mdb).empty and storage.newest_poll_time(mdb) is None


def test_the_offline_command_reads_special_hours_from_the_same_folder(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "in", EXAMPLE_POLLS, EXAMPLE_HOURS, EXAMPLE_ZONES)
    now = "2024-10-07T18:00:00Z"
    without = tmp_path / "without.csv"
    call_command("generate_report", "--csv-dir", str(folder), "--now", now, "--output", str(without))
    assert without.read_text() == EXAMPLE_CSV
    # Monday 2024-10-07 open only 10:00-11:30 local: up 10:00-10:44:30 (0.74 h), down 10:44:30-11:30 (0.76 h);
    # the last hour (12:00-13:00 local) is closed. "bad" is reported and skipped.
    write_csv(folder / "special_hours.csv", HEADER, ["mon,2024-10-07,10:00,11:30", "bad,2024-10-07,10:00,"])
    with_special = tmp_path / "with.csv"
    call_command("generate_report", "--csv-dir", str(folder), "--now", now, "--output", str(with_special))
    assert with_special.read_text() == (
        f"{REPORT}\nmon,0.00,0.74,0.74,0.00,0.76,0.76\nold,0.00,0.00,0.00,0.00,0.00,0.00\n"
    )
