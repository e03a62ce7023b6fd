"""Files in the GridFS layout: report CSVs (``report_files``) and uploads of POST /imports/ (``import_files``).

Any GridFS client can read them and there is no 16 MB document limit. The
layout is written here directly because mongomock's GridFS emulation does not
work with this pymongo. Finished files never change, so each process keeps a
small cache of them. Uploads are written chunk by chunk as they arrive
(``StreamingFileWriter``) and read back the same way (``iter_file_chunks``), so
neither side holds a whole file in memory.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from bson import ObjectId
from bson.binary import Binary
from pymongo.database import Database

from loop.storage.client import batched
from loop.storage.schema import IMPORT_BUCKET, REPORT_BUCKET
from loop.timeutil import utcnow

# GridFS's default chunk size (255 KiB): safely below the 16 MB document limit.
FILE_CHUNK_BYTES = 255 * 1024
# Clients polling a Complete report then cost one MongoDB lookup (the report) instead of 2 + chunks.
CSV_CACHE_BYTES = 64 * 1024 * 1024


def put_file(
    db: Database, filename: str, data: bytes, metadata: dict[str, Any], bucket: str = REPORT_BUCKET
) -> ObjectId:
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
        db[f"{bucket}.chunks"].insert_many(list(batch), ordered=True)
    db[f"{bucket}.files"].insert_one(
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


def get_file(db: Database, file_id: ObjectId, bucket: str = REPORT_BUCKET) -> bytes:
    """A small file (a report CSV: one or two chunks) by ``_id`` lookups; large ones: ``iter_file_chunks``."""
    meta = db[f"{bucket}.files"].find_one({"_id": file_id})
    if meta is None:
        raise FileNotFoundError(f"file {file_id} is missing from {bucket}")
    parts: list[bytes] = []
    for n in range(_chunk_count(meta)):
        chunk = db[f"{bucket}.chunks"].find_one({"_id": _chunk_id(file_id, n)})
        if chunk is None:
            raise OSError(f"file {file_id} of {bucket} is missing chunk {n}")
        parts.append(bytes(chunk["data"]))
    data = b"".join(parts)
    if meta.get("compression") == "zlib":
        data = b"".join(zlib.decompress(part) for part in parts)
    if len(data) != meta["length"]:
        raise OSError(f"file {file_id} of {bucket} is truncated ({len(data)} of {meta['length']} bytes)")
    return data


def iter_file_chunks(db: Database, file_id: ObjectId, bucket: str = REPORT_BUCKET) -> Iterator[bytes]:
    """A stored file chunk by chunk, in one pass (see ``iter_files_chunks``)."""
    for _, data in iter_files_chunks(db, [file_id], bucket):
        yield data


def iter_files_chunks(db: Database, file_ids: list[ObjectId], bucket: str) -> Iterator[tuple[ObjectId, bytes]]:
    """Several stored files as (file id, chunk), each file's chunks in order, all in one pass.

    One query over the bucket's chunks in insertion order (a file's chunks are inserted in order),
    a few chunks per batch: on FerretDB's SQLite backend an ``_id`` lookup costs time in proportion
    to the rows stored before it (measured: 0.1 s for chunk 10, 1 s for chunk 400 of a 140 MB
    upload), so reading a large file one chunk at a time would be quadratic, and any other filter
    decodes the whole collection: one pass for all the files of an upload. Raises if a file is
    missing, out of order or truncated.
    """
    metas = {}
    for file_id in file_ids:
        meta = db[f"{bucket}.files"].find_one({"_id": file_id})
        if meta is None:
            raise FileNotFoundError(f"file {file_id} is missing from {bucket}")
        metas[file_id] = meta
    seen = dict.fromkeys(file_ids, 0)
    expected = dict.fromkeys(file_ids, 0)
    query = {"files_id": file_ids[0]} if len(file_ids) == 1 else {"files_id": {"$in": list(file_ids)}}
    for chunk in db[f"{bucket}.chunks"].find(query, batch_size=8):
        file_id = chunk["files_id"]
        if chunk["n"] != expected[file_id]:
            raise OSError(f"file {file_id} of {bucket}: chunk {chunk['n']} came where {expected[file_id]} was expected")
        compressed = metas[file_id].get("compression") == "zlib"
        data = zlib.decompress(chunk["data"]) if compressed else bytes(chunk["data"])
        seen[file_id] += len(data)
        expected[file_id] += 1
        yield file_id, data
    for file_id, meta in metas.items():
        if expected[file_id] != _chunk_count(meta) or seen[file_id] != meta["length"]:
            raise OSError(f"file {file_id} of {bucket} is truncated ({seen[file_id]} of {meta['length']} bytes)")


# A file of up to this many chunks has them deleted one ``_id`` lookup each: FerretDB scans the whole chunks
# collection for any other filter (a sharded report's join, deleting its parts, went from 5 s to 46 s as
# reports piled up: docs/benchmarks.md, "Scale-out").
DELETE_BY_ID_MAX_CHUNKS = 64


def delete_file(db: Database, file_id: ObjectId, bucket: str = REPORT_BUCKET) -> None:
    """Remove a file: its files document first (readers stop finding it), then its chunks: by their derived
    ``_id`` when this module wrote them, else (a cut-off upload has no files document; a file of another
    writer) in one pass over ``files_id``."""
    files, chunks = db[f"{bucket}.files"], db[f"{bucket}.chunks"]
    meta = files.find_one({"_id": file_id}, {"length": 1, "chunkSize": 1})
    files.delete_one({"_id": file_id})
    count = _chunk_count(meta) if meta is not None else None
    if count is not None and count <= DELETE_BY_ID_MAX_CHUNKS:
        if count == 0 or chunks.find_one({"_id": _chunk_id(file_id, 0)}, {"_id": 1}) is not None:
            for n in range(count):
                chunks.delete_one({"_id": _chunk_id(file_id, n)})
            return
    chunks.delete_many({"files_id": file_id})


def _chunk_count(meta: dict[str, Any]) -> int:
    return -(-int(meta["length"]) // int(meta["chunkSize"]))


class StreamingFileWriter:
    """Writes one GridFS file as its bytes arrive: at most one chunk (255 KiB) is held in memory.

    The files document is written last (``close``), so until then the file does not exist
    for any reader; ``delete_file`` removes the chunks already written (an upload cut off or refused).
    With ``compress``, each 255 KiB piece is stored zlib-compressed (level 1) and the files
    document says ``compression: "zlib"`` (``iter_file_chunks`` expands it; plain GridFS clients
    would see the compressed bytes): FerretDB decodes a stored document at about 5 MB/s, so
    CSVs (~4x smaller compressed) read back about four times faster.
    """

    def __init__(
        self,
        db: Database,
        *,
        filename: str,
        metadata: dict[str, Any],
        bucket: str = IMPORT_BUCKET,
        compress: bool = False,
    ) -> None:
        self.db = db
        self.bucket = bucket
        self.compress = compress
        self.filename = filename
        self.metadata = metadata
        self.file_id = ObjectId()
        self.length = 0
        self._buffer = bytearray()
        self._chunks = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.length += len(data)
        while len(self._buffer) >= FILE_CHUNK_BYTES:
            self._put_chunk(bytes(self._buffer[:FILE_CHUNK_BYTES]))
            del self._buffer[:FILE_CHUNK_BYTES]

    def close(self) -> ObjectId:
        """Write the last chunk and the files document; the file is complete from here on."""
        if self._buffer:
            self._put_chunk(bytes(self._buffer))
            self._buffer.clear()
        self.db[f"{self.bucket}.files"].insert_one(
            {
                "_id": self.file_id,
                "length": self.length,
                "chunkSize": FILE_CHUNK_BYTES,
                "uploadDate": utcnow(),
                "filename": self.filename,
                "metadata": self.metadata,
                **({"compression": "zlib"} if self.compress else {}),
            }
        )
        return self.file_id

    def _put_chunk(self, data: bytes) -> None:
        n = self._chunks
        if self.compress:
            data = zlib.compress(data, 1)
        self.db[f"{self.bucket}.chunks"].insert_one(
            {"_id": _chunk_id(self.file_id, n), "files_id": self.file_id, "n": n, "data": Binary(data)}
        )
        self._chunks += 1


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
