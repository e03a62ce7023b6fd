"""Store ids the report CSV escapes, through the dashboard: ``=1+2`` and ``'=1+2`` are two stores.

The report is stored as the worker stores it (``report_to_csv``), beside the session's data, and
removed afterwards; the two stores are known only by a zone each (no polls), so the other browser
tests' counts and reports do not see them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
import requests

from loop import storage
from loop.report_engine import REPORT_COLUMNS, report_to_csv
from tests.support.browser import BrowserStack, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Each store's zone tells its page apart from the other's.
ZONES = {"=1+2": "Asia/Tokyo", "'=1+2": "America/New_York"}


def test_formula_like_ids_are_two_rows_opening_two_store_pages(
    live: BrowserStack, new_page: Callable[..., Any]
) -> None:
    db = live.stack.db
    for store_id, zone in ZONES.items():
        url = f"{live.base_url}/stores/{quote(store_id, safe='')}/timezone/"
        assert requests.put(url, json={"timezone_str": zone}, timeout=30).status_code == 200
    report = pd.DataFrame({column: [1.0, 1.0] for column in REPORT_COLUMNS[1:]})
    report.insert(0, "store_id", list(ZONES))
    text = report_to_csv(report)
    assert sorted(text.splitlines()[1:]) == [
        "''=1+2,1.00,1.00,1.00,1.00,1.00,1.00",
        "'=1+2,1.00,1.00,1.00,1.00,1.00,1.00",
    ]
    report_id = uuid.uuid4().hex
    storage.create_report(db, report_id, pd.Timestamp("2024-10-14T12:00:00Z"))
    assert storage.complete_report(db, report_id, text, rows=2, polls_counted=0, warnings=[], timings={})
    try:
        page = new_page()
        page.goto(f"{live.base_url}/dashboard/stores/?report={report_id}")
        wait_ready(page)
        links = page.locator("#stores-table tbody th a")
        # Equal uptime: by id, and "'" sorts before "=".
        assert links.all_inner_texts() == ["'=1+2", "=1+2"]
        assert [links.nth(i).get_attribute("href") for i in range(2)] == [
            "/dashboard/stores/'%3D1%2B2/",
            "/dashboard/stores/%3D1%2B2/",
        ]
        for position, store_id in enumerate(["'=1+2", "=1+2"]):
            page.goto(f"{live.base_url}/dashboard/stores/?report={report_id}")
            wait_ready(page)
            page.locator("#stores-table tbody th a").nth(position).click()
            wait_ready(page)
            assert page.locator("#store-name").inner_text() == store_id
            assert page.locator("#store-zone").inner_text() == ZONES[store_id]
        assert page.seen.foreign(live.base_url) == []
    finally:
        storage.delete_finished_report(db, report_id)
