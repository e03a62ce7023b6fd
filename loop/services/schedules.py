"""Scheduled reports (``/schedules/``): a cron expression in a zone, a format, filters and the channels that
get each report; the beat's tick that runs them, and the delivery of each run.

A **run** belongs to one (schedule, slot). Its claim is a unique insert (``storage.claim_run``), so two beats,
a duplicated tick or a retried task make one run; its report and its deliveries have ids derived from the
run's id (``loop.ids.derived_id``), so a resumed or repeated step makes no second report and no second
delivery. The tick (``run_due_schedules``, beat every ``SCHEDULE_TICK_SECONDS``) runs only each schedule's
**newest** due slot: a slot missed while everything was down runs once when it comes back, not once per
missed slot, and no slot before the minute the schedule was created, changed or resumed (``since``) runs.

The report's ``now`` is the newest stored poll at or before the slot instant; when that is more than
``DATA_LAG_NOTE`` before the slot, the delivery says so (``data_note``). Once the report is finished
(``finish_run``: a follow-up task that looks again with backoff, and the tick as a safety net), one
``report.completed`` (or ``report.failed``) event goes to each of the run's channels.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from pymongo.database import Database

from loop import metrics, queue, storage
from loop.cron import CronError, parse_cron, parse_zone, slot_after, slot_at_or_before
from loop.errors import Conflict, InvalidInput, NotFound, Unavailable
from loop.events import REPORT_COMPLETED, REPORT_FAILED, Event, utc_text
from loop.freshness import lag_words
from loop.ids import ID_SHAPE, derived_id, is_id, new_id
from loop.rules import DEFAULT_MAX_GAP_MINUTES
from loop.services.deliveries import publish_to
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.services.report_links import download_url, report_summary
from loop.services.reports import get_report
from loop.storage import ReportFormat, ReportStatus
from loop.timeutil import ts_to_us, us_to_ts, utcnow

logger = logging.getLogger(__name__)

SCHEDULE_ID_HELP = f"A schedule id: {ID_SHAPE}."
NAME_MAX = 100
FILTER_MAX = 100
CHANNELS_MAX = 10
EDITABLE_FIELDS = ("name", "cron", "timezone", "format", "channels", "region", "brand", "skip_empty", "enabled")
# A report whose data ends more than this before its slot says so in its delivery.
DATA_LAG_NOTE = dt.timedelta(hours=1)
# The follow-up looks at a run's report after 2 s, then 4, 8, 16, 30, 30, ... (the stale rule ends a report).
FIRST_CHECK_SECONDS = 2.0
MAX_CHECK_SECONDS = 30.0
MAX_CHECKS = 200
# A run claimed this long ago whose report was never created (its claimant died in between) is resumed.
CLAIM_STALE_SECONDS = 60
# Runs are kept (and slots may run this late) at least this long (see _run_retention).
RUN_RETENTION_MIN = dt.timedelta(days=30)
# The tick removes old runs at most this often per process.
RUN_CLEANUP_SECONDS = 3600


class RunState:
    CLAIMED = "claimed"  # claimed, its report not created yet
    RUNNING = "running"  # its report is being computed
    DELIVERED = "delivered"  # its event is stored for each channel (report.completed or report.failed)
    SKIPPED = "skipped"  # the report had no row and the schedule skips empty reports


@dataclass(frozen=True)
class RunView:
    run_id: str
    schedule_id: str
    kind: str  # "cron" or "manual"
    slot: dt.datetime
    state: str
    outcome: str | None  # "completed" or "failed" once delivered
    report_id: str | None
    now: dt.datetime | None
    data_note: str | None
    delivery_ids: list[str]
    claimed_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class ScheduleView:
    schedule_id: str
    name: str
    cron: str
    timezone: str
    format: str
    channels: list[str]
    region: str | None
    brand: str | None
    skip_empty: bool
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    next_run_at: dt.datetime | None
    last_run: RunView | None


def _aware(instant: dt.datetime) -> dt.datetime:
    return instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _this_minute(instant: dt.datetime) -> dt.datetime:
    """The start of the minute: a schedule created (changed, resumed) during a slot's minute still runs it."""
    return instant.replace(second=0, microsecond=0)


