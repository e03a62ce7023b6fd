"""The CSV reader: messy files are read row by row, bad rows reported with file and line."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from loop.sources.locate import CsvSource, locate_sources
from loop.sources.problems import InputFileError, RowProblems
from loop.sources.read import iter_status_chunks, read_hours, read_special_hours, read_status, read_zones
from loop.sources.validate import dedupe_polls
from tests.support.store_ids import NOT_PRINTABLE, NOT_UTF8, REFUSED_STORE_IDS, SLASH, TOO_LONG

GOOD_HOURS = "store_id,dayOfWeek,start_time_local,end_time_local\ns1,0,09:00:00,17:00:00\n"
GOOD_ZONES = "store_id,timezone_str\ns1,America/Chicago\n"
GOOD_STATUS = "store_id,status,timestamp_utc\ns1,active,2024-10-03 23:33:20.412748 UTC\n"


def write_set(
    folder: Path,
    status: bytes | str = GOOD_STATUS,
    hours: bytes | str = GOOD_HOURS,
    zones: bytes | str = GOOD_ZONES,
    hours_name: str = "menu_hours.csv",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("store_status.csv", status), (hours_name, hours), ("timezones.csv", zones)):
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def by_line(problems: RowProblems) -> dict[int, str]:
    return {p.line: p.reason for p in problems.examples}


def test_bad_status_rows_are_skipped_with_line_and_reason(tmp_path: Path) -> None:
    status = (
        "store_id,status,timestamp_utc\n"
        "s1,active,2024-10-03 23:33:20.412748 UTC\n"  # line 2: good
        "s1,active,yesterday\n"  # 3
        "s1,active,2023-13-45 99:00:00 UTC\n"  # 4
        "s1,active,\n"  # 5
        "s1,sleeping,2024-10-03 23:33:20 UTC\n"  # 6
        ",active,2024-10-03 23:33:20 UTC\n"  # 7
        "s2,inactive,2024-10-03T23:34:00Z\n"  # 8: good, ISO form
        "s3,active,2024-10-03 23:35:00.5+00:00\n"  # 9: good, offset form
        "s4,inactive,2024-10-03 23:36:00 UTC\n"  # 10: good, no fraction
    )
    sources = locate_sources(write_set(tmp_path, status=status))
    problems = RowProblems()
    polls = read_status(sources.status, problems)

    assert list(polls["store_id"].astype(str)) == ["s1", "s2", "s3", "s4"]
    assert list(polls["timestamp_utc"]) == [
        pd.Timestamp("2024-10-03 23:33:20.412748", tz="UTC"),
        pd.Timestamp("2024-10-03 23:34:00", tz="UTC"),
        pd.Timestamp("2024-10-03 23:35:00.5", tz="UTC"),
        pd.Timestamp("2024-10-03 23:36:00", tz="UTC"),
    ]
    lines = by_line(problems)
    assert set(lines) == {3, 4, 5, 6, 7}
    assert "timestamp" in lines[3] and "'yesterday'" in lines[3]
    assert "timestamp" in lines[4] and "timestamp" in lines[5]
    assert "status" in lines[6] and "'sleeping'" in lines[6]
    assert "store_id is blank" in lines[7]
    assert problems.total == 5
    assert all(p.file.endswith("store_status.csv") for p in problems.examples)


def test_bom_crlf_quotes_extra_columns_and_no_trailing_newline(tmp_path: Path) -> None:
    status = (
        b"\xef\xbb\xbfstore_id,status,timestamp_utc,comment\r\n"
        b'"s1","active","2024-10-03 23:33:20 UTC","a, quoted, comment"\r\n'
        b"s2,inactive,2024-10-03 23:40:00 UTC,x"
    )
    sources = locate_sources(write_set(tmp_path, status=status))
    problems = RowProblems()
    polls = read_status(sources.status, problems)
    assert problems.total == 0
    assert list(polls["store_id"].astype(str)) == ["s1", "s2"]
    assert list(polls["status"].astype(str)) == ["active", "inactive"]


def test_non_utf8_bytes_blank_lines_and_long_fields_keep_line_numbers(tmp_path: Path) -> None:
    long_id = "x" * 5000
    status = (
        b"store_id,status,timestamp_utc\n"
        b"s1,active,2024-10-03 23:33:20 UTC\n"  # 2 good
        b"s\xff\xfe2,active,2024-10-03 23:33:20 UTC\n"  # 3 bad bytes
        b"\n" + long_id.encode() + b",active,2024-10-03 23:33:20 UTC\n"  # 4 blank: ignored silently  # 5 too long
        b"s3,active,2024-10-03 23:33:20 UTC,extra,fields\n"  # 6 extra fields: ignored
        b"s4,inactive\n"  # 7 too few fields
        b"s5,inactive,2024-10-03 23:33:20 UTC\n"  # 8 good
    )
    sources = locate_sources(write_set(tmp_path, status=status))
    problems = RowProblems()
    polls = read_status(sources.status, problems)
    assert list(polls["store_id"].astype(str)) == ["s1", "s3", "s5"]
    lines = by_line(problems)
    assert set(lines) == {3, 5, 7}
    assert "UTF-8" in lines[3]
    assert "longer than" in lines[5]
    assert "timestamp" in lines[7]


def test_hours_rows_validated(tmp_path: Path) -> None:
    hours = (
        "store_id,day,start_time_local,end_time_local\n"  # 2023 header name `day`
        "s1,0,09:00,17:30:00\n"  # 2 good (HH:MM)
        "s1,7,09:00:00,17:00:00\n"  # 3 day out of range
        "s1,mon,09:00:00,17:00:00\n"  # 4 not a number
        "s1,1,25:00:00,17:00:00\n"  # 5 impossible clock
        "s1,2,09:00:00,noon\n"  # 6 not a clock
        "s1,3,22:00:00,02:00:00\n"  # 7 good overnight
        "s1,-1,09:00:00,17:00:00\n"  # 8 negative day
        "s1,4.5,09:00:00,17:00:00\n"  # 9 fractional day
    )
    sources = locate_sources(write_set(tmp_path, hours=hours, hours_name="business_hours.csv"))
    problems = RowProblems()
    frame = read_hours(sources.hours, problems)
    assert frame.to_dict("list") == {
        "store_id": ["s1", "s1"],
        "day_of_week": [0, 3],
        "start_seconds": [9 * 3600, 22 * 3600],
        "end_seconds": [17 * 3600 + 30 * 60, 2 * 3600],
    }
    lines = by_line(problems)
    assert set(lines) == {3, 4, 5, 6, 8, 9}
    assert "dayOfWeek" in lines[3] and "dayOfWeek" in lines[4]
    assert "start_time_local" in lines[5] and "end_time_local" in lines[6]


def test_zones_unknown_and_blank_fall_back_with_a_warning(tmp_path: Path) -> None:
    zones = "store_id,timezone_str\ns1,Asia/Kolkata\ns2,Mars/Base\ns3,\n"
    sources = locate_sources(write_set(tmp_path, zones=zones))
    problems = RowProblems()
    frame = read_zones(sources.zones, problems)
    assert frame.to_dict("list") == {"store_id": ["s1"], "timezone_str": ["Asia/Kolkata"]}
    lines = by_line(problems)
    assert "Mars/Base" in lines[3] and "America/Chicago" in lines[3]
    assert "blank" in lines[4]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (b"", "empty"),
        (b"store_id,status\ns1,active\n", "timestamp_utc"),
    ],
)
def test_empty_file_or_missing_column_is_an_input_error(tmp_path: Path, status: bytes, message: str) -> None:
    sources = locate_sources(write_set(tmp_path, status=status))
    with pytest.raises(InputFileError, match=message):
        read_status(sources.status, RowProblems())


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    folder = write_set(tmp_path)
    (folder / "timezones.csv").unlink()
    with pytest.raises(InputFileError, match="timezones.csv"):
        locate_sources(folder)
    with pytest.raises(InputFileError, match="does not exist"):
        locate_sources(tmp_path / "nowhere")


def test_zip_with_subfolder_and_alternative_names(tmp_path: Path) -> None:
    archive = tmp_path / "loop.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("export/store_status.csv", GOOD_STATUS)
        zf.writestr("export/business_hours.csv", GOOD_HOURS)
        zf.writestr("export/store_timezones.csv", GOOD_ZONES)
    sources = locate_sources(archive)
    problems = RowProblems()
    assert len(read_status(sources.status, problems)) == 1
    assert len(read_hours(sources.hours, problems)) == 1
    assert len(read_zones(sources.zones, problems)) == 1
    assert "loop.zip" in sources.status.name


def test_store_ids_stay_strings(tmp_path: Path) -> None:
    status = "store_id,status,timestamp_utc\n0012345678901234567,active,2024-10-03 23:33:20 UTC\n"
    sources = locate_sources(write_set(tmp_path, status=status))
    polls = read_status(sources.status, RowProblems())
    assert polls["store_id"].astype(str).tolist() == ["0012345678901234567"]


def test_dedupe_polls_inactive_wins() -> None:
    ts = pd.Timestamp("2024-10-03 23:33:20", tz="UTC")
    polls = pd.DataFrame(
        {
            "store_id": ["a", "a", "a", "b", "b"],
            "status": ["active", "inactive", "active", "active", "active"],
            "timestamp_utc": [ts, ts, ts + pd.Timedelta(seconds=1), ts, ts],
        }
    )
    result = dedupe_polls(polls)
    assert sorted(zip(result["store_id"], result["status"], result["timestamp_utc"], strict=True)) == [
        ("a", "active", ts + pd.Timedelta(seconds=1)),
        ("a", "inactive", ts),
        ("b", "active", ts),
    ]


def test_many_bad_rows_keep_counts_but_few_examples(tmp_path: Path) -> None:
    rows = "".join(f"s{i},active,not-a-time\n" for i in range(1000))
    sources = locate_sources(write_set(tmp_path, status="store_id,status,timestamp_utc\n" + rows))
    problems = RowProblems()
    assert len(read_status(sources.status, problems)) == 0
    assert problems.total == 1000
    assert len(problems.examples) <= 5
    assert any("1000 row(s) skipped" in line for line in problems.summary_lines())


# --- the store-id rule in every reader -----------------------------------------------------

# An unquoted line break ends a CSV row: those ids come quoted, last (a quoted row counts as one line).
ONE_LINE_REFUSED = [store_id for store_id in REFUSED_STORE_IDS if "\n" not in store_id and "\r" not in store_id]
ROW_TAIL = {
    "status": ",active,2024-10-03 23:33:20 UTC",
    "hours": ",0,09:00,17:00",
    "zones": ",America/Denver",
    "special": ",2024-12-25,,",
}
HEADERS = {
    "status": "store_id,status,timestamp_utc",
    "hours": "store_id,dayOfWeek,start_time_local,end_time_local",
    "zones": "store_id,timezone_str",
    "special": "store_id,date_local,start_time_local,end_time_local",
}


def read_kind(kind: str, path: Path, problems: RowProblems, chunk_rows: int | None) -> pd.DataFrame:
    source = CsvSource(path.name, lambda: path.open("rb"))
    if kind == "status":
        return pd.concat(list(iter_status_chunks(source, problems, chunk_rows=chunk_rows)))
    return {"hours": read_hours, "zones": read_zones, "special": read_special_hours}[kind](source, problems)


@pytest.mark.parametrize(
    ("kind", "chunk_rows"), [("status", None), ("status", 3), ("hours", None), ("zones", None), ("special", None)]
)
def test_every_reader_refuses_the_ids_a_path_refuses(tmp_path: Path, kind: str, chunk_rows: int | None) -> None:
    # Line 2 good, then one refused id per line (surrounding spaces stripped first), a good one last.
    ids = ["good1", *(f" {store_id} " for store_id in ONE_LINE_REFUSED), "good2", '"line\nbreak"', '"car\rriage"']
    text = HEADERS[kind] + "\n" + "".join(f"{store_id}{ROW_TAIL[kind]}\n" for store_id in ids)
    path = tmp_path / "file.csv"
    path.write_bytes(text.encode().replace("\ufffd".encode(), b"\xff"))
    problems = RowProblems()
    frame = read_kind(kind, path, problems, chunk_rows)
    assert sorted(frame["store_id"].astype(str)) == ["good1", "good2"]
    assert problems.counts == {NOT_PRINTABLE: 7, SLASH: 1, NOT_UTF8: 1, TOO_LONG: 1}
    # Five examples per reason, each with the id as read.
    assert {p.line: p.reason for p in problems.examples} == {
        3: f"{NOT_PRINTABLE}: 'nul\\x00id'",
        4: f"{NOT_PRINTABLE}: 'tab\\there'",
        5: f"{NOT_PRINTABLE}: 'del\\x7fid'",
        6: f"{NOT_PRINTABLE}: 'zero\\u200bwidth'",
        7: f"{NOT_PRINTABLE}: 'right\\u202eleft'",
        8: f"{SLASH}: 'a/b'",
        9: f"{NOT_UTF8}: 'bad\ufffdbytes'",
        10: f"{TOO_LONG}: '{'x' * 40}...'",
    }
