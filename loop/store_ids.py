"""The store-id rule: which text may be a store id (pure: pandas only).

One rule for storing and for addressing: every reader (CSV files, the JSON poll batch, the
hours/holiday-hours/zone PUTs) keeps only ids that pass it, and every path parameter
refuses the rest, so any stored store can be opened, edited and reported on. Readers strip
surrounding whitespace first; a path is taken as it is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_STORE_ID_LENGTH = 128
STORE_ID_HELP = (
    f"1-{MAX_STORE_ID_LENGTH} characters, all printable (no control or format characters, tab or line break), "
    "no '/', no surrounding spaces"
)

# Each part of the rule and its reason, in the order they are checked (the first that fails is given).
BLANK = "store_id is blank"
TOO_LONG = f"store_id is longer than {MAX_STORE_ID_LENGTH} characters"
NOT_UTF8 = "store_id is not valid UTF-8"  # U+FFFD: the readers' replacement for undecodable bytes
NOT_PRINTABLE = "store_id has a character that is not printable (control, format, separator or tab/line break)"
SURROUNDING_SPACE = "store_id has surrounding spaces"
HAS_SLASH = "store_id contains '/' (a path segment cannot carry it)"

_REPLACEMENT = "\ufffd"
# Every ASCII character that str.isprintable() refuses.
_ASCII_UNPRINTABLE = r"[\x00-\x1f\x7f]"


def store_id_problem(value: object) -> str | None:
    """Why ``value`` is not a store id (None when it is one)."""
    if not isinstance(value, str) or value == "":
        return BLANK
    if len(value) > MAX_STORE_ID_LENGTH:
        return TOO_LONG
    if _REPLACEMENT in value:
        return NOT_UTF8
    if not value.isprintable():
        return NOT_PRINTABLE
    # The only printable whitespace is the ASCII space: every other kind failed the check above.
    if value.startswith(" ") or value.endswith(" "):
        return SURROUNDING_SPACE
    if "/" in value:
        return HAS_SLASH
    return None


def is_store_id(value: object) -> bool:
    return store_id_problem(value) is None


def store_id_problems(ids: pd.Series) -> pd.Series:
    """``store_id_problem`` of every id of a text Series (object dtype: the reason, or None).

    Vectorised for the readers: ASCII ids are judged by pandas string methods; only ids with
    other characters ask ``str.isprintable`` one by one (whose Unicode tables decide those).
    """
    ids = ids.reset_index(drop=True)
    text = ids.fillna("").astype(str) if ids.hasnans else ids
    length = text.str.len().to_numpy()
    checks = {
        BLANK: ids.isna().to_numpy() | (length == 0),
        TOO_LONG: length > MAX_STORE_ID_LENGTH,
        NOT_UTF8: text.str.contains(_REPLACEMENT, regex=False).to_numpy(dtype=bool),
        NOT_PRINTABLE: _unprintable(text),
        SURROUNDING_SPACE: (text.str.startswith(" ") | text.str.endswith(" ")).to_numpy(dtype=bool),
        HAS_SLASH: text.str.contains("/", regex=False).to_numpy(dtype=bool),
    }
    reasons = np.full(len(ids), None, dtype=object)
    # The first failing check names the reason: assign in reverse so earlier checks overwrite.
    for reason, failed in reversed(checks.items()):
        reasons[failed] = reason
    return pd.Series(reasons, index=ids.index, dtype=object)


def _unprintable(text: pd.Series) -> np.ndarray:
    """Which ids hold a character ``str.isprintable`` refuses."""
    bad = text.str.contains(_ASCII_UNPRINTABLE, regex=True).to_numpy(dtype=bool, copy=True)
    # Characters beyond ASCII: Python's own tables, so the vectorised and the scalar rule agree exactly.
    beyond_ascii = text.str.contains(r"[^\x00-\x7f]", regex=True).to_numpy(dtype=bool)
    positions = np.flatnonzero(beyond_ascii & ~bad)
    bad[positions] = [not value.isprintable() for value in text.iloc[positions].tolist()]
    return bad
