"""A data set fed hour by hour over HTTP, as pollers and ops would, gives the offline report of its files.

Polls arrive through ``POST /store_status/`` one hour at a time (alternately as CSV and as
JSON), weekly hours through ``PUT /stores/<id>/business_hours/`` and zones through
``PUT /stores/<id>/timezone/``; then a report over HTTP must equal ``generate_report
--csv-dir`` of the same files. Its own app, worker and database (the other modules' data
never meets it).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pandas as pd
import pytest
import requests

from loop.sources.locate import locate_sources
from loop.sources.problems import RowProblems
from loop.sources.read import read_hours, read_zones
from tests.support.integration import Dataset, Stack, private_app
from tests.support.polling import http_report, wait_for_report
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[tuple[str, dict[str, str]]]:
    with private_app(stack, "hourly") as app:
        yield app


def clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def test_polls_hours_and_zones_fed_over_http_give_the_offline_report(
    app: tuple[str, dict[str, str]], dataset: Dataset
) -> None:
    base, env = app
    sources = locate_sources(dataset.full)
    # What load_data would keep of the hours and zones files (bad rows are skipped there as well).
    hours = read_hours(sources.hours, RowProblems())
    zones = read_zones(sources.zones, RowProblems())
    for store_id, rows in hours.groupby("store_id"):
        week = [
            {
                "dayOfWeek": int(r.day_of_week),
                "start_time_local": clock(int(r.start_seconds)),
                "end_time_local": clock(int(r.end_seconds)),
            }
            for r in rows.itertuples()
        ]
        put = requests.put(f"{base}/stores/{quote(str(store_id), safe='')}/business_hours/", json=week, timeout=30)
        assert put.status_code == 200, (store_id, put.text)
    for row in zones.drop_duplicates("store_id", keep="last").itertuples():
        put = requests.put(
            f"{base}/stores/{quote(str(row.store_id), safe='')}/timezone/",
            json={"timezone_str": row.timezone_str},
            timeout=30,
        )
        assert put.status_code == 200, (row.store_id, put.text)

    lines = (dataset.full / "store_status.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    stamps = pd.to_datetime(
        pd.Series(rows).str.rsplit(",", n=1).str[1].str.removesuffix(" UTC"), utc=True, format="ISO8601"
    )
    hour_of = stamps.dt.floor("h")
    posted = inserted = 0
    for i, hour in enumerate(sorted(hour_of.unique())):
        batch = [line for line, h in zip(rows, hour_of, strict=True) if h == hour]
        if i % 2:
            items = [
                dict(zip(("store_id", "status", "timestamp_utc"), line.rsplit(",", 2), strict=True)) for line in batch
            ]
            response = requests.post(f"{base}/store_status/", json=items, timeout=60)
        else:
            response = requests.post(
                f"{base}/store_status/",
                data="\n".join([header, *batch]) + "\n",
                headers={"Content-Type": "text/csv"},
                timeout=60,
            )
        assert response.status_code in (200, 201), response.text[:300]
        answer = response.json()
        assert answer["rejected"] == 0 and answer["read"] == len(batch)
        posted += len(batch)
        inserted += answer["inserted"]
    assert posted == len(rows) and hour_of.nunique() > 200  # ten days, hour by hour
    # Every distinct (store, instant) stored once (the file repeats one poll with two statuses).
    assert inserted == len({(line.split(",", 1)[0], line.rsplit(",", 1)[1]) for line in rows})

    trigger = requests.post(f"{base}/trigger_report/", timeout=30)
    assert trigger.status_code == 202, trigger.text
    done = wait_for_report(http_report(base, trigger.json()["report_id"]), timeout=120)
    assert done["status"] == "Complete", done
    assert pd.Timestamp(done["now"]) == dataset.full_newest
    offline = run_manage(env, "generate_report", "--csv-dir", str(dataset.full), "--now", done["now"], "--output", "-")
    assert offline.returncode == 0, offline.stderr
    assert done["csv_data"] == offline.stdout
