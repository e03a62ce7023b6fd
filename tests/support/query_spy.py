"""A spy on what reaches MongoDB (mongomock): crafted input must never arrive as an operator.

The ``queries`` fixture (tests/conftest.py) records every filter or pipeline a
mongomock collection receives; ``strings_in`` lists the keys and strings inside one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mongomock
import pytest

MARK = "INJECTED"

QUERY_METHODS = (
    "find",
    "find_one",
    "count_documents",
    "update_one",
    "update_many",
    "find_one_and_update",
    "delete_one",
    "delete_many",
    "distinct",
    "aggregate",
)


def spy_queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every filter (or pipeline) that reaches a mongomock collection during the test."""
    seen: list[Any] = []
    for name in QUERY_METHODS:
        original = getattr(mongomock.collection.Collection, name)

        def spy(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            seen.append(args[0] if args else kwargs.get("filter", kwargs.get("pipeline")))
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(mongomock.collection.Collection, name, spy)
    yield seen


def strings_in(value: Any) -> Iterator[str]:
    """Every key and string value inside a query document, recursively."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value
