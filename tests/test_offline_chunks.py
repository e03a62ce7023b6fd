"""The offline report in store chunks (loop/offline.py) gives the one-pass report's bytes and skipped-row report.

The one-pass path is the reference: its figures are checked against hand-worked cases
(tests/test_report_rules.py, the worked example below) and an independent re-implementation
(tests/test_report_property.py, the sample data in tests/test_generate_report_command.py).
Here every chunked run must equal it exactly: the CSV text byte for byte, and the warning
lines (counts, example lines, their order). The worked example is also checked against its
hand-computed CSV directly.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from loop import offline
from loop.datagen import generate_dataset
from loop.offline import OfflineTotals, prepare_offline_report
from loop.sources import rows
from loop.sources.locate import locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import iter_status_chunks, order_status_examples, read_status, stream_clean_status
from loop.sources.rows import UncleanFile
from tests.support.csv_files import write_csv, write_dataset
from tests.support.processes import run_generate_report
from tests.support.worked_example import EXAMPLE_CSV, EXAMPLE_HOURS, EXAMPLE_NOW, EXAMPLE_POLLS, EXAMPLE_ZONES

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"
CHUNK_SIZES = (1, 2, 7, 64, 10**6)  # one store per chunk, sizes that split mid-way, one range
# The generated set's 150 stores: one store a chunk would be 150 runs; these still split mid-way.
GENERATED_CHUNK_SIZES = (7, 64, 10**6)


def run(folder: Path, **kwargs: Any) -> tuple[str, list[str], OfflineTotals]:
    """(report text, warning lines, totals) of one offline run through the pure API."""
    pieces: list[str] = []
    with prepare_offline_report(folder, **kwargs) as prepared:
        lines = prepared.problems.summary_lines()
        totals = prepared.write(pieces.append)
        assert prepared.chunked == (kwargs.get("chunk_stores") is not None or "max_memory_mb" in kwargs)
    return "".join(pieces), lines, totals


def assert_chunks_equal_one_pass(folder: Path, sizes: tuple[int, ...] = CHUNK_SIZES, **kwargs: Any) -> str:
    text, lines, totals = run(folder, **kwargs)
    for size in sizes:
        chunked_text, chunked_lines, chunked_totals = run(folder, chunk_stores=size, **kwargs)
        assert chunked_text == text, f"chunk_stores={size}"
        assert chunked_lines == lines, f"chunk_stores={size}"
        assert chunked_totals == totals, f"chunk_stores={size}"
    return text


# --- hand-worked and rule sets ---------------------------------------------------------------


def test_worked_example_in_chunks_gives_the_hand_computed_csv(tmp_path: Path) -> None:
    # "old" polled only before the week (a zeros row), "later" only after now (no row).
    folder = write_dataset(tmp_path / "in", EXAMPLE_POLLS, EXAMPLE_HOURS, EXAMPLE_ZONES)
    text = assert_chunks_equal_one_pass(folder, now=EXAMPLE_NOW)
    assert text == EXAMPLE_CSV


def test_sample_data_in_chunks(tmp_path: Path) -> None:
    assert_chunks_equal_one_pass(SAMPLE)
    assert_chunks_equal_one_pass(SAMPLE, now=pd.Timestamp("2024-10-05T00:00:00Z"))
    assert_chunks_equal_one_pass(SAMPLE, extended=True, max_gap_minutes=30)


# Stores for the rules that depend on a store's own rows: DST both ways (Chicago), Lord Howe's
# half-hour gap, overnight, end == start, 23:59:59, split shifts, a closed weekday, 24x7, zones
# (several rows: the last wins; blank; unknown), duplicates (inactive wins), ids sorted as text
# and ids a spreadsheet would run, holiday hours.
RULE_POLLS = [
    "spring,active,2024-03-10 07:30:00 UTC",
    "spring,inactive,2024-03-10 09:10:00 UTC",
    "spring,active,2024-03-10 12:00:00 UTC",
    "fall,active,2024-11-03 05:30:00 UTC",
    "fall,inactive,2024-11-03 07:30:00 UTC",
    "fall,active,2024-11-03 08:30:00 UTC",
    "howe,inactive,2024-10-06 02:00:00 UTC",
    "howe,active,2024-03-10 01:00:00 UTC",
    "night,active,2024-03-09 04:00:00 UTC",
    "night,inactive,2024-03-11 05:00:00 UTC",
    "same,active,2024-03-08 15:00:00 UTC",
    "late,inactive,2024-03-10 05:59:30 UTC",
    "split,active,2024-03-11 16:00:00 UTC",
    "split,inactive,2024-03-11 19:00:00 UTC",
    "split,active,2024-03-11 23:30:00 UTC",
    "always,inactive,2024-03-10 23:00:00 UTC",
    "dup,active,2024-03-10 18:00:00 UTC",
    "dup,inactive,2024-03-10 18:00:00 UTC",
    "dup,active,2024-03-10 18:00:00 UTC",
    "10,active,2024-03-10 20:00:00 UTC",
    "9,inactive,2024-03-10 20:00:00 UTC",
    "007,active,2024-03-10 20:00:00 UTC",
    "=1+2,active,2024-03-10 20:00:00 UTC",
    "'quoted,inactive,2024-03-10 20:00:00 UTC",
    "holiday,active,2024-03-08 16:00:00 UTC",
    "holiday,inactive,2024-03-11 16:00:00 UTC",
    "zoned,active,2024-03-10 14:00:00 UTC",
    "blankzone,inactive,2024-03-10 14:00:00 UTC",
    "old,active,2024-02-20 12:00:00 UTC",
    "newest,active,2024-03-12 06:00:00 UTC",
]
RULE_HOURS = [
    "spring,6,01:00:00,04:00:00",
    "fall,6,00:30:00,03:00:00",
    "howe,6,01:30:00,03:00:00",
    "night,4,22:00:00,02:00:00",
    "night,5,22:00:00,02:00:00",
    "same,4,10:00:00,10:00:00",
    "late,5,20:00:00,23:59:59",
    "split,0,10:00:00,14:00:00",
    "split,0,13:00:00,18:00:00",
    "split,0,18:00:00,22:00:00",
    "holiday,0,09:00:00,17:00:00",
    "holiday,4,09:00:00,17:00:00",
    "holiday,5,09:00:00,17:00:00",
    "spring,2,09:00:00,17:00:00",
]
RULE_ZONES = [
    "spring,America/Chicago",
    "fall,America/Chicago",
    "howe,Australia/Lord_Howe",
    "zoned,America/Denver",
    "zoned,Asia/Tokyo",
    "zoned,America/New_York",
    "blankzone,",
    "night,Mars/Olympus_Mons",
]
RULE_SPECIAL = ["holiday,2024-03-08,,", "holiday,2024-03-09,10:00:00,12:00:00", "always,2024-03-10,08:00:00,20:00:00"]


def rule_set(folder: Path) -> Path:
    write_dataset(folder, RULE_POLLS, RULE_HOURS, RULE_ZONES)
    write_csv(folder / "special_hours.csv", "store_id,date_local,start_time_local,end_time_local", RULE_SPECIAL)
    return folder


@pytest.mark.parametrize(
    "now", [None, "2024-03-10T12:00:00Z", "2024-03-11T17:30:00Z", "2024-11-03T09:00:00Z", "2023-01-01T00:00:00Z"]
)
def test_rule_set_in_chunks(tmp_path: Path, now: str | None) -> None:
    folder = rule_set(tmp_path / "in")
    when = None if now is None else pd.Timestamp(now)
    assert_chunks_equal_one_pass(folder, now=when)
    assert_chunks_equal_one_pass(folder, now=when, extended=True, max_gap_minutes=45)


# --- a generated set with DST, holiday hours and bad rows ------------------------------------


def generated_set(folder: Path, *, unclean: bool) -> Path:
    """150 synthetic stores over 9 days across the 2024 fall-back, with holiday hours and bad rows of every kind."""
    generate_dataset(folder, stores=150, days=9, seed=11, end=pd.Timestamp("2024-11-05 06:00", tz="UTC"))
    status = (folder / "store_status.csv").read_text().splitlines()
    header, lines = status[0], status[1:]
    ids = sorted({line.split(",")[0] for line in lines})
    rng = np.random.default_rng(5)
    stamp = "2024-11-03 07:30:00 UTC"
    bad = [
        f",active,{stamp}",  # blank id
        f"{'x' * 130},active,{stamp}",  # too long
        f"a/b,inactive,{stamp}",  # a slash
        f"zero\u200bwidth,active,{stamp}",  # a format character
        f"{ids[3]},unknown,{stamp}",  # status
        f"{ids[4]},active,yesterday",  # timestamp
        f"  {ids[5]}  ,active,2024-11-04 01:00:00 UTC",  # stripped: a good row
        f"=1+2,inactive,{stamp}",  # good ids a spreadsheet would run
        f"'quoted,active,{stamp}",
        f"{ids[6]},inactive,{lines[0].split(',')[2]}",  # a duplicate instant
    ]
    if unclean:
        bad += ["only,two", f"{ids[7]},active,{stamp},extra", ""]
    for kind in bad:
        for _ in range(int(rng.integers(3, 12))):
            lines.insert(int(rng.integers(0, len(lines) + 1)), kind)
    (folder / "store_status.csv").write_text("\n".join([header, *lines]) + "\n")
    chosen = rng.choice(ids, size=40, replace=False)
    special = [
        f"{sid},2024-11-0{1 + i % 4},{'' if i % 3 == 0 else '09:00:00'},{'' if i % 3 == 0 else '13:30:00'}"
        for i, sid in enumerate(chosen)
    ]
    write_csv(folder / "special_hours.csv", "store_id,date_local,start_time_local,end_time_local", special)
    return folder


@pytest.mark.parametrize("unclean", [False, True], ids=["arrow-path", "pandas-path"])
@pytest.mark.parametrize("slice_rows", [rows.VALIDATION_SLICE_ROWS, 97])
def test_generated_set_with_bad_rows_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unclean: bool, slice_rows: int
) -> None:
    # Small validation slices (and pandas chunks) spread the bad rows over many, as a big file does.
    monkeypatch.setattr(rows, "VALIDATION_SLICE_ROWS", slice_rows)
    monkeypatch.setattr(offline, "PANDAS_CHUNK_ROWS", min(slice_rows, offline.PANDAS_CHUNK_ROWS))
    folder = generated_set(tmp_path / "in", unclean=unclean)
    text, lines, _ = run(folder)
    # The unclean file takes the pandas parser's path, in one pass and in chunks alike.
    status = locate_sources(folder).status
    if unclean:
        with pytest.raises(UncleanFile):
            list(stream_clean_status(status, RowProblems()))
    else:
        assert sum(len(polls) for polls in stream_clean_status(status, RowProblems())) > 5_000
    assert sum("e.g." in line for line in lines) >= 25  # examples of 6-8 reasons, some with more than 5 rows
    assert text.count("\n") > 150
    assert_chunks_equal_one_pass(folder, GENERATED_CHUNK_SIZES)
    assert_chunks_equal_one_pass(folder, GENERATED_CHUNK_SIZES, now=pd.Timestamp("2024-11-03T08:00:00Z"), extended=True)


# Store-id reasons within one validation slice come in the order of the distinct ids of the whole
# file: "a/b" (line 2) before "" (line 3). In the second slice (lines 6-9) "" comes first and
# "c/d" is new: a slice read on its own would list the blank id first.
ORDER_POLLS = [
    "a/b,active,2024-10-01 00:00:00 UTC",
    ",active,2024-10-01 00:00:00 UTC",
    "s1,active,2024-10-01 00:00:00 UTC",
    "s2,nope,2024-10-01 00:00:00 UTC",
    ",active,2024-10-01 01:00:00 UTC",
    "c/d,active,2024-10-01 01:00:00 UTC",
    "s1,maybe,2024-10-01 01:00:00 UTC",
    "s2,active,2024-10-01 01:00:00 UTC",
    "s3,inactive,later",
    "e/f,active,2024-10-01 02:00:00 UTC",
]
ORDER_LINES = [  # read off the rows above: slice by slice, store-id reasons (first line first), status, timestamp
    (2, "store_id contains '/'"),
    (3, "store_id is blank"),
    (5, "status is not active or inactive"),
    (7, "store_id contains '/'"),
    (6, "store_id is blank"),
    (8, "status is not active or inactive"),
    (11, "store_id contains '/'"),  # the third slice (lines 10-11): the store-id rule before the timestamp
    (10, "timestamp_utc is not a valid timestamp"),
]


@pytest.mark.parametrize("unclean", [False, True], ids=["arrow-path", "pandas-path"])
def test_example_order_across_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unclean: bool) -> None:
    monkeypatch.setattr(rows, "VALIDATION_SLICE_ROWS", 4)
    monkeypatch.setattr(offline, "PANDAS_CHUNK_ROWS", 4)
    # A row of two fields sends the file down the pandas path, which validates it whole: reason by reason.
    folder = write_dataset(tmp_path / "in", ORDER_POLLS + (["only,two"] if unclean else []))
    text, lines, _ = run(folder)
    if unclean:
        rank = {"store_id contains": 0, "store_id is blank": 1, "status is not": 2}
        expected = [*ORDER_LINES, (12, "status is not active or inactive")]
        expected.sort(key=lambda e: (next((v for k, v in rank.items() if e[1].startswith(k)), 3), e[0]))
    else:
        expected = ORDER_LINES
    shown = [line.split(":", 2)[1:] for line in lines if "e.g." in line]
    assert [
        (int(line), text.strip()[: len(reason)]) for (line, text), (_, reason) in zip(shown, expected, strict=True)
    ] == expected
    for size in (1, 2, 10):
        assert run(folder, chunk_stores=size)[:2] == (text, lines)


def test_slices_read_on_their_own_are_put_in_one_pass_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slices validated with their own distinct ids (pandas, 4 rows each) list the blank id of the
    # second slice before "c/d"; reordered, the examples are read_status's.
    monkeypatch.setattr(rows, "VALIDATION_SLICE_ROWS", 4)
    folder = write_dataset(tmp_path / "in", ORDER_POLLS)
    source = locate_sources(folder).status
    one_pass = RowProblems()
    read_status(source, one_pass)
    pieces = RowProblems()
    for _ in iter_status_chunks(source, pieces, chunk_rows=4):
        pass
    assert pieces.counts == one_pass.counts
    assert pieces.examples != one_pass.examples
    order_status_examples(pieces, clean=True)
    assert pieces.examples == one_pass.examples


def test_memory_budget_chooses_chunks_and_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = generated_set(tmp_path / "in", unclean=False)
    text, lines, _ = run(folder)
    # A tiny budget: store chunks, each range sized by its estimated memory (here ~6 stores).
    monkeypatch.setattr(offline, "RANGE_BYTES_PER_STORE", 10 * 2**20)
    pieces: list[str] = []
    with prepare_offline_report(folder, max_memory_mb=1) as prepared:
        assert prepared.chunked and prepared.problems.summary_lines() == lines
        prepared.write(pieces.append)
        assert prepared.plan is not None and len(prepared.plan.ranges) > 20 and max(prepared.plan.ranges) <= 7
    assert "".join(pieces) == text
    with prepare_offline_report(folder) as prepared:
        assert not prepared.chunked  # the default budget: one pass


def test_spill_folder_is_removed(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    with prepare_offline_report(SAMPLE, chunk_stores=5, spill_dir=spill) as prepared:
        assert len(list(spill.iterdir())) == 1
        prepared.write(lambda _text: None)
    assert list(spill.iterdir()) == []


def test_no_valid_poll_in_chunks(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "in", [",active,2024-10-01 00:00:00 UTC", "s,active,never"])
    assert assert_chunks_equal_one_pass(folder).count("\n") == 1  # the header only
    assert_chunks_equal_one_pass(folder, now=pd.Timestamp("2024-10-01T00:00:00Z"))


# --- the command -----------------------------------------------------------------------------


def stderr_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_command_flags_give_the_same_bytes_and_warnings(tmp_path: Path) -> None:
    folder = generated_set(tmp_path / "in", unclean=True)
    one_pass = run_generate_report("--csv-dir", str(folder), "--output", "-")
    assert one_pass.returncode == 0, one_pass.stderr
    assert "store chunks" not in one_pass.stderr
    for flags in (["--chunk-stores", "5"], ["--chunk-stores", "33"], ["--max-memory-mb", "1"]):
        chunked = run_generate_report("--csv-dir", str(folder), "--output", "-", *flags)
        assert chunked.returncode == 0, chunked.stderr
        assert chunked.stdout == one_pass.stdout, flags
        assert stderr_warnings(chunked.stderr) == stderr_warnings(one_pass.stderr), flags
        assert "store chunks:" in chunked.stderr
        summary = [line for line in chunked.stderr.splitlines() if line.startswith("report:")]
        expected = [line for line in one_pass.stderr.splitlines() if line.startswith("report:")]
        assert summary[0].rsplit(",", 1)[0] == expected[0].rsplit(",", 1)[0]  # all but the time


def test_command_chunks_from_a_zip_to_a_file_and_strict(tmp_path: Path) -> None:
    folder = rule_set(tmp_path / "in")
    archive = tmp_path / "loop.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"export/{path.name}")
    one_pass, chunked = tmp_path / "one.csv", tmp_path / "chunked.csv"
    assert run_generate_report("--csv-dir", str(archive), "--output", str(one_pass)).returncode == 0
    done = run_generate_report("--csv-dir", str(archive), "--output", str(chunked), "--chunk-stores", "3")
    assert done.returncode == 0, done.stderr
    assert chunked.read_bytes() == one_pass.read_bytes()
    # --strict still refuses before anything is written (night's unknown zone and blankzone's blank one).
    out = tmp_path / "strict.csv"
    done = run_generate_report("--csv-dir", str(folder), "--output", str(out), "--chunk-stores", "3", "--strict")
    assert done.returncode == 1 and "--strict" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".strict.csv*"))
    for bad in (["--chunk-stores", "0"], ["--max-memory-mb", "0"]):
        done = run_generate_report("--csv-dir", str(folder), "--output", "-", *bad)
        assert done.returncode == 2 and "at least 1" in done.stderr


def test_a_failure_half_way_leaves_no_spill_and_no_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = offline.compute_report
    calls = []

    def second_range_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the engine failed on the second range")
        return real(*args, **kwargs)

    monkeypatch.setattr(offline, "compute_report", second_range_fails)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setenv("TMPDIR", str(spill))
    monkeypatch.setattr(offline.tempfile, "tempdir", None)  # TMPDIR is read again
    out = tmp_path / "report.csv"
    with pytest.raises(RuntimeError, match="second range"):
        call_command("generate_report", "--csv-dir", str(SAMPLE), "--output", str(out), "--chunk-stores", "20")
    assert len(calls) == 2
    assert list(spill.iterdir()) == []
    assert list(tmp_path.iterdir()) == [spill]  # neither the report nor its .partial
