"""Ingesting a batch of polls over HTTP: the same reader, checks and writer as ``load_data``.

A CSV body is read by ``loop.sources`` exactly as a status file is; a JSON
list is turned into the same raw text rows and checked by the same function.
Valid polls go through ``loop.ingest.dedup.PollWriter``, so posting a batch
twice stores nothing new and repeats follow "inactive wins".
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from pymongo.database import Database

from loop import metrics, queue, storage
from loop.errors import Conflict, InvalidInput
from loop.ingest.dedup import DELTA_MAX_POLLS, PollWriter
from loop.services import history
from loop.services.alerts import evaluate_alerts, request_evaluation
from loop.sources.locate import CsvSource
from loop.sources.problems import InputFileError, RowProblems
from loop.sources.read import STATUS_COLUMNS, iter_status_chunks
from loop.sources.rows import raw_rows_from_items
from loop.sources.validate import validate_status_rows
from loop.storage.legacy import LegacyLayoutError, has_legacy_polls

logger = logging.getLogger(__name__)

MAX_PROBLEMS_SHOWN = 20
BODY = "body"


@dataclass(frozen=True)
class IngestResult:
    """What a batch did: rows read, polls new to the store, repeats, rejected rows and the first reasons."""

    read: int
    inserted: int
    duplicates: int
    rejected: int
    problems: list[str] = field(default_factory=list)


def ingest_polls(
    *, csv_body: bytes | None = None, items: list[object] | None = None, strict: bool = False
) -> IngestResult:
    """Validate a batch (a CSV body or a JSON list; exactly one) and store its valid polls.

    ``strict``: any rejected row refuses the whole batch (InvalidInput) before anything is written.
    """
    if (csv_body is None) == (items is None):
        raise ValueError("give exactly one of csv_body and items")
    problems = RowProblems()
    if csv_body is not None:
        where = "line"
        source = CsvSource(BODY, lambda: io.BytesIO(csv_body))
        try:
            # chunk_rows=None: one chunk, the reader load_data uses for a whole file.
            chunks = list(iter_status_chunks(source, problems, chunk_rows=None))
        except InputFileError as exc:
            message = str(exc).removeprefix(f"{BODY}: ")
            # The reader quotes the header back: keep a garbage "header" from filling the answer.
            raise InvalidInput(BODY, message if len(message) <= 300 else message[:300] + "...") from None
    else:
        where = "item"
        if not items:
            raise InvalidInput(BODY, "the batch is empty: send a list of polls")
        columns = tuple(STATUS_COLUMNS)
        raw, indexes = raw_rows_from_items(items, columns, BODY, problems)
        chunks = [validate_status_rows(raw, indexes, BODY, problems)]
    shown = [f"{where} {p.line}: {p.reason}" for p in sorted(problems.examples, key=lambda p: p.line)]
    shown = shown[:MAX_PROBLEMS_SHOWN]
    if strict and problems.total:
        raise InvalidInput("rows", f"strict: {problems.total} row(s) rejected, nothing was stored: " + "; ".join(shown))
    db = storage.get_db()
    if has_legacy_polls(db):
        raise Conflict(str(LegacyLayoutError()))
    # An hourly batch's replaced day and catalog versions are deleted after its evaluation and figures, on
    # a thread: its answer waits ~0.25 s less at 10x on FerretDB, and those scans do not slow its reads.
    writer = PollWriter(db, deltas_up_to=DELTA_MAX_POLLS, delete_later=True)
    valid = 0
    for chunk in chunks:
        valid += len(chunk)
        writer.write(chunk)
    written = writer.flush()
    if written.compaction_due:
        try:
            queue.enqueue_poll_compaction()
        except Exception:  # the polls are stored; the beat's compaction folds them in later
            logger.exception("could not ask for a poll compaction")
    metrics.polls_received(source="api", valid=valid, stored=written.inserted, rejected=problems.total)
    try:
        if valid:
            _after_batch(chunks, valid)
    finally:
        writer.delete_replaced_later()
    return IngestResult(
        read=valid + problems.total,
        inserted=written.inserted,
        duplicates=valid - written.inserted,
        rejected=problems.total,
        problems=shown,
    )


# True: an hourly batch's daily figures are updated on a thread of their own while its alerts are evaluated
# (the answer waits for both). Once the evaluation's CPU work shrank (stop 27) both mostly wait on the
# database, and at 10x the batch measured ~10% faster beside than after (bench_history alternates both
# ways: 2.13 / 2.36 s and 1.98 / 2.33 s medians; 1x 0.28 / 0.31 s).
OVERLAP_FIGURES = True
_pools: dict[int, ThreadPoolExecutor] = {}


def _figures_pool() -> ThreadPoolExecutor:
    pid = os.getpid()  # one pool per process: threads must not cross a fork
    if pid not in _pools:
        _pools[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-figures")
    return _pools[pid]


def _after_batch(chunks: list, valid: int) -> None:
    """The batch's alert evaluation and daily figures (``history.after_batch``, which never raises); an
    hourly batch's both in its request, side by side."""
    inline = valid > DELTA_MAX_POLLS
    if not (inline and OVERLAP_FIGURES):
        _evaluate_after_batch(valid)
        history.after_batch(chunks, inline=inline)
        return
    # The request's context (its request id in the logs and the tasks it asks for) goes along.
    figures = _figures_pool().submit(contextvars.copy_context().run, history.after_batch, chunks, inline=True)
    try:
        _evaluate_after_batch(valid)
    finally:
        figures.result()


def _evaluate_after_batch(valid: int) -> None:
    """Evaluate alerts on what the batch wrote.

    A batch that rewrote its days (more than ``DELTA_MAX_POLLS`` polls: an hourly file) is evaluated here,
    on the days it has just written, which this process keeps: at 10x that is ~0.4 s more for its request
    instead of ~0.6 s on a worker that reads the days again, and its answer comes once its alerts are
    out. A small batch only asks a worker, so it stays cheap. The request runs one round at most; the
    worker is asked either way and finds nothing left to do unless other batches came meanwhile (or
    another evaluation held the lock: that one runs again on the newer data).
    """
    if valid > DELTA_MAX_POLLS:
        try:
            evaluate_alerts(rounds=1)
        except Exception:  # the polls are stored: the worker's evaluation catches up
            logger.exception("could not evaluate alerts after the batch")
        request_evaluation()
    else:
        request_evaluation(delay=settings.BATCH_FOLLOW_UP_SECONDS)


# A part no head names is an orphan once this old: no writer holds a day's lock that long (LOCK_SECONDS).
ORPHAN_PART_AGE_S = 3600.0


def remove_orphan_parts(db: Database | None = None) -> int:
    """Delete day parts a stopped writer left (``storage.remove_orphan_parts``): they are never read, but
    every ``_id`` lookup of their day on FerretDB scans past them. Returns how many went."""
    return storage.remove_orphan_parts(storage.get_db() if db is None else db, before=time.time() - ORPHAN_PART_AGE_S)


def compact_polls(db: Database | None = None) -> int:
    """Fold the deltas small batches appended into their days' parts and the catalog (``storage.compact_deltas``).

    Returns the number of deltas folded. Readers never wait for it: they merge pending deltas themselves.
    """
    days, catalog = storage.compact_deltas(storage.get_db() if db is None else db)
    return days + catalog