# --- checks ---------------------------------------------------------------------------------------------


def _checked_name(name: Any) -> str:
    text = str(name or "").strip()
    if not text or len(text) > NAME_MAX:
        raise InvalidInput("name", f"must be 1 to {NAME_MAX} characters")
    return text


def _checked_cron(cron: Any, zone_name: Any) -> tuple[str, str]:
    try:
        parsed = parse_cron(str(cron))
    except CronError as exc:
        raise InvalidInput("cron", str(exc)) from None
    try:
        parse_zone(zone_name)
    except CronError as exc:
        raise InvalidInput("timezone", str(exc)) from None
    return parsed.text, str(zone_name)


def _checked_format(value: Any) -> str:
    try:
        return ReportFormat(value).value
    except ValueError:
        raise InvalidInput("format", f"must be one of {', '.join(f.value for f in ReportFormat)}") from None


def _checked_channels(channel_ids: Any) -> list[str]:
    if not isinstance(channel_ids, list | tuple) or not channel_ids:
        raise InvalidInput("channels", "must list at least one channel id")
    ids = list(dict.fromkeys(str(item) for item in channel_ids))
    if len(ids) > CHANNELS_MAX:
        raise InvalidInput("channels", f"at most {CHANNELS_MAX} channels")
    db = storage.get_db()
    unknown = [item for item in ids if not is_id(item) or storage.get_channel(db, item) is None]
    if unknown:
        raise InvalidInput("channels", f"unknown channel id(s): {', '.join(unknown)[:300]}")
    return ids


