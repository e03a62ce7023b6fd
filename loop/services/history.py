"""Daily figures kept up to date, and read: a store's history, the fleet's trend, the week's movers.

The figures themselves are ``loop.history.daily_figures`` (pure; each (store, local date) exactly as
the store's timeline over that date). This module decides which (store, date) pairs to recompute and
keeps them in ``loop.storage.history``:

* **Which dates a store has.** From the local date of its first poll to the local date, in its zone,
  of the fleet's newest poll (a store that went silent keeps getting dates, all unobserved).
* **Polls** (``note_polls``): a poll counts only for the dates whose closed range [00:00, next 00:00]
  holds it, so a batch of polls of stores S within [t0, t1] touches exactly S's local dates overlapping
  [t0, t1] (the date before included when t0 is a local midnight). When the batch moves the fleet's
  newest poll onto a new local date, every store gets that date (and any skipped).
* **Hours, holiday hours, zone of one store** (``note_store_change``): all of that store's kept dates
  (a zone change moves its dates; rows on dates it no longer has are removed).
* **Loads and imports**: ``build_history`` recomputes everything (``load_data``, ``POST /imports/``).

Changes are noted in a pending log (one small unique insert per write, so none is lost or applied
twice) and applied by ``update_history`` under one lock: in the request of an hourly batch (the days
it has just written are in this process), else by a worker (``queue.enqueue_history_update``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from pymongo.database import Database

from loop import queue, storage
from loop.errors import InvalidInput, NotFound
from loop.history import DailyFigures, daily_figures, local_dates, midnights_us, store_zones
from loop.lanes import BusinessCalendar, to_utc_us
from loop.rules import uptime_pct_or_none
from loop.services.store_tables import store_tables
from loop.storage import history as hs
from loop.storage.stores import PROFILES_TABLE
from loop.store_ids import STORE_ID_HELP, is_store_id

logger = logging.getLogger(__name__)

MAX_DAYS = 400
DEFAULT_DAYS = 30
# Dates older than this many days before the newest kept date are copied into month tiles (one store's
# 90 dates: 3-4 tile lookups and a few date lookups).
FOLD_LAG_DAYS = 2
MOVERS_LIMIT_MAX = 500
# A full build writes a piece while it computes the next (False: one after the other; the benchmark compares).
WRITE_BESIDE_COMPUTE = True
# A full build computes and writes this many dates at a time (within a month): the first read and the last
# write, which nothing overlaps, stay short; each piece also reads its edges' polls (a day before, two after).
BUILD_PIECE_DAYS = 10
# Applied pending changes stay this long before they are removed (their numbers stay taken meanwhile).
PENDING_GRACE_S = 120.0
# The worker ranks the movers again at most this often while only the figures change (not the weeks);
# GET /trends/movers/ answers a ranking up to MOVERS_STALE_S old of the same weeks.
MOVERS_EVERY_S = 60.0
MOVERS_STALE_S = 300.0
DAY_US = 86_400 * 1_000_000
# A batch naming more stores than this is noted as "all stores" (the pending entry stays small).
NOTE_STORES_MAX = 1000


# --- noting changes ------------------------------------------------------------------------------


def note_polls(db: Database, store_ids: np.ndarray, t_us: np.ndarray) -> None:
    """A write of polls of ``store_ids`` at ``t_us`` happened: note the dates it touches (best effort when
    no history exists yet: the next build covers it)."""
    meta = hs.read_meta(db) if len(t_us) else None
    if meta is None:
        return
    stores = pd.unique(np.asarray(store_ids, dtype=object).astype(str))
    _note_span(
        db,
        None if len(stores) > NOTE_STORES_MAX else [str(s) for s in stores],
        int(np.min(t_us)),
        int(np.max(t_us)),
        meta=meta,
    )


def _note_span(
    db: Database, stores: list[str] | None, t_min: int, t_max: int, *, meta: dict[str, Any] | None = None
) -> None:
    """Polls of ``stores`` (None: any store) between ``t_min`` and ``t_max`` changed."""
    hs.append_pending(db, {"kind": "polls", "stores": stores, "t_min": t_min, "t_max": t_max}, meta=meta)


def note_store_change(db: Database, store_id: str) -> None:
    """A store's hours, holiday hours or zone changed: all its dates are recomputed."""
    if hs.read_meta(db) is None:
        return
    hs.append_pending(db, {"kind": "store", "stores": [store_id]})


def after_batch(frames: list[pd.DataFrame], *, inline: bool) -> None:
    """After ``POST /store_status/`` stored ``frames`` (store_id, status, timestamp_utc): note the dates they
    touch, then apply them here (``inline``: an hourly batch, whose days this process has just written and
    keeps) or ask a worker. Never fails the batch: its polls are stored, and the worker catches up."""
    try:
        db = storage.get_db()
        frames = [f for f in frames if len(f)]
        if not frames:
            return
        note_polls(
            db,
            np.concatenate([f["store_id"].astype(str).to_numpy(dtype=object) for f in frames]),
            np.concatenate([to_utc_us(f["timestamp_utc"]) for f in frames]),
        )
        if inline:
            update_history(db=db, wait=0, fold=False)
    except Exception:
        logger.exception("could not update the daily figures after the batch")
    request_history_update(delay=0 if inline else settings.BATCH_FOLLOW_UP_SECONDS)


def request_history_update(*, delay: int = 0) -> None:
    """Ask a worker to apply the pending changes (best effort: the beat's update is the safety net),
    ``delay`` seconds from now with the writes meanwhile (a small batch: ``BATCH_FOLLOW_UP_SECONDS``)."""
    try:
        queue.enqueue_history_update(delay=delay)
    except Exception:
        logger.exception("could not ask for a history update")


# --- applying them -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryUpdate:
    changes: int
    rows: int
    seconds: float


