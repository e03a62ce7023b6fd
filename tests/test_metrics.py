"""GET /metrics in one process (the `make run` case): who may read it, route labels, counts where the work is.

The multi-process case (two gunicorn processes, two workers) is tests/integration/test_metrics_http.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from rest_framework.test import APIClient

from loop.http_metrics import route_label
from tests.support.api import READ
from tests.support.monitoring import parse, value


def scrape(client: APIClient, **extra: Any) -> dict[Any, float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


@pytest.mark.parametrize(
    ("pattern", "label"),
    [
        ("^stores/(?P<store_id>[^/]+)/timeline/?$", "/stores/<store_id>/timeline/"),
        ("^health/?$", "/health/"),
        ("accounts/login/", "/accounts/login/"),
        ("stores/<str:store_id>/", "/stores/<store_id>/"),
        ("", "/"),
    ],
)
def test_the_route_label_is_the_pattern_as_the_access_table_writes_it(pattern: str, label: str) -> None:
    assert route_label(pattern) == label


def test_requests_are_counted_by_pattern_method_and_status_never_by_raw_path(api: APIClient) -> None:
    before = scrape(api)
    api.get("/stores/some-store-id/timeline/")
    api.get("/stores/another-id/timeline/")
    api.get("/no/such/path/")
    after = scrape(api)
    timeline = {"route": "/stores/<store_id>/timeline/", "method": "GET"}
    grew = value(after, "loop_http_requests_total", timeline) - value(before, "loop_http_requests_total", timeline)
    assert grew == 2
    other = {"route": "other", "method": "GET", "status": "404"}
    assert value(after, "loop_http_requests_total", other) - value(before, "loop_http_requests_total", other) == 1
    assert not [key for key in after if "some-store-id" in str(key) or "no/such" in str(key)]
    assert value(after, "loop_http_request_duration_seconds_count", timeline) >= 2


@pytest.mark.django_db
def test_metrics_need_a_read_credential_unless_the_scrape_comes_from_an_open_network(
    api: APIClient, tokens: None, settings: Any
) -> None:
    assert api.get("/metrics/").status_code == 401
    assert scrape(api, HTTP_AUTHORIZATION=f"Bearer {READ}")
    settings.METRICS_OPEN_NETWORKS = ["127.0.0.0/8"]
    assert scrape(api)  # the test client's REMOTE_ADDR is 127.0.0.1
    # a forwarded address never opens it: only the socket's counts
    settings.METRICS_OPEN_NETWORKS = ["10.0.0.0/8"]
    assert api.get("/metrics/", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 401


def test_ingested_and_rejected_polls_are_counted_and_the_data_clock_is_read(api: APIClient, settings: Any) -> None:
    settings.METRICS_CACHE_SECONDS = 0
    before = scrape(api)
    body = (
        "store_id,status,timestamp_utc\n"
        "m1,active,2024-10-14 10:00:00 UTC\n"
        "m1,active,2024-10-14 10:00:00 UTC\n"
        "m2,nope,2024-10-14 10:00:00 UTC\n"
    )
    assert api.post("/store_status/", body, content_type="text/csv").status_code == 201
    after = scrape(api)

    def grew(name: str) -> float:
        return value(after, name, {"source": "api"}) - value(before, name, {"source": "api"})

    assert (grew("loop_polls_ingested_total"), grew("loop_polls_stored_total")) == (2, 1)
    assert grew("loop_poll_rows_rejected_total") == 1
    assert value(after, "loop_newest_poll_timestamp_seconds", {}) == 1728900000.0
    assert value(after, "loop_stores", {}) == 1
    assert value(after, "loop_metrics_source_up", {"source": "mongo"}) == 1


def test_a_bad_open_network_or_port_refuses_the_start(settings: Any) -> None:
    settings.METRICS_OPEN_NETWORKS = ["127.0.0.1/32", "loopback"]
    settings.WORKER_METRICS_PORT = 70000
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "loop.E016" in str(raised.value) and "loop.E017" in str(raised.value)


def test_a_scrape_answers_the_kept_figures_while_a_thread_reads_them_again(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import threading

    from loop.api import metrics

    settings.METRICS_CACHE_SECONDS = 5
    reads: list[float] = []
    release = threading.Event()

    def read() -> metrics.Figures:
        if reads:  # the background read waits until the test lets it finish
            release.wait(5)
        reads.append(1.0)
        return metrics.Figures(read_at=clock[0], stores=len(reads))

    clock = [1000.0]
    monkeypatch.setattr(metrics, "read_figures", read)
    monkeypatch.setattr(metrics.time, "time", lambda: clock[0])
    monkeypatch.setattr(metrics, "_cache", [])
    assert metrics.cached_figures().stores == 1  # the first scrape reads
    clock[0] += 2
    assert metrics.cached_figures().stores == 1 and len(reads) == 1  # kept
    clock[0] += 5
    assert metrics.cached_figures().stores == 1  # stale: answered at once, read again behind
    assert metrics.cached_figures().stores == 1  # one background read at a time
    release.set()
    for _ in range(100):
        if not metrics._refreshing.is_set():
            break
        threading.Event().wait(0.05)
    assert metrics.cached_figures().stores == 2 and len(reads) == 2


def test_the_offline_report_counts_nothing_and_never_imports_prometheus_client(tmp_path: Any) -> None:
    from tests.test_offline_startup import modules_after_offline_run

    modules = modules_after_offline_run(tmp_path)
    assert "loop.report_engine" in modules
    assert not {m for m in modules if m.split(".")[0] == "prometheus_client"}


def test_stores_are_counted_by_the_region_of_the_directory_while_its_version_holds(mdb: Any) -> None:
    from loop import storage
    from loop.services.directory import region_counts

    assert region_counts(["a", "b"]) == [("unknown", 2)]  # no directory: nothing more is read
    storage.set_store_profile(mdb, "a", name="A", brand=None, region="EU")
    storage.set_store_profile(mdb, "b", name="B", brand=None, region=None)
    assert region_counts(["a", "b", "c"]) == [("EU", 1), ("unknown", 2)]
    storage.set_store_profile(mdb, "c", name="C", brand=None, region="EU")  # a new version: read again
    assert region_counts(["a", "b", "c"]) == [("EU", 2), ("unknown", 1)]
    assert region_counts([]) == []