def _checked_filter(field: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text or len(text) > FILTER_MAX:
        raise InvalidInput(field, f"must be 1 to {FILTER_MAX} characters, or null (no filter)")
    return text


# --- views ----------------------------------------------------------------------------------------------


def _run_view(doc: Mapping[str, Any]) -> RunView:
    now_us = doc.get("now_us")
    return RunView(
        run_id=doc["run_id"],
        schedule_id=doc["schedule_id"],
        kind=doc["kind"],
        slot=us_to_ts(int(doc["slot_us"])).to_pydatetime(),
        state=doc["state"],
        outcome=doc.get("outcome"),
        report_id=doc.get("report_id"),
        now=None if now_us is None else us_to_ts(int(now_us)).to_pydatetime(),
        data_note=doc.get("data_note"),
        delivery_ids=list(doc.get("delivery_ids") or []),
        claimed_at=doc["claimed_at"],
        finished_at=doc.get("finished_at"),
    )


def _due_slot(doc: Mapping[str, Any], now: dt.datetime) -> dt.datetime | None:
    """The schedule's newest slot at or before ``now``, not before ``since`` (created, changed, resumed) and
    not older than the runs' retention."""
    slot = slot_at_or_before(parse_cron(doc["cron"]), parse_zone(doc["timezone"]), now)
    if slot is None or slot < _aware(doc["since"]) or slot < now - _run_retention():
        return None
    return slot


def _cron_run_id(schedule_id: str, slot: dt.datetime) -> str:
    return f"{schedule_id}:{ts_to_us(slot)}"


def _view(doc: Mapping[str, Any], db: Database, now: dt.datetime) -> ScheduleView:
    next_at = None
    if doc["enabled"]:
        next_at = slot_after(parse_cron(doc["cron"]), parse_zone(doc["timezone"]), max(now, _aware(doc["since"])))
    last = None
    due = _due_slot(doc, now)
    if due is not None:
        run = storage.get_run(db, _cron_run_id(doc["schedule_id"], due))
        last = None if run is None else _run_view(run)
    return ScheduleView(
        schedule_id=doc["schedule_id"],
        name=doc["name"],
        cron=doc["cron"],
        timezone=doc["timezone"],
        format=doc["format"],
        channels=list(doc["channels"]),
        region=doc.get("region"),
        brand=doc.get("brand"),
        skip_empty=bool(doc.get("skip_empty")),
        enabled=bool(doc["enabled"]),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        next_run_at=next_at,
        last_run=last,
    )


# --- the API's use cases --------------------------------------------------------------------------------


def create_schedule(
    *,
    name: str,
    cron: str,
    timezone: str,
    channels: Sequence[str],
    format: str = ReportFormat.LOOP.value,  # noqa: A002 (the API's field name)
    region: str | None = None,
    brand: str | None = None,
    skip_empty: bool = False,
    enabled: bool = True,
) -> ScheduleView:
    db = storage.get_db()
    checked_cron, zone = _checked_cron(cron, timezone)
    doc: dict[str, Any] = {
        "schedule_id": new_id(),
        "name": _checked_name(name),
        "cron": checked_cron,
        "timezone": zone,
        "format": _checked_format(format),
        "channels": _checked_channels(channels),
        "region": _checked_filter("region", region),
        "brand": _checked_filter("brand", brand),
        "skip_empty": bool(skip_empty),
        "enabled": bool(enabled),
    }
    if storage.count_schedules(db) >= settings.SCHEDULES_MAX:
        raise Conflict(f"There are already {settings.SCHEDULES_MAX} schedules (SCHEDULES_MAX); delete one first.")
    now = utcnow()
    doc.update(created_at=now, updated_at=now, since=_this_minute(now))
    storage.insert_schedule(db, doc)
    return _view(doc, db, _now())


def _schedule_doc(db: Database, schedule_id: str) -> dict[str, Any]:
    doc = storage.get_schedule(db, schedule_id) if is_id(schedule_id) else None
    if doc is None:
        raise NotFound(f"Unknown schedule: {schedule_id}")
    return doc


def get_schedule(*, schedule_id: str) -> ScheduleView:
    db = storage.get_db()
    return _view(_schedule_doc(db, schedule_id), db, _now())


def list_schedules(*, page: int = 1, page_size: int = PAGE_SIZE_DEFAULT) -> Page[ScheduleView]:
    """One page of the schedules, oldest first."""
    skip = page_skip(page=page, page_size=page_size)
    db = storage.get_db()
    docs = storage.all_schedules(db)
    now = _now()
    results = [_view(doc, db, now) for doc in docs[skip : skip + page_size]]
    return Page(count=len(docs), page=page, page_size=page_size, results=results)


def update_schedule(*, schedule_id: str, changes: Mapping[str, Any]) -> ScheduleView:
    """Change any of ``EDITABLE_FIELDS``; ``enabled: false`` pauses it. A new cron or zone, or resuming, starts
    from now: slots before it never run."""
    db = storage.get_db()
    doc = _schedule_doc(db, schedule_id)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"cannot be changed (only {', '.join(EDITABLE_FIELDS)})")
    fields: dict[str, Any] = {}
    if "name" in changes:
        fields["name"] = _checked_name(changes["name"])
    if "cron" in changes or "timezone" in changes:
        cron, zone = _checked_cron(changes.get("cron", doc["cron"]), changes.get("timezone", doc["timezone"]))
        if (cron, zone) != (doc["cron"], doc["timezone"]):
            fields.update(cron=cron, timezone=zone, since=_this_minute(utcnow()))
    if "format" in changes:
        fields["format"] = _checked_format(changes["format"])
    if "channels" in changes:
        fields["channels"] = _checked_channels(changes["channels"])
    for field in ("region", "brand"):
        if field in changes:
            fields[field] = _checked_filter(field, changes[field])
    if "skip_empty" in changes:
        fields["skip_empty"] = bool(changes["skip_empty"])
    if "enabled" in changes:
        fields["enabled"] = bool(changes["enabled"])
        if fields["enabled"] and not doc["enabled"]:
            fields["since"] = _this_minute(utcnow())  # resumed: what was missed while paused stays missed
    if not fields:
        return _view(doc, db, _now())
    updated = storage.update_schedule(db, schedule_id, fields)
    if updated is None:
        raise NotFound(f"Unknown schedule: {schedule_id}")
    return _view(updated, db, _now())


def delete_schedule(*, schedule_id: str) -> None:
    """Remove it: no slot runs from now on (a run already started still delivers)."""
    db = storage.get_db()
    _schedule_doc(db, schedule_id)
    storage.delete_schedule(db, schedule_id)


