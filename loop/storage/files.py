"""Report CSVs in the GridFS layout (``report_files.files`` / ``report_files.chunks``).

Any GridFS client can read them and there is no 16 MB document limit. The
layout is written here directly because mongomock's GridFS emulation does not
work with this pymongo. Finished files never change, so each process keeps a
small cache of them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from bson import ObjectId
from bson.binary import Binary
from pymongo.database import Database

from loop.storage.client import batched
from loop.storage.schema import REPORT_CHUNKS, REPORT_FILES
from loop.timeutil import utcnow

# GridFS's default chunk size (255 KiB): safely below the 16 MB document limit.
FILE_CHUNK_BYTES = 255 * 1024
# Clients polling a Complete report then cost one MongoDB lookup (the report) instead of 2 + chunks.
CSV_CACHE_BYTES = 64 * 1024 * 1024


def put_file(db: Database, filename: str, data: bytes, metadata: dict[str, Any]) -> ObjectId:
    """Write ``data`` as a GridFS file (chunks first, then the files document)."""
    file_id = ObjectId()
    docs = [
        {
            # GridFS readers find chunks by (files_id, n); the _id derived from
            # them lets this module read a chunk by _id, an index lookup even on FerretDB.
            "_id": _chunk_id(file_id, n),
            "files_id": file_id,
            "n": n,
            "data": Binary(data[offset : offset + FILE_CHUNK_BYTES]),
        }
        for n, offset in enumerate(range(0, len(data), FILE_CHUNK_BYTES))
    ]
    # A chunk is ~255 KiB: insert a few per call to keep messages small.
    for batch in batched(docs, 32):
        db[REPORT_CHUNKS].insert_many(list(batch), ordered=True)
    db[REPORT_FILES].insert_one(
        {
            "_id": file_id,
            "length": len(data),
            "chunkSize": FILE_CHUNK_BYTES,
            "uploadDate": utcnow(),
            "filename": filename,
            "metadata": metadata,
        }
    )
    return file_id


def get_file(db: Database, file_id: ObjectId) -> bytes:
    meta = db[REPORT_FILES].find_one({"_id": file_id})
    if meta is None:
        raise FileNotFoundError(f"report file {file_id} is missing")
    parts: list[bytes] = []
    for n in range(-(-int(meta["length"]) // int(meta["chunkSize"]))):
        chunk = db[REPORT_CHUNKS].find_one({"_id": _chunk_id(file_id, n)})
        if chunk is None:
            raise OSError(f"report file {file_id} is missing chunk {n}")
        parts.append(bytes(chunk["data"]))
    data = b"".join(parts)
    if len(data) != meta["length"]:
        raise OSError(f"report file {file_id} is truncated ({len(data)} of {meta['length']} bytes)")
    return data


def delete_file(db: Database, file_id: ObjectId) -> None:
    db[REPORT_FILES].delete_one({"_id": file_id})
    db[REPORT_CHUNKS].delete_many({"files_id": file_id})


def _chunk_id(file_id: ObjectId, n: int) -> str:
    return f"{file_id}-{n:06d}"


class _TextCache:
    """An LRU of decoded files, bounded in characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            text = self._items.get(key)
            if text is not None:
                self._items.move_to_end(key)
            return text

    def put(self, key: tuple[str, str], text: str) -> None:
        if len(text) > self.limit // 4:
            return
        with self._lock:
            if key not in self._items:
                self._items[key] = text
                self._size += len(text)
            while self._size > self.limit:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


_csv_cache = _TextCache(CSV_CACHE_BYTES)


def read_text_file(db: Database, file_id: ObjectId) -> str:
    """A stored UTF-8 file as text, from this process's cache when it was read before."""
    key = (db.name, str(file_id))
    text = _csv_cache.get(key)
    if text is None:
        text = get_file(db, file_id).decode("utf-8")
        _csv_cache.put(key, text)
    return text
