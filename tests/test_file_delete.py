"""Deleting a stored file touches its chunks by ``_id`` (FerretDB scans the chunks collection for any other
filter), and still removes every chunk, also of a file cut off before its files document was written."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.database import Database

from loop.storage.files import StreamingFileWriter, delete_file, put_file
from loop.storage.schema import IMPORT_BUCKET, REPORT_BUCKET


def _chunk_filters(queries: list[Any]) -> list[Any]:
    return [q for q in queries if isinstance(q, dict) and "files_id" in q]


def test_a_report_csv_is_deleted_by_chunk_ids_only(mdb: Database, queries: list[Any]) -> None:
    data = b"x" * (3 * 255 * 1024 + 17)  # four chunks
    file_id = put_file(mdb, "r.csv", data, {}, bucket=REPORT_BUCKET)
    other = put_file(mdb, "s.csv", b"keep me", {}, bucket=REPORT_BUCKET)
    queries.clear()
    delete_file(mdb, file_id, bucket=REPORT_BUCKET)
    assert _chunk_filters(queries) == []  # no pass over the chunks by files_id
    assert mdb[f"{REPORT_BUCKET}.chunks"].count_documents({"files_id": file_id}) == 0
    assert mdb[f"{REPORT_BUCKET}.files"].count_documents({"_id": file_id}) == 0
    assert mdb[f"{REPORT_BUCKET}.chunks"].count_documents({"files_id": other}) == 1


def test_a_cut_off_upload_without_its_files_document_loses_every_chunk(mdb: Database) -> None:
    writer = StreamingFileWriter(mdb, filename="u.csv", metadata={}, bucket=IMPORT_BUCKET)
    writer.write(b"y" * (2 * 255 * 1024 + 5))  # chunks written, no files document yet
    assert mdb[f"{IMPORT_BUCKET}.chunks"].count_documents({"files_id": writer.file_id}) >= 2
    delete_file(mdb, writer.file_id, bucket=IMPORT_BUCKET)
    assert mdb[f"{IMPORT_BUCKET}.chunks"].count_documents({"files_id": writer.file_id}) == 0


def test_a_file_of_another_writer_is_deleted_in_one_pass(mdb: Database) -> None:
    file_id = ObjectId()
    mdb[f"{REPORT_BUCKET}.chunks"].insert_many([{"files_id": file_id, "n": n, "data": b"z"} for n in range(2)])
    mdb[f"{REPORT_BUCKET}.files"].insert_one({"_id": file_id, "length": 2, "chunkSize": 1})
    delete_file(mdb, file_id, bucket=REPORT_BUCKET)
    assert mdb[f"{REPORT_BUCKET}.chunks"].count_documents({"files_id": file_id}) == 0