def run_now(*, schedule_id: str, now: dt.datetime | None = None) -> tuple[RunView, bool]:
    """Run the schedule once now (also a paused one), as of the current minute: (the run, whether it is new).
    A second call within the same minute answers that minute's run (a double click makes one report)."""
    db = storage.get_db()
    doc = _schedule_doc(db, schedule_id)
    at = _aware(now or _now()).replace(second=0, microsecond=0)
    run_id = f"{schedule_id}:manual:{ts_to_us(at)}"
    run, created = _start(db, doc, at, kind="manual", run_id=run_id, from_request=True)
    if created:
        storage.note_manual_run(db, schedule_id, run_id)
    return _run_view(run), created


def get_run(*, run_id: str) -> RunView:
    run = storage.get_run(storage.get_db(), run_id)
    if run is None:
        raise NotFound(f"Unknown run: {run_id}")
    return _run_view(run)


# --- the tick -------------------------------------------------------------------------------------------

# Runs this process saw finished (delivered or skipped): the tick skips their lookup until the next slot.
_finished_lock = threading.Lock()
_finished: OrderedDict[str, None] = OrderedDict()
_FINISHED_MAX = 10_000


def _seen_finished(run_id: str) -> bool:
    with _finished_lock:
        return run_id in _finished


def _note_finished(run_id: str) -> None:
    with _finished_lock:
        _finished[run_id] = None
        while len(_finished) > _FINISHED_MAX:
            _finished.popitem(last=False)


# A cron run started this long after its slot counts as missed (loop_schedule_runs_missed_total): the beat
# ticks every SCHEDULE_TICK_SECONDS, so only a beat, broker or MongoDB that was away makes a run this late.
LATE_AFTER = dt.timedelta(minutes=5)


def run_due_schedules(*, now: dt.datetime | None = None, db: Database | None = None) -> int:
    """Beat: claim and start each enabled schedule's newest due slot not run yet; how many runs started here.

    Claimed slots are skipped (another beat or an earlier tick has them), so any number of beats make one run
    per slot. A claimed run still waiting for its report is looked at (the follow-up's safety net)."""
    db = db if db is not None else storage.get_db()
    now = _aware(now or _now())
    _clean_up_now_and_then(db)
    started = 0
    for doc in storage.all_schedules(db):
        _finish_manual_run(db, doc.get("last_manual_run"))
        if not doc.get("enabled"):
            continue
        try:
            slot = _due_slot(doc, now)
        except CronError:  # stored before a rule changed: never blocks the other schedules
            logger.warning("schedule %s has an unusable cron or zone", doc.get("schedule_id"))
            continue
        if slot is None:
            continue
        run_id = _cron_run_id(doc["schedule_id"], slot)
        if _seen_finished(run_id):
            continue
        try:
            _, created = _start(db, doc, slot, kind="cron", run_id=run_id)
        except Exception:  # one schedule's failure (MongoDB away) must not stop the others; the next tick retries
            logger.exception("scheduled run %s could not start", run_id)
            continue
        started += int(created)
        if created and now - slot > LATE_AFTER:
            metrics.schedule_run_missed()  # started late: everything was down at its time (or beat was)
    return started


def _finish_manual_run(db: Database, run_id: str | None) -> None:
    """The safety net of a run-now's follow-up (a lost task): finish it if its report is done."""
    if not run_id or _seen_finished(run_id):
        return
    try:
        finish_run(run_id=run_id, db=db, requeue=False)
    except Exception:  # the next tick tries again
        logger.exception("scheduled run %s could not be finished", run_id)


_last_cleanup: list[float] = []


def _clean_up_now_and_then(db: Database) -> None:
    if _last_cleanup and time.monotonic() - _last_cleanup[0] < RUN_CLEANUP_SECONDS:
        return
    _last_cleanup[:] = [time.monotonic()]
    try:
        remove_old_runs(db=db)
    except Exception:  # retention can wait for the next hour
        logger.exception("removing old scheduled runs failed")


