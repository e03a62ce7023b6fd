"""The store-id rule (``loop.store_ids``) and the report CSV's store-id cells (``loop.report_engine``).

Reasons and cells below are written by hand; the properties compare the vectorised rule with the
scalar one and the CSV writer with its reader over generated ids.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loop.report_engine import REPORT_COLUMNS, report_from_csv, report_to_csv, store_ids_to_csv_cells
from loop.store_ids import is_store_id, store_id_problem, store_id_problems

NOT_PRINTABLE = "store_id has a character that is not printable (control, format, separator or tab/line break)"
BAD_IDS = {
    "": "store_id is blank",
    "x" * 129: "store_id is longer than 128 characters",
    "a\x00b": NOT_PRINTABLE,
    "a\nb": NOT_PRINTABLE,
    "a\rb": NOT_PRINTABLE,
    "a\tb": NOT_PRINTABLE,
    "a\x7fb": NOT_PRINTABLE,
    "a\x85b": NOT_PRINTABLE,  # NEL, a C1 control
    "a\u200bb": NOT_PRINTABLE,  # zero-width space (format)
    "a\u202eb": NOT_PRINTABLE,  # right-to-left override (format)
    "a\u2028b": NOT_PRINTABLE,  # line separator
    "a\u00a0b": NOT_PRINTABLE,  # no-break space (a separator other than the ASCII space)
    "a\ufeff": NOT_PRINTABLE,  # byte order mark
    "a/b": "store_id contains '/' (a path segment cannot carry it)",
    "a\ufffdb": "store_id is not valid UTF-8",
    " a": "store_id has surrounding spaces",
    "a ": "store_id has surrounding spaces",
}
GOOD_IDS = ["1", "x" * 128, "a b", "=1+2", "'=1+2", "NA", "store-7_ü", "店舗", "😀", '"quoted", too', "a\\b", "#1"]


@pytest.mark.parametrize(("value", "reason"), BAD_IDS.items(), ids=repr)
def test_each_part_of_the_rule_has_its_reason(value: str, reason: str) -> None:
    assert store_id_problem(value) == reason
    assert not is_store_id(value)
    assert store_id_problems(pd.Series([value, "ok"])).tolist() == [reason, None]


@pytest.mark.parametrize("value", GOOD_IDS, ids=repr)
def test_printable_ids_without_a_slash_pass(value: str) -> None:
    assert store_id_problem(value) is None
    assert store_id_problems(pd.Series([value])).tolist() == [None]


def test_only_strings_are_store_ids() -> None:
    for value in (None, 7, b"abc", ["a"]):
        assert not is_store_id(value)


ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.text(max_size=3)


@settings(max_examples=300, derandomize=True)
@given(st.lists(ANY_TEXT, min_size=1, max_size=8))
@example(["a\u0378", "\x1ca", "é\x00", "ab\u2029", " é", "abc\n", "a\n", "x" * 129, "x" * 128, "a b", "a "])
def test_the_vectorised_rule_is_the_scalar_rule(values: list[str]) -> None:
    expected = [store_id_problem(value) for value in values]
    for dtype in (object, pd.StringDtype("pyarrow")):
        assert store_id_problems(pd.Series(values, dtype=dtype)).tolist() == expected


STORE_IDS = ANY_TEXT.filter(is_store_id)


def report_of(ids: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({column: [1.5] * len(ids) for column in REPORT_COLUMNS[1:]})
    frame.insert(0, "store_id", pd.Series(ids, dtype=object))
    return frame


@settings(max_examples=300, derandomize=True)
@given(st.lists(STORE_IDS, min_size=1, max_size=8, unique=True))
@example(["=1+2", "'=1+2", "''=1+2", "'", "NA", "-", "@", "+1", '"', ",", "a,b"])
def test_every_store_id_reads_back_from_the_report_csv_exactly(ids: list[str]) -> None:
    read_back = report_from_csv(report_to_csv(report_of(ids)))
    assert read_back["store_id"].tolist() == ids
    assert read_back["uptime_last_hour"].tolist() == [1.5] * len(ids)


@settings(max_examples=300, derandomize=True)
@given(STORE_IDS, STORE_IDS)
@example("=1+2", "'=1+2")
@example("'", "''")
def test_two_different_ids_never_share_a_cell(first: str, second: str) -> None:
    cells = store_ids_to_csv_cells(pd.Series([first, second], dtype=object)).tolist()
    assert (cells[0] == cells[1]) == (first == second)


def test_formula_ids_and_apostrophe_ids_get_one_apostrophe_more() -> None:
    ids = ["=1+2", "'=1+2", "+cmd", "-2", "@SUM(A1)", "'plain", "plain", "a=b"]
    cells = store_ids_to_csv_cells(pd.Series(ids, dtype=object)).tolist()
    assert cells == ["'=1+2", "''=1+2", "'+cmd", "'-2", "'@SUM(A1)", "''plain", "plain", "a=b"]
