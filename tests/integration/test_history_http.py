"""Daily figures on the real stack: ``load_data`` builds them, then hours, a zone and polls arrive over HTTP and
a Celery worker applies them; ``GET /stores/<id>/history/`` and ``GET /trends/`` must then answer exactly what
the brute force of ``tests.support.history_reference`` counts (DST changes, holiday hours, midnight polls).

Its own app, worker and database (``private_app``): gunicorn with two processes, a Celery worker on Redis,
FerretDB (or mongod).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.support.history_reference import (
    CHANGE_AT,
    FIRST,
    LAST,
    brute_force,
    final_stores,
    generate_polls,
    initial_stores,
    status_csv,
    tables_csv,
)
from tests.support.integration import Stack, private_app
from tests.support.processes import run_manage

pytestmark = pytest.mark.integration

FIGURES_WAIT_S = 120.0


@pytest.fixture(scope="module")
def app(stack: Stack) -> Iterator[tuple[str, dict[str, str]]]:
    with private_app(stack, "history") as app:
        yield app


def hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def expected_days(expected: dict[tuple[str, str], tuple]) -> dict[str, list[dict]]:
    """The brute force in the API's units and shape, per store, oldest date first."""
    out: dict[str, list[dict]] = {}
    for (store_id, day), (up, down, unobserved, outages, longest) in sorted(expected.items()):
        out.setdefault(store_id, []).append(
            {
                "date_local": day,
                "uptime_hours": hours(up),
                "downtime_hours": hours(down),
                "unobserved_hours": hours(unobserved),
                "uptime_pct": float(np.round(100 * up / (up + down), 2)) if up + down else None,
                "outages": outages,
                "longest_outage_minutes": round(longest / 60, 2),
            }
        )
    return out


def served_days(base: str) -> dict[str, list[dict]]:
    first, last = FIRST - timedelta(days=2), LAST + timedelta(days=2)
    out = {}
    for store_id in initial_stores():
        answer = requests.get(f"{base}/stores/{store_id}/history/?from={first}&to={last}", timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        out[store_id] = answer.json()["days"]
    return out


def test_figures_fed_over_http_and_applied_by_the_worker_equal_the_brute_force(
    app: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = app
    polls = generate_polls()
    before = [p for p in polls if p[2] < CHANGE_AT.timestamp()]
    after = [p for p in polls if p[2] >= CHANGE_AT.timestamp()]
    # The first half with the first tables, loaded by the command (which builds the figures).
    tables_csv(initial_stores(), tmp_path / "set")
    (tmp_path / "set" / "store_status.csv").write_text(status_csv(before))
    loaded = run_manage(env, "load_data", str(tmp_path / "set"))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "daily figures:" in loaded.stdout

    # Half way: s3's weekly hours and s4's zone change over HTTP (all their dates are recomputed) ...
    changed = final_stores()
    week = [{"dayOfWeek": d, "start_time_local": a, "end_time_local": b} for d, a, b in changed["s3"].weekly]
    assert requests.put(f"{base}/stores/s3/business_hours/", json=week, timeout=30).status_code == 200
    zone = {"timezone_str": changed["s4"].zone}
    assert requests.put(f"{base}/stores/s4/timezone/", json=zone, timeout=30).status_code == 200
    # ... then the rest of the polls, one small batch per UTC hour (the delta path: the worker's update).
    by_hour: dict[int, list] = {}
    for p in after:
        by_hour.setdefault(p[2] // 3600, []).append(p)
    for hour in sorted(by_hour):
        posted = requests.post(
            f"{base}/store_status/", data=status_csv(by_hour[hour]), headers={"Content-Type": "text/csv"}, timeout=60
        )
        assert posted.status_code in (200, 201), posted.text[:300]
        assert posted.json()["rejected"] == 0
    assert len(by_hour) > 100  # about five days, hour by hour

    expected_figures = brute_force(final_stores(), polls)
    expected = expected_days(expected_figures)
    deadline = time.monotonic() + FIGURES_WAIT_S
    while (served := served_days(base)) != expected and time.monotonic() < deadline:
        time.sleep(1)
    wrong = {
        (store_id, got.get("date_local")): (got, want)
        for store_id in expected
        for got, want in zip(served[store_id], expected[store_id], strict=False)
        if got != want
    }
    assert not wrong, f"{len(wrong)} dates differ, e.g. {list(wrong.items())[:2]}"
    assert {s: len(d) for s, d in served.items()} == {s: len(d) for s, d in expected.items()}

    # The fleet's totals per date are the brute force's sums.
    trend = requests.get(f"{base}/trends/?from={FIRST - timedelta(days=2)}&to={LAST + timedelta(days=2)}", timeout=30)
    assert trend.status_code == 200, trend.text[:300]
    by_date = {d["date_local"]: d for d in trend.json()["days"]}
    for day in sorted({day for _, day in expected_figures}):
        mine = [v for (_, d), v in expected_figures.items() if d == day]
        assert by_date[day]["uptime_hours"] == pytest.approx(sum(v[0] for v in mine) / 3600, abs=0.01)
        assert by_date[day]["downtime_hours"] == pytest.approx(sum(v[1] for v in mine) / 3600, abs=0.01)
        assert by_date[day]["stores_down"] == sum(1 for v in mine if v[1] > 0)