def _start(
    db: Database, schedule: Mapping[str, Any], slot: dt.datetime, *, kind: str, run_id: str, from_request: bool = False
) -> tuple[dict[str, Any], bool]:
    """Claim the run and start its report; (the run, whether this call claimed it)."""
    doc: dict[str, Any] = {
        "run_id": run_id,
        "schedule_id": schedule["schedule_id"],
        "kind": kind,
        "slot_us": ts_to_us(slot),
        "claimed_at": utcnow(),
        "state": RunState.CLAIMED,
        "outcome": None,
        "report_id": None,
        "now_us": None,
        "data_note": None,
        "delivery_ids": [],
        "finished_at": None,
        # What the run delivers, as the schedule said when it started (a later change does not alter it).
        "schedule_name": schedule["name"],
        "format": schedule["format"],
        "timezone": schedule["timezone"],
        "channels": list(schedule["channels"]),
        "region": schedule.get("region"),
        "brand": schedule.get("brand"),
        "skip_empty": bool(schedule.get("skip_empty")),
    }
    if storage.claim_run(db, doc):
        return _launch(db, doc, from_request=from_request), True
    existing = storage.get_run(db, run_id)
    if existing is None:  # removed by retention meanwhile: nothing to do
        return doc, False
    if existing["state"] == RunState.CLAIMED:
        age = (utcnow() - existing["claimed_at"]).total_seconds()
        if age > CLAIM_STALE_SECONDS:  # its claimant died before creating the report: resume it
            return _launch(db, existing, from_request=from_request), False
    elif existing["state"] == RunState.RUNNING and not from_request:
        finish_run(run_id=run_id, db=db, requeue=False)
    else:
        _note_finished(run_id)
    return existing, False


def _data_note(lag: dt.timedelta) -> str | None:
    if lag <= DATA_LAG_NOTE:
        return None
    return f"data ends {lag_words(lag)} before this report's time"


def _launch(db: Database, run: dict[str, Any], *, from_request: bool) -> dict[str, Any]:
    """Pin ``now`` and create and queue the run's report (its id derived from the run: created once)."""
    run_id = run["run_id"]
    slot = us_to_ts(int(run["slot_us"]))
    newest = storage.newest_poll_at_or_before(db, slot)
    if newest is None:
        fields: dict[str, Any] = {"error": f"no stored poll at or before {utc_text(slot.to_pydatetime())}"}
        run.update(fields)
        storage.update_run(db, run_id, fields)
        return _deliver(db, run, failed=True)
    report_id = derived_id(run_id, "report")
    report_format = ReportFormat(run["format"])
    gap = DEFAULT_MAX_GAP_MINUTES if report_format == ReportFormat.EXTENDED else None
    created = storage.create_run_report(db, report_id, newest, report_format=report_format, max_gap_minutes=gap)
    fields = {
        "state": RunState.RUNNING,
        "report_id": report_id,
        "now_us": ts_to_us(newest),
        "data_note": _data_note((slot - newest).to_pytimedelta()),
    }
    run.update(fields)
    storage.update_run(db, run_id, fields)
    if created:
        try:
            queue.enqueue_report(report_id)
        except Exception as exc:
            # Nothing will run it: fail it now, and deliver that (stored; the sweep sends it once the broker is back).
            storage.fail_report(db, report_id, "could not queue the report: the task broker is unavailable")
            finish_run(run_id=run_id, db=db, requeue=False)
            if from_request:
                raise Unavailable("The task broker is unavailable; the report was not started.") from exc
            return storage.get_run(db, run_id) or run
    try:
        queue.enqueue_run_finish(run_id, 0, FIRST_CHECK_SECONDS)
    except Exception as exc:  # the tick's safety net finishes the newest run of each schedule
        logger.warning("the follow-up of run %s was not queued: %s", run_id, exc)
    return run


# --- finishing a run: the delivery ------------------------------------------------------------------------


def _local_text(instant: dt.datetime, zone_name: str | None) -> str | None:
    """The slot on the schedule's clock, with its offset then (e.g. 2026-12-07T09:00:00-05:00)."""
    try:
        return instant.astimezone(parse_zone(zone_name or "")).isoformat()
    except CronError:
        return None


