"""POST /imports/ and GET /imports/...: uploads streamed to GridFS and loaded by the (embedded) worker.

mongomock and the embedded worker; the real stack (gunicorn, Celery, FerretDB, Redis) is in
tests/integration/test_imports_http.py. Expected figures are counted by hand from the rows written here.
"""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.ingest import load_found_sources
from loop.sources.locate import locate_sources
from loop.sources.problems import RowProblems
from loop.storage.schema import IMPORT_CHUNKS, IMPORT_FILES, IMPORT_UPLOADS, IMPORTS
from tests.support.api import VALID_ID, assert_json_error
from tests.support.csv_files import HOURS_HEADER, STATUS_HEADER, ZONES_HEADER, write_dataset

POLLS = [
    "s1,active,2024-10-14 10:14:00.5 UTC",
    "s1,inactive,2024-10-14 11:15:00 UTC",
    "s2,active,2024-10-13 09:00:00 UTC",
    "s2,active,2024-10-13 09:00:00 UTC",  # a repeat: one duplicate
    "s3,sleeping,2024-10-14 10:00:00 UTC",  # rejected, line 6
]
HOURS = ["s1,0,09:00:00,12:00:00", "s2,6,08:00:00,20:00:00", "s2,9,08:00:00,20:00:00"]  # day 9 rejected, line 4
ZONES = ["s1,America/Chicago", "s2,Asia/Tokyo"]


