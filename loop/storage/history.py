"""Daily figures (``loop.history``) as packed documents: one collection per local date, a block of stores per document.

Layout (docs/storage.md, "Daily figures"):

``store_history``
    ``"meta"``: the number of store blocks (fixed when the history is first written), the last pending
    change applied (``through``), the newest poll the figures cover (``newest_us``), the first and last
    date held and a ``version`` bumped by every write. ``"t|YYYY-MM"``: the fleet's totals per local date
    of that month and (region, brand) group, packed. ``"p|<n>"``: pending changes (``packed.DeltaLog``:
    numbered by unique insert), removed once applied. ``"lock:history"``: the one writer.
``store_history.YYYY-MM-DD``
    ``"b|<k>"``: the figures on that local date of the stores of block k (``block_of``: crc32 of the
    store id modulo the block count), packed columns, zlib-compressed; each row also carries the store's
    region and brand when it was written, so the group totals can be moved exactly when it is replaced.

One store's date is one ``_id`` lookup of a small document (~5 KB for 128 stores); a date of the whole
fleet is one query of a small collection; the fleet's totals of 90 dates are 3-4 small documents.
Written only under the history lock: documents are replaced in place (``replace_one``, upsert).
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from bson.binary import Binary
from pymongo import DeleteOne, ReplaceOne
from pymongo.database import Database

from loop.storage.client import is_mongomock
from loop.storage.packed import DeltaLog, exclusive, pack_strings, unpack_strings

HISTORY = "store_history"
META = "meta"
LOCK = "history"
CODEC = "zlib"
# Stores per block when the history is first written: small blocks for the month tiles (a store's read
# fetches 3-4 tiles of ~32 stores x 31 dates), larger ones for the date documents (every write of figures
# rewrites its dates' documents: fewer, larger ones). Both powers of two, so a tile block lies in one date block.
BLOCK_STORES = 32
DATE_BLOCK_STORES = 512
MAX_BLOCKS = 4096
PENDING = DeltaLog(HISTORY, "p")
# Month tiles: "store_history_months.YYYY-MM" / "b|<k>", the block's rows of the month's folded dates.
TILES = "store_history_months"
READ_THREADS = 8

# Row columns of a block document (besides store_id, region and brand).
FLOATS = ("up_s", "down_s", "unobserved_s", "longest_s")
INTS = ("outages",)
ROW_COLUMNS = ("store_id", "date", *FLOATS, *INTS, "region", "brand")
# Columns of a trend month document (besides day, region and brand).
TREND_FLOATS = ("up_s", "down_s", "unobserved_s")
TREND_INTS = ("stores_down", "stores_open")
TREND_COLUMNS = ("date", "region", "brand", *TREND_FLOATS, *TREND_INTS)


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": pd.Series(dtype=object),
            "date": pd.Series(dtype=object),
            **{c: pd.Series(dtype=np.float64) for c in FLOATS},
            **{c: pd.Series(dtype=np.int64) for c in INTS},
            "region": pd.Series(dtype=object),
            "brand": pd.Series(dtype=object),
        }
    )


def block_of(store_ids: Iterable[str], blocks: int) -> np.ndarray:
    """Each store's block: crc32 of its UTF-8 id modulo the block count (stable across processes)."""
    return np.array([zlib.crc32(str(s).encode("utf-8")) % blocks for s in store_ids], dtype=np.int64)


