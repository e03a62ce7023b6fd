"""The store directory: each store's name, brand and region (optional; ``stores.csv``, imports, or one store
at a time by ``PUT /stores/<id>/profile/``).

The text rules are the CSV reader's own (``loop.sources.validate.validate_store_rows``), so a PUT and a
load accept exactly the same values. Readers for other use cases (store lists, alert messages) are
``store_profiles`` and ``store_ids_matching``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loop import storage
from loop.errors import InvalidInput, Unavailable
from loop.sources.problems import RowProblems
from loop.sources.validate import PROFILE_TEXT_COLUMNS, validate_store_rows
from loop.store_ids import STORE_ID_HELP, is_store_id


@dataclass(frozen=True)
class Profile:
    """What the directory knows of a store; every field None when it knows nothing."""

    name: str | None = None
    brand: str | None = None
    region: str | None = None


UNKNOWN = Profile()


@dataclass(frozen=True)
class StoreProfile:
    """GET/PUT /stores/<id>/profile/."""

    store_id: str
    name: str | None
    brand: str | None
    region: str | None


def _checked(store_id: str) -> str:
    if not is_store_id(store_id):
        raise InvalidInput("store_id", f"must be {STORE_ID_HELP}")
    return str(store_id)


def _text(value: object) -> str | None:
    return None if value is None or value != value else str(value)


def profiles_by_store(profiles: pd.DataFrame) -> dict[str, Profile]:
    """A frame of ``storage.read_profiles`` as store id -> Profile."""
    return {
        str(store_id): Profile(_text(name), _text(brand), _text(region))
        for store_id, name, brand, region in profiles[["store_id", *PROFILE_TEXT_COLUMNS]].itertuples(index=False)
    }


def store_profiles(*, store_ids: Sequence[str]) -> dict[str, Profile]:
    """Every id of ``store_ids`` -> its Profile (``UNKNOWN``, all None, for a store without one).

    Reads only the directory's parts that can hold these ids (through the part cache).
    """
    ids = [str(store_id) for store_id in store_ids]
    if not ids:
        return {}
    found = profiles_by_store(storage.read_profiles(storage.get_db(), store_ids=ids))
    return {store_id: found.get(store_id, UNKNOWN) for store_id in ids}


_regions: dict[str, object] = {}  # the directory's version -> store id -> region, in this process


def region_counts(store_ids: Sequence[str]) -> list[tuple[str, int]]:
    """How many of ``store_ids`` are in each region of the directory (``unknown``: none given), by region.

    The store -> region map is kept per process while the directory's stored version holds (one ``_id``
    read); a deployment without a directory reads nothing more. For metrics: GET /metrics, the evaluation.
    """
    if len(store_ids) == 0:
        return []
    db = storage.get_db()
    version = storage.profiles_version(db)
    if not version:
        return [("unknown", len(store_ids))]
    if _regions.get("version") != version:
        profiles = storage.read_profiles(db)
        regions = profiles["region"].where(profiles["region"].notna() & (profiles["region"] != ""), "unknown")
        _regions.clear()
        _regions.update(version=version, map=pd.Series(regions.to_numpy(), index=profiles["store_id"].astype(str)))
    mapping = _regions["map"]
    assert isinstance(mapping, pd.Series)
    found = pd.Series(np.asarray(store_ids, dtype=object).astype(str)).map(mapping).fillna("unknown")
    return sorted((str(region), int(count)) for region, count in found.value_counts().items())


def matching_ids(profiles: pd.DataFrame, *, region: str | None, brand: str | None) -> np.ndarray | None:
    """The ids of the profiles with exactly this region and brand (case-sensitive); None when neither is given."""
    if region is None and brand is None:
        return None
    keep = np.ones(len(profiles), dtype=bool)
    if region is not None:
        keep &= (profiles["region"] == region).to_numpy(dtype=bool)
    if brand is not None:
        keep &= (profiles["brand"] == brand).to_numpy(dtype=bool)
    return profiles["store_id"].to_numpy(dtype=object)[keep]


def store_ids_matching(*, region: str | None, brand: str | None) -> set[str] | None:
    """The stores whose profile has exactly this region and brand (both when both are given);
    None when neither is given (no filter). A store without a profile matches no filter."""
    if region is None and brand is None:
        return None
    ids = matching_ids(storage.read_profiles(storage.get_db()), region=region, brand=brand)
    return set() if ids is None else {str(store_id) for store_id in ids}


def get_profile(*, store_id: str) -> StoreProfile:
    """The store's profile; every field null when it has none (also for a store never seen)."""
    store_id = _checked(store_id)
    profile = profiles_by_store(storage.read_profiles(storage.get_db(), store_id)).get(store_id, UNKNOWN)
    return StoreProfile(store_id, profile.name, profile.brand, profile.region)


def set_profile(*, store_id: str, name: str, brand: str | None = None, region: str | None = None) -> StoreProfile:
    """Replace the store's profile: values trimmed; empty or null brand/region stored as unknown (null)."""
    store_id = _checked(store_id)
    raw = pd.DataFrame(
        {"store_id": [store_id], "name": [name], "brand": [brand or ""], "region": [region or ""]}, dtype=object
    )
    problems = RowProblems()
    row = validate_store_rows(raw, np.array([0]), "profile", problems)
    if problems.total:
        reason = problems.examples[0].reason
        field = reason.split(" ", 1)[0]
        raise InvalidInput(field if field in (*PROFILE_TEXT_COLUMNS, "store_id") else "profile", reason)
    stored = profiles_by_store(row)[store_id]
    try:
        storage.set_store_profile(
            storage.get_db(), store_id, name=str(stored.name), brand=stored.brand, region=stored.region
        )
    except storage.TableBusy as exc:
        raise Unavailable("The store directory is being written by another request; try again.") from exc
    return StoreProfile(store_id, stored.name, stored.brand, stored.region)


def delete_profile(*, store_id: str) -> None:
    """Forget the store's profile (nothing to do when it has none)."""
    store_id = _checked(store_id)
    try:
        storage.delete_store_profile(storage.get_db(), store_id)
    except storage.TableBusy as exc:
        raise Unavailable("The store directory is being written by another request; try again.") from exc
