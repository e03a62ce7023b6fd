"""Store ids the store-id rule refuses, one per kind, with the reason readers give (written by hand).

Each holds good characters around the bad one, so stripping never makes it valid.
"""

from __future__ import annotations

NOT_PRINTABLE = "store_id has a character that is not printable (control, format, separator or tab/line break)"
SLASH = "store_id contains '/' (a path segment cannot carry it)"
TOO_LONG = "store_id is longer than 128 characters"
NOT_UTF8 = "store_id is not valid UTF-8"

# Ids a reader refuses after stripping, and a path refuses as they are.
REFUSED_STORE_IDS = {
    "nul\x00id": NOT_PRINTABLE,
    "line\nbreak": NOT_PRINTABLE,
    "car\rriage": NOT_PRINTABLE,
    "tab\there": NOT_PRINTABLE,
    "del\x7fid": NOT_PRINTABLE,
    "zero\u200bwidth": NOT_PRINTABLE,
    "right\u202eleft": NOT_PRINTABLE,
    "a/b": SLASH,
    "bad\ufffdbytes": NOT_UTF8,
    "x" * 129: TOO_LONG,
}
# Of those, the ones a URL path segment can carry (a '/' splits the path: no route matches, 404).
PATH_STORE_IDS = [store_id for store_id in REFUSED_STORE_IDS if "/" not in store_id]