def csv_text(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def loop_zip(folder: str = "data/", **members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{folder}{name}", data)
    return buffer.getvalue()


def full_zip() -> bytes:
    return loop_zip(
        **{
            "store_status.csv": csv_text(STATUS_HEADER, POLLS),
            "menu_hours.csv": csv_text(HOURS_HEADER, HOURS),
            "timezones.csv": csv_text(ZONES_HEADER, ZONES),
        }
    )


def upload(api: APIClient, **files: bytes | str) -> Any:
    """POST /imports/ as multipart with each keyword a file part (a str value is a plain form field)."""
    data = {
        name: value if isinstance(value, str) else SimpleUploadedFile(f"{name}.bin", value)
        for name, value in files.items()
    }
    return api.post("/imports/", data, format="multipart")


def wait_import(api: APIClient, import_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"/imports/{import_id}/")
        assert response.status_code == 200, response.content
        body = response.json()
        if body["status"] != "Running":
            return body
        assert time.monotonic() < deadline, f"import still Running: {body}"
        time.sleep(0.02)


def started(response: Any) -> str:
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "Running" and body["url"] == f"/imports/{body['import_id']}/"
    assert response["Location"] == body["url"]
    return body["import_id"]


def upload_files_left(mdb: Database) -> tuple[int, int, int]:
    """Files documents, chunks and in-progress notes of uploads still stored."""
    return (
        mdb[IMPORT_FILES].count_documents({}),
        mdb[IMPORT_CHUNKS].count_documents({}),
        mdb[IMPORT_UPLOADS].count_documents({}),
    )


def test_three_csvs_load_like_load_data_and_the_summary_counts_them(api: APIClient, mdb: Database) -> None:
    response = upload(
        api,
        store_status=csv_text(STATUS_HEADER, POLLS),
        business_hours=csv_text(HOURS_HEADER, HOURS),
        timezones=csv_text(ZONES_HEADER, ZONES),
    )
    body = wait_import(api, started(response))
    assert body["status"] == "Complete", body
    assert body["phase"] == "done" and body["error"] is None and body["finished_at"]
    assert [f["name"] for f in body["files"]] == ["store_status.bin", "business_hours.bin", "timezones.bin"]
    assert body["files"][0]["bytes"] == len(csv_text(STATUS_HEADER, POLLS))
    summary = body["summary"]
    # By hand: 5 rows, 4 valid, 3 distinct polls, 1 repeat, 1 bad status; hours 3 rows, 1 bad day.
    assert summary["status_rows_read"] == 5
    assert summary["polls_inserted"] == 3
    assert summary["polls_duplicates"] == 1
    assert summary["rejected"] == 2
    assert (summary["hours_rows_read"], summary["hours_rows_loaded"], summary["hours_stores"]) == (3, 2, 2)
    assert (summary["zones_rows_read"], summary["zones_rows_loaded"], summary["zones_stores"]) == (2, 2, 2)
    assert summary["lines"][0] == "store_status.bin: 5 rows read, 3 inserted, 1 duplicates (0 set inactive), 1 rejected"
    assert {(p["file"], p["line"]) for p in summary["problems"]} == {("store_status.bin", 6), ("business_hours.bin", 4)}
    assert body["progress"] == {"rows": 5, "file": None}
    # What was stored: the polls a load of the same files gives.
    assert len(storage.read_all_polls(mdb)) == 3
    assert storage.read_zones(mdb).set_index("store_id")["timezone_str"].to_dict() == {
        "s1": "America/Chicago",
        "s2": "Asia/Tokyo",
    }
    # The upload is removed from GridFS once the import has ended.
    assert upload_files_left(mdb) == (0, 0, 0)


def test_holiday_hours_upload_alone_replaces_the_named_stores_rows(api: APIClient, mdb: Database) -> None:
    rows = ["s1,2024-12-25,,", "s1,2024-12-31,18:00,02:00", "s2,2024-13-01,09:00,10:00"]  # line 4: no month 13
    response = upload(api, special_hours=csv_text("store_id,date_local,start_time_local,end_time_local", rows))
    body = wait_import(api, started(response))
    assert body["status"] == "Complete", body
    summary = body["summary"]
    assert summary["lines"][0] == "special_hours.bin: 3 rows read, 2 loaded for 1 stores, 1 rejected"
    assert [(p["file"], p["line"]) for p in summary["problems"]] == [("special_hours.bin", 4)]
    stored = storage.read_special_hours(mdb).sort_values("date_local")
    assert stored["date_local"].tolist() == ["2024-12-25", "2024-12-31"]
    assert stored["start_seconds"].isna().tolist() == [True, False]
    assert stored["start_seconds"].tolist()[1] == 18 * 3600 and stored["end_seconds"].tolist()[1] == 2 * 3600


def test_a_loop_zip_with_its_files_in_a_folder_loads_and_again_inserts_nothing(api: APIClient, mdb: Database) -> None:
    first = wait_import(api, started(upload(api, archive=full_zip())))
    assert first["status"] == "Complete", first
    assert first["summary"]["polls_inserted"] == 3
    assert first["summary"]["lines"][0].startswith("archive.bin:data/store_status.csv: 5 rows read")
    again = wait_import(api, started(upload(api, archive=full_zip())))
    assert again["status"] == "Complete"
    assert again["summary"]["polls_inserted"] == 0 and again["summary"]["polls_duplicates"] == 4
    assert upload_files_left(mdb) == (0, 0, 0)


def test_only_the_status_file_leaves_hours_and_zones_as_stored(api: APIClient, mdb: Database) -> None:
    wait_import(api, started(upload(api, archive=full_zip())))
    body = wait_import(
        api, started(upload(api, store_status=csv_text(STATUS_HEADER, ["s9,active,2024-10-14 12:00:00 UTC"])))
    )
    assert body["status"] == "Complete", body
    assert body["summary"]["polls_inserted"] == 1
    assert len(body["summary"]["lines"]) == 2  # the status line and "done in"
    assert len(storage.read_zones(mdb)) == 2  # untouched


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (b"PK\x03\x04 but not really a zip", "archive.bin is not a zip file"),
        (b"store_id,status,timestamp_utc\n", "archive.bin is not a zip file"),
        (
            loop_zip(**{"readme.txt": b"hello", "polls.csv": csv_text(STATUS_HEADER, POLLS)}),
            "no usable file in archive.bin: looked for store_status.csv; menu_hours.csv or business_hours.csv; "
            "timezones.csv or store_timezones.csv; special_hours.csv; stores.csv (in any folder)",
        ),
    ],
    ids=["zip-magic-only", "csv-as-archive", "no-usable-member"],
)
def test_an_unusable_archive_fails_the_import_with_the_reason(
    api: APIClient, mdb: Database, archive: bytes, reason: str
) -> None:
    body = wait_import(api, started(upload(api, archive=archive)))
    assert body["status"] == "Failed"
    assert body["error"] == reason
    assert body["phase"] == "unpacking" and body["summary"] is None
    assert len(storage.read_all_polls(mdb)) == 0
    assert upload_files_left(mdb) == (0, 0, 0)