def blocks_for(stores: int, per_block: int = BLOCK_STORES) -> int:
    """The block count of a history first written for ``stores`` stores: a power of two, ~``per_block`` each."""
    wanted = max(1, -(-stores // per_block))
    return min(MAX_BLOCKS, 1 << (wanted - 1).bit_length())


# --- meta, lock, pending changes --------------------------------------------------------------


def read_meta(db: Database) -> dict[str, Any] | None:
    return db[HISTORY].find_one({"_id": META})


def write_meta(db: Database, fields: dict[str, Any]) -> None:
    """Set meta fields and bump its version (callers hold the history lock)."""
    db[HISTORY].update_one({"_id": META}, {"$set": fields, "$inc": {"version": 1}}, upsert=True)


def history_lock(db: Database, *, wait: float = 600.0) -> AbstractContextManager[bool]:
    return exclusive(db, HISTORY, LOCK, wait=wait)


def append_pending(db: Database, change: dict[str, Any], *, meta: dict[str, Any] | None = None) -> int:
    """Note a change the figures must follow (numbered by unique insert, so concurrent writers never collide;
    the pending ones already read are kept per process, so a burst of writes does not probe them all again).
    ``meta``: the history's meta document, when the caller has just read it."""
    meta = (meta if meta is not None else read_meta(db)) or {}
    found = PENDING.read(db, int(meta.get("through", 0)))
    return PENDING.append(db, change, found[1] if found is not None else int(meta.get("through", 0)) + 1)


def read_pending(db: Database, through: int) -> list[dict[str, Any]]:
    """The pending changes numbered after ``through``, in order, up to the first missing number."""
    found = PENDING.read(db, through)
    return [] if found is None else found[0]


def last_pending(db: Database, through: int) -> int:
    """The number of the last pending change after ``through`` (``through`` when none)."""
    found = PENDING.read(db, through)
    return through if found is None else found[1] - 1


def remove_pending(db: Database, first: int, last: int) -> None:
    PENDING.remove(db, first, last)


# --- block documents ---------------------------------------------------------------------------


def _pack_block(rows: pd.DataFrame, date: str, block: int) -> dict[str, Any]:
    """A block's rows (sorted by store id; each with its date: a month tile holds many) as one document.

    Per store once: its id, region, brand and row count; per row: the date (int32 days since 1970-01-01)
    and the figures; every array zlib-compressed."""
    store_ids = rows["store_id"].to_numpy(dtype=object)
    first = np.ones(len(store_ids), dtype=bool)
    first[1:] = store_ids[1:] != store_ids[:-1]
    heads = np.flatnonzero(first)
    counts = np.diff(np.append(heads, len(store_ids)))
    return _pack_arrays(
        date,
        block,
        labels=_compressed_labels(
            (
                pack_strings(store_ids[heads]),
                pack_strings(rows["region"].to_numpy(dtype=object)[heads]),
                pack_strings(rows["brand"].to_numpy(dtype=object)[heads]),
            )
        ),
        counts=counts,
        days=rows["date"].to_numpy(dtype=object).astype("datetime64[D]").astype(np.int64),
        values={c: rows[c].to_numpy() for c in (*FLOATS, *INTS)},
    )


LABEL_FIELDS = ("store_id", "store_id_lengths", "region", "region_lengths", "brand", "brand_lengths")


def _compressed_labels(
    strings: tuple[tuple[bytes, bytes], tuple[bytes, bytes], tuple[bytes, bytes]],
) -> dict[str, Binary]:
    """The block document's label fields from the (bytes, lengths) of the stores' ids, regions and brands."""
    (ids, id_lengths), (regions, region_lengths), (brands, brand_lengths) = strings
    raw = (ids, id_lengths, regions, region_lengths, brands, brand_lengths)
    return {name: Binary(zlib.compress(bytes(data), 1)) for name, data in zip(LABEL_FIELDS, raw, strict=True)}


def _pack_arrays(
    name: str,
    block: int,
    *,
    labels: dict[str, Binary],
    counts: np.ndarray,
    days: np.ndarray,
    values: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The block document: ``labels`` = the compressed ``LABEL_FIELDS`` (one id, region and brand per store, in
    row order), ``counts`` = each store's rows, ``days`` = each row's date (days since 1970-01-01)."""
    arrays = {
        "store_rows": np.asarray(counts).astype("<i4").tobytes(),
        "day": np.asarray(days).astype(np.int64).astype("<i4").tobytes(),
        **{c: np.asarray(values[c]).astype("<f8").tobytes() for c in FLOATS},
        **{c: np.asarray(values[c]).astype("<i4").tobytes() for c in INTS},
    }
    packed = {key: Binary(zlib.compress(data, 1)) for key, data in arrays.items()}
    return {
        "_id": f"b|{block}",
        "date": name,
        "n": len(days),
        "codec": CODEC,
        **{key: labels[key] for key in LABEL_FIELDS[:2]},
        "store_rows": packed.pop("store_rows"),
        **{key: labels[key] for key in LABEL_FIELDS[2:]},
        **packed,
    }


# Blocks whose compressed labels a StoreLabels keeps (a build's date and tile blocks: ~1,300 at 10x, a few MB).
LABELS_KEPT = 4096


class StoreLabels:
    """Each store's id, region and brand (by store code) encoded once as UTF-8 in one buffer each: the many
    block documents of a full build gather them instead of encoding every string again (the same bytes
    as ``pack_strings``)."""

    def __init__(self, store_ids: np.ndarray, region: np.ndarray, brand: np.ndarray) -> None:
        self._columns = [self._encode(values) for values in (store_ids, region, brand)]
        self._compressed: dict[bytes, dict[str, Binary]] = {}

    @staticmethod
    def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encoded = [str(v).encode("utf-8") for v in values]
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return buffer, np.cumsum(lengths) - lengths, lengths

    def strings(self, codes: np.ndarray) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes], tuple[bytes, bytes]]:
        """(bytes, int32 lengths) of the ids, regions and brands of ``codes``, in that order."""
        out = []
        for buffer, starts, lengths in self._columns:
            mine = lengths[codes]
            ends = np.cumsum(mine)
            at = np.repeat(starts[codes] - (ends - mine), mine) + np.arange(int(ends[-1]) if len(ends) else 0)
            out.append((buffer[at].tobytes(), mine.astype("<i4").tobytes()))
        return out[0], out[1], out[2]

    def compressed(self, codes: np.ndarray) -> dict[str, Binary]:
        """The label fields of a block of these stores (``codes``, in row order), compressed once per list of
        stores: a block holds the same stores on every date, and the same tile block every month."""
        key = np.asarray(codes, dtype=np.int64).tobytes()
        found = self._compressed.get(key)
        if found is None:
            found = _compressed_labels(self.strings(codes))
            if len(self._compressed) >= LABELS_KEPT:
                self._compressed.clear()
            self._compressed[key] = found
        return found


def pack_coded_block(
    name: str, block: int, labels: StoreLabels, codes: np.ndarray, days: np.ndarray, values: dict[str, np.ndarray]
) -> dict[str, Any]:
    """A block document from rows given by store code (rows of a store together, stores in id order, dates
    ascending within a store): the same document ``_pack_block`` makes of the same rows."""
    first = np.ones(len(codes), dtype=bool)
    first[1:] = codes[1:] != codes[:-1]
    heads = np.flatnonzero(first)
    counts = np.diff(np.append(heads, len(codes)))
    return _pack_arrays(name, block, labels=labels.compressed(codes[heads]), counts=counts, days=days, values=values)


def _unpack_block(doc: dict[str, Any], store_id: str | None = None) -> pd.DataFrame:
    """A block document's rows (only ``store_id``'s when given: the other stores' are never decoded)."""
    rows = BlockRows.of(doc, store_id)
    if rows is None:
        return empty_rows()
    return pd.DataFrame(
        {
            "store_id": rows.store_id,
            "date": np.datetime_as_string(rows.day.astype("datetime64[D]"), unit="D").astype(object),
            **rows.values,
            "region": rows.region,
            "brand": rows.brand,
        }
    )


@dataclass(frozen=True)
class BlockRows:
    """A block document's rows as arrays, per row: store id, region, brand, day (days since 1970-01-01) and
    figures. What folding dates into tiles merges without building frames (at 10x a month of tiles is
    ~1M rows: as frames one date's fold took 5.7 s of CPU, as arrays 1.3 s)."""

    store_id: np.ndarray
    region: np.ndarray
    brand: np.ndarray
    day: np.ndarray
    values: dict[str, np.ndarray]

    @classmethod
    def of(cls, doc: dict[str, Any], store_id: str | None = None) -> BlockRows | None:
        """The document's rows (only ``store_id``'s when given, None when it has none: the other stores'
        figures are never decoded)."""

        def raw(name: str) -> bytes:
            return zlib.decompress(doc[name])

        ids = unpack_strings(raw("store_id"), raw("store_id_lengths"))
        counts = np.frombuffer(raw("store_rows"), dtype="<i4").astype(np.int64)
        rows = slice(None)
        store = np.repeat(np.arange(len(ids)), counts)
        if store_id is not None:
            at = np.flatnonzero(ids == store_id)
            if len(at) == 0:
                return None
            start = int(counts[: at[0]].sum())
            rows = slice(start, start + int(counts[at[0]]))
            store = store[rows]
        return cls(
            ids[store],
            unpack_strings(raw("region"), raw("region_lengths"))[store],
            unpack_strings(raw("brand"), raw("brand_lengths"))[store],
            np.frombuffer(raw("day"), dtype="<i4")[rows].astype(np.int64),
            {
                **{c: np.frombuffer(raw(c), dtype="<f8")[rows].astype(np.float64) for c in FLOATS},
                **{c: np.frombuffer(raw(c), dtype="<i4")[rows].astype(np.int64) for c in INTS},
            },
        )

    @classmethod
    def whole(cls, doc: dict[str, Any]) -> BlockRows:
        rows = cls.of(doc)
        assert rows is not None  # None only for a store the block lacks
        return rows

    def __len__(self) -> int:
        return len(self.day)

    def take(self, at: np.ndarray) -> BlockRows:
        return BlockRows(
            self.store_id[at], self.region[at], self.brand[at], self.day[at], {c: v[at] for c, v in self.values.items()}
        )

    @staticmethod
    def concat(pieces: list[BlockRows]) -> BlockRows:
        return BlockRows(
            np.concatenate([p.store_id for p in pieces]),
            np.concatenate([p.region for p in pieces]),
            np.concatenate([p.brand for p in pieces]),
            np.concatenate([p.day for p in pieces]),
            {c: np.concatenate([p.values[c] for p in pieces]) for c in (*FLOATS, *INTS)},
        )

    def packed(self, name: str, block: int) -> dict[str, Any]:
        """The block document ``_pack_block`` makes of these rows sorted by store id and date."""
        codes = np.unique(self.store_id, return_inverse=True)[1]
        rows = self.take(np.lexsort((self.day, codes)))
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows.store_id[1:] != rows.store_id[:-1]
        heads = np.flatnonzero(first)
        labels = (pack_strings(rows.store_id[heads]), pack_strings(rows.region[heads]), pack_strings(rows.brand[heads]))
        return _pack_arrays(
            name,
            block,
            labels=_compressed_labels(labels),
            counts=np.diff(np.append(heads, len(rows))),
            days=rows.day,
            values=rows.values,
        )


def fold_into_tiles(db: Database, month: str, dates: list[str], date_blocks: int, blocks: int) -> bool:
    """Copy the rows of ``dates`` (all in ``month``) into the month's tiles, replacing those dates' rows
    there. Only the tile blocks that gain or lose rows are rewritten. False when the dates have no rows."""

    def date_docs(date: str) -> list[dict[str, Any]]:
        return list(_shelf_docs(db, DATES, date, date_blocks).values())

    date_rows = [BlockRows.whole(doc) for docs in _pool().map(date_docs, dates) for doc in docs]
    if not date_rows:
        return False
    new = BlockRows.concat(date_rows)
    stores, inverse = np.unique(new.store_id, return_inverse=True)
    new_block = block_of(stores.tolist(), blocks)[inverse]
    days = np.array([np.datetime64(d, "D").astype(np.int64) for d in dates], dtype=np.int64)
    gaining = set(np.unique(new_block).tolist())
    rows: dict[int, list[BlockRows]] = {k: [] for k in gaining}
    for k, doc in _shelf_docs(db, TILES, month, blocks).items():
        stale = np.isin(np.frombuffer(zlib.decompress(doc["day"]), dtype="<i4"), days)
        if k in gaining or stale.any():  # a block with neither keeps its document as it is
            rows.setdefault(k, []).append(BlockRows.whole(doc).take(np.flatnonzero(~stale)))
    for k in gaining:
        rows[k].append(new.take(np.flatnonzero(new_block == k)))
    docs: dict[int, dict[str, Any] | None] = {}
    for k, pieces in rows.items():
        merged = BlockRows.concat(pieces)
        docs[k] = merged.packed(month, k) if len(merged) else None
    write_docs(db, TILES, month, docs)
    return True


def _shelf_docs(db: Database, prefix: str, name: str, blocks: int) -> dict[int, dict[str, Any]]:
    """Every block document of a date (or month), by block (one query per collection)."""
    docs = [doc for g in _groups(blocks) for doc in db[f"{prefix}.{name}.{g}"].find({})]
    return {int(str(doc["_id"]).split("|")[1]): doc for doc in docs}


# --- shelves: where a date's (or a month's) block documents live -------------------------------------
#
# FerretDB's SQLite backend finds even an ``_id`` by reading the collection's rows before it, so a lookup
# costs in proportion to the bytes stored before the document (a 2,048-tile month collection at 10x: ~0.4 s
# a lookup). So a date's or a month's blocks are spread over collections of at most BLOCKS_PER_COLLECTION
# documents ("<prefix>.<name>.<group>", group = block // BLOCKS_PER_COLLECTION: well under 1 MB each), and
# replacing a block rereads one small collection, not the whole date.

BLOCKS_PER_COLLECTION = 32
DATES = HISTORY  # "store_history.<YYYY-MM-DD>.<group>"


def shelf(prefix: str, name: str, block: int) -> str:
    """The collection that holds block ``block`` of the date (or month) ``name``."""
    return f"{prefix}.{name}.{block // BLOCKS_PER_COLLECTION}"


def _groups(blocks: int) -> range:
    return range(-(-blocks // BLOCKS_PER_COLLECTION))


def date_collection(date: str, block: int = 0) -> str:
    return shelf(DATES, date, block)


def tile_collection(month: str, block: int = 0) -> str:
    return shelf(TILES, month, block)


def read_shelf(
    db: Database, prefix: str, name: str, blocks: int, wanted: Iterable[int] | None = None
) -> dict[int, pd.DataFrame]:
    """The rows per block of a date (or month) of ``blocks`` blocks: only ``wanted`` (one ``_id`` lookup each),
    or all (one query per collection)."""
    if wanted is None:
        docs = _shelf_docs(db, prefix, name, blocks)
    else:
        found = ((k, db[shelf(prefix, name, k)].find_one({"_id": f"b|{k}"})) for k in wanted)
        docs = {int(k): doc for k, doc in found if doc is not None}
    return {k: _unpack_block(doc) for k, doc in docs.items()}


def read_blocks(db: Database, date: str, blocks: int, wanted: Iterable[int] | None = None) -> dict[int, pd.DataFrame]:
    return read_shelf(db, DATES, date, blocks, wanted)


def read_tiles(db: Database, month: str, blocks: int, wanted: Iterable[int] | None = None) -> dict[int, pd.DataFrame]:
    return read_shelf(db, TILES, month, blocks, wanted)


def write_shelf(db: Database, prefix: str, name: str, rows_by_block: dict[int, pd.DataFrame]) -> dict[int, Any]:
    """Replace these block documents (each replace is atomic for readers: the old or the new rows), one bulk
    write per collection; a block without rows is removed. Returns each block's document (None: removed)."""
    docs: dict[int, dict[str, Any] | None] = {
        int(k): None
        if len(rows) == 0
        else _pack_block(rows.sort_values(["store_id", "date"], kind="stable"), name, int(k))
        for k, rows in rows_by_block.items()
    }
    write_docs(db, prefix, name, docs)
    return docs


def write_docs(db: Database, prefix: str, name: str, docs: dict[int, dict[str, Any] | None]) -> None:
    """Replace these block documents (None: remove the block), one bulk write per collection."""
    ops: dict[str, list[Any]] = {}
    for k, doc in docs.items():
        target = ops.setdefault(shelf(prefix, name, int(k)), [])
        if doc is None:
            target.append(DeleteOne({"_id": f"b|{k}"}))
        else:
            target.append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
    for collection, mine in ops.items():
        if is_mongomock(db):  # its bulk_write does not take pymongo's ReplaceOne: one call each
            for op in mine:
                if isinstance(op, DeleteOne):
                    db[collection].delete_one(op._filter)
                else:
                    db[collection].replace_one(op._filter, op._doc, upsert=True)
        else:
            db[collection].bulk_write(mine, ordered=False)


def doc_digest(doc: dict[str, Any] | None) -> bytes | None:
    """A block document's fingerprint (its packed arrays; None for a removed block): equal fingerprints,
    equal rows."""
    if doc is None:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(doc):
        value = doc[key]
        digest.update(key.encode())
        digest.update(bytes(value) if isinstance(value, bytes) else repr(value).encode())
    return digest.digest()


def fill_shelf(db: Database, prefix: str, name: str, rows_by_block: dict[int, pd.DataFrame], blocks: int) -> None:
    """A date's (or month's) documents become exactly ``rows_by_block`` (a full build: inserted into emptied
    collections, no per-document replace)."""
    fill_docs(
        db,
        prefix,
        name,
        [
            _pack_block(rows.sort_values(["store_id", "date"], kind="stable"), name, int(k))
            for k, rows in rows_by_block.items()
            if len(rows)
        ],
        blocks,
    )


def fill_docs(db: Database, prefix: str, name: str, docs: list[dict[str, Any]], blocks: int) -> None:
    """A date's (or month's) documents become exactly ``docs`` (block documents, ``_id`` "b|<k>"): every
    collection of the shelf emptied, then one insert per collection."""
    by_collection: dict[str, list[dict[str, Any]]] = {f"{prefix}.{name}.{g}": [] for g in _groups(blocks)}
    for doc in docs:
        by_collection[shelf(prefix, name, int(str(doc["_id"]).split("|")[1]))].append(doc)
    for collection, mine in by_collection.items():
        db[collection].delete_many({})
        if mine:
            db[collection].insert_many(mine, ordered=False)


def stored_names(db: Database, prefix: str) -> list[str]:
    """The dates (or months) with collections of this prefix (ops, tests, the build's clean-up)."""
    head = f"{prefix}."
    names = {n[len(head) :].rsplit(".", 1)[0] for n in db.list_collection_names() if n.startswith(head)}
    return sorted(n for n in names if "." not in n)


def drop_names(db: Database, prefix: str, names: Iterable[str]) -> None:
    gone = {f"{prefix}.{n}." for n in names}
    for collection in db.list_collection_names():
        if any(collection.startswith(g) for g in gone):
            db.drop_collection(collection)


def stored_dates(db: Database) -> list[str]:
    return stored_names(db, DATES)


def stored_months(db: Database) -> list[str]:
    return stored_names(db, TILES)


def drop_dates(db: Database, dates: Iterable[str]) -> None:
    drop_names(db, DATES, dates)


def drop_months(db: Database, months: Iterable[str]) -> None:
    drop_names(db, TILES, months)


def read_store_rows(
    db: Database,
    store_id: str,
    dates: list[str],
    blocks: int,
    folded_through: str | None = None,
    date_blocks: int | None = None,
) -> pd.DataFrame:
    """One store's rows on ``dates``: the month tiles (``blocks``) of the dates up to ``folded_through``, one
    date document (``date_blocks``) for each later date; one ``_id`` lookup each, READ_THREADS at a time."""
    tile = int(block_of([store_id], blocks)[0])
    block = int(block_of([store_id], date_blocks or blocks)[0])
    wanted = set(dates)
    folded = [d for d in dates if folded_through is not None and d <= folded_through]
    lookups = [(tile_collection(m, tile), f"b|{tile}") for m in sorted({d[:7] for d in folded})]
    lookups += [
        (date_collection(d, block), f"b|{block}") for d in dates if folded_through is None or d > folded_through
    ]

    def one(lookup: tuple[str, str]) -> pd.DataFrame | None:
        doc = db[lookup[0]].find_one({"_id": lookup[1]})
        if doc is None:
            return None
        rows = _unpack_block(doc, store_id)
        return rows[rows["date"].isin(wanted).to_numpy()]

    found = list(_pool().map(one, lookups)) if len(lookups) > 1 else [one(c) for c in lookups]
    frames = [f for f in found if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty_rows()


def read_whole_dates(db: Database, dates: list[str], blocks: int) -> Iterator[pd.DataFrame]:
    """Every store's rows of each date (one query per collection, READ_THREADS dates at a time)."""

    def one(date: str) -> pd.DataFrame:
        frames = list(read_blocks(db, date, blocks).values())
        return pd.concat(frames, ignore_index=True) if frames else empty_rows()

    yield from _pool().map(one, dates)


_pools: dict[int, ThreadPoolExecutor] = {}


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()  # one pool per process: threads must not cross a fork
    if pid not in _pools:
        _pools[pid] = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="history-reader")
    return _pools[pid]


# --- fleet totals per date and group ------------------------------------------------------------


def _month_id(month: str) -> str:
    return f"t|{month}"


def _pack_trend(rows: pd.DataFrame, month: str) -> dict[str, Any]:
    dates, date_lengths = pack_strings(rows["date"].to_numpy(dtype=object))
    regions, region_lengths = pack_strings(rows["region"].to_numpy(dtype=object))
    brands, brand_lengths = pack_strings(rows["brand"].to_numpy(dtype=object))
    arrays = {
        "date": bytes(dates),
        "date_lengths": bytes(date_lengths),
        "region": bytes(regions),
        "region_lengths": bytes(region_lengths),
        "brand": bytes(brands),
        "brand_lengths": bytes(brand_lengths),
        **{c: rows[c].to_numpy(dtype="<f8").tobytes() for c in TREND_FLOATS},
        **{c: rows[c].to_numpy(dtype="<i8").tobytes() for c in TREND_INTS},
    }
    return {
        "_id": _month_id(month),
        "n": len(rows),
        "codec": CODEC,
        **{name: Binary(zlib.compress(data, 1)) for name, data in arrays.items()},
    }


def _unpack_trend(doc: dict[str, Any]) -> pd.DataFrame:
    def raw(name: str) -> bytes:
        return zlib.decompress(doc[name])

    return pd.DataFrame(
        {
            "date": unpack_strings(raw("date"), raw("date_lengths")),
            "region": unpack_strings(raw("region"), raw("region_lengths")),
            "brand": unpack_strings(raw("brand"), raw("brand_lengths")),
            **{c: np.frombuffer(raw(c), dtype="<f8").astype(np.float64) for c in TREND_FLOATS},
            **{c: np.frombuffer(raw(c), dtype="<i8").astype(np.int64) for c in TREND_INTS},
        }
    )


def empty_trend() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.Series(dtype=object),
            "region": pd.Series(dtype=object),
            "brand": pd.Series(dtype=object),
            **{c: pd.Series(dtype=np.float64) for c in TREND_FLOATS},
            **{c: pd.Series(dtype=np.int64) for c in TREND_INTS},
        }
    )


def read_trend_months(db: Database, months: list[str]) -> pd.DataFrame:
    """The group totals of every date of ``months`` (one ``_id`` lookup per month)."""
    docs = list(_pool().map(lambda m: db[HISTORY].find_one({"_id": _month_id(m)}), months))
    frames = [_unpack_trend(doc) for doc in docs if doc is not None]
    return pd.concat(frames, ignore_index=True) if frames else empty_trend()


def add_to_trend(db: Database, delta: pd.DataFrame, *, replace_dates: Iterable[str] = ()) -> None:
    """Add ``delta`` (date, region, brand and the totals) to the stored group totals; the dates of
    ``replace_dates`` are first emptied (a full build writes them whole). Callers hold the history lock."""
    replaced = set(replace_dates)
    months = sorted({d[:7] for d in delta["date"].tolist()} | {d[:7] for d in replaced})
    for month in months:
        old = read_trend_months(db, [month])
        old = old[~old["date"].isin(replaced)]
        mine = delta[delta["date"].str.startswith(month)]
        merged = pd.concat([old, mine], ignore_index=True)
        if len(merged) == 0:
            db[HISTORY].delete_one({"_id": _month_id(month)})
            continue
        summed = merged.groupby(["date", "region", "brand"], as_index=False, sort=True)[
            [*TREND_FLOATS, *TREND_INTS]
        ].sum()
        db[HISTORY].replace_one({"_id": _month_id(month)}, _pack_trend(summed, month), upsert=True)


# --- the movers' ranking ---------------------------------------------------------------------------

MOVERS = "movers"


def write_movers(db: Database, version: int, movers: Any, last_date: str | None) -> None:
    """Keep a ranking (``services.history.Movers``) computed at the history's ``version`` and ``last_date``."""
    db[HISTORY].replace_one(
        {"_id": MOVERS},
        {
            "_id": MOVERS,
            "version": version,
            "last_date": last_date,
            "at": time.time(),
            "this_week": [d.isoformat() for d in movers.this_week],
            "previous_week": [d.isoformat() for d in movers.previous_week],
            # Parallel lists: FerretDB stores no nested arrays.
            "store_id": [m.store_id for m in movers.stores],
            "this_week_pct": [m.this_week_pct for m in movers.stores],
            "previous_week_pct": [m.previous_week_pct for m in movers.stores],
            "change_pct": [m.change_pct for m in movers.stores],
        },
        upsert=True,
    )


def read_movers(db: Database) -> dict[str, Any] | None:
    return db[HISTORY].find_one({"_id": MOVERS})
