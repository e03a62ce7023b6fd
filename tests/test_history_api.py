"""The daily figures over HTTP, and against the per-store timeline (differential: random stores and dates).

The sample data (data/: 60 stores, real-looking hours and zones, a directory of 12 stores) is loaded and
the history built once per test; GET /stores/<id>/history/, /trends/ and /trends/movers/ answer from it.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from loop import storage
from loop.history import midnights_us, store_zones
from loop.ingest import load_sources
from loop.rules import uptime_pct_or_none
from loop.services import history
from loop.storage import history as hs
from loop.timeline import store_timeline


@pytest.fixture
def built(api: APIClient, mdb) -> APIClient:
    load_sources(settings.BASE_DIR / "data", mdb)
    history.build_history(db=mdb)
    return api


def all_rows(db) -> pd.DataFrame:
    frames = [
        rows
        for day in hs.stored_dates(db)
        for rows in hs.read_blocks(db, day, hs.read_meta(db)["date_blocks"]).values()
    ]
    return pd.concat(frames, ignore_index=True)


def test_each_date_is_the_timeline_of_that_date(built: APIClient, mdb) -> None:
    rows = all_rows(mdb)
    zones = storage.read_zones(mdb)
    rng = random.Random(7)
    for k in rng.sample(range(len(rows)), 40):
        row = rows.iloc[k]
        one = storage.read_one_store(mdb, row.store_id)
        zone = store_zones(np.array([row.store_id], dtype=object), zones)[0]
        day = np.datetime64(row.date, "D")
        m0, m1 = midnights_us(np.array([zone], dtype=object), np.array([day, day + 1]))[0]
        start, end = pd.Timestamp(int(m0), unit="us", tz="UTC"), pd.Timestamp(int(m1), unit="us", tz="UTC")
        polls = storage.read_store_polls(mdb, row.store_id, start, end)
        timeline = store_timeline(
            polls=polls, hours=one.hours, special_hours=one.special_hours, zones=one.zones, start=start, end=end
        )
        got = (row.up_s, row.down_s, row.unobserved_s, row.outages, row.longest_s / 60)
        expected = (
            timeline.uptime_s,
            timeline.downtime_s,
            timeline.unobserved_s,
            timeline.outage_count,
            timeline.longest_outage_minutes,
        )
        assert got == pytest.approx(expected, abs=1e-6), (row.store_id, row.date)


def test_store_history_answers_the_days_of_the_range(built: APIClient, mdb) -> None:
    rows = all_rows(mdb)
    store_id = rows["store_id"].value_counts().index[0]
    mine = rows[rows["store_id"] == store_id].sort_values("date")
    first, last = mine["date"].iloc[2], mine["date"].iloc[9]
    answer = built.get(f"/stores/{store_id}/history/", {"from": first, "to": last})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["store_id"], body["from"], body["to"]) == (store_id, first, last)
    assert [d["date_local"] for d in body["days"]] == mine["date"].iloc[2:10].tolist()
    row = mine.iloc[2]
    assert body["days"][0] == {
        "date_local": first,
        "uptime_hours": round(row.up_s / 3600, 2),
        "downtime_hours": round(row.down_s / 3600, 2),
        "unobserved_hours": round(row.unobserved_s / 3600, 2),
        "uptime_pct": uptime_pct_or_none(row.up_s, row.down_s),
        "outages": int(row.outages),
        "longest_outage_minutes": round(row.longest_s / 60, 2),
    }
    # Defaults: the 30 dates up to the newest kept date.
    body = built.get(f"/stores/{store_id}/history/").json()
    assert body["to"] == hs.read_meta(mdb)["last_date"]
    assert date.fromisoformat(body["to"]) - date.fromisoformat(body["from"]) == timedelta(days=29)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2024-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2024-10-10", "to": "2024-10-01"}, "from"),
        ({"from": "2023-01-01", "to": "2024-02-05"}, "to"),
        ({"weeks": "3"}, None),
        ({"days": "0"}, "days"),
        ({"days": "401"}, "days"),
        ({"days": "x"}, "days"),
        ({"from": "2024-10-01", "days": "3"}, "days"),
    ],
)
def test_bad_ranges_are_a_400(built: APIClient, query: dict, field: str | None) -> None:
    store_id = all_rows(storage.get_db())["store_id"].iloc[0]
    for url in (f"/stores/{store_id}/history/", "/trends/"):
        answer = built.get(url, query)
        assert answer.status_code == 400, (url, query, answer.content)
        if field:
            assert field in answer.content.decode()


def test_days_counts_the_dates_back_from_to(built: APIClient, mdb) -> None:
    """The dashboard's charts: ``days=90`` alone is the 90 dates ending at the newest kept date."""
    last = date.fromisoformat(hs.read_meta(mdb)["last_date"])
    store_id = all_rows(mdb)["store_id"].iloc[0]
    for url in (f"/stores/{store_id}/history/", "/trends/"):
        body = built.get(url, {"days": "90"}).json()
        assert (body["from"], body["to"]) == ((last - timedelta(days=89)).isoformat(), last.isoformat()), url
        assert body["days"][-1]["date_local"] <= last.isoformat()
        body = built.get(url, {"days": "1", "to": "2024-10-10"}).json()
        assert (body["from"], body["to"]) == ("2024-10-10", "2024-10-10")
        assert [d["date_local"] for d in body["days"]] == ["2024-10-10"]
        assert built.get(url, {"days": "400"}).status_code == 200
    # The same dates as from..to.
    ninety = built.get("/trends/", {"days": "90"}).json()
    assert built.get("/trends/", {"from": ninety["from"], "to": ninety["to"]}).json() == ninety