def test_a_zip_bomb_is_refused_before_it_is_expanded(api: APIClient, mdb: Database, settings) -> None:
    # 20 MB of one repeated row compresses ~1000 times: far past the default ratio limit of 100.
    bomb = loop_zip(**{"store_status.csv": csv_text(STATUS_HEADER, ["s1,active,2024-10-14 10:00:00 UTC"] * 600_000)})
    assert len(bomb) < 200_000
    body = wait_import(api, started(upload(api, archive=bomb)))
    assert body["status"] == "Failed"
    assert body["error"].startswith("zip bomb refused: archive.bin:data/store_status.csv would expand ")
    assert "IMPORT_MAX_COMPRESSION_RATIO" in body["error"]
    assert len(storage.read_all_polls(mdb)) == 0


def test_a_zip_expanding_past_the_total_limit_is_refused(api: APIClient, mdb: Database, settings) -> None:
    settings.IMPORT_MAX_EXPANDED_BYTES = 100
    body = wait_import(api, started(upload(api, archive=full_zip())))
    assert body["status"] == "Failed"
    declared = sum(
        len(csv_text(h, r)) for h, r in ((STATUS_HEADER, POLLS), (HOURS_HEADER, HOURS), (ZONES_HEADER, ZONES))
    )
    assert body["error"] == (
        f"zip bomb refused: the files of archive.bin would expand to {declared} bytes, above the limit of 100 "
        "(IMPORT_MAX_EXPANDED_BYTES)"
    )


def test_a_zip_whose_header_understates_a_member_is_not_expanded_past_it(
    api: APIClient, mdb: Database, tmp_path
) -> None:
    # The central directory claims 10 bytes for the status file; the real data is longer.
    data = bytearray(full_zip())
    real = len(csv_text(STATUS_HEADER, POLLS))
    central = data.find(b"PK\x01\x02")  # the first central entry: the status file, written first
    assert int.from_bytes(data[central + 24 : central + 28], "little") == real  # uncompressed size field
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    body = wait_import(api, started(upload(api, archive=bytes(data))))
    assert body["status"] == "Failed"
    assert body["error"].startswith("archive.bin is a broken zip file"), body["error"]
    assert len(storage.read_all_polls(mdb)) == 0


def test_a_status_file_without_its_header_fails_naming_the_file(api: APIClient, mdb: Database) -> None:
    body = wait_import(api, started(upload(api, store_status=b"s1,active,2024-10-14 10:00:00 UTC\n")))
    assert body["status"] == "Failed"
    assert body["error"].startswith("store_status.bin: header has no 'store_id' column")


def test_an_upload_over_the_limit_is_413_and_nothing_is_kept(api: APIClient, mdb: Database, settings) -> None:
    settings.IMPORT_MAX_UPLOAD_BYTES = 600 * 1024
    # The Content-Length alone is over the limit: refused before the body is read.
    response = upload(api, store_status=b"x" * (700 * 1024))
    body = assert_json_error(response, 413)
    assert body["error"] == f"Upload is larger than {600 * 1024} bytes (IMPORT_MAX_UPLOAD_BYTES)."
    assert upload_files_left(mdb) == (0, 0, 0)
    assert mdb[IMPORTS].count_documents({}) == 0


def test_the_files_are_counted_against_the_limit_as_they_stream(mdb: Database, settings) -> None:
    # A body whose Content-Length is within the limit cannot carry more file bytes than that; the
    # handler's own count is what guards a body read without a trusted length: drive it directly.
    from loop.api.parsers import PayloadTooLarge
    from loop.api.uploads import GridFSUploadHandler

    handler = GridFSUploadHandler(None, limit=300 * 1024)
    handler.new_file("store_status", "big.csv", "text/csv", None)
    handler.receive_data_chunk(b"x" * (256 * 1024), 0)
    assert mdb[IMPORT_CHUNKS].count_documents({}) == 1  # one 255 KiB chunk already in GridFS
    with pytest.raises(PayloadTooLarge):
        handler.receive_data_chunk(b"x" * (256 * 1024), 256 * 1024)
    handler.discard()
    assert upload_files_left(mdb) == (0, 0, 0)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {},
            "files: no file: send a Loop .zip as 'archive', or at least one of store_status, business_hours, "
            "timezones, special_hours, stores as CSV files",
        ),
        (
            {"special": b"a,b\n"},
            "files: unexpected field 'special': send 'archive' or any of store_status, business_hours, timezones, "
            "special_hours",
        ),
        ({"store_status": "not a file"}, "files: unexpected form field(s) store_status: send the files as file parts"),
        ({"archive": b"PK", "timezones": b"store_id,timezone_str\n"}, "files: 'archive' comes alone"),
        ({"store_status": b""}, "store_status: the file 'store_status.bin' is empty"),
    ],
    ids=["no-file", "unknown-field", "plain-field", "archive-and-csv", "empty-file"],
)
def test_bad_forms_are_400_and_nothing_is_kept(api: APIClient, mdb: Database, files: dict, message: str) -> None:
    body = assert_json_error(upload(api, **files), 400)
    assert body["error"].startswith(message), body["error"]
    assert upload_files_left(mdb) == (0, 0, 0)
    assert mdb[IMPORTS].count_documents({}) == 0


