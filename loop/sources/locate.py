"""Finding the Loop CSV files in a folder or a ``.zip``: which names each kind of file may have."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from loop.sources.problems import InputFileError

STATUS_NAMES = ("store_status.csv",)

HOURS_NAMES = ("menu_hours.csv", "business_hours.csv")
ZONES_NAMES = ("timezones.csv", "store_timezones.csv")
SPECIAL_NAMES = ("special_hours.csv",)  # optional: holiday hours
STORES_NAMES = ("stores.csv",)  # optional: the store directory (names, brands, regions)
# Each kind of file and the names it may have (in a folder, or anywhere inside a zip).
SOURCE_NAMES = {
    "status": STATUS_NAMES,
    "hours": HOURS_NAMES,
    "zones": ZONES_NAMES,
    "special": SPECIAL_NAMES,
    "stores": STORES_NAMES,
}
# The kinds a full data set must have (holiday hours and the store directory are optional).
REQUIRED_KINDS = ("status", "hours", "zones")


@dataclass
class CsvSource:
    """One CSV file, in a folder or inside a zip."""

    name: str
    opener: Callable[[], BinaryIO]
    size: int | None = None  # bytes of the CSV text (a zip member: uncompressed), when known

    def open(self) -> BinaryIO:
        return self.opener()


@dataclass
class SourceSet:
    status: CsvSource
    hours: CsvSource
    zones: CsvSource
    special: CsvSource | None = None  # special_hours.csv when present (holiday hours are optional)
    stores: CsvSource | None = None  # stores.csv when present (the store directory is optional)


def locate_sources(path: str | Path) -> SourceSet:
    """Find the three files (and the optional ``special_hours.csv`` and ``stores.csv``) in a folder or a Loop ``.zip``.

    Zip members may sit in a subfolder.
    """
    found = find_sources(path)
    for kind in REQUIRED_KINDS:
        if kind not in found:
            raise InputFileError(f"missing file: none of {', '.join(SOURCE_NAMES[kind])} in {path}")
    return SourceSet(
        status=found["status"],
        hours=found["hours"],
        zones=found["zones"],
        special=found.get("special"),
        stores=found.get("stores"),
    )


def find_sources(path: str | Path) -> dict[str, CsvSource]:
    """The kinds of file (``SOURCE_NAMES``) present in a folder or a Loop ``.zip``; absent kinds are left out."""
    path = Path(path)
    found: dict[str, CsvSource] = {}
    if path.is_dir():
        for kind, names in SOURCE_NAMES.items():
            for name in names:
                candidate = path / name
                if candidate.is_file():
                    found[kind] = CsvSource(
                        str(candidate), partial(_open_file, candidate), size=candidate.stat().st_size
                    )
                    break
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = zip_members(archive.namelist())
            sizes = {member: archive.getinfo(member).file_size for member in members.values()}
        for kind, member in members.items():
            found[kind] = CsvSource(f"{path}:{member}", partial(_open_member, path, member), size=sizes[member])
    elif path.exists():
        raise InputFileError(f"{path} is neither a folder nor a zip file")
    else:
        raise InputFileError(f"missing input: {path} does not exist")
    return found


def zip_members(names: list[str]) -> dict[str, str]:
    """Which member of a zip holds each kind of file: matched by its base name, in any folder."""
    by_name = {Path(m).name.lower(): m for m in names if not m.endswith("/")}
    members: dict[str, str] = {}
    for kind, accepted in SOURCE_NAMES.items():
        for name in accepted:
            if name in by_name:
                members[kind] = by_name[name]
                break
    return members


def looked_for() -> str:
    """The file names a folder or zip is searched for, for messages."""
    return "; ".join(" or ".join(names) for names in SOURCE_NAMES.values())


def _open_file(path: Path) -> BinaryIO:
    return open(path, "rb")


def _open_member(path: Path, member: str) -> BinaryIO:
    with zipfile.ZipFile(path) as archive:
        # Members are read into memory; a zip member stream cannot seek back for the header.
        return io.BytesIO(archive.read(member))
