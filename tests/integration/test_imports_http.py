"""POST /imports/ over real HTTP: gunicorn (DEBUG=0), a Celery worker, Redis and a MongoDB-wire server.

The module runs its own app and worker on a database and queue of its own (both tokens set).
Uploads are streamed from disk (tests/support/uploads.py). The reports after each import are
compared with the offline command's output for the same files.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pymongo.database import Database

from tests.support.integration import Dataset, Stack, offline_report, private_app, skip_or_fail
from tests.support.polling import http_report, wait_for_report, wait_until
from tests.support.processes import MissingServer, private_redis, start_gunicorn
from tests.support.uploads import MultipartBody, csv_parts, post_upload, wait_for_import, zip_folder

pytestmark = pytest.mark.integration

FULL = "it-imports-full-6c5d4e3f2a"
READ = "it-imports-read-1a2b3c4d5e"


@dataclass
class ImportsApp:
    base_url: str
    env: dict[str, str]
    db: Database

    def headers(self, token: str = FULL) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[ImportsApp]:
    with private_app(stack, "imports", API_TOKEN=FULL, API_READ_TOKEN=READ) as (url, env):
        yield ImportsApp(url, env, stack.mongo[env["MONGO_DB"]])


def report_at_newest(app: ImportsApp) -> dict:
    trigger = requests.post(
        f"{app.base_url}/trigger_report/", json={"force": True}, headers=app.headers(READ), timeout=30
    )
    assert trigger.status_code == 202, trigger.text
    return wait_for_report(
        http_report(app.base_url, trigger.json()["report_id"], headers=app.headers(READ)), timeout=180
    )


def rows_in(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines()[1:] if line.strip())


def test_three_csvs_then_a_zip_load_and_give_the_offline_reports(app: ImportsApp, dataset: Dataset, tmp_path) -> None:
    refused = post_upload(app.base_url, csv_parts(dataset.old), app.headers(READ))
    assert refused.status_code == 403 and "may only read" in refused.json()["error"]

    # 1. The older export as three CSV fields.
    response = post_upload(app.base_url, csv_parts(dataset.old), app.headers())
    assert response.status_code == 202, response.text
    import_id = response.json()["import_id"]
    done = wait_for_import(app.base_url, import_id, app.headers(READ), timeout=180)
    assert done["status"] == "Complete", done
    rows = rows_in(dataset.old / "store_status.csv")
    summary = done["summary"]
    status_rejected = sum(1 for p in summary["problems"] if p["file"] == "store_status.csv")
    assert summary["status_rows_read"] == rows, summary
    assert summary["polls_inserted"] + summary["polls_duplicates"] + status_rejected == rows, summary
    assert done["progress"]["rows"] == rows
    assert [f["name"] for f in done["files"]] == ["store_status.csv", "menu_hours.csv", "timezones.csv"]
    report = report_at_newest(app)
    assert report["status"] == "Complete"
    assert report["csv_data"] == offline_report(app.env, dataset.old, report["now"])

    # 2. The whole export as a Loop .zip (files in a folder): the older polls are duplicates now.
    archive = zip_folder(dataset.full, tmp_path / "loop.zip")
    response = post_upload(app.base_url, [("archive", "loop.zip", archive)], app.headers())
    assert response.status_code == 202, response.text
    done = wait_for_import(app.base_url, response.json()["import_id"], app.headers(READ), timeout=180)
    assert done["status"] == "Complete", done
    assert done["summary"]["lines"][0].startswith("loop.zip:loop-export/store_status.csv: ")
    assert done["summary"]["polls_duplicates"] >= rows  # everything of the first import again
    report = report_at_newest(app)
    assert report["csv_data"] == offline_report(app.env, dataset.full, report["now"])

    # The uploads are gone from GridFS once the imports ended; the history lists both, newest first.
    assert app.db["import_files.files"].count_documents({}) == 0
    assert app.db["import_files.chunks"].count_documents({}) == 0
    listed = requests.get(f"{app.base_url}/imports/?page_size=5", headers=app.headers(READ), timeout=30).json()
    assert [item["import_id"] for item in listed["results"]][1] == import_id


def test_bad_uploads_over_http(app: ImportsApp, tmp_path) -> None:
    not_zip = tmp_path / "export.zip"
    not_zip.write_bytes(b"store_id,status,timestamp_utc\n")
    response = post_upload(app.base_url, [("archive", "export.zip", not_zip)], app.headers())
    assert response.status_code == 202
    failed = wait_for_import(app.base_url, response.json()["import_id"], app.headers(), timeout=60)
    assert failed["status"] == "Failed" and failed["error"] == "export.zip is not a zip file"

    unknown = post_upload(app.base_url, [("special", "x.csv", not_zip)], app.headers())
    assert unknown.status_code == 400 and unknown.headers["Content-Type"] == "application/json"
    assert unknown.json()["error"].startswith("files: unexpected field 'special'")
    # A Content-Length of 1 TiB is refused before a byte of the body is read (http.client keeps the header).
    host, port = app.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {**app.headers(), "Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(2**40)}
    conn.request("POST", "/imports/", body=b"--b\r\n", headers=headers)
    too_long = conn.getresponse()
    assert too_long.status == 413
    assert json.loads(too_long.read()) == {
        "error": f"Upload is larger than {512 * 1024 * 1024} bytes (IMPORT_MAX_UPLOAD_BYTES)."
    }
    conn.close()


def test_an_upload_cut_off_half_way_never_becomes_an_import(app: ImportsApp, dataset: Dataset, tmp_path) -> None:
    before = app.db["import_table"].count_documents({})
    # A status file of ~2 MB (the export's rows eight times), so the half sent spans several GridFS chunks.
    lines = (dataset.full / "store_status.csv").read_text().splitlines()
    big = tmp_path / "store_status.csv"
    big.write_text("\n".join([lines[0], *(lines[1:] * 8)]) + "\n")
    body = MultipartBody([("store_status", "store_status.csv", big)])
    assert len(body) > 1024 * 1024
    host, port = app.base_url.removeprefix("http://").split(":")
    head = (
        f"POST /imports/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {FULL}\r\n"
        f"Content-Type: {body.content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode() + body.head(len(body) // 2))
        # The body streams into GridFS as it arrives: chunks exist while the upload is incomplete.
        wait_until(lambda: app.db["import_files.chunks"].count_documents({}) >= 2, 30, "the first chunks to be stored")
    # The client is gone: the server sees the body end early, refuses it and removes the chunks it wrote.
    wait_until(
        lambda: app.db["import_files.chunks"].count_documents({}) == 0,
        60,
        "the partial upload's chunks to be removed",
    )
    assert app.db["import_files.files"].count_documents({}) == 0
    assert app.db["import_uploads"].count_documents({}) == 0  # nothing left for the beat task either
    time.sleep(1.0)
    assert app.db["import_table"].count_documents({}) == before  # no import was ever created


def test_an_upload_reset_half_way_is_logged_as_a_client_abort_not_a_server_error(
    app: ImportsApp, stack: Stack, dataset: Dataset, tmp_path
) -> None:
    before = app.db["import_table"].count_documents({})
    lines = (dataset.full / "store_status.csv").read_text().splitlines()
    big = tmp_path / "store_status.csv"
    big.write_text("\n".join([lines[0], *(lines[1:] * 8)]) + "\n")
    body = MultipartBody([("store_status", "store_status.csv", big)])
    host, port = app.base_url.removeprefix("http://").split(":")
    head = (
        f"POST /imports/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {FULL}\r\n"
        f"Content-Type: {body.content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    log = stack.logs / "web-imports.log"  # private_app's gunicorn (shared by this module's tests)
    log_start = len(log.read_bytes())
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(head.encode() + body.head(len(body) // 2))
    wait_until(lambda: app.db["import_files.chunks"].count_documents({}) >= 2, 30, "the first chunks to be stored")
    # SO_LINGER on, 0 s: close() sends a TCP reset instead of a FIN (a client killed mid-upload).
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    wait_until(
        lambda: app.db["import_files.chunks"].count_documents({}) == 0,
        60,
        "the aborted upload's chunks to be removed",
    )
    assert app.db["import_files.files"].count_documents({}) == 0
    assert app.db["import_uploads"].count_documents({}) == 0
    wait_until(lambda: b"client aborted POST /imports/" in log.read_bytes(), 30, "the client-abort line in the log")
    time.sleep(1.0)  # anything else the request would log has been written by now
    text = log.read_bytes()[log_start:].decode(errors="replace")
    abort_lines = [line for line in text.splitlines() if "client aborted POST /imports/" in line]
    assert len(abort_lines) == 1 and " WARNING " in abort_lines[0], abort_lines
    assert "Connection reset by peer" in abort_lines[0] and "nothing was stored" in abort_lines[0]
    assert "Internal Server Error" not in text and "Traceback" not in text and "unhandled error" not in text
    assert "Bad Request: /imports/" not in text  # logged once, as a client abort
    time.sleep(1.0)
    assert app.db["import_table"].count_documents({}) == before


def test_the_broker_down_at_enqueue_is_a_503_and_no_import_is_left_running(
    app: ImportsApp, stack: Stack, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    try:
        broker = private_redis(tmp_path_factory.mktemp("imports-redis"))
    except MissingServer as missing:
        skip_or_fail(f"this test needs {missing}: run `make services`")
    env = {**app.env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{broker.port}/0", "TRIGGER_RATE_LIMIT": "0"}
    web = start_gunicorn(env, 1, stack.logs / "web-imports-nobroker.log")  # the broker never started
    try:
        wait_until(lambda: _answers(web.url), 60, "gunicorn without its broker to answer", alive=web.proc, interval=0.3)
        clock = time.monotonic()
        response = post_upload(web.url, csv_parts(dataset.old), app.headers())
        assert response.status_code == 503, response.text
        assert response.json() == {"error": "The task broker is unavailable; the import was not started."}
        assert time.monotonic() - clock < 30
    finally:
        web.stop()
    newest = app.db["import_table"].find_one({}, sort=[("created_at", -1)])
    assert newest["status"] == "Failed" and "broker is unavailable" in newest["error"]
    assert app.db["import_table"].count_documents({"status": "Running"}) == 0
    assert app.db["import_files.files"].count_documents({}) == 0


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/", timeout=5).status_code in (200, 503)
    except requests.RequestException:
        return False
