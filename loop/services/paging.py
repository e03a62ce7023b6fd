"""Paging of the lists (reports, imports, stores): one rule for page numbers and sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from loop.errors import InvalidInput

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100

Item = TypeVar("Item")


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a list and how many items match in all."""

    count: int
    page: int
    page_size: int
    results: list[Item]


def page_skip(*, page: int, page_size: int) -> int:
    """How many items come before ``page``; InvalidInput for a page below 1 or a size outside 1-PAGE_SIZE_MAX."""
    if page < 1:
        raise InvalidInput("page", "must be 1 or more")
    if not 1 <= page_size <= PAGE_SIZE_MAX:
        raise InvalidInput("page_size", f"must be between 1 and {PAGE_SIZE_MAX}")
    return (page - 1) * page_size
