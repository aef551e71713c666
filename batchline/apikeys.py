"""API keys of tenants: made here, shown once, stored only as hashes (pure; no I/O).

A key is 256 random bits, so a plain SHA-256 of it is as good as a slow hash: nothing can be
guessed from the digest, and the digest is what is stored and looked up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "blk_"


def new_key() -> str:
    """A fresh key (`blk_` and 43 URL-safe characters)."""
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def fingerprint(key_digest: str) -> str:
    """A short, non-secret label for a key (for `tenants list` and logs): never the key itself."""
    return key_digest[:12]