def finish_run(*, run_id: str, check: int = 0, db: Database | None = None, requeue: bool = True) -> str:
    """Deliver the run once its report is finished; else look again later (``requeue``). What happened."""
    db = db if db is not None else storage.get_db()
    run = storage.get_run(db, run_id)
    if run is None:
        _note_finished(run_id)  # removed by retention: nothing to look at again
        return "missing"
    if run["state"] in (RunState.DELIVERED, RunState.SKIPPED):
        _note_finished(run_id)
        return "done"
    if run["state"] != RunState.RUNNING or not run.get("report_id"):
        return "not started"
    try:
        report = get_report(report_id=run["report_id"])  # the lost and stale rules apply
    except NotFound:
        run["error"] = "the report was deleted before it was delivered"
        _deliver(db, run, failed=True)
        return "failed"
    if report["status"] == ReportStatus.RUNNING:
        if requeue and check < MAX_CHECKS:
            delay = min(MAX_CHECK_SECONDS, FIRST_CHECK_SECONDS * 2 ** (check + 1))
            try:
                queue.enqueue_run_finish(run_id, check + 1, delay)
            except Exception as exc:
                logger.warning("the follow-up of run %s was not queued: %s", run_id, exc)
        return "waiting"
    if report["status"] == ReportStatus.FAILED:
        run["error"] = report.get("error") or "unknown error"
        _deliver(db, run, failed=True)
        return "failed"
    _deliver(db, run, failed=False)
    return "delivered"


def _deliver(db: Database, run: dict[str, Any], *, failed: bool) -> dict[str, Any]:
    """Publish the run's event to its channels (ids derived from the run: once) and record it."""
    run_id = run["run_id"]
    now = _now()
    slot = us_to_ts(int(run["slot_us"])).to_pydatetime()
    data: dict[str, Any] = {
        "schedule_id": run["schedule_id"],
        "schedule_name": run["schedule_name"],
        "run_id": run_id,
        "slot": utc_text(slot),
        "slot_local": _local_text(slot, run.get("timezone")),
        "report_id": run.get("report_id"),
        "format": run["format"],
        "region": run.get("region"),
        "brand": run.get("brand"),
        "now": None if run.get("now_us") is None else utc_text(us_to_ts(int(run["now_us"])).to_pydatetime()),
        "data_note": run.get("data_note"),
    }
    if failed:
        event = Event(type=REPORT_FAILED, timestamp=now, data={**data, "error": run.get("error")})
    else:
        summary = report_summary(report_id=run["report_id"], region=run.get("region"), brand=run.get("brand"))
        if summary.rows == 0 and run.get("skip_empty"):
            fields = {"state": RunState.SKIPPED, "outcome": "completed", "finished_at": utcnow()}
            storage.update_run(db, run_id, fields)
            _note_finished(run_id)
            return {**run, **fields}
        url, expires = download_url(
            report_id=run["report_id"], region=run.get("region"), brand=run.get("brand"), now=now
        )
        data.update(rows=summary.rows, worst=summary.worst, download_url=url, download_expires_at=utc_text(expires))
        event = Event(type=REPORT_COMPLETED, timestamp=now, data=data)
    delivery_ids, stored = publish_to(
        event=event, channel_ids=run["channels"], key=run_id, schedule_id=run["schedule_id"]
    )
    fields = {
        "state": RunState.DELIVERED,
        "outcome": "failed" if failed else "completed",
        "delivery_ids": delivery_ids,
        "finished_at": utcnow(),
        "error": run.get("error"),
    }
    storage.update_run(db, run_id, fields)
    _note_finished(run_id)
    logger.info("scheduled run %s: %s, %d delivery(ies) stored", run_id, fields["outcome"], stored)
    return {**run, **fields}


def _run_retention() -> dt.timedelta:
    """How long runs are kept, and how late a slot may still run: REPORT_RETENTION_DAYS (its report's life),
    at least ``RUN_RETENTION_MIN`` (0 keeps reports forever: runs then go after that minimum too). A slot
    older than this never runs, so the claim of every slot the tick may still run is always there."""
    days = int(settings.REPORT_RETENTION_DAYS)
    return max(RUN_RETENTION_MIN, dt.timedelta(days=days)) if days > 0 else RUN_RETENTION_MIN


def remove_old_runs(*, db: Database | None = None) -> int:
    """Runs claimed longer than ``_run_retention()`` ago (a filtered delete: hourly, off the tick's path)."""
    db = db if db is not None else storage.get_db()
    return storage.delete_runs_before(db, utcnow() - _run_retention())
