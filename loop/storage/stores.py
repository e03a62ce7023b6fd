"""Store attributes: weekly hours (``business_hours``) and time zones (``timezones``).

``business_hours`` documents: ``store_id``, ``day_of_week`` (0 = Monday),
``start_seconds``, ``end_seconds`` (seconds after local midnight).
``timezones`` documents: ``store_id``, ``timezone_str`` and ``seq`` (row number
in the loaded file, so duplicate rows of one store come back in file order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pymongo.database import Database

from loop.storage.client import WRITE_BATCH, batched
from loop.storage.schema import HOURS, ZONES

HOURS_FIELDS = ["store_id", "day_of_week", "start_seconds", "end_seconds"]
ZONES_FIELDS = ["store_id", "timezone_str", "seq"]


def _replace_per_store(db: Database, name: str, frame: pd.DataFrame, columns: list[str]) -> int:
    """Replace what ``name`` holds for the stores in ``frame`` (batched)."""
    coll = db[name]
    frame = frame.reset_index(drop=True)
    store_ids = frame["store_id"].astype(str)
    unique_ids = pd.unique(store_ids).tolist()
    written = 0
    for id_batch in batched(unique_ids, 5000):
        coll.delete_many({"store_id": {"$in": list(id_batch)}})
        part = frame.loc[store_ids.isin(id_batch), columns]
        records = [
            {col: (val.item() if isinstance(val, np.generic) else val) for col, val in zip(columns, row, strict=True)}
            for row in part.itertuples(index=False, name=None)
        ]
        for doc_batch in batched(records, WRITE_BATCH):
            coll.insert_many(list(doc_batch), ordered=False)
            written += len(doc_batch)
    return written


def replace_hours(db: Database, hours: pd.DataFrame) -> int:
    """Store parsed hours rows; stores named in ``hours`` lose their old rows."""
    if hours.empty:
        return 0
    frame = pd.DataFrame(
        {
            "store_id": hours["store_id"].astype(str),
            "day_of_week": hours["day_of_week"].astype("int64"),
            "start_seconds": hours["start_seconds"].astype("int64"),
            "end_seconds": hours["end_seconds"].astype("int64"),
        }
    )
    return _replace_per_store(db, HOURS, frame, HOURS_FIELDS)


def replace_zones(db: Database, zones: pd.DataFrame) -> int:
    """Store zone rows (file order kept in ``seq``); named stores lose their old rows."""
    if zones.empty:
        return 0
    frame = pd.DataFrame(
        {
            "store_id": zones["store_id"].astype(str),
            "timezone_str": zones["timezone_str"].astype(str),
            "seq": np.arange(len(zones), dtype="int64"),
        }
    )
    return _replace_per_store(db, ZONES, frame, ZONES_FIELDS)


def read_hours(db: Database) -> pd.DataFrame:
    docs = list(db[HOURS].find({}, {"_id": 0, **dict.fromkeys(HOURS_FIELDS, 1)}))
    return pd.DataFrame(
        {
            "store_id": pd.Series([d["store_id"] for d in docs], dtype="str"),
            **{col: pd.Series([d[col] for d in docs], dtype="int64") for col in HOURS_FIELDS[1:]},
        }
    )


def read_zones(db: Database) -> pd.DataFrame:
    docs = list(db[ZONES].find({}, {"_id": 0, **dict.fromkeys(ZONES_FIELDS, 1)}))
    frame = pd.DataFrame(
        {
            "store_id": pd.Series([d["store_id"] for d in docs], dtype="str"),
            "timezone_str": pd.Series([d["timezone_str"] for d in docs], dtype="str"),
            "seq": pd.Series([d.get("seq", 0) for d in docs], dtype="int64"),
        }
    )
    # Duplicate rows of one store keep their file order (a stable sort).
    frame = frame.sort_values("seq", kind="stable").reset_index(drop=True)
    return frame[["store_id", "timezone_str"]]
