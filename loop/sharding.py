"""How a report is cut into shards and put back together (pure: no Django, no MongoDB).

A shard is a contiguous range of store ids (``StoreRange``-shaped bounds: shard ``k`` holds the ids
``bounds[k-1] <= id < bounds[k]``, the first and last open-ended). Polls, hours, zones and holidays are
stored sorted by store id in parts that record their first and last id (docs/storage.md), so a range
reads only the parts that can hold it, and the report, whose rows are in store-id order, is the
shards' rows one after the other. The bounds are picked once per report from the ids of its stores
(equal counts) and pinned on the report, so a redelivered shard reads exactly the same stores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Rows per shard in auto mode (REPORT_SHARDS=0): a shard's polls, lanes and CSV stay within a bounded memory.
DEFAULT_SHARD_STORES = 50_000


def shard_count(stores: int, *, shards: int, shard_stores: int) -> int:
    """How many shards a report of ``stores`` stores gets: ``shards`` when set (> 0), else
    ``ceil(stores / shard_stores)``; never more than there are stores, never fewer than one."""
    wanted = shards if shards > 0 else math.ceil(stores / max(1, shard_stores))
    return max(1, min(wanted, stores))


def shard_bounds(store_ids: Sequence[str], shards: int) -> list[str]:
    """The ``shards - 1`` lower bounds of shards 1.. over the sorted, distinct ``store_ids``: equal counts
    (shard ``k`` starts at the id of rank ``floor(k * n / shards)``)."""
    n = len(store_ids)
    if shards <= 1 or n == 0:
        return []
    if shards > n:
        raise ValueError(f"{shards} shards for {n} stores")
    return [str(store_ids[(k * n) // shards]) for k in range(1, shards)]


def shard_limits(bounds: Sequence[str], shard: int) -> tuple[str | None, str | None]:
    """(lo, hi) of shard ``shard`` (None: unbounded): ``lo <= id < hi``."""
    if not 0 <= shard <= len(bounds):
        raise ValueError(f"no shard {shard} of {len(bounds) + 1}")
    lo = bounds[shard - 1] if shard > 0 else None
    hi = bounds[shard] if shard < len(bounds) else None
    return lo, hi


def join_csv(parts: Sequence[str]) -> str:
    """The report CSV from its shards' CSVs in shard order: the header once, then each shard's rows."""
    if not parts:
        raise ValueError("no shard to join")
    header, _, _ = parts[0].partition("\n")
    pieces = [header + "\n"]
    for text in parts:
        head, _, body = text.partition("\n")
        if head != header:
            raise ValueError(f"shard CSVs disagree on the header: {head!r} != {header!r}")
        pieces.append(body)
    return "".join(pieces)