@dataclass
class _Inputs:
    """What every recomputation reads: the catalog (store ids sorted, first poll), tables and profiles."""

    store_ids: np.ndarray
    first_us: np.ndarray
    newest_us: int
    zone_names: np.ndarray
    hours: pd.DataFrame
    special: pd.DataFrame
    zones: pd.DataFrame
    region: np.ndarray
    brand: np.ndarray
    calendar: BusinessCalendar | None = None
    key: tuple = ()  # the stores, tables and profiles these were worked out from (``_inputs``)
    _derived: dict[Any, Any] = field(default_factory=dict)

    def first_date(self) -> np.ndarray:
        """Each store's first kept date: the local date of its first poll (worked out again only when the
        catalog's first polls changed)."""
        kept = self._derived.get("first")
        if kept is None or not np.array_equal(kept[0], self.first_us):
            kept = (self.first_us.copy(), local_dates(np.arange(len(self.store_ids)), self.first_us, self.zone_names))
            self._derived["first"] = kept
        return kept[1]

    def last_date(self) -> np.ndarray:
        """Each store's last kept date: the local date of the fleet's newest poll in its zone."""
        return self.dates_at(self.newest_us)

    def dates_at(self, t_us: int) -> np.ndarray:
        """Each store's local date at the instant ``t_us`` (worked out once per zone)."""
        zone_of, table = self.zone_dates(np.array([t_us], dtype=np.int64))
        return table[zone_of, 0]

    def zone_dates(self, t_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(each store's zone number, the local date of each instant of ``t_us`` in each zone: zones x
        instants). One conversion per zone for all the instants: an update's pending changes hold ~100."""
        kept = self._derived.get("zones")
        if kept is None:
            zones, inverse = np.unique(self.zone_names.astype(str), return_inverse=True)
            kept = self._derived["zones"] = (zones.astype(object), inverse)
        zones, inverse = kept
        codes = np.repeat(np.arange(len(zones)), len(t_us))
        dates = local_dates(codes, np.tile(np.asarray(t_us, dtype=np.int64), len(zones)), zones)
        return inverse, dates.reshape(len(zones), len(t_us))


_derived_cache: dict[tuple, tuple] = {}


def _inputs(db: Database) -> _Inputs | None:
    catalog = storage.read_store_catalog(db)
    newest = storage.newest_poll_time(db)
    if len(catalog.store_ids) == 0 or newest is None:
        return None
    ids = catalog.store_ids.astype(object)
    # The tables (and their business calendar) as the alert evaluation keeps them; the zones and groups of
    # these stores worked out once per stored version of the tables and the directory.
    tables = store_tables(db)
    profiles_head = db[PROFILES_TABLE.heads].find_one({"_id": PROFILES_TABLE.head_id}, {"token": 1}) or {}
    key = (
        id(db.client),
        db.name,
        tables.version,
        str(profiles_head.get("token", "")),
        hashlib.sha1("\0".join(ids.tolist()).encode("utf-8")).hexdigest(),
    )
    derived = _derived_cache.get(key)
    if derived is None:
        profiles = storage.read_profiles(db)
        at = pd.Index(ids).get_indexer(profiles["store_id"].astype(object))
        region = np.full(len(ids), "", dtype=object)
        brand = np.full(len(ids), "", dtype=object)
        known = at >= 0
        region[at[known]] = profiles["region"].fillna("").to_numpy(dtype=object)[known]
        brand[at[known]] = profiles["brand"].fillna("").to_numpy(dtype=object)[known]
        derived = (store_zones(ids, tables.zones), region, brand, {})
        if len(_derived_cache) >= 4:
            _derived_cache.clear()
        _derived_cache[key] = derived
    zone_names, region, brand, kept = derived
    return _Inputs(
        store_ids=ids,
        first_us=catalog.first_us.astype(np.int64),
        newest_us=int(pd.Timestamp(newest).value // 1000),
        zone_names=zone_names,
        hours=tables.hours,
        special=tables.special,
        zones=tables.zones,
        region=region,
        brand=brand,
        calendar=tables.calendar,
        key=key,
        _derived=kept,
    )


def update_history(
    *, db: Database | None = None, wait: float = 600.0, build_if_missing: bool = False, fold: bool = True
) -> HistoryUpdate | None:
    """Apply the pending changes (None: another update holds the lock and will see them, or no history
    exists yet; ``build_if_missing``: then build it, as the worker's update does). ``fold`` (the worker's
    update; not the hourly batch's own, which must answer quickly): then copy settled dates into the month
    tiles and rank the movers again if the figures changed since."""
    db = storage.get_db() if db is None else db
    began = time.perf_counter()
    if build_if_missing and hs.read_meta(db) is None:
        built = build_history(db=db)
        return HistoryUpdate(0, built.rows, built.seconds)
    with hs.history_lock(db, wait=wait) as held:
        if not held:
            return None
        meta = hs.read_meta(db)
        if meta is None:
            return None
        through = int(meta.get("through", 0))
        pending = hs.read_pending(db, through)
        if pending:
            rows = _apply_pending(db, meta, pending)
        if fold:
            _fold(db, hs.read_meta(db) or meta)
            if _movers_due(db, hs.read_meta(db) or meta):
                _refresh_movers(db)
    return HistoryUpdate(len(pending), rows if pending else 0, time.perf_counter() - began)


def _apply_pending(db: Database, meta: dict, pending: list[dict]) -> int:
    """Recompute what the pending changes touch, then mark them applied and remove them."""
    through = int(meta.get("through", 0))
    inputs = _inputs(db)
    rows = 0
    fields: dict[str, Any] = {}
    if inputs is not None:
        codes, dates = _pairs_to_recompute(inputs, pending, int(meta.get("newest_us", inputs.newest_us)))
        whole = {str(s) for c in pending if c.get("kind") == "store" for s in c["stores"]}
        rows, fields = _recompute(db, meta, inputs, codes, dates, whole_stores=whole)
    last = through + len(pending)
    fields["through"] = last
    if inputs is not None:
        fields["newest_us"] = max(inputs.newest_us, int(meta.get("newest_us", 0)))
    hs.write_meta(db, {**fields, **_removal(db, meta, last)})
    return rows


def _removal(db: Database, meta: dict, applied_through: int) -> dict[str, Any]:
    """Remove the pending changes applied more than PENDING_GRACE_S ago (a writer that read an older
    ``through`` must still find their numbers taken, or its change would get a number already applied);
    the meta fields that record it."""
    mark = meta.get("applied") or {}
    removed = int(meta.get("removed_through", 0))
    if not mark:
        return {"applied": {"through": applied_through, "at": time.time()}}
    if time.time() - float(mark["at"]) < PENDING_GRACE_S:
        return {}
    hs.remove_pending(db, removed + 1, int(mark["through"]))
    return {"removed_through": int(mark["through"]), "applied": {"through": applied_through, "at": time.time()}}


def _pairs_to_recompute(inputs: _Inputs, pending: list[dict], old_newest_us: int) -> tuple[np.ndarray, np.ndarray]:
    """(code, date) pairs the pending changes can touch, within each store's kept dates, distinct."""
    n = len(inputs.store_ids)
    index = pd.Index(inputs.store_ids)
    all_codes = np.arange(n, dtype=np.int64)
    first_date, last_date = inputs.first_date(), inputs.last_date()
    codes_parts: list[np.ndarray] = []
    lo_parts: list[np.ndarray] = []
    hi_parts: list[np.ndarray] = []

    def span(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        codes_parts.append(codes)
        lo_parts.append(lo)
        hi_parts.append(hi)

    # The stores named and the instants of every change looked up at once (a burst of small batches
    # leaves ~100 changes of one store each).
    named = [list(change["stores"]) for change in pending if change.get("stores") is not None]
    found = index.get_indexer(pd.Index([s for stores in named for s in stores], dtype=object))
    cuts = np.cumsum([len(stores) for stores in named])[:-1]
    named_codes = iter(np.split(found.astype(np.int64), cuts) if named else [])
    polls = [change for change in pending if change.get("kind") != "store"]
    # A poll at a midnight also ends the date before.
    instants = np.array([t for c in polls for t in (int(c["t_min"]) - 1, int(c["t_max"]))], dtype=np.int64)
    zone_of, zone_dates = inputs.zone_dates(instants) if len(instants) else (None, None)
    column = 0
    for change in pending:
        codes = all_codes if change.get("stores") is None else next(named_codes)
        codes = codes[codes >= 0]
        is_store = change.get("kind") == "store"
        if not is_store:
            column += 2
        if len(codes) == 0:
            continue
        if is_store:
            span(codes, first_date[codes], last_date[codes])
        else:
            assert zone_of is not None and zone_dates is not None
            zones = zone_of[codes]
            span(codes, zone_dates[zones, column - 2], zone_dates[zones, column - 1])
    if inputs.newest_us > old_newest_us:
        # New dates of the fleet's clock: every store gets them (all unobserved without polls). A date's
        # figures do not depend on the clock within it, so a newest poll later on the same date changes none.
        old = inputs.dates_at(old_newest_us) + 1
        moved = old <= last_date
        span(all_codes[moved], old[moved], last_date[moved])
    if not codes_parts:
        return np.zeros(0, np.int64), np.zeros(0, "datetime64[D]")
    codes = np.concatenate(codes_parts)
    lo = np.maximum(np.concatenate(lo_parts), first_date[codes])
    hi = np.minimum(np.concatenate(hi_parts), last_date[codes])
    count = np.maximum((hi - lo).astype(np.int64) + 1, 0)
    pair_codes = np.repeat(codes, count)
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    pair_dates = (np.repeat(lo, count) + offsets).astype(np.int64)
    # Distinct, sorted by (code, date): one int64 key (dates are days since 1970, well under 2**32).
    keys = np.unique((pair_codes << 32) + pair_dates)
    return keys >> 32, (keys & 0xFFFFFFFF).astype("datetime64[D]")


def _recompute(
    db: Database,
    meta: dict,
    inputs: _Inputs,
    codes: np.ndarray,
    dates: np.ndarray,
    *,
    whole_stores: set[str],
) -> tuple[int, dict[str, Any]]:
    """Compute the pairs and write them; stores in ``whole_stores`` also lose rows on dates they no longer have.
    Returns the rows written and the meta fields to set with the changes applied."""
    if len(codes) == 0 and not whole_stores:
        return 0, {}
    figures = DailyFigures.empty()
    if len(codes):
        used = np.unique(codes)
        local = np.searchsorted(used, codes)
        ids = inputs.store_ids[used]
        first, last = dates.min(), dates.max()
        polls = _read_pair_polls(db, inputs.zone_names[codes], dates, ids[0] if len(ids) == 1 else None)
        at = pd.Index(ids).get_indexer(polls.store_ids.astype(object))
        keep = at[polls.store] >= 0
        figures = daily_figures(
            store_ids=ids,
            poll_codes=at[polls.store][keep].astype(np.int64),
            poll_us=polls.t_us[keep],
            poll_active=~polls.inactive[keep],
            hours=_rows_of(inputs.hours, ids),
            zones=_rows_of(inputs.zones, ids),
            special_hours=_rows_of(inputs.special, ids),
            first_date=first,
            last_date=last,
            pairs=(local, dates),
            zone_names=inputs.zone_names[used],
            calendar=inputs.calendar,
        )
        figures = DailyFigures(used[figures.code], *(getattr(figures, f) for f in ("date", "up_s", "down_s",
                               "unobserved_s", "outages", "longest_s")))  # fmt: skip
    removed = pd.DataFrame({"store_id": pd.Series(dtype=object), "date": pd.Series(dtype=object)})
    if whole_stores and meta.get("first_date"):
        stored = pd.date_range(meta["first_date"], meta["last_date"], freq="D").strftime("%Y-%m-%d").tolist()
        removed = pd.DataFrame(
            [(s, d) for s in sorted(whole_stores) for d in stored], columns=["store_id", "date"], dtype=object
        )
    kept = _kept_dates(db, meta)
    # Dates recomputed for every store that has them (an hourly batch's): packed straight from the figures
    # and written without reading them first.
    whole = np.zeros(len(figures), dtype=bool)
    if len(figures) and len(removed) == 0:
        days, counts = np.unique(figures.date, return_counts=True)
        first_date, last_date = inputs.first_date(), inputs.last_date()
        having = np.array([int(((first_date <= d) & (last_date >= d)).sum()) for d in days], dtype=np.int64)
        whole = np.isin(figures.date, days[counts == having])
    whole_figures = figures.take(np.flatnonzero(whole))
    replaced = _write_whole_dates(db, meta, inputs, whole_figures, kept)
    rows = _rows_frame(figures.take(np.flatnonzero(~whole)), inputs)
    folded = meta.get("folded_through")
    whole_rows = _rows_frame(whole_figures, inputs) if folded and replaced and min(replaced) <= folded else None
    _apply(
        db,
        meta,
        rows,
        removed,
        kept,
        whole=(_coded_totals(whole_figures, _layout(inputs, meta)), replaced, whole_rows),
    )
    _keep_dates(db, kept)
    fields: dict[str, Any] = {"dates_token": kept.token}
    if len(figures):
        bounds = np.datetime_as_string(np.array([figures.date.min(), figures.date.max()]), unit="D")
        fields.update(_date_bounds(meta, pd.Series(bounds)))
    return len(figures), fields


def _date_bounds(meta: dict, dates: pd.Series) -> dict[str, str]:
    lo, hi = str(dates.min()), str(dates.max())
    return {
        "first_date": min(lo, meta.get("first_date") or lo),
        "last_date": max(hi, meta.get("last_date") or hi),
    }


def _rows_of(frame: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    if len(ids) > 64:
        return frame
    return frame[frame["store_id"].astype(object).isin(set(ids.tolist()))]


def _read_polls(db: Database, first: np.datetime64, last: np.datetime64, store_id: str | None) -> storage.PollColumns:
    """Polls that can count for local dates first..last in any zone: [first - 1 day, last + 2 days) UTC."""
    start = pd.Timestamp(first - 1, tz="UTC")
    end = pd.Timestamp(last + 2, tz="UTC") - pd.Timedelta(microseconds=1)
    return storage.read_poll_columns(db, start, end, store_id=store_id, keep_whole_days=store_id is None)


def _read_pair_polls(db: Database, zones: np.ndarray, dates: np.ndarray, store_id: str | None) -> storage.PollColumns:
    """The polls that can count for these (zone, date) pairs: between the earliest of their dates' local
    midnights and the latest of the next ones (an hourly batch: about one UTC day, not four)."""
    pairs = pd.DataFrame({"zone": zones, "date": dates}).drop_duplicates()
    lo, hi = None, None
    for zone, mine in pairs.groupby("zone"):
        days = mine["date"].to_numpy().astype("datetime64[D]")
        mids = midnights_us(np.array([zone], dtype=object), np.array([days.min(), days.max() + 1]))[0]
        lo = int(mids[0]) if lo is None else min(lo, int(mids[0]))
        hi = int(mids[1]) if hi is None else max(hi, int(mids[1]))
    assert lo is not None and hi is not None
    start, end = pd.Timestamp(lo, unit="us", tz="UTC"), pd.Timestamp(hi, unit="us", tz="UTC")
    return storage.read_poll_columns(db, start, end, store_id=store_id, keep_whole_days=store_id is None)


def _rows_frame(figures: DailyFigures, inputs: _Inputs) -> pd.DataFrame:
    if len(figures) == 0:
        return hs.empty_rows()
    return pd.DataFrame(
        {
            "store_id": inputs.store_ids[figures.code],
            "date": np.datetime_as_string(figures.date, unit="D").astype(object),
            "up_s": figures.up_s,
            "down_s": figures.down_s,
            "unobserved_s": figures.unobserved_s,
            "longest_s": figures.longest_s,
            "outages": figures.outages,
            "region": inputs.region[figures.code],
            "brand": inputs.brand[figures.code],
        }
    )


def _totals(rows: pd.DataFrame) -> pd.DataFrame:
    """Group totals per (date, region, brand) of ``rows``, each row counted ``sign`` times (default once)."""
    if len(rows) == 0:
        return hs.empty_trend()
    sign = rows["sign"].to_numpy() if "sign" in rows else np.ones(len(rows), dtype=np.int64)
    up, down, unobserved = (rows[c].to_numpy(dtype=np.float64) for c in ("up_s", "down_s", "unobserved_s"))
    frame = pd.DataFrame(
        {
            "date": rows["date"].to_numpy(dtype=object),
            "region": rows["region"].to_numpy(dtype=object),
            "brand": rows["brand"].to_numpy(dtype=object),
            "up_s": up * sign,
            "down_s": down * sign,
            "unobserved_s": unobserved * sign,
            "stores_down": (down > 0).astype(np.int64) * sign,
            "stores_open": (np.maximum(up + down, unobserved) > 0).astype(np.int64) * sign,
        }
    )
    return frame.groupby(["date", "region", "brand"], as_index=False, sort=False).sum()


def _apply(
    db: Database,
    meta: dict,
    rows: pd.DataFrame,
    removed: pd.DataFrame,
    kept: _KeptDates,
    *,
    whole: tuple[pd.DataFrame, list[str], pd.DataFrame | None] | None = None,
) -> None:
    """Write ``rows`` into their dates' block documents (replacing those stores' rows), drop the rows of
    ``removed`` (store_id, date) pairs, and move the group totals by the difference. One read of each
    touched block (or of the whole date when most of its blocks are touched: none when this process holds
    them, ``kept``) and one bulk write per date of the blocks that changed; the same in the month tiles for
    folded dates. ``whole``: the dates already written whole (``_write_whole_dates``): their totals, the
    dates, and their rows when some are folded (for the tiles)."""
    blocks, date_blocks = int(meta["blocks"]), _date_blocks(meta)
    whole_totals, replaced, whole_rows = whole if whole is not None else (hs.empty_trend(), [], None)
    touched = pd.concat([rows[["store_id", "date"]], removed[["store_id", "date"]]], ignore_index=True)
    changes = [whole_totals]
    for day, on_day in touched.groupby("date", sort=True):
        day = str(day)
        new = rows[(rows["date"] == day).to_numpy()]
        gone = _replace_in_date(db, day, date_blocks, on_day["store_id"], new, kept)
        changes.append(_totals(pd.concat([gone.assign(sign=-1), new.assign(sign=1)], ignore_index=True)))
    folded = meta.get("folded_through")
    if whole_rows is not None:
        touched = pd.concat([touched, whole_rows[["store_id", "date"]]], ignore_index=True)
        rows = pd.concat([rows, whole_rows], ignore_index=True)
    if folded:
        old_pairs = touched[(touched["date"] <= folded).to_numpy()]
        for month, in_month in old_pairs.groupby(old_pairs["date"].str.slice(0, 7), sort=True):
            month = str(month)
            dates = set(in_month["date"].tolist())
            new = rows[rows["date"].isin(dates).to_numpy()]
            pairs = set(zip(in_month["store_id"], in_month["date"], strict=True))

            def drop_pairs(frame: pd.DataFrame, pairs: set = pairs) -> pd.DataFrame:
                hit = [(s, d) in pairs for s, d in zip(frame["store_id"], frame["date"], strict=True)]
                return frame[~np.asarray(hit, dtype=bool)] if len(frame) else frame

            _replace_in(db, hs.TILES, month, blocks, in_month["store_id"], new, drop_pairs)
    changes = [c for c in changes if len(c)]
    if changes or replaced:
        delta = pd.concat(changes, ignore_index=True) if changes else hs.empty_trend()
        hs.add_to_trend(db, delta, replace_dates=replaced)


def _replace_in(
    db: Database, prefix: str, name: str, blocks: int, store_ids: pd.Series, new: pd.DataFrame, keep: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """In one date's (or month's) block documents: the rows of ``store_ids`` that ``keep`` does not keep are
    replaced by ``new``. Returns (rows replaced, rows written)."""
    ids = pd.unique(store_ids.to_numpy(dtype=object))
    wanted = np.unique(hs.block_of(ids.tolist(), blocks))
    found = hs.read_shelf(db, prefix, name, blocks, None if len(wanted) > blocks // 4 else wanted.tolist())
    mine = set(wanted.tolist())
    old_frames = [frame.assign(block=k) for k, frame in found.items() if k in mine]
    old = pd.concat(old_frames, ignore_index=True) if old_frames else hs.empty_rows().assign(block=0)
    of_ids = _member(old["store_id"], set(ids.tolist()))
    kept_of_ids = keep(old[of_ids])
    gone = old[of_ids].drop(kept_of_ids.index)
    new = new.assign(block=hs.block_of(new["store_id"].tolist(), blocks))
    merged = pd.concat([old[~of_ids], kept_of_ids, new], ignore_index=True)
    parts = dict(tuple(merged.groupby("block", sort=False)))
    hs.write_shelf(
        db,
        prefix,
        name,
        {int(k): hs.empty_rows() if k not in parts else parts[k].drop(columns="block") for k in wanted.tolist()},
    )
    return gone, new


def _replace_in_date(
    db: Database, day: str, blocks: int, store_ids: pd.Series, new: pd.DataFrame, kept: _KeptDates
) -> pd.DataFrame:
    """In one date's block documents: the rows of ``store_ids`` are replaced by ``new`` (those stores' rows
    elsewhere in the date are dropped). The blocks this process holds (``kept``) are not read again; only
    the blocks whose rows changed are written. Returns the rows replaced."""
    ids = pd.unique(store_ids.to_numpy(dtype=object))
    wanted = np.unique(hs.block_of(ids.tolist(), blocks)).tolist()
    held = kept.rows.get(day, {})
    missing = [k for k in wanted if k not in held]
    if missing:
        whole = len(missing) > blocks // 4
        found = hs.read_shelf(db, hs.DATES, day, blocks, None if whole else missing)
        empty = hs.empty_rows()
        for k in range(blocks) if whole else missing:
            held[k] = found.get(k, empty)
        kept.rows[day] = held
    # Every wanted block at once (one concat, one sort, then a slice each): the same work block by block
    # cost ~1.5 s for a 10x date's 287 blocks, the day after a local midnight.
    old = pd.concat([held[k] for k in wanted], ignore_index=True)
    old_block = np.repeat(np.asarray(wanted, dtype=np.int64), [len(held[k]) for k in wanted])
    mine = _member(old["store_id"], set(ids.tolist()))
    merged = pd.concat([old[~mine], new], ignore_index=True)
    merged["block"] = np.concatenate([old_block[~mine], hs.block_of(new["store_id"].tolist(), blocks)])
    merged = merged.sort_values(["block", "store_id", "date"], kind="stable", ignore_index=True)
    bounds = np.searchsorted(merged["block"].to_numpy(), wanted + [blocks], side="left")
    merged = merged.drop(columns="block")
    docs = {}
    for k, lo, hi in zip(wanted, bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        rows = merged.iloc[lo:hi].reset_index(drop=True)
        if _same_rows(held[k], rows):
            continue
        held[k] = rows
        docs[k] = hs._pack_block(rows, day, k) if len(rows) else None
    hs.write_docs(db, hs.DATES, day, docs)
    kept.digests.pop(day, None)
    return old[mine].reset_index(drop=True)


def _member(values: pd.Series, wanted: set) -> np.ndarray:
    """``values`` in ``wanted``, as a bool array. Not ``Series.isin``: for a str column pandas turns every
    wanted value into an Arrow scalar on each call (~1.4 us a value), 15 s over a 10x date's blocks."""
    return np.fromiter((v in wanted for v in values.to_numpy(dtype=object)), dtype=bool, count=len(values))


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """The same rows in the same order (both sorted by store id and date), every column to the bit."""
    if len(a) != len(b):
        return False
    for column in hs.ROW_COLUMNS:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            if not np.array_equal(x.astype(np.float64).view(np.int64), y.astype(np.float64).view(np.int64)):
                return False
        elif not (x == y).all():
            return False
    return True


# --- the date documents this process wrote or read last ----------------------------------------------


@dataclass
class _KeptDates:
    """Date documents as this process last wrote or read them: valid while the history's ``dates_token``
    is ``token`` (every write of date documents, here or in any other process, sets a new one under the
    history lock). ``rows``: date -> block -> its rows (sorted by store id); ``digests``: date -> block ->
    the document's ``hs.doc_digest`` (dates written whole, their rows not unpacked)."""

    token: str
    rows: dict[str, dict[int, pd.DataFrame]] = field(default_factory=dict)
    digests: dict[str, dict[int, bytes | None]] = field(default_factory=dict)


_kept_by_db: dict[tuple[int, str], _KeptDates] = {}
_kept_lock = threading.Lock()
# Dates kept per database: an hourly batch touches one or two (the newest), a new date a third.
KEPT_DATES = 4


def _kept_dates(db: Database, meta: dict) -> _KeptDates:
    """What this process holds of the date documents, if still what is stored; else nothing. The caller holds
    the history lock and writes a new token (``_keep_dates``) with its changes."""
    with _kept_lock:
        kept = _kept_by_db.pop((id(db.client), db.name), None)
    token = meta.get("dates_token")
    fresh = _KeptDates(token=uuid.uuid4().hex)
    if kept is None or token is None or kept.token != token:
        return fresh
    fresh.rows, fresh.digests = kept.rows, kept.digests
    return fresh


def _keep_dates(db: Database, kept: _KeptDates) -> None:
    """Keep the newest KEPT_DATES dates of ``kept`` (valid once its token is written to the meta)."""
    for held in (kept.rows, kept.digests):
        for day in sorted(held)[:-KEPT_DATES]:
            held.pop(day)
    with _kept_lock:
        _kept_by_db[(id(db.client), db.name)] = kept


def _forget_dates(db: Database) -> None:
    with _kept_lock:
        _kept_by_db.pop((id(db.client), db.name), None)


def _write_whole_dates(db: Database, meta: dict, inputs: _Inputs, figures: DailyFigures, kept: _KeptDates) -> list[str]:
    """Write dates of which ``figures`` holds every row: each block document packed straight from the arrays,
    only the blocks that differ from what this process knows is stored (all when it knows nothing)."""
    if len(figures) == 0:
        return []
    layout = _layout(inputs, meta)
    names = []
    for name, on_day in _date_documents(figures, layout).items():
        digests = {k: hs.doc_digest(doc) for k, doc in on_day.items()}
        known = kept.digests.get(name)
        if known is None and name in kept.rows and len(kept.rows[name]) == layout.date_blocks:
            known = {
                k: hs.doc_digest(hs._pack_block(r, name, k)) if len(r) else None for k, r in kept.rows[name].items()
            }
        changed = {k: doc for k, doc in on_day.items() if known is None or known.get(k, b"?") != digests[k]}
        hs.write_docs(db, hs.DATES, name, changed)
        kept.digests[name] = digests
        kept.rows.pop(name, None)
        names.append(name)
    return names


def _date_documents(figures: DailyFigures, layout: _BuildLayout) -> dict[str, dict[int, dict[str, Any] | None]]:
    """The date documents of ``figures`` (every store's row of each date it holds), packed straight from the
    arrays (rows ordered by one integer sort: date, block, store id): date -> block -> document (None: a
    block with no row). The same documents as ``hs._pack_block`` makes of the same rows."""
    code, day = figures.code, figures.date.astype(np.int64)
    values = {c: getattr(figures, c) for c in (*hs.FLOATS, *hs.INTS)}
    order = np.lexsort((layout.rank[code], layout.date_block[code], day))
    docs: dict[str, dict[int, dict[str, Any] | None]] = {}
    for lo, hi in _runs(day[order] * (layout.date_blocks + 1) + layout.date_block[code[order]]):
        rows = order[lo:hi]
        name, block = _day_name(int(day[rows[0]])), int(layout.date_block[code[rows[0]]])
        on_day = docs.setdefault(name, dict.fromkeys(range(layout.date_blocks)))
        on_day[block] = hs.pack_coded_block(
            name, block, layout.labels, code[rows], day[rows], {c: v[rows] for c, v in values.items()}
        )
    return docs


def _date_blocks(meta: dict) -> int:
    """How many block documents a date has (histories written before it existed: as many as the tiles)."""
    return int(meta.get("date_blocks") or meta["blocks"])


def _fold(db: Database, meta: dict) -> None:
    """Copy the dates older than FOLD_LAG_DAYS before the newest kept date into their month tiles (one read
    of each date, one read and one bulk write of each month's tiles), then move ``folded_through``."""
    if not meta.get("last_date"):
        return
    upto = (date.fromisoformat(meta["last_date"]) - timedelta(days=FOLD_LAG_DAYS)).isoformat()
    since = meta.get("folded_through") or meta["first_date"]
    start = date.fromisoformat(since) + (timedelta(days=1) if meta.get("folded_through") else timedelta(0))
    dates = [(start + timedelta(days=k)).isoformat() for k in range((date.fromisoformat(upto) - start).days + 1)]
    if not dates:
        return
    for month in sorted({d[:7] for d in dates}):
        hs.fold_into_tiles(db, month, [d for d in dates if d[:7] == month], _date_blocks(meta), int(meta["blocks"]))
    hs.write_meta(db, {"folded_through": upto})


def _movers_due(db: Database, meta: dict) -> bool:
    """Rank the movers again: the weeks moved, or the figures changed and the ranking is over a minute old
    (small batches come several a second: the ranking, 14 dates of every store, follows once a minute)."""
    movers = hs.read_movers(db)
    if movers is None or movers.get("last_date") != meta.get("last_date"):
        return True
    return movers["version"] != int(meta.get("version", 0)) and time.time() - movers.get("at", 0) > MOVERS_EVERY_S


def _refresh_movers(db: Database) -> None:
    """Rank the movers at the current version and keep the ranking (what GET /trends/movers/ reads)."""
    meta = hs.read_meta(db)
    kept = _kept(meta)
    if meta is None or kept is None:
        return
    ranked = _rank_movers(db, *_weeks(kept[1]), kept, _date_blocks(meta))
    hs.write_movers(db, int(meta.get("version", 0)), ranked, meta.get("last_date"))


# --- the full build ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryBuild:
    stores: int
    dates: int
    rows: int
    seconds: float
    phases: dict[str, float] | None = None  # seconds per phase (ops, the benchmark)
    updated: bool = False  # only the dates a load's new polls touch were recomputed (build_after_load)


def build_history(*, db: Database | None = None) -> HistoryBuild:
    """Every store's figures on every one of its dates, from the stored polls (after a load or an import)."""
    db = storage.get_db() if db is None else db
    began = time.perf_counter()
    with hs.history_lock(db) as held:
        assert held
        meta = hs.read_meta(db) or {}
        through = hs.last_pending(db, int(meta.get("through", 0)))
        inputs = _inputs(db)
        old_dates = hs.stored_dates(db)
        if inputs is None:  # no polls: nothing to keep (the block count is chosen with the first polls)
            hs.drop_dates(db, old_dates)
            if meta:
                hs.write_meta(
                    db,
                    {"through": through, "first_date": None, "last_date": None, "newest_us": 0, "dates_token": None},
                )
                _forget_dates(db)
            return HistoryBuild(0, 0, 0, time.perf_counter() - began)
        blocks = int(meta.get("blocks") or hs.blocks_for(len(inputs.store_ids)))
        date_blocks = int(meta.get("date_blocks") or hs.blocks_for(len(inputs.store_ids), hs.DATE_BLOCK_STORES))
        date_blocks = min(date_blocks, blocks)
        if not meta:  # from now on writes of polls are noted (after ``through``) and applied after this build
            hs.write_meta(
                db,
                {
                    "through": through,
                    "blocks": blocks,
                    "date_blocks": date_blocks,
                    "first_date": None,
                    "last_date": None,
                },
            )
        first_date, last_date = inputs.first_date(), inputs.last_date()
        d0, d1 = first_date.min(), last_date.max()
        all_dates = np.arange(d0, d1 + 1, dtype="datetime64[D]")
        names = np.datetime_as_string(all_dates, unit="D").tolist()
        fold_upto = (date.fromisoformat(names[-1]) - timedelta(days=FOLD_LAG_DAYS)).isoformat()
        layout = _build_layout(inputs, blocks, date_blocks)
        # Readers use the date documents while the tiles are rewritten.
        # A new dates token first: no process keeps using what it held of the date documents (_kept_dates).
        hs.write_meta(db, {"folded_through": None, "dates_token": uuid.uuid4().hex})
        _forget_dates(db)
        hs.drop_dates(db, [d for d in old_dates if d not in set(names)])
        hs.drop_months(db, hs.stored_months(db))
        pieces = _build_pieces(all_dates)
        rows_total = 0
        phases: dict[str, float] = {}
        # The next piece's polls are read while this one is computed, and the previous piece is written
        # meanwhile (WRITE_BESIDE_COMPUTE): the documents are packed from arrays, so writing is mostly the
        # server's work, which runs beside this process's computing. One piece waits to be written at most;
        # a month's tiles go with its last piece (BUILD_PIECE_DAYS says why pieces are short).
        month_figures: list[DailyFigures] = []
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-read") as prefetch,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-write") as writer,
        ):
            coming = prefetch.submit(_read_polls, db, pieces[0][0], pieces[0][-1], None)
            written: Future[None] | None = None
            for k, piece in enumerate(pieces):
                clock = time.perf_counter()
                polls = coming.result()
                if k + 1 < len(pieces):
                    coming = prefetch.submit(_read_polls, db, pieces[k + 1][0], pieces[k + 1][-1], None)
                clock = _phase(phases, "wait_for_polls", clock)
                figures = _build_chunk(inputs, polls, piece, first_date, last_date)
                del polls
                clock = _phase(phases, "compute", clock)
                month_figures.append(figures)
                month = None
                if k + 1 == len(pieces) or str(pieces[k + 1][0])[:7] != str(piece[0])[:7]:
                    month, month_figures = DailyFigures.concat(month_figures), []
                if written is not None:
                    written.result()
                    clock = _phase(phases, "wait_for_writes", clock)
                if WRITE_BESIDE_COMPUTE:
                    written = writer.submit(_write_piece, db, figures, month, layout, piece, fold_upto, phases)
                else:
                    _write_piece(db, figures, month, layout, piece, fold_upto, phases)
                rows_total += len(figures)
            if written is not None:
                clock = time.perf_counter()
                written.result()
                _phase(phases, "wait_for_writes", clock)
        hs.write_meta(
            db,
            {
                "through": through,
                "blocks": blocks,
                "date_blocks": date_blocks,
                "first_date": names[0],
                "last_date": names[-1],
                "newest_us": inputs.newest_us,
                "folded_through": fold_upto if fold_upto >= names[0] else None,
                "dates_token": uuid.uuid4().hex,
            },
        )
        hs.write_meta(db, _removal(db, meta, through))
    logger.info("daily figures built: %s rows; %s", rows_total, {k: round(v, 2) for k, v in phases.items()})
    return HistoryBuild(len(inputs.store_ids), len(names), rows_total, time.perf_counter() - began, phases)


def _build_pieces(all_dates: np.ndarray) -> list[np.ndarray]:
    """The build's pieces: runs of at most BUILD_PIECE_DAYS consecutive dates, none across a month's end."""
    pieces: list[np.ndarray] = []
    for month in np.unique(all_dates.astype("datetime64[M]")):
        mine = all_dates[all_dates.astype("datetime64[M]") == month]
        pieces.extend(mine[k : k + BUILD_PIECE_DAYS] for k in range(0, len(mine), BUILD_PIECE_DAYS))
    return pieces


def _write_piece(
    db: Database,
    figures: DailyFigures,
    month: DailyFigures | None,
    layout: _BuildLayout,
    piece: np.ndarray,
    fold_upto: str,
    phases: dict[str, float],
) -> None:
    """A built piece (``figures`` sorted by code and date): its date documents and group totals; with a
    month's last piece, that month's tiles (``month``: all its figures; dates up to ``fold_upto``).
    The documents are packed straight from the figures' arrays (``_date_documents``)."""
    clock = time.perf_counter()
    for name, on_day in _date_documents(figures, layout).items():
        hs.fill_docs(db, hs.DATES, name, [doc for doc in on_day.values() if doc is not None], layout.date_blocks)
    clock = _phase(phases, "write_dates", clock)
    hs.add_to_trend(db, _coded_totals(figures, layout), replace_dates=np.datetime_as_string(piece).tolist())
    clock = _phase(phases, "trend", clock)
    if month is not None:
        _write_tiles(db, month, layout, str(piece[0])[:7], fold_upto)
        _phase(phases, "write_tiles", clock)


def _write_tiles(db: Database, figures: DailyFigures, layout: _BuildLayout, month: str, fold_upto: str) -> None:
    """A month's tiles: its folded dates (up to ``fold_upto``), by (block, store id, date)."""
    code, day = figures.code, figures.date.astype(np.int64)
    folded = np.flatnonzero(day <= int(np.datetime64(fold_upto, "D").astype(np.int64)))
    if not len(folded):
        return
    values = {c: getattr(figures, c) for c in (*hs.FLOATS, *hs.INTS)}
    order = folded[np.lexsort((day[folded], layout.rank[code[folded]], layout.tile_block[code[folded]]))]
    tiles = [
        hs.pack_coded_block(
            month,
            int(layout.tile_block[code[rows[0]]]),
            layout.labels,
            code[rows],
            day[rows],
            {c: v[rows] for c, v in values.items()},
        )
        for rows in (order[lo:hi] for lo, hi in _runs(layout.tile_block[code[order]]))
    ]
    hs.fill_docs(db, hs.TILES, month, tiles, layout.tile_blocks)


@dataclass(frozen=True)
class _BuildLayout:
    """What a full build's writes need per store code: its date block, tile block, rank in id order, labels."""

    date_block: np.ndarray
    tile_block: np.ndarray
    date_blocks: int
    tile_blocks: int
    rank: np.ndarray
    labels: hs.StoreLabels
    group: np.ndarray  # each store's (region, brand) group: an index into regions/brands
    regions: np.ndarray
    brands: np.ndarray


def _layout(inputs: _Inputs, meta: dict) -> _BuildLayout:
    """The layout of these stores in a history of ``meta``'s block counts (worked out once per inputs)."""
    return _build_layout(inputs, int(meta["blocks"]), _date_blocks(meta))


def _build_layout(inputs: _Inputs, blocks: int, date_blocks: int) -> _BuildLayout:
    found = inputs._derived.get(("layout", blocks, date_blocks))
    if found is not None:
        return found
    ids = inputs.store_ids.tolist()
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(inputs.store_ids, kind="stable")] = np.arange(len(ids))
    pairs = pd.MultiIndex.from_arrays([inputs.region.astype(object), inputs.brand.astype(object)])
    group, uniques = pd.factorize(pairs)
    layout = _BuildLayout(
        date_block=hs.block_of(ids, date_blocks),
        tile_block=hs.block_of(ids, blocks),
        date_blocks=date_blocks,
        tile_blocks=blocks,
        rank=rank,
        labels=hs.StoreLabels(inputs.store_ids, inputs.region, inputs.brand),
        group=group.astype(np.int64),
        regions=np.asarray(uniques.get_level_values(0), dtype=object),
        brands=np.asarray(uniques.get_level_values(1), dtype=object),
    )
    inputs._derived[("layout", blocks, date_blocks)] = layout
    return layout


def _runs(keys: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) of each run of equal values of ``keys``."""
    if len(keys) == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    ends = np.append(starts[1:], len(keys))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _day_name(day: int) -> str:
    return str(np.datetime64(day, "D"))


def _coded_totals(figures: DailyFigures, layout: _BuildLayout) -> pd.DataFrame:
    """``_totals`` of the figures' rows (each store's region and brand as the build writes them), grouped by
    integer keys in the same row order (so the same sums, to the bit)."""
    if len(figures) == 0:
        return hs.empty_trend()
    groups = len(layout.regions)
    day = figures.date.astype(np.int64)
    key = day * groups + layout.group[figures.code]
    up, down, unobserved = figures.up_s, figures.down_s, figures.unobserved_s
    frame = pd.DataFrame(
        {
            "key": key,
            "up_s": up,
            "down_s": down,
            "unobserved_s": unobserved,
            "stores_down": (down > 0).astype(np.int64),
            "stores_open": (np.maximum(up + down, unobserved) > 0).astype(np.int64),
        }
    )
    summed = frame.groupby("key", sort=False).sum()
    keys = summed.index.to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "date": np.datetime_as_string((keys // groups).astype("datetime64[D]"), unit="D").astype(object),
            "region": layout.regions[keys % groups],
            "brand": layout.brands[keys % groups],
            **{c: summed[c].to_numpy() for c in ("up_s", "down_s", "unobserved_s", "stores_down", "stores_open")},
        }
    )


def _phase(phases: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    phases[name] = phases.get(name, 0.0) + now - since
    return now


def _build_chunk(
    inputs: _Inputs, polls: storage.PollColumns, chunk: np.ndarray, first_date: np.ndarray, last_date: np.ndarray
) -> DailyFigures:
    """Every store's figures on the chunk's dates (only the dates each store has), sorted by code and date."""
    at = pd.Index(inputs.store_ids).get_indexer(polls.store_ids.astype(object))
    keep = at[polls.store] >= 0
    figures = daily_figures(
        store_ids=inputs.store_ids,
        poll_codes=at[polls.store][keep].astype(np.int64),
        poll_us=polls.t_us[keep],
        poll_active=~polls.inactive[keep],
        hours=inputs.hours,
        zones=inputs.zones,
        special_hours=inputs.special,
        first_date=chunk[0],
        last_date=chunk[-1],
        zone_names=inputs.zone_names,
    )
    inside = (figures.date >= first_date[figures.code]) & (figures.date <= last_date[figures.code])
    return figures.take(np.flatnonzero(inside))


def build_line(built: HistoryBuild) -> str:
    """What ``load_data`` prints after the build."""
    if built.updated:
        return f"daily figures: {built.rows} rows recomputed (the dates the new polls touch), {built.seconds:.2f} s"
    return f"daily figures: {built.rows} rows, {built.stores} stores x {built.dates} local dates, {built.seconds:.2f} s"


def build_after_load(
    db: Database | None = None, *, tables_changed: bool | None = None, polls_changed_us: tuple[int, int] | None = None
) -> HistoryBuild | None:
    """The daily figures after a load or an import; None (logged) when that failed or another update holds
    the history (the worker's update catches up).

    When figures exist and the hours, holiday hours, zones and directory are as they were
    (``tables_changed`` False), only the dates of the days whose polls changed (``polls_changed_us``: their
    span, None for none) are recomputed, as the HTTP batches do: an appended hour at 30x (110K stores) no
    longer rebuilds 60 days. Otherwise (or unknown: None) every date is built from scratch.
    """
    db = storage.get_db() if db is None else db
    try:
        meta = hs.read_meta(db)
        if tables_changed is False and meta is not None and meta.get("last_date"):
            if polls_changed_us is not None:
                _note_span(db, None, *polls_changed_us)
            updated = update_history(db=db)
            if updated is None:
                logger.warning("the daily figures are being updated elsewhere: the worker applies the load's changes")
                return None
            return HistoryBuild(0, 0, updated.rows, updated.seconds, updated=True)
        return build_history(db=db)
    except Exception:
        logger.exception("could not build the daily figures after the load")
        return None


# --- reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryDay:
    date_local: str
    uptime_s: float
    downtime_s: float
    unobserved_s: float
    outages: int
    longest_outage_s: float

    @property
    def uptime_pct(self) -> float | None:
        return uptime_pct_or_none(self.uptime_s, self.downtime_s)


@dataclass(frozen=True)
class StoreHistory:
    store_id: str
    first: date
    last: date
    days: list[HistoryDay]


def date_range(
    *, first: date | None, last: date | None, default_last: date | None, days: int | None = None
) -> tuple[date, date]:
    """The local dates asked for: ``to`` defaults to the newest date kept, ``from`` to ``days`` - 1 days before
    ``to`` (``days`` defaults to 30): ``days=90`` alone is the 90 dates ending at the newest kept date (the
    dashboard's charts).

    Refused (InvalidInput): ``from`` with ``days``, ``days`` outside 1..MAX_DAYS, ``from`` after ``to``, more
    than MAX_DAYS dates.
    """
    if days is not None:
        if first is not None:
            raise InvalidInput("days", "give from or days, not both (days counts back from to)")
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput("days", f"must be 1-{MAX_DAYS}")
    if last is None:
        last = default_last if default_last is not None else (first or date.today())
    if first is None:
        first = last - timedelta(days=(DEFAULT_DAYS if days is None else days) - 1)
    if first > last:
        raise InvalidInput("from", f"must not lie after to ({first.isoformat()} is after {last.isoformat()})")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput("to", f"the range may hold at most {MAX_DAYS} dates (asked: {(last - first).days + 1})")
    return first, last


def _kept(meta: dict | None) -> tuple[date, date] | None:
    if not meta or not meta.get("first_date") or not meta.get("last_date"):
        return None
    return date.fromisoformat(meta["first_date"]), date.fromisoformat(meta["last_date"])


def _dates_between(first: date, last: date, kept: tuple[date, date] | None) -> list[str]:
    if kept is None:
        return []
    lo, hi = max(first, kept[0]), min(last, kept[1])
    return [(lo + timedelta(days=k)).isoformat() for k in range((hi - lo).days + 1)] if lo <= hi else []


def get_store_history(
    *, store_id: str, first: date | None = None, last: date | None = None, count: int | None = None
) -> StoreHistory:
    """One store's daily figures on the local dates first..last (inclusive; ``date_range``, ``count`` its
    ``days``); NotFound for an unknown store."""
    if not is_store_id(store_id):
        raise InvalidInput("store_id", f"must be {STORE_ID_HELP}")
    db = storage.get_db()
    meta = hs.read_meta(db)
    kept = _kept(meta)
    first, last = date_range(first=first, last=last, default_last=None if kept is None else kept[1], days=count)
    dates = _dates_between(first, last, kept)
    rows = (
        hs.read_store_rows(db, store_id, dates, int(meta["blocks"]), meta.get("folded_through"), _date_blocks(meta))
        if meta and dates
        else hs.empty_rows()
    )
    if len(rows) == 0 and len(storage.read_store_catalog(db, store_id).store_ids) == 0:
        raise NotFound(f"No store {store_id!r}: it has no polls.")
    rows = rows.sort_values("date", kind="stable")
    days = [
        HistoryDay(str(d), float(u), float(w), float(o), int(n), float(lg))
        for d, u, w, o, n, lg in rows[["date", "up_s", "down_s", "unobserved_s", "outages", "longest_s"]].itertuples(
            index=False
        )
    ]
    return StoreHistory(store_id, first, last, days)


@dataclass(frozen=True)
class TrendDay:
    date_local: str
    uptime_s: float
    downtime_s: float
    unobserved_s: float
    stores_down: int
    stores_open: int

    @property
    def uptime_pct(self) -> float | None:
        return uptime_pct_or_none(self.uptime_s, self.downtime_s)


@dataclass(frozen=True)
class Trend:
    first: date
    last: date
    region: str | None
    brand: str | None
    days: list[TrendDay]


def get_trend(
    *,
    first: date | None = None,
    last: date | None = None,
    region: str | None = None,
    brand: str | None = None,
    count: int | None = None,
) -> Trend:
    """The fleet's totals per local date (only stores of ``region`` / ``brand`` when given: exact match), on the
    local dates of ``date_range`` (``count`` its ``days``)."""
    db = storage.get_db()
    kept = _kept(hs.read_meta(db))
    first, last = date_range(first=first, last=last, default_last=None if kept is None else kept[1], days=count)
    dates = _dates_between(first, last, kept)
    months = sorted({d[:7] for d in dates})
    totals = hs.read_trend_months(db, months) if months else hs.empty_trend()
    keep = totals["date"].isin(set(dates))
    if region is not None:
        keep &= totals["region"] == region
    if brand is not None:
        keep &= totals["brand"] == brand
    summed = totals[keep].groupby("date", sort=True)[["up_s", "down_s", "unobserved_s", "stores_down",
                                                      "stores_open"]].sum()  # fmt: skip
    days = [
        TrendDay(str(d), float(r.up_s), float(r.down_s), float(r.unobserved_s), int(r.stores_down), int(r.stores_open))
        for d, r in summed.iterrows()
    ]
    return Trend(first, last, region, brand, days)


@dataclass(frozen=True)
class Mover:
    store_id: str
    this_week_pct: float | None
    previous_week_pct: float | None
    change_pct: float | None


@dataclass(frozen=True)
class Movers:
    this_week: tuple[date, date]
    previous_week: tuple[date, date]
    stores: list[Mover]


def _weeks(last: date) -> tuple[tuple[date, date], tuple[date, date]]:
    return (last - timedelta(days=6), last), (last - timedelta(days=13), last - timedelta(days=7))


def get_movers(*, limit: int = 20) -> Movers:
    """The stores whose uptime % of the last 7 kept dates fell most against the 7 before (both weeks
    with business time; ties by store id). The ranking the worker keeps after each update is answered
    when it is of the current figures; otherwise it is ranked here (and kept)."""
    if not 1 <= limit <= MOVERS_LIMIT_MAX:
        raise InvalidInput("limit", f"must be 1-{MOVERS_LIMIT_MAX}")
    db = storage.get_db()
    meta = hs.read_meta(db)
    kept = _kept(meta)
    if kept is None or meta is None:
        empty = (date.today(), date.today())
        return Movers(empty, empty, [])
    version = int(meta.get("version", 0))
    stored = hs.read_movers(db)
    fresh = stored is not None and (
        stored["version"] == version
        or (stored.get("last_date") == meta.get("last_date") and time.time() - stored.get("at", 0) < MOVERS_STALE_S)
    )
    if stored is not None and fresh:
        ranked = Movers(
            (date.fromisoformat(stored["this_week"][0]), date.fromisoformat(stored["this_week"][1])),
            (date.fromisoformat(stored["previous_week"][0]), date.fromisoformat(stored["previous_week"][1])),
            [
                Mover(*row)
                for row in zip(
                    stored["store_id"],
                    stored["this_week_pct"],
                    stored["previous_week_pct"],
                    stored["change_pct"],
                    strict=True,
                )
            ],
        )
    else:
        ranked = _rank_movers(db, *_weeks(kept[1]), kept, _date_blocks(meta))
        hs.write_movers(db, version, ranked, meta.get("last_date"))
    return Movers(ranked.this_week, ranked.previous_week, ranked.stores[:limit])


def _rank_movers(
    db: Database, this_week: tuple[date, date], previous: tuple[date, date], kept: tuple[date, date], date_blocks: int
) -> Movers:
    weeks = {"this": _dates_between(*this_week, kept), "prev": _dates_between(*previous, kept)}
    frames = []
    for name, dates in weeks.items():
        for rows in hs.read_whole_dates(db, dates, date_blocks):
            frames.append(rows[["store_id", "up_s", "down_s"]].assign(week=name))
    if not frames:
        return Movers(this_week, previous, [])
    sums = pd.concat(frames, ignore_index=True).groupby(["store_id", "week"])[["up_s", "down_s"]].sum().unstack()
    up_this = sums[("up_s", "this")] if ("up_s", "this") in sums else pd.Series(0.0, index=sums.index)
    down_this = sums[("down_s", "this")] if ("down_s", "this") in sums else pd.Series(0.0, index=sums.index)
    up_prev = sums[("up_s", "prev")] if ("up_s", "prev") in sums else pd.Series(0.0, index=sums.index)
    down_prev = sums[("down_s", "prev")] if ("down_s", "prev") in sums else pd.Series(0.0, index=sums.index)
    this_pct = 100 * up_this.fillna(0) / (up_this.fillna(0) + down_this.fillna(0))
    prev_pct = 100 * up_prev.fillna(0) / (up_prev.fillna(0) + down_prev.fillna(0))
    change = (this_pct - prev_pct).dropna()
    order = pd.DataFrame({"store_id": change.index.astype(str), "change": change.to_numpy()}).sort_values(
        ["change", "store_id"], kind="stable"
    )
    order = order.head(MOVERS_LIMIT_MAX)
    stores = [
        Mover(
            s,
            round(float(this_pct[s]), 2),
            round(float(prev_pct[s]), 2),
            round(float(c), 2),
        )
        for s, c in order.itertuples(index=False)
    ]
    return Movers(this_week, previous, stores)


def history_state(db: Database | None = None) -> dict:
    """The history's meta (ops, tests)."""
    db = storage.get_db() if db is None else db
    meta = hs.read_meta(db) or {}
    return {
        k: meta.get(k) for k in ("blocks", "date_blocks", "through", "first_date", "last_date", "newest_us", "version")
    }
