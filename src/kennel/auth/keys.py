"""API key material: generation, hashing and the constant-time check."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["KEY_PREFIX", "generate_key", "hash_key", "key_matches", "looks_like_key"]

KEY_PREFIX = "knl_"


def generate_key() -> str:
    """A new key: a recognisable prefix and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # The key has 256 bits of entropy, so a fast hash cannot be brute-forced; no salt needed.
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def looks_like_key(value: str) -> bool:
    return 8 <= len(value) <= 512 and value.isascii() and value.isprintable() and " " not in value
