"""The store directory: stores.csv (reader, load_data, imports), GET/PUT/DELETE /stores/<id>/profile/,
names in the store answers, the region/brand filters of GET /stores/, and the service readers.

mongomock and the embedded worker; the real stack is in tests/integration/test_store_directory_http.py.
Every expected row, line and reason is written by hand.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from django.core.management import call_command
from pymongo.database import Database
from rest_framework.test import APIClient

from loop import storage
from loop.services.directory import Profile, store_ids_matching, store_profiles
from loop.sources.locate import CsvSource, locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import read_stores
from tests.support.api import FULL, READ, assert_json_error, wait_done
from tests.support.csv_files import write_csv, write_dataset

HEADER = "store_id,name,brand,region"
LONG = "x" * 201


def source(path: Path) -> CsvSource:
    return CsvSource(str(path), lambda: open(path, "rb"))


def records(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    return [tuple(row) for row in frame[["store_id", "name", "brand", "region"]].itertuples(index=False)]


def profile_url(store_id: str) -> str:
    return f"/stores/{quote(store_id, safe='')}/profile/"


# --- the reader -------------------------------------------------------------------------------------


def test_reader_keeps_good_rows_trims_them_and_reports_bad_ones_with_line_and_reason(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "stores.csv",
        HEADER,
        [
            "s1,Pizza Place #12,Pizza Co,West",  # line 2: replaced by line 6 (last row wins)
            "s2,  Burger Barn  , ,",  # 3: trimmed; blank brand and empty region are unknown
            ",No Id,b,r",  # 4
            's3,"Tab\there",b,r',  # 5: a tab inside the name
            "s1,Pizza Place #12b,Pizza Co,East",  # 6
            "s4,,b,r",  # 7: no name
            f"s5,{LONG},b,r",  # 8: 201 characters
            "s6,Caf\u00e9\u200b,b,r",  # 9: a zero-width space (format character)
            "s7,Caf\u00e9 Nord,,Nord-Ost",  # 10: non-ASCII text is fine
            f"s8,Ok,{LONG},r",  # 11: brand too long
            "s9,Ok,b,r\u2028x",  # 12: a line separator in the region
        ],
    )
    problems = RowProblems()
    frame = read_stores(source(path), problems)
    assert records(frame) == [
        ("s2", "Burger Barn", None, None),
        ("s1", "Pizza Place #12b", "Pizza Co", "East"),
        ("s7", "Caf\u00e9 Nord", None, "Nord-Ost"),
    ]
    control = "has a control or format character (tab, line break, zero-width, ...)"
    assert sorted((p.line, p.reason) for p in problems.examples) == [
        (2, "store_id appears again on a later line (the last valid row wins): 's1'"),
        (4, "store_id is blank"),
        (5, f"name {control}"),
        (7, "name is blank"),
        (8, "name is longer than 200 characters"),
        (9, f"name {control}"),
        (11, "brand is longer than 200 characters"),
        (12, f"region {control}"),
    ]
    assert problems.total == 8
    assert all(p.file == str(path) for p in problems.examples)


def test_a_later_bad_row_does_not_replace_an_earlier_good_one(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "stores.csv", HEADER, ["s1,Good,,", "s1,,,"])
    problems = RowProblems()
    assert records(read_stores(source(path), problems)) == [("s1", "Good", None, None)]
    assert [(p.line, p.reason) for p in problems.examples] == [(3, "name is blank")]


def test_a_header_without_a_directory_column_is_unusable(tmp_path: Path) -> None:
    from loop.sources.problems import InputFileError

    path = write_csv(tmp_path / "stores.csv", "store_id,name,brand", ["s1,A,B"])
    with pytest.raises(InputFileError, match="no 'region' column"):
        read_stores(source(path), RowProblems())


def test_locate_finds_the_optional_file_in_a_folder_or_a_zip(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "plain", ["s1,active,2024-10-07 15:14:00 UTC"])
    assert locate_sources(folder).stores is None
    write_csv(folder / "stores.csv", HEADER, ["s1,One,,"])
    assert locate_sources(folder).stores is not None
    archive = tmp_path / "loop.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("store_status.csv", "menu_hours.csv", "timezones.csv", "stores.csv"):
            zf.write(folder / name, f"export/{name}")
    found = locate_sources(archive).stores
    assert found is not None
    assert records(read_stores(found, RowProblems())) == [("s1", "One", None, None)]


# --- load_data and imports ----------------------------------------------------------------------------


def load(path: Path) -> str:
    out = io.StringIO()
    call_command("load_data", str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_load_data_loads_stores_csv_and_a_later_load_replaces_only_the_stores_it_names(
    mdb: Database, tmp_path: Path
) -> None:
    folder = write_dataset(tmp_path / "first", ["s1,active,2024-10-07 15:14:00 UTC"])
    write_csv(folder / "stores.csv", HEADER, ["s1,One,Brand A,West", "s2,Two,,East", "s3,,x,y"])
    output = load(folder)
    assert f"{folder / 'stores.csv'}: 3 rows read, 2 store profiles loaded, 1 rejected" in output
    assert f"{folder / 'stores.csv'}:4: name is blank" in output
    assert sorted(records(storage.read_profiles(mdb))) == [
        ("s1", "One", "Brand A", "West"),
        ("s2", "Two", None, "East"),
    ]
    # A second load naming s2 only: s2 takes its new row, s1 keeps its own.
    second = write_dataset(tmp_path / "second", [])
    write_csv(second / "stores.csv", HEADER, ["s2,Two renamed,Brand B,"])
    load(second)
    assert sorted(records(storage.read_profiles(mdb))) == [
        ("s1", "One", "Brand A", "West"),
        ("s2", "Two renamed", "Brand B", None),
    ]


def test_a_directory_load_leaves_the_data_version_as_it_was(mdb: Database) -> None:
    before = storage.data_state(mdb)
    storage.replace_profiles(
        mdb, pd.DataFrame({"store_id": ["s1"], "name": ["One"], "brand": [None], "region": [None]}, dtype=object)
    )
    assert storage.data_state(mdb) == before  # names are no report input: a report can still be reused


def upload(api: APIClient, **files: bytes) -> dict:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post(
        "/imports/", {name: SimpleUploadedFile(f"{name}.csv", data) for name, data in files.items()}, format="multipart"
    )
    assert response.status_code == 202, response.content
    return response.json()


def wait_import(api: APIClient, import_id: str) -> dict:
    import time

    deadline = time.monotonic() + 30
    while (body := api.get(f"/imports/{import_id}/").json())["status"] == "Running":
        assert time.monotonic() < deadline, body
        time.sleep(0.02)
    return body


def test_an_import_of_stores_csv_alone_loads_the_directory(api: APIClient, mdb: Database) -> None:
    text = f"{HEADER}\ns1,One,Brand A,West\ns1,One again,Brand A,West\ns2,Two\ts,,\n".encode()
    body = wait_import(api, upload(api, stores=text)["import_id"])
    assert body["status"] == "Complete", body
    summary = body["summary"]
    assert summary["lines"][0] == "stores.csv: 3 rows read, 1 store profiles loaded, 2 rejected"
    assert (summary["stores_rows_read"], summary["stores_profiles_loaded"]) == (3, 1)
    assert sorted((p["line"], p["reason"].split(":")[0]) for p in summary["problems"]) == [
        (2, "store_id appears again on a later line (the last valid row wins)"),
        (4, "name has a control or format character (tab, line break, zero-width, ...)"),
    ]
    assert records(storage.read_profiles(mdb)) == [("s1", "One again", "Brand A", "West")]


def test_an_import_of_a_zip_with_stores_csv_loads_it(api: APIClient, mdb: Database) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("data/store_status.csv", "store_id,status,timestamp_utc\ns1,active,2024-10-07 15:14:00 UTC\n")
        zf.writestr("data/stores.csv", f"{HEADER}\ns1,Pizza Place #1,Pizza Co,West\n")
    body = wait_import(api, upload(api, archive=buffer.getvalue())["import_id"])
    assert body["status"] == "Complete", body
    listed = api.get("/stores/").json()["results"]
    assert [(r["store_id"], r["name"], r["brand"], r["region"]) for r in listed] == [
        ("s1", "Pizza Place #1", "Pizza Co", "West")
    ]


# --- PUT / GET / DELETE /stores/<id>/profile/ ---------------------------------------------------------


def test_put_get_delete_a_profile(api: APIClient, mdb: Database) -> None:
    empty = api.get(profile_url("s1"))
    assert empty.status_code == 200
    assert empty.json() == {"store_id": "s1", "name": None, "brand": None, "region": None}
    put = api.put(profile_url("s1"), {"name": "  Pizza Place #12 ", "brand": "", "region": "West"}, format="json")
    assert put.status_code == 200, put.content
    assert put.json() == {"store_id": "s1", "name": "Pizza Place #12", "brand": None, "region": "West"}
    assert api.get(profile_url("s1")).json() == put.json()
    # A store known only by its profile is a store.
    detail = api.get("/stores/s1/").json()
    assert (detail["name"], detail["brand"], detail["region"]) == ("Pizza Place #12", None, "West")
    # A PUT replaces the whole profile: brand and region left out become null.
    again = api.put(profile_url("s1"), {"name": "Renamed"}, format="json").json()
    assert again == {"store_id": "s1", "name": "Renamed", "brand": None, "region": None}
    deleted = api.delete(profile_url("s1"))
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(profile_url("s1")).json()["name"] is None
    assert api.delete(profile_url("s1")).status_code == 204  # nothing to clear is fine
    assert_json_error(api.get("/stores/s1/"), 404)


def test_a_profile_put_keeps_the_other_stores_profiles(api: APIClient, mdb: Database) -> None:
    assert api.put(profile_url("a"), {"name": "A", "brand": "B1", "region": "R1"}, format="json").status_code == 200
    assert api.put(profile_url("b"), {"name": "B", "brand": None, "region": None}, format="json").status_code == 200
    assert sorted(records(storage.read_profiles(mdb))) == [("a", "A", "B1", "R1"), ("b", "B", None, None)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "Tab\there"}, "name: name has a control or format character (tab, line break, zero-width, ...)"),
        ({"name": "ok", "region": "a\nb"}, "region: region has a control or format character"),
        ({"name": "A" * 201}, "name: name is longer than 200 characters"),
        ({"name": "   "}, "name: name is blank"),
        ({"brand": "x"}, "name: This field is required."),
        ({"name": "A", "city": "Paris"}, "unexpected field(s): city"),
        ({"name": None}, "name: This field may not be null."),
        ({"name": ["A"]}, "name: Not a valid string."),
    ],
    ids=["control", "line-break", "too-long", "blank", "no-name", "unknown-field", "null-name", "list-name"],
)
def test_bad_profiles_are_400_json_and_nothing_is_stored(
    api: APIClient, mdb: Database, body: dict, message: str
) -> None:
    error = assert_json_error(api.put(profile_url("s1"), body, format="json"), 400)["error"]
    assert error.startswith(message), error
    assert storage.read_profiles(mdb).empty


def test_a_bad_store_id_is_400_json(api: APIClient, mdb: Database) -> None:
    too_long = "s" * 129
    for method in ("get", "put", "delete"):
        response = getattr(api, method)(profile_url(too_long), {"name": "A"}, format="json")
        assert assert_json_error(response, 400)["error"].startswith("store_id: must be 1-128 characters")
    response = api.put("/stores/%20s1/profile/", {"name": "A"}, format="json")
    assert assert_json_error(response, 400)["error"].startswith("store_id:")


def test_a_body_that_is_not_an_object_is_400_json(api: APIClient, mdb: Database) -> None:
    assert_json_error(api.put(profile_url("s1"), ["A"], format="json"), 400)
    assert_json_error(api.put(profile_url("s1"), "x", content_type="text/plain"), 415)


def test_the_read_token_reads_profiles_but_may_not_change_them(api: APIClient, mdb: Database, tokens: None) -> None:
    read = {"HTTP_AUTHORIZATION": f"Bearer {READ}"}
    full = {"HTTP_AUTHORIZATION": f"Bearer {FULL}"}
    assert api.put(profile_url("s1"), {"name": "A"}, format="json", **full).status_code == 200
    assert api.get(profile_url("s1"), **read).json()["name"] == "A"
    assert_json_error(api.put(profile_url("s1"), {"name": "B"}, format="json", **read), 403)
    assert_json_error(api.delete(profile_url("s1"), **read), 403)
    assert_json_error(api.get(profile_url("s1")), 401)


# --- the list: names and filters ----------------------------------------------------------------------


@pytest.fixture
def directory_fleet(api: APIClient, mdb: Database, tmp_path: Path) -> APIClient:
    """Five stores with polls; four with profiles (p5 has none, x9 has a profile but no polls)."""
    folder = write_dataset(
        tmp_path,
        [f"{s},active,2024-10-07 15:00:00 UTC" for s in ("p1", "p2", "p3", "p4", "p5")],
    )
    write_csv(
        folder / "stores.csv",
        HEADER,
        [
            "p1,Pizza Place #1,Pizza Co,West",
            "p2,Pizza Place #2,Pizza Co,East",
            "p3,Burger Barn,Burgers,West",
            "p4,Pizza Place #4,pizza co,West",  # another brand: the filter is case-sensitive
            "x9,Ghost Kitchen,Pizza Co,West",  # no polls: not in the list
        ],
    )
    load(folder)
    return api


def ids(response) -> tuple[int, list[str]]:
    assert response.status_code == 200, response.content
    body = response.json()
    return body["count"], [r["store_id"] for r in body["results"]]


def test_the_list_shows_names_and_nulls_for_stores_without_a_profile(directory_fleet: APIClient) -> None:
    results = directory_fleet.get("/stores/").json()["results"]
    assert [(r["store_id"], r["name"], r["brand"], r["region"]) for r in results] == [
        ("p1", "Pizza Place #1", "Pizza Co", "West"),
        ("p2", "Pizza Place #2", "Pizza Co", "East"),
        ("p3", "Burger Barn", "Burgers", "West"),
        ("p4", "Pizza Place #4", "pizza co", "West"),
        ("p5", None, None, None),
    ]


def test_the_list_filters_by_region_and_brand_exactly_with_search_and_paging(directory_fleet: APIClient) -> None:
    api = directory_fleet
    assert ids(api.get("/stores/", {"region": "West"})) == (3, ["p1", "p3", "p4"])
    assert ids(api.get("/stores/", {"brand": "Pizza Co"})) == (2, ["p1", "p2"])
    assert ids(api.get("/stores/", {"brand": "Pizza Co", "region": "West"})) == (1, ["p1"])
    assert ids(api.get("/stores/", {"region": "west"})) == (0, [])
    assert ids(api.get("/stores/", {"region": "West", "search": "P3"})) == (1, ["p3"])
    assert ids(api.get("/stores/", {"region": "West", "page_size": 2, "page": 2})) == (3, ["p4"])
    assert ids(api.get("/stores/", {"region": "Nowhere"})) == (0, [])
    error = assert_json_error(api.get("/stores/", {"region": "x" * 201}), 400)["error"]
    assert error.startswith("region: Ensure this field has no more than 200 characters.")


def test_service_readers_for_other_use_cases(directory_fleet: APIClient) -> None:
    assert store_profiles(store_ids=["p2", "p5", "x9"]) == {
        "p2": Profile("Pizza Place #2", "Pizza Co", "East"),
        "p5": Profile(None, None, None),
        "x9": Profile("Ghost Kitchen", "Pizza Co", "West"),
    }
    assert store_profiles(store_ids=[]) == {}
    assert store_ids_matching(region=None, brand=None) is None
    assert store_ids_matching(region="West", brand=None) == {"p1", "p3", "p4", "x9"}
    assert store_ids_matching(region="West", brand="Pizza Co") == {"p1", "x9"}
    assert store_ids_matching(region=None, brand="Nobody") == set()


def test_report_rows_carry_the_store_names(directory_fleet: APIClient) -> None:
    api = directory_fleet
    report_id = api.post("/trigger_report/").json()["report_id"]
    wait_done(api, report_id)
    rows = api.get(f"/reports/{report_id}/stores/").json()["results"]
    assert [(r["store_id"], r["name"], r["region"]) for r in rows] == [
        ("p1", "Pizza Place #1", "West"),
        ("p2", "Pizza Place #2", "East"),
        ("p3", "Burger Barn", "West"),
        ("p4", "Pizza Place #4", "West"),
        ("p5", None, None),
    ]


def test_the_schema_documents_the_profile_endpoint_and_the_filters() -> None:
    import yaml

    out = io.StringIO()
    call_command("spectacular", stdout=out, stderr=io.StringIO())
    schema = yaml.safe_load(out.getvalue())
    profile = schema["paths"]["/stores/{store_id}/profile/"]
    assert set(profile) >= {"get", "put", "delete"}
    assert "204" in profile["delete"]["responses"]
    names = {p["name"] for p in schema["paths"]["/stores/"]["get"]["parameters"]}
    assert {"region", "brand", "search", "page", "page_size"} <= names
    listed = schema["components"]["schemas"]["StoreSummary"]["properties"]
    assert {"name", "brand", "region"} <= set(listed)
    assert listed["name"].get("nullable") is True