def test_a_repeated_field_is_400(api: APIClient, mdb: Database) -> None:
    boundary = "XyZ"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="store_status"; filename="a.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nstore_id,status,timestamp_utc\r\n"
    )
    body = (part + part + f"--{boundary}--\r\n").encode()
    response = api.generic("POST", "/imports/", body, content_type=f"multipart/form-data; boundary={boundary}")
    assert assert_json_error(response, 400)["error"] == "store_status: given more than once"
    assert upload_files_left(mdb) == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"--nope\r\nbroken", "multipart/form-data; boundary=XyZ", 400),
        (b"anything", "multipart/form-data", 400),  # no boundary
        (b'{"archive": "x"}', "application/json", 415),
        (b"store_id,status,timestamp_utc\n", "text/csv", 415),
    ],
    ids=["broken-multipart", "no-boundary", "json", "csv"],
)
def test_malformed_or_other_bodies_are_json_4xx(
    api: APIClient, mdb: Database, body: bytes, content_type: str, status: int
) -> None:
    assert_json_error(api.generic("POST", "/imports/", body, content_type=content_type), status)
    assert mdb[IMPORTS].count_documents({}) == 0


def test_the_read_token_may_read_imports_but_not_upload(api: APIClient, mdb: Database, settings) -> None:
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN, settings.API_READ_TOKEN = "full-token", "read-token"
    api.credentials(HTTP_AUTHORIZATION="Bearer read-token")
    response = upload(api, archive=full_zip())
    assert assert_json_error(response, 403)["error"].startswith("This token (token:API_READ_TOKEN) may not ingest")
    assert upload_files_left(mdb) == (0, 0, 0)
    assert api.get("/imports/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Bearer full-token")
    import_id = started(upload(api, archive=full_zip()))
    api.credentials(HTTP_AUTHORIZATION="Bearer read-token")
    assert wait_import(api, import_id)["status"] == "Complete"
    api.credentials()
    assert_json_error(api.get(f"/imports/{import_id}/"), 401)


@pytest.mark.parametrize(
    ("import_id", "status"),
    [(VALID_ID, 404), ("short", 400), ('{"$ne": null}', 400), ("%24where%3Dx" + "a" * 20, 400)],
    ids=["unknown", "short", "operator", "dollar"],
)
def test_unknown_or_malformed_import_ids(api: APIClient, mdb: Database, import_id: str, status: int) -> None:
    body = assert_json_error(api.get(f"/imports/{import_id}/"), status)
    if status == 404:
        assert body["error"] == f"No import with id {VALID_ID}."


