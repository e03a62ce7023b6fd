"""The store directory over real HTTP: ``load_data`` loads a stores.csv into the MongoDB-wire server
(FerretDB in CI), gunicorn answers the names on GET /stores/ and /stores/<id>/, the region filter,
and concurrent profile PUTs of different stores all survive (the table's writers take turns: FerretDB's
compare-and-set of the head alone would let one overwrite another). Expected values are written by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.csv_files import write_csv, write_dataset
from tests.support.integration import Stack, private_app
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

POLLS = [
    "p1,active,2024-10-07 15:00:00 UTC",
    "p2,inactive,2024-10-07 15:00:00 UTC",
    "p3,active,2024-10-07 15:00:00 UTC",
]
STORES = [
    "p1,Pizza Place #12,Pizza Place,West",
    "p2,  Burger Barn  ,,East",  # trimmed; no brand
    "p3,Bad\u200bName,x,y",  # line 4: a zero-width space, skipped
    "p1,Pizza Place #12b,Pizza Place,West",  # line 5: replaces line 2
]


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[tuple[str, dict[str, str]]]:
    with private_app(stack, "directory") as app:
        yield app


def test_names_load_list_filter_and_survive_concurrent_puts(app: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = app
    folder = write_dataset(tmp_path, POLLS)
    write_csv(folder / "stores.csv", "store_id,name,brand,region", STORES)
    done = run_manage(env, "load_data", str(folder))
    assert done.returncode == 0, done.stderr + done.stdout
    output = done.stdout + done.stderr
    assert "stores.csv: 4 rows read, 2 store profiles loaded, 2 rejected" in output
    assert "stores.csv:4: name has a control or format character" in output
    assert "stores.csv:2: store_id appears again on a later line (the last valid row wins): 'p1'" in output

    listed = requests.get(f"{base}/stores/", timeout=30)
    assert listed.status_code == 200, listed.text
    assert [(r["store_id"], r["name"], r["brand"], r["region"]) for r in listed.json()["results"]] == [
        ("p1", "Pizza Place #12b", "Pizza Place", "West"),
        ("p2", "Burger Barn", None, "East"),
        ("p3", None, None, None),
    ]
    west = requests.get(f"{base}/stores/", params={"region": "West"}, timeout=30).json()
    assert (west["count"], [r["store_id"] for r in west["results"]]) == (1, ["p1"])
    detail = requests.get(f"{base}/stores/p2/", timeout=30).json()
    assert (detail["name"], detail["brand"], detail["region"]) == ("Burger Barn", None, "East")

    # Eight stores' profiles written at once through both gunicorn workers: none is lost.
    def put(k: int) -> int:
        body = {"name": f"Kiosk {k}", "brand": "Kiosks", "region": "North"}
        return requests.put(f"{base}/stores/k{k}/profile/", json=body, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(put, range(8))) == [200] * 8
    for k in range(8):
        profile = requests.get(f"{base}/stores/k{k}/profile/", timeout=30).json()
        assert profile == {"store_id": f"k{k}", "name": f"Kiosk {k}", "brand": "Kiosks", "region": "North"}
    # The loaded profiles are still there, and a DELETE clears one.
    assert requests.get(f"{base}/stores/p1/profile/", timeout=30).json()["name"] == "Pizza Place #12b"
    assert requests.delete(f"{base}/stores/p1/profile/", timeout=30).status_code == 204
    assert requests.get(f"{base}/stores/p1/", timeout=30).json()["name"] is None
    bad = requests.put(f"{base}/stores/p1/profile/", json={"name": "x" * 201}, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"] == "name: name is longer than 200 characters"