def test_400_dates_are_allowed_and_an_unknown_store_is_a_404(built: APIClient) -> None:
    assert built.get("/trends/", {"from": "2023-01-01", "to": "2024-02-04"}).status_code == 200
    assert built.get("/stores/no-such-store/history/").status_code == 404


def test_trend_sums_the_stores_of_each_date_and_filters_by_region_and_brand(built: APIClient, mdb) -> None:
    rows = all_rows(mdb)
    body = built.get("/trends/", {"from": rows["date"].min(), "to": rows["date"].max()}).json()
    assert [d["date_local"] for d in body["days"]] == sorted(rows["date"].unique())
    for day in body["days"][::5]:
        mine = rows[rows["date"] == day["date_local"]]
        assert day["uptime_hours"] == pytest.approx(round(mine["up_s"].sum() / 3600, 2))
        assert day["stores_down"] == int((mine["down_s"] > 0).sum())
        business = np.maximum(mine["up_s"] + mine["down_s"], mine["unobserved_s"])
        assert day["stores_open"] == int((business > 0).sum())
    profiles = storage.read_profiles(mdb)
    region = profiles["region"].dropna().iloc[0]
    ids = set(profiles.loc[profiles["region"] == region, "store_id"])
    filtered = built.get("/trends/", {"from": rows["date"].min(), "to": rows["date"].max(), "region": region}).json()
    for day in filtered["days"]:
        mine = rows[(rows["date"] == day["date_local"]) & rows["store_id"].isin(ids)]
        assert day["downtime_hours"] == pytest.approx(round(mine["down_s"].sum() / 3600, 2))
    assert built.get("/trends/", {"brand": "no such brand"}).json()["days"] == []


def test_movers_are_the_largest_falls_of_week_uptime(built: APIClient, mdb) -> None:
    body = built.get("/trends/movers/", {"limit": 5}).json()
    last = date.fromisoformat(hs.read_meta(mdb)["last_date"])
    assert body["this_week"] == {"from": (last - timedelta(days=6)).isoformat(), "to": last.isoformat()}
    assert body["previous_week"]["to"] == (last - timedelta(days=7)).isoformat()
    assert 0 < len(body["stores"]) <= 5
    changes = [m["change_pct"] for m in body["stores"]]
    assert changes == sorted(changes)
    rows = all_rows(mdb)
    top = body["stores"][0]
    mine = rows[rows["store_id"] == top["store_id"]]
    this = mine[mine["date"] >= body["this_week"]["from"]]
    assert top["this_week_pct"] == uptime_pct_or_none(this["up_s"].sum(), this["down_s"].sum())
    assert built.get("/trends/movers/", {"limit": 0}).status_code == 400


def test_the_routes_are_in_the_openapi_schema(api: APIClient) -> None:
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    params = {p["name"] for p in paths["/stores/{store_id}/history/"]["get"]["parameters"]}
    assert {"store_id", "from", "to"} <= params
    assert {"from", "to", "region", "brand"} <= {p["name"] for p in paths["/trends/"]["get"]["parameters"]}
    assert "limit" in {p["name"] for p in paths["/trends/movers/"]["get"]["parameters"]}
