"""What a scheduled report's delivery carries: its signed download link, its (filtered) CSV and its worst stores.

The link ``<PUBLIC_BASE_URL>/reports/<report_id>/download/?expires=<unix s>[&region=..][&brand=..]&sig=<hex>``
needs no token: ``sig`` is an HMAC-SHA256 (Django's ``salted_hmac``, keyed by ``SECRET_KEY`` and a salt of
its own) over the report id, the expiry and the filters, so it opens that one report's CSV (cut to those
filters) until ``expires`` and nothing else. A changed character anywhere is a 404 (the link names nothing
this service handed out), a validly signed link past its expiry a 410.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from loop.errors import Gone, NotFound
from loop.ids import is_id
from loop.services.directory import store_ids_matching
from loop.services.reports import report_csv, report_rows

LINK_SALT = "loop.services.report_links.download"
WORST_COUNT = 10


class LinkExpired(Gone):
    """A validly signed download link past its expiry (HTTP 410)."""


def _signature(report_id: str, expires: int, region: str | None, brand: str | None) -> str:
    message = "\n".join((report_id, str(expires), region or "", brand or ""))
    return salted_hmac(LINK_SALT, message, algorithm="sha256").hexdigest()


def download_path(*, report_id: str, expires: int, region: str | None = None, brand: str | None = None) -> str:
    """The signed path and query (no host) of a report's CSV until ``expires`` (Unix seconds)."""
    query: dict[str, Any] = {"expires": expires}
    if region is not None:
        query["region"] = region
    if brand is not None:
        query["brand"] = brand
    query["sig"] = _signature(report_id, expires, region, brand)
    return f"/reports/{report_id}/download/?{urlencode(query)}"


def download_url(*, report_id: str, region: str | None, brand: str | None, now: dt.datetime) -> tuple[str, dt.datetime]:
    """(absolute signed link valid ``REPORT_LINK_SECONDS`` from ``now``, its expiry)."""
    utc = now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)
    expires = math.floor(utc.timestamp()) + int(settings.REPORT_LINK_SECONDS)
    path = download_path(report_id=report_id, expires=expires, region=region, brand=brand)
    return settings.PUBLIC_BASE_URL + path, dt.datetime.fromtimestamp(expires, dt.UTC)


def checked_download(
    *, report_id: str, expires: str | None, sig: str | None, region: str | None, brand: str | None, now: float
) -> str:
    """The CSV a link opens, or NotFound (any part changed, or the report is gone) / LinkExpired."""
    refused = NotFound("No such download link (it may have been changed or cut when copied).")
    if not is_id(report_id) or not expires or not sig or not expires.isdigit() or len(expires) > 12:
        raise refused
    if not constant_time_compare(_signature(report_id, int(expires), region, brand), sig):
        raise refused
    if int(expires) < now:
        raise LinkExpired("This download link has expired; the report is still in GET /reports/ for signed-in users.")
    return filtered_csv(report_id=report_id, region=region, brand=brand)


def filtered_csv(*, report_id: str, region: str | None, brand: str | None) -> str:
    """The report's CSV, only the stores of ``region`` and ``brand`` (the store directory) when given."""
    text = report_csv(report_id=report_id)
    keep = store_ids_matching(region=region, brand=brand)
    if keep is None:
        return text
    header, *lines = text.splitlines(keepends=True)
    kept = [line for line in lines if _csv_store_id(line) in keep]
    return header + "".join(kept)


def _csv_store_id(line: str) -> str:
    """The store id of a report CSV row (its first cell; a leading ' guards a formula-like id)."""
    cell = line.split(",", 1)[0]
    if cell.startswith('"'):  # quoted: an id with a comma or quote (report_engine writes them so)
        cell = next(csv.reader([line]))[0]
    return cell[1:] if cell.startswith("'") else cell


@dataclass(frozen=True)
class ReportSummary:
    rows: int
    worst: list[dict[str, Any]]


def report_summary(*, report_id: str, region: str | None, brand: str | None) -> ReportSummary:
    """How many stores the (filtered) report has and its ``WORST_COUNT`` worst: lowest week uptime % first
    (the worst-stores page's order), ties by store id, stores without business time last."""
    rows = report_rows(report_id=report_id).rows
    keep = store_ids_matching(region=region, brand=brand)
    if keep is not None:
        rows = [row for row in rows if row["store_id"] in keep]

    def order(row: dict[str, Any]) -> tuple[bool, float, str]:
        pct = row.get("uptime_pct_last_week")
        return (pct is None, float(pct or 0.0), str(row["store_id"]))

    fields = (
        "store_id",
        "name",
        "uptime_pct_last_week",
        "downtime_last_week",
        "uptime_pct_last_day",
        "downtime_last_day",
        "uptime_pct_last_hour",
    )
    worst = [{field: row.get(field) for field in fields} for row in sorted(rows, key=order)[:WORST_COUNT]]
    return ReportSummary(rows=len(rows), worst=worst)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str


def report_attachment(*, report_id: str, region: str | None, brand: str | None) -> Attachment | None:
    """The CSV for an e-mail: as is, gzipped over ``REPORT_EMAIL_GZIP_BYTES``, none over the attachment limit."""
    data = filtered_csv(report_id=report_id, region=region, brand=brand).encode("utf-8")
    name = f"report-{report_id}.csv"
    if len(data) <= settings.REPORT_EMAIL_GZIP_BYTES:
        return Attachment(name, data, "text/csv")
    packed = gzip.compress(data, mtime=0)
    if len(packed) > settings.REPORT_EMAIL_MAX_ATTACHMENT_BYTES:
        return None
    return Attachment(name + ".gz", packed, "application/gzip")
