"""A table of per-store rows packed into few documents: one versioned head, and parts of binary columns.

Used for business hours, holiday hours, time zones and the store catalog
(docs/storage.md). Rows are kept sorted by store id and cut into parts of at
most ``part_rows`` rows (``PART_ROWS`` unless the table says otherwise); the
head lists each part's first and last store id, so one store's rows are one or
two ``_id`` lookups away. The whole table is replaced at once: new
parts under a new token, then a compare-and-set on the head's version, so
concurrent writers never lose each other's rows (the loser merges again).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from bson.binary import Binary
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from loop.timeutil import utcnow

logger = logging.getLogger(__name__)

PART_ROWS = 5000
READ_ATTEMPTS = 5
STORE_ID = "store_id"
# Column kinds: packed UTF-8 strings, or little-endian int64.
STR, INT = "str", "i8"
# An int column read from a part written before the column was added.
MISSING = -1

Columns = dict[str, np.ndarray]


class TableMoved(RuntimeError):
    """A version (a table's or a day's) was replaced while being read, more often than READ_ATTEMPTS allows."""


def pack_strings(values: np.ndarray) -> tuple[Binary, Binary]:
    """Strings as (UTF-8 bytes concatenated, int32 byte lengths)."""
    encoded = [str(v).encode("utf-8") for v in values]
    return Binary(b"".join(encoded)), Binary(np.array([len(e) for e in encoded], dtype="<i4").tobytes())


def unpack_strings(blob: bytes, lengths: bytes) -> np.ndarray:
    sizes = np.frombuffer(lengths, dtype="<i4")
    ends = np.cumsum(sizes)
    data = bytes(blob)
    return np.array(
        [data[a:b].decode("utf-8") for a, b in zip((ends - sizes).tolist(), ends.tolist(), strict=True)], dtype=object
    )


@dataclass(frozen=True)
class PackedTable:
    """Where a table lives: its head document and the collection of its parts."""

    heads: str
    head_id: str
    parts: str
    kinds: tuple[tuple[str, str], ...]  # (column, kind); the first column is the store id
    # Rows per part: smaller parts make one store's read cheaper (FerretDB decodes whole documents),
    # larger ones make a whole-table read use fewer documents.
    part_rows: int = PART_ROWS

    def empty(self) -> Columns:
        return {name: np.empty(0, object if kind == STR else np.int64) for name, kind in self.kinds}

    def _pack(self, columns: Columns, token: str, k: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_id": f"{token}|{k}",
            "token": token,
            "n": len(columns[STORE_ID]),
            "at": int(time.time()),
        }
        for name, kind in self.kinds:
            if kind == STR:
                doc[name], doc[f"{name}_lengths"] = pack_strings(columns[name])
            else:
                doc[name] = Binary(np.asarray(columns[name], dtype="<i8").tobytes())
        return doc

    def _unpack(self, doc: dict[str, Any]) -> Columns:
        # A cached part is unpacked once per process (its arrays are never written to).
        kept = doc.get("__columns")
        if kept is None:
            kept = doc["__columns"] = self._unpack_arrays(doc)
        return dict(kept)

    def _unpack_arrays(self, doc: dict[str, Any]) -> Columns:
        return {
            name: unpack_strings(doc[name], doc[f"{name}_lengths"])
            if kind == STR
            else np.frombuffer(doc[name], dtype="<i8").astype(np.int64)
            if name in doc
            else np.full(int(doc["n"]), MISSING, dtype=np.int64)  # a part written before the column existed
            for name, kind in self.kinds
        }

    def read(
        self, db: Database, store_id: str | None = None, *, store_ids: np.ndarray | StoreRange | None = None
    ) -> tuple[dict[str, Any] | None, Columns]:
        """The head and the rows (only ``store_id``'s, or the parts that can hold ``store_ids``, when given),
        all from one version."""
        # The store tables are small next to a day's polls: their parts are always worth keeping.
        head, docs = read_version(
            db,
            heads=self.heads,
            head_id=self.head_id,
            parts=self.parts,
            store_id=store_id,
            store_ids=store_ids,
            cache=True,
            # A whole-table read fetches the parts it misses in one query: one _id lookup each costs a scan
            # of the collection on FerretDB (10x hours: 287 parts, 3.8 s one by one, 0.6 s at once).
            cache_whole_version=store_id is None and store_ids is None,
        )
        if head is None:
            return None, self.empty()
        pieces = [self._unpack(doc) for doc in docs]
        columns = {
            name: np.concatenate([p[name] for p in pieces]) if pieces else self.empty()[name] for name, _ in self.kinds
        }
        if store_id is not None:
            keep = columns[STORE_ID] == store_id
            columns = {name: values[keep] for name, values in columns.items()}
        return head, columns

    def replace(
        self,
        db: Database,
        expected: dict[str, Any] | None,
        columns: Columns,
        *,
        extra: dict[str, Any] | None = None,
        later: list[tuple[str, str]] | None = None,
    ) -> bool:
        """Store ``columns`` (sorted by store id) as the new version; False if another writer won.

        ``extra``: more fields of the new head (the catalog's ``DeltaLog`` position); ``later``: as for
        ``publish_version``."""
        token = secrets.token_hex(8)
        rows, size = len(columns[STORE_ID]), self.part_rows
        docs = [
            self._pack({name: values[start : start + size] for name, values in columns.items()}, token, k)
            for k, start in enumerate(range(0, rows, size))
        ]
        bounds = [columns[STORE_ID][start : start + size] for start in range(0, rows, size)]
        return publish_version(
            db,
            heads=self.heads,
            head_id=self.head_id,
            parts=self.parts,
            expected=expected,
            docs=docs,
            head={"token": token, "parts": part_index(bounds), "rows": rows, "updated_at": utcnow(), **(extra or {})},
            # Read with the cache (above): the catalog an hourly batch rewrites is read again by its
            # alert evaluation and daily figures (~0.1 s at 10x).
            keep=True,
            later=later,
        )


def part_index(store_ids_per_part: list[np.ndarray]) -> str:
    """A head's list of parts, each part's first and last store id and rows (sorted by store), as one JSON
    string: FerretDB finds a document by ``_id`` by decoding every row before it, and a string costs it a
    fifth of the list of sub-documents it replaces (10.4 against 2.0 ms for the newest day's head at 10x)."""
    return json.dumps(
        [[str(ids[0]), str(ids[-1]), len(ids)] for ids in store_ids_per_part], ensure_ascii=False, separators=(",", ":")
    )


def head_parts(head: dict[str, Any]) -> list[dict[str, Any]]:
    """A head's parts as ``{"k", "first", "last", "n"}`` (``part_index``'s string, or the list of
    sub-documents heads were written with before it)."""
    named = head.get("parts") or []  # FerretDB may drop an empty list
    if isinstance(named, str):
        return [{"k": k, "first": first, "last": last, "n": n} for k, (first, last, n) in enumerate(json.loads(named))]
    return list(named)


class PartCache:
    """Part documents kept per process, least recently used first out, up to ``max_bytes`` of binary data.

    A part never changes: its ``_id`` names the random token of the version it belongs to, and a
    replaced version's parts are deleted, not rewritten. So a kept part is always the stored one;
    only which parts a head names can change, and heads are not kept here. Used by the packed
    tables (hours, holiday hours, zones, catalog: small) and by one store's reads of a day: the
    first such read keeps all the day's parts (~40 KB each, ~2 MB for a week of the Loop-2025-sized
    set), so the drill-down of the next stores reads no part; whole-day reads (the report) would
    only push them out.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._docs: OrderedDict[tuple[int, str, str, str], tuple[dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, db: Database, parts: str, part_id: str) -> dict[str, Any] | None:
        key = (id(db.client), db.name, parts, part_id)
        with self._lock:
            found = self._docs.get(key)
            if found is None:
                return None
            self._docs.move_to_end(key)
            return found[0]

    def put(self, db: Database, parts: str, part_id: str, doc: dict[str, Any]) -> None:
        size = sum(len(value) for value in doc.values() if isinstance(value, bytes | Binary))
        if size > self.max_bytes:
            return
        key = (id(db.client), db.name, parts, part_id)
        with self._lock:
            if key in self._docs:
                return
            self._docs[key] = (doc, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._docs.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()
            self._bytes = 0


# 64 MB: every day part of a 1x month (~60 KB each) with room to spare; at most that, whatever the scale.
_part_cache = PartCache(64 << 20)


# The missing parts of a version come in one ``$in`` query when they are at least 1/IN_QUERY_SHARE of its parts.
# Measured on FerretDB: an ``$in`` passes over the whole collection (~1.5 ms a part), one ``_id`` lookup costs
# ~3.6 ms: the query wins from about a third of the parts on.
IN_QUERY_SHARE = 3


def read_version(
    db: Database,
    *,
    heads: str,
    head_id: str,
    parts: str,
    store_id: str | None = None,
    store_ids: np.ndarray | StoreRange | None = None,
    head: dict[str, Any] | None = None,
    cache: bool = False,
    cache_whole_version: bool = False,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The current head and its part documents (only those that can hold ``store_id``, or one of the
    sorted ``store_ids``, when given).

    A part gone between reading the head and the part means the version was replaced meanwhile:
    the new head is read. ``head``, when the caller has just read it, saves a round trip.
    ``cache``: keep the parts read in (and take them from) the process's ``PartCache``.
    ``cache_whole_version``: fetch and keep all the version's missing parts, not only those asked for, so
    the next stores' reads of it come from memory (one store's days: the drill-down).
    The parts not in the cache come in one ``$in`` query when they are many (``IN_QUERY_SHARE``), else by
    ``_id`` one each.
    """
    for _ in range(READ_ATTEMPTS):
        if head is None:
            head = db[heads].find_one({"_id": head_id})
        if head is None:
            return None, []
        named = head_parts(head)
        wanted = [
            f"{head['token']}|{part['k']}"
            for part in named
            if (store_id is None or part["first"] <= store_id <= part["last"])
            and (store_ids is None or covers_any(part, store_ids))
        ]
        asked = [f"{head['token']}|{part['k']}" for part in named] if cache and cache_whole_version else wanted
        found = {part_id: _part_cache.get(db, parts, part_id) if cache else None for part_id in asked}
        missing = [part_id for part_id, doc in found.items() if doc is None]
        if len(missing) > 1 and len(missing) * IN_QUERY_SHARE >= len(named):
            # One query for many parts: FerretDB answers ``$in`` with one pass over the collection, cheaper
            # than a third of its parts fetched one ``_id`` lookup each.
            found.update((str(doc["_id"]), doc) for doc in db[parts].find({"_id": {"$in": missing}}))
        else:
            for part_id in missing:
                # _id equality: the one filter every server (FerretDB included) answers without decoding the collection.
                found[part_id] = db[parts].find_one({"_id": part_id})
        if cache:
            for part_id in missing:
                doc = found[part_id]
                if doc is not None:
                    _part_cache.put(db, parts, part_id, doc)
        docs = [doc for doc in (found[part_id] for part_id in wanted) if doc is not None]
        if len(docs) == len(wanted):
            return head, docs
        head = None  # a part gone: the version was replaced meanwhile
    raise TableMoved(f"{heads}/{head_id} was replaced {READ_ATTEMPTS} times while being read")


def covers_any(entry: dict[str, Any], store_ids: np.ndarray | StoreRange) -> bool:
    """Whether one of ``store_ids`` (sorted; or a ``StoreRange``) lies in the entry's [first, last] store range."""
    if isinstance(store_ids, StoreRange):
        return store_ids.overlaps(str(entry["first"]), str(entry["last"]))
    at = int(np.searchsorted(store_ids, entry["first"], side="left"))
    return at < len(store_ids) and str(store_ids[at]) <= entry["last"]


@dataclass(frozen=True)
class StoreRange:
    """The store ids ``lo <= id < hi`` (None: unbounded on that side), compared as Python strings (code
    points: the order parts and reports keep). A report shard's stores (``loop.sharding``): reads given one
    fetch only the parts whose [first, last] overlaps it (rows of other stores may come along: ``mask``)."""

    lo: str | None = None
    hi: str | None = None

    def overlaps(self, first: str, last: str) -> bool:
        return (self.hi is None or first < self.hi) and (self.lo is None or last >= self.lo)

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` lie in the range."""
        keep = np.ones(len(ids), dtype=bool)
        if len(ids) == 0:
            return keep
        text = np.asarray(ids, dtype=object)
        if self.lo is not None:
            keep &= np.array([value >= self.lo for value in text], dtype=bool)
        if self.hi is not None:
            keep &= np.array([value < self.hi for value in text], dtype=bool)
        return keep


@dataclass(frozen=True)
class DeltaLog:
    """Small writes appended beside a packed version: documents ``"<prefix>|<seq>"`` in its parts collection.

    A sequence number is taken by inserting the document under it: a unique ``_id`` insert is the one
    write every server (FerretDB included, whose updates are not atomic under concurrency) does
    atomically, so two writers never share a number and numbers have no gaps (a writer takes the
    first free one it finds). The head records ``through``, the last number folded into its parts;
    readers fetch ``through + 1, + 2, ...`` by ``_id`` until one is missing. A delta never changes,
    so every process keeps the ones it has read (``PartCache``).
    """

    parts: str
    prefix: str

    def doc_id(self, seq: int) -> str:
        return f"{self.prefix}|{seq}"

    def exists(self, db: Database, seq: int) -> bool:
        return db[self.parts].find_one({"_id": self.doc_id(seq)}, {"_id": 1}) is not None

    def read(
        self, db: Database, after: int, before: int | None = None, *, known_free: int | None = None
    ) -> tuple[list[dict[str, Any]], int] | None:
        """(the deltas numbered after ``after`` (and before ``before``), the first free number).

        None when a number below ``before`` is missing: folded and removed meanwhile (read the head again).
        ``known_free``: a number the caller knows is still free (its cache: no probe for it).
        """
        docs: list[dict[str, Any]] = []
        seq = after + 1
        while (before is None or seq < before) and (known_free is None or seq < known_free):
            doc_id = self.doc_id(seq)
            doc = _part_cache.get(db, self.parts, doc_id)
            if doc is None:
                doc = db[self.parts].find_one({"_id": doc_id})
                if doc is None:
                    if before is not None:
                        return None
                    break
                _part_cache.put(db, self.parts, doc_id, doc)
            docs.append(doc)
            seq += 1
        return docs, seq

    def append(self, db: Database, doc: dict[str, Any], seq: int) -> int:
        """Insert ``doc`` under the first free number from ``seq`` on; returns the number it got.

        ``seq`` taken (another writer came first): the deltas from it on are read, and so held from then
        on, to the first missing number, which is tried next (not one insert per number taken).
        """
        while True:
            stored = {**doc, "_id": self.doc_id(seq), "seq": seq}
            try:
                db[self.parts].insert_one(stored)
            except DuplicateKeyError:
                found = self.read(db, seq - 1)
                seq = seq + 1 if found is None else max(found[1], seq + 1)
                continue
            _part_cache.put(db, self.parts, stored["_id"], stored)  # this process's next read needs no fetch
            return seq

    def remove(self, db: Database, first: int, last: int) -> None:
        """Delete the deltas numbered ``first``..``last`` (folded long enough ago that no read still needs them)."""
        if last >= first:
            db[self.parts].delete_many({"_id": {"$in": [self.doc_id(seq) for seq in range(first, last + 1)]}})


LOCK_SECONDS = 300


@contextmanager
def exclusive(db: Database, heads: str, name: str, *, wait: float = 600.0) -> Iterator[bool]:
    """Hold the lock ``name`` (a document inserted under a unique ``_id`` in ``heads``) while inside.

    Yields False without the lock when ``wait`` seconds pass first (``wait=0``: try once). A lock older
    than ``LOCK_SECONDS`` (its holder died) is taken over.
    """
    lock_id = f"lock:{name}"
    deadline = time.monotonic() + wait
    while True:
        now = time.time()
        try:
            db[heads].insert_one({"_id": lock_id, "until": now + LOCK_SECONDS})
            break
        except DuplicateKeyError:
            held = db[heads].find_one({"_id": lock_id})
            if held is not None and held["until"] < now:
                db[heads].delete_one({"_id": lock_id, "until": held["until"]})
                continue
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(0.05)
    try:
        yield True
    finally:
        db[heads].delete_one({"_id": lock_id})


def publish_version(
    db: Database,
    *,
    heads: str,
    head_id: str,
    parts: str,
    expected: dict[str, Any] | None,
    docs: list[dict[str, Any]],
    head: dict[str, Any],
    keep: bool = False,
    later: list[tuple[str, str]] | None = None,
) -> bool:
    """Insert a version's parts (all named by ``head["token"]``), then make ``head`` current if
    ``expected`` still is (a new head for None). False if another writer won; the loser deletes
    its own parts, the winner the replaced version's. ``keep``: the winner's parts go into the
    process's ``PartCache`` (a part never changes), so its next read here fetches none. ``later``: the
    winner does not delete the replaced version's parts but adds ``(parts, token)`` to it, for the caller
    to hand to ``delete_versions_later`` once it has answered.
    On FerretDB the compare-and-set is not atomic (two writers can both match the same version), so
    the writers of one head also hold its ``exclusive`` lock; the check stays for mongod and mongomock.
    """
    for start in range(0, len(docs), 64):
        db[parts].insert_many(docs[start : start + 64], ordered=True)
    if expected is None:
        try:
            db[heads].insert_one({"_id": head_id, "version": 1, **head})
            won = True
        except DuplicateKeyError:
            won = False
    else:
        result = db[heads].update_one(
            {"_id": head_id, "version": expected["version"]}, {"$set": {**head, "version": expected["version"] + 1}}
        )
        won = result.matched_count == 1
    if won:
        stale = None if expected is None else expected["token"]
    else:
        stale = head["token"]
    if stale and won and later is not None:
        later.append((parts, stale))
    elif stale:  # a head a delta created has no parts yet (token "")
        db[parts].delete_many({"token": stale})
    if won and keep:
        for doc in docs:
            _part_cache.put(db, parts, str(doc["_id"]), doc)
    return won


_janitors: dict[int, ThreadPoolExecutor] = {}
_janitors_lock = threading.Lock()


def _janitor() -> ThreadPoolExecutor:
    pid = os.getpid()  # one per process: threads must not cross a fork
    with _janitors_lock:
        if pid not in _janitors:
            _janitors[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stale-parts")
        return _janitors[pid]


def delete_versions_later(db: Database, versions: Sequence[tuple[str, str]]) -> None:
    """Delete replaced versions' parts (``(parts collection, token)``) on a thread of this process, so an
    hourly batch's answer does not wait for them: on FerretDB each delete scans the collection (~0.12 s
    for a 10x day). No reader reads a replaced version's parts; those of a process that died first are
    removed by ``storage.polls.remove_orphan_parts``."""
    if versions:
        _janitor().submit(_delete_versions, db, list(versions))


def _delete_versions(db: Database, versions: list[tuple[str, str]]) -> None:
    for parts, token in versions:
        try:
            db[parts].delete_many({"token": token})
        except Exception:  # left for remove_orphan_parts
            logger.exception("could not delete the replaced parts %s/%s", parts, token)


def wait_for_deletions(timeout: float = 120.0) -> None:
    """Until the deletions handed to ``delete_versions_later`` so far are done (tests, benchmarks)."""
    _janitor().submit(lambda: None).result(timeout=timeout)


def sorted_by_store(columns: Columns) -> Columns:
    """Rows ordered by store id; a store's rows keep their order (a stable sort)."""
    order = np.argsort(columns[STORE_ID].astype(str), kind="stable")
    return {name: values[order] for name, values in columns.items()}


def same_rows(a: Columns, b: Columns) -> bool:
    return all(len(a[name]) == len(b[name]) and np.array_equal(a[name], b[name]) for name in a)