def test_the_broker_down_at_enqueue_is_503_and_leaves_no_running_import(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broker_down(import_id: str) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("loop.queue.enqueue_import", broker_down)
    body = assert_json_error(upload(api, archive=full_zip()), 503)
    assert body["error"] == "The task broker is unavailable; the import was not started."
    docs = list(mdb[IMPORTS].find())
    assert [d["status"] for d in docs] == ["Failed"]
    assert upload_files_left(mdb) == (0, 0, 0)


def test_the_list_is_newest_first_paged_and_filtered(api: APIClient, mdb: Database) -> None:
    ids = []
    for payload in (full_zip(), b"not a zip", full_zip()):  # one after the other: the third repeats the first
        ids.append(started(upload(api, archive=payload)))
        wait_import(api, ids[-1])
    page = api.get("/imports/?page=1&page_size=2").json()
    assert page["count"] == 3 and page["page"] == 1 and page["page_size"] == 2
    assert [item["import_id"] for item in page["results"]] == [ids[2], ids[1]]
    assert page["results"][0]["summary"]["polls_inserted"] == 0  # the third upload repeats the first
    assert page["results"][1]["summary"] is None and page["results"][1]["error"] == "archive.bin is not a zip file"
    failed = api.get("/imports/?status=Failed").json()
    assert [item["import_id"] for item in failed["results"]] == [ids[1]]
    assert_json_error(api.get("/imports/?status=Done"), 400)
    assert_json_error(api.get("/imports/?page_size=101"), 400)
    assert_json_error(api.get("/imports/?pagesize=1"), 400)


def test_a_running_import_without_progress_for_too_long_reads_failed(
    api: APIClient, mdb: Database, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("loop.queue.enqueue_import", lambda import_id: None)  # queued, never run
    import_id = started(upload(api, archive=full_zip()))
    assert api.get(f"/imports/{import_id}/").json()["status"] == "Running"
    settings.IMPORT_STALE_SECONDS = 0
    time.sleep(0.01)
    body = api.get(f"/imports/{import_id}/").json()
    assert body["status"] == "Failed" and body["error"].startswith("stale: no progress for 0 s")
    assert upload_files_left(mdb) == (0, 0, 0)


def test_the_loader_reports_rows_read_so_far_per_chunk(mdb: Database, tmp_path) -> None:
    rows = [f"s{i % 7},active,2024-10-14 {i % 24:02d}:{i % 60:02d}:00 UTC" for i in range(25)]
    found = vars(locate_sources(write_dataset(tmp_path, rows, HOURS, ZONES)))
    seen: list[tuple[str, int]] = []
    stats = load_found_sources(found, mdb, chunk_rows=10, on_rows=lambda name, n: seen.append((name, n)))
    status_name = found["status"].name
    assert [n for name, n in seen if name == status_name] == [10, 20, 25]
    assert (found["hours"].name, 3) in seen and (found["zones"].name, 2) in seen
    assert stats.status_rows_read == 25
    assert RowProblems().total == 0


def test_mongodb_down_while_the_upload_streams_is_503_and_nothing_is_kept(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    from loop.storage.files import StreamingFileWriter

    real_put = StreamingFileWriter._put_chunk
    calls = []

    def flaky_put(self: StreamingFileWriter, data: bytes) -> None:
        calls.append(len(data))
        if len(calls) == 2:  # the second chunk: MongoDB went away mid-upload
            raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")
        real_put(self, data)

    monkeypatch.setattr(StreamingFileWriter, "_put_chunk", flaky_put)
    body = assert_json_error(upload(api, store_status=b"x" * (600 * 1024)), 503)
    assert body["error"] == "The database is unavailable; try again later."
    assert upload_files_left(mdb) == (0, 0, 0)  # the first chunk was removed again
    assert mdb[IMPORTS].count_documents({}) == 0


def test_mongodb_away_during_the_load_is_retried_and_the_retry_completes(
    api: APIClient, mdb: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import AutoReconnect

    from loop.services import imports

    real_load = imports.load_found_sources
    attempts = []

    def load_once_away(found: Any, db: Database, **kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            real_load({"hours": found["hours"]}, db, **kwargs)  # half-written: the hours are in, no polls yet
            raise AutoReconnect("connection reset")
        return real_load(found, db, **kwargs)

    monkeypatch.setattr(imports, "load_found_sources", load_once_away)
    body = wait_import(api, started(upload(api, archive=full_zip())))
    assert body["status"] == "Complete", body
    assert len(attempts) == 2
    assert body["summary"]["polls_inserted"] == 3
    assert mdb[IMPORTS].find_one({"_id": body["import_id"]})["attempts"] == 2
    assert upload_files_left(mdb) == (0, 0, 0)


def test_the_schema_documents_the_upload_form_and_its_errors() -> None:
    import yaml
    from django.core.management import call_command

    out = io.StringIO()
    call_command("spectacular", stdout=out, stderr=io.StringIO())
    schema = yaml.safe_load(out.getvalue())
    post = schema["paths"]["/imports/"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    fields = schema["components"]["schemas"][form]["properties"]
    assert set(fields) == {"archive", "store_status", "business_hours", "timezones", "special_hours", "stores"}
    assert all(field["format"] == "binary" for field in fields.values())
    assert set(post["responses"]) == {"202", "400", "401", "403", "409", "411", "413", "415", "503"}
    detail = schema["paths"]["/imports/{import_id}/"]["get"]["responses"]
    assert set(detail) == {"200", "400", "401", "404", "503"}
    assert set(schema["paths"]["/imports/"]["get"]["parameters"][i]["name"] for i in range(3)) == {
        "page",
        "page_size",
        "status",
    }


def test_an_upload_whose_web_process_died_is_removed_by_the_beat_task(api: APIClient, mdb: Database, settings) -> None:
    import datetime as dt

    from loop.api.uploads import GridFSUploadHandler
    from loop.services.imports import remove_abandoned_uploads

    # A process that stored two chunks and died: no discard, no import.
    dead = GridFSUploadHandler(None, limit=10 * 2**20)
    dead.new_file("store_status", "big.csv", "text/csv", None)
    dead.receive_data_chunk(b"x" * (600 * 1024), 0)
    assert upload_files_left(mdb) == (0, 2, 1)
    # An import that completed meanwhile owns its files until it ends, then removes them.
    done = wait_import(api, started(upload(api, archive=full_zip())))
    assert done["status"] == "Complete"
    assert remove_abandoned_uploads() == 0  # too recent to be called abandoned
    assert upload_files_left(mdb) == (0, 2, 1)
    mdb[IMPORT_UPLOADS].update_many({}, {"$set": {"started_at": dt.datetime(2020, 1, 1)}})
    assert remove_abandoned_uploads() == 1
    assert upload_files_left(mdb) == (0, 0, 0)
    assert (
        settings.CELERY_BEAT_SCHEDULE["remove-abandoned-uploads"]["task"] == "loop.tasks.remove_abandoned_uploads_task"
    )


class ResetMidBody(io.RawIOBase):
    """A request body whose connection is reset after ``cut`` bytes (what gunicorn's socket read raises)."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data, self.cut, self.pos = data, cut, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.pos >= self.cut:
            raise ConnectionResetError(104, "Connection reset by peer")
        chunk = self.data[self.pos : min(self.cut, self.pos + len(buffer))]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def reset_request(path: str, body: bytes, content_type: str, cut: int) -> Any:
    from django.core.handlers.wsgi import LimitedStream
    from rest_framework.test import APIRequestFactory

    request = APIRequestFactory().post(path, data=body, content_type=content_type)
    request._stream = LimitedStream(io.BufferedReader(ResetMidBody(body, cut)), len(body))
    return request


def test_a_connection_reset_mid_upload_is_a_client_abort_not_a_server_error(
    mdb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    from loop.api.imports import ImportListView

    body = encode_multipart(BOUNDARY, {"store_status": SimpleUploadedFile("s.csv", b"x" * (900 * 1024))})
    cut = 3 * 256 * 1024  # three whole reads of the parser (UPLOAD_CHUNK_BYTES): GridFS chunks are written
    request = reset_request("/imports/", body, MULTIPART_CONTENT, cut=cut)
    with caplog.at_level("INFO"):
        response = ImportListView.as_view()(request)
    assert response.status_code == 400
    assert response.data["error"].startswith(f"The upload was aborted after {cut} of {len(body)} bytes")
    assert "ConnectionResetError: [Errno 104] Connection reset by peer" in response.data["error"]
    assert upload_files_left(mdb) == (0, 0, 0)  # the chunks written before the reset are removed
    assert mdb[IMPORTS].count_documents({}) == 0
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records if r.levelno >= 30]
    assert len(lines) == 1 and lines[0][0] == "WARNING" and lines[0][2] is None, lines
    assert lines[0][1].startswith("client aborted POST /imports/: The upload was aborted after")


def test_a_connection_reset_mid_ingestion_body_is_a_client_abort(
    mdb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    from loop.api.ingestion import StoreStatusView

    body = csv_text(STATUS_HEADER, POLLS * 200)
    request = reset_request("/store_status/", body, "text/csv", cut=len(body) // 2)
    with caplog.at_level("INFO"):
        response = StoreStatusView.as_view()(request)
    assert response.status_code == 400
    assert response.data == {
        "error": "The client aborted the request while sending its body ([Errno 104] Connection reset by peer)."
    }
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records if r.levelno >= 30]
    assert [(level, exc_info) for level, _, exc_info in lines] == [("WARNING", None)]
    assert lines[0][1].startswith("client aborted POST /store_status/: The client aborted")
