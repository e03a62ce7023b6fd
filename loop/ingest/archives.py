"""Expanding an uploaded Loop ``.zip`` safely (pure: zipfile only; used by ``services.imports``).

Only the members the loader uses are expanded (``sources.locate.zip_members``: by base name,
in any folder). Zip bombs are refused twice over: before anything is expanded, from the
sizes the zip declares (total above ``max_expanded_bytes``, or a member whose declared
expansion ratio is above ``max_ratio``); and while expanding, from the bytes actually
written, since a zip's headers can lie.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from loop.sources.locate import SOURCE_NAMES, looked_for, zip_members

READ_BYTES = 1 << 20


class ArchiveRefused(Exception):
    """The upload cannot be used (not a zip, nothing usable in it, a zip bomb); the message is for the user."""


def unpack_sources(
    zip_path: Path, dest: Path, *, max_expanded_bytes: int, max_ratio: float, display_name: str
) -> dict[str, tuple[Path, str]]:
    """Expand the usable members into ``dest``: kind -> (path, ``display_name:member``)."""
    if not zipfile.is_zipfile(zip_path):
        raise ArchiveRefused(f"{display_name} is not a zip file")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            members = zip_members(list(infos))
            if not members:
                raise ArchiveRefused(f"no usable file in {display_name}: looked for {looked_for()} (in any folder)")
            chosen = {kind: infos[member] for kind, member in members.items()}
            _check_declared(chosen.values(), max_expanded_bytes, max_ratio, display_name)
            expanded: dict[str, tuple[Path, str]] = {}
            total = 0
            for kind, info in chosen.items():
                target = dest / SOURCE_NAMES[kind][0]
                total = _expand(archive, info, target, total, max_expanded_bytes, max_ratio, display_name)
                expanded[kind] = (target, f"{display_name}:{info.filename}")
            return expanded
    except ArchiveRefused:
        raise
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError) as exc:
        # A corrupt member (CRC), an unsupported compression method, an encrypted member.
        raise ArchiveRefused(f"{display_name} is a broken zip file: {exc}") from None


def _check_declared(
    infos: Iterable[zipfile.ZipInfo], max_expanded_bytes: int, max_ratio: float, display_name: str
) -> None:
    members = list(infos)
    declared = sum(info.file_size for info in members)
    if declared > max_expanded_bytes:
        raise ArchiveRefused(
            f"zip bomb refused: the files of {display_name} would expand to {declared} bytes, above the limit of "
            f"{max_expanded_bytes} (IMPORT_MAX_EXPANDED_BYTES)"
        )
    for info in members:
        if info.flag_bits & 0x1:
            raise ArchiveRefused(f"{display_name}:{info.filename} is encrypted")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > max_ratio:
            raise ArchiveRefused(
                f"zip bomb refused: {display_name}:{info.filename} would expand {ratio:.0f} times, above the limit "
                f"of {max_ratio:g} (IMPORT_MAX_COMPRESSION_RATIO)"
            )


def _expand(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    total: int,
    max_expanded_bytes: int,
    max_ratio: float,
    display_name: str,
) -> int:
    """Copy one member to ``target``, counting the bytes it really expands to; the new running total."""
    written = 0
    with archive.open(info) as source, open(target, "wb") as out:
        while chunk := source.read(READ_BYTES):
            written += len(chunk)
            total += len(chunk)
            if total > max_expanded_bytes or written > max_ratio * max(info.compress_size, 1):
                raise ArchiveRefused(
                    f"zip bomb refused: {display_name}:{info.filename} expanded past its limits "
                    f"({written} bytes from {info.compress_size}; IMPORT_MAX_EXPANDED_BYTES, "
                    "IMPORT_MAX_COMPRESSION_RATIO)"
                )
            out.write(chunk)
    return total
