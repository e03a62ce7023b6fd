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
# The usual kind of id, which one regex can pass: printable ASCII without '/', no space at either end.
_PLAIN_ASCII_ID = rf"[!-.0-~](?:[ -.0-~]{{0,{MAX_STORE_ID_LENGTH - 2}}}[!-.0-~])?"


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
    """``store_id_problem`` of every id of a Series (object dtype: the reason, or None).

    For the readers' distinct ids: plain ASCII ids pass one vectorised regex; only the others
    (non-ASCII, or failing) ask ``store_id_problem`` one by one, so both give the same answers.
    """
    plain = ids.str.fullmatch(_PLAIN_ASCII_ID).fillna(False).to_numpy(dtype=bool)
    reasons = np.full(len(ids), None, dtype=object)
    others = np.flatnonzero(~plain)
    reasons[others] = [store_id_problem(value) for value in ids.iloc[others].tolist()]
    return pd.Series(reasons, index=ids.index, dtype=object)
