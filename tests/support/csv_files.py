"""Helpers for the service tests: write small Loop-shaped CSV sets by hand."""

from __future__ import annotations

from pathlib import Path

STATUS_HEADER = "store_id,status,timestamp_utc"
HOURS_HEADER = "store_id,dayOfWeek,start_time_local,end_time_local"
ZONES_HEADER = "store_id,timezone_str"


def write_csv(path: Path, header: str, rows: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(newline.join([header, *rows]) + newline, encoding="utf-8")
    return path


def write_dataset(
    folder: Path,
    polls: list[str],
    hours: list[str] | None = None,
    zones: list[str] | None = None,
) -> Path:
    """Write the three Loop CSVs (rows given as CSV lines without header)."""
    write_csv(folder / "store_status.csv", STATUS_HEADER, polls)
    write_csv(folder / "menu_hours.csv", HOURS_HEADER, hours or [])
    write_csv(folder / "timezones.csv", ZONES_HEADER, zones or [])
    return folder
