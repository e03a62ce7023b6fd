"""Uploading files to POST /imports/ over real HTTP, streamed from disk (the integration tests and the benchmark).

``MultipartBody`` is a ``multipart/form-data`` body read piece by piece from the files, with a known
length: requests sends it with a Content-Length (a chunked body is refused with 411) and never
holds a 140 MB upload in memory.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import requests

from tests.support.polling import wait_for_report

READ_BYTES = 1 << 20


class MultipartBody:
    """``multipart/form-data`` of file parts ``(field, file name, path)``, read lazily in order."""

    def __init__(self, parts: list[tuple[str, str, Path]]) -> None:
        self.boundary = f"loop-{uuid.uuid4().hex}"
        self._pieces: list[bytes | Path] = []
        for field, name, path in parts:
            head = (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            self._pieces += [head.encode(), path, b"\r\n"]
        self._pieces.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in self._pieces)
        self._index = 0
        self._current: io.BufferedReader | io.BytesIO | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        size = READ_BYTES if size is None or size < 0 else size
        while self._index < len(self._pieces):
            if self._current is None:
                piece = self._pieces[self._index]
                self._current = io.BytesIO(piece) if isinstance(piece, bytes) else open(piece, "rb")  # noqa: SIM115
            data = self._current.read(size)
            if data:
                return data
            self._current.close()
            self._current, self._index = None, self._index + 1
        return b""

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes of the body (for a client that goes away half-way)."""
        out = bytearray()
        while len(out) < n:
            data = self.read(min(READ_BYTES, n - len(out)))
            if not data:
                break
            out += data
        return bytes(out)


def zip_folder(folder: Path, target: Path, inner: str = "loop-export/") -> Path:
    """The folder's CSVs zipped as a Loop export (inside ``inner``), deflated."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.glob("*.csv")):
            archive.write(path, f"{inner}{path.name}")
    return target


def csv_parts(folder: Path) -> list[tuple[str, str, Path]]:
    """The three CSV fields of a Loop folder."""
    hours = folder / "menu_hours.csv"
    if not hours.exists():
        hours = folder / "business_hours.csv"
    return [
        ("store_status", "store_status.csv", folder / "store_status.csv"),
        ("business_hours", hours.name, hours),
        ("timezones", "timezones.csv", folder / "timezones.csv"),
    ]


def post_upload(
    base_url: str, parts: list[tuple[str, str, Path]], headers: dict[str, str] | None = None, timeout: float = 600
) -> requests.Response:
    body = MultipartBody(parts)
    return requests.post(
        f"{base_url}/imports/",
        data=body,
        headers={**(headers or {}), "Content-Type": body.content_type, "Content-Length": str(len(body))},
        timeout=timeout,
    )


def wait_for_import(
    base_url: str, import_id: str, headers: dict[str, str] | None = None, timeout: float = 300, interval: float = 0.2
) -> dict[str, Any]:
    """Poll GET /imports/<id>/ until it leaves Running; its final body."""

    def fetch() -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{base_url}/imports/{import_id}/", headers=headers or {}, timeout=30)
        return response.status_code, response.json()

    return wait_for_report(fetch, timeout=timeout, interval=interval, label=f"import {import_id}")
