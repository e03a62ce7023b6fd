"""API key text: how a key is made, read back and hashed (pure: no Django models, no database).

A key is ``<prefix>_<secret>``: the prefix is its kind (``KEY_PREFIXES``: ``lpr_``, ``lpi_``, ``lpo_``,
``lpa_``) and 8 random letters or digits, stored in the clear to find the key's row; the secret is 32
random bytes (43 URL-safe characters). Only an HMAC-SHA256 of the whole key is stored, keyed with a key
derived from ``KEY_HASH_SECRET``: a stolen table holds no usable key, and a fast keyed hash (not a
password hash) keeps checking a key within the per-request budget, which is safe because the secret has
256 random bits (nothing to guess by brute force).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from loop.accounts.capabilities import KEY_PREFIXES, Scope

PREFIX_RANDOM_LENGTH = 8
SECRET_BYTES = 32
_ALPHANUMERIC = string.ascii_letters + string.digits
# Separate the derived key from any other use of the same secret (Django signs cookies with SECRET_KEY).
_DERIVATION_LABEL = b"loop.accounts.api-key-digest.v1"

KEY_RE = re.compile(
    "(?P<prefix>(?:"
    + "|".join(re.escape(kind) for kind in KEY_PREFIXES.values())
    + f")[A-Za-z0-9]{{{PREFIX_RANDOM_LENGTH}}})_[A-Za-z0-9_-]{{{(SECRET_BYTES * 4 + 2) // 3}}}"
)


def new_prefix(scope: Scope) -> str:
    return KEY_PREFIXES[scope] + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(PREFIX_RANDOM_LENGTH))


def new_key(prefix: str) -> str:
    """The full key of a prefix: answered once at creation, never stored."""
    return f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"


def key_prefix(text: str) -> str | None:
    """The prefix of a well-formed key, or None for anything else (a static token, a typo)."""
    match = KEY_RE.fullmatch(text)
    return match.group("prefix") if match else None


def key_digest(key: str, *, secret: str) -> str:
    """HMAC-SHA256 of the whole key (hex), keyed with a key derived from ``secret``."""
    derived = hmac.new(secret.encode("utf-8"), _DERIVATION_LABEL, hashlib.sha256).digest()
    return hmac.new(derived, key.encode("utf-8"), hashlib.sha256).hexdigest()


def digest_matches(given: str, stored: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(given.encode("ascii"), stored.encode("ascii"))
