"""Every UTC instant of every JSON answer is ISO 8601 ending in Z (loop.api.common.UtcTimestampField)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.support.api import trigger, wait_done
from tests.support.polling import wait_for_report

TIMELINE = "/stores/mon/timeline/?to=2024-10-07T18:00:00Z"
UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


def instants(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(key, value) of every field named ``*_utc``, ``*_at``, ``now``, ``from`` or ``to``, at any depth."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name.endswith(("_utc", "_at")) or name in ("now", "from", "to"):
                yield name, item
            else:
                yield from instants(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from instants(item, key)


def test_every_answer_writes_utc_instants_with_z(loaded: APIClient) -> None:
    report_id = trigger(loaded, {"now": "2024-10-07T18:00:00.250000+02:00"}).json()["report_id"]
    assert wait_done(loaded, report_id)["status"] == "Complete"
    upload = SimpleUploadedFile("timezones.csv", b"store_id,timezone_str\nmon,America/Chicago\n")
    import_url = loaded.post("/imports/", {"timezones": upload}, format="multipart").json()["url"]
    wait_for_report(lambda: (200, loaded.get(import_url).json()), timeout=30, interval=0.02, label="import")
    answers = {
        path: loaded.get(path).json()
        for path in (
            f"/get_report/{report_id}/",
            f"/get_report/?report_id={report_id}",
            "/reports/",
            f"/reports/{report_id}/stores/",
            "/overview/",
            "/imports/",
            import_url,
            "/stores/",
            "/stores/mon/",
            TIMELINE,
        )
    }
    seen = {(path, key) for path, body in answers.items() for key, _ in instants(body)}
    # Each kind of instant is there to check: report, import, poll, timeline times.
    for path, key in [
        (f"/get_report/{report_id}/", "now"),
        (f"/get_report/{report_id}/", "finished_at"),
        ("/reports/", "created_at"),
        (f"/reports/{report_id}/stores/", "now"),
        ("/overview/", "newest_poll_utc"),
        ("/imports/", "finished_at"),
        ("/stores/", "last_poll_utc"),
        ("/stores/mon/", "first_poll_utc"),
        (TIMELINE, "start_utc"),
        (TIMELINE, "from"),
    ]:
        assert (path, key) in seen, (path, key)
    for path, body in answers.items():
        for key, value in instants(body):
            assert value is None or UTC_TEXT.fullmatch(value), (path, key, value)
    # Microseconds are kept when there are any: the trigger's now was 16:00:00.25 UTC.
    assert answers[f"/get_report/{report_id}/"]["now"] == "2024-10-07T16:00:00.250000Z"
